"""The commands of `voipnumber`, one module each; `.._group` registers them."""
