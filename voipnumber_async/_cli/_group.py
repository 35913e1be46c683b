"""The `voipnumber` group: its global options, and the registration of each command.

Each command lives in a module of its own under `commands/`; what they share is in the
modules beside this one (`_output`, `_verbosity`, `_credentials`, ...).
"""

from __future__ import annotations

import click

from .._version import __version__
from ._verbosity import VERBOSE_HELP, set_verbosity, verbose_option
from .commands.bulk import bulk
from .commands.campaign import campaign
from .commands.listen import listen
from .commands.sandbox import sandbox_command
from .commands.segments import segments
from .commands.send import send
from .commands.worker import worker

__all__ = ["cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="voipnumber")
@click.option("-v", "--verbose", count=True, help=VERBOSE_HELP)
@click.pass_context
def cli(context: click.Context, verbose: int) -> None:
    """Send SMS with VoIP Number, or run a local sandbox of the service.

    Credentials come from --account-id/--api-token or from VOIPNUMBER_ACCOUNT_ID and
    VOIPNUMBER_API_TOKEN (prefer the environment: a flag is visible to other users of
    the machine). --sandbox needs none. -v works before or after the command's name.
    """
    set_verbosity(context, verbose)


for _command in (send, sandbox_command, listen, bulk, segments, campaign, worker):
    cli.add_command(_command)
    # Every command takes -v after its name too (click takes the group's only before it).
    _command.params.append(verbose_option())
