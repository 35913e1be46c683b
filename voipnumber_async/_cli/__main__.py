"""`python -m voipnumber_async._cli`, the same as the `voipnumber` command."""

from . import main

main()
