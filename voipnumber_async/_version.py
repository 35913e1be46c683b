"""The version of the voipnumber distribution."""

__version__ = "0.1.0"
