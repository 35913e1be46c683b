"""`-v`: how much the commands log to stderr, given before or after a command's name."""

from __future__ import annotations

import logging
import sys
from typing import Final

import click

#: Where the group's `-v` count waits for a command's own `-v`, in the root context.
_VERBOSITY: Final = "voipnumber.verbosity"


def configure_logging(verbose: int) -> None:
    """Log to stderr: warnings, `-v` also retries (INFO), `-vv` every attempt (DEBUG)."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    root.setLevel(level)


def set_verbosity(context: click.Context, verbose: int) -> None:
    """Record the group's `-v` count (given before the command) and apply it."""
    context.find_root().meta[_VERBOSITY] = verbose
    configure_logging(verbose)


def _add_verbosity(context: click.Context, _: click.Parameter, verbose: int) -> None:
    # A command's -v adds to the group's: `voipnumber -v send -v ...` is -vv.
    if verbose:
        set_verbosity(context, context.find_root().meta.get(_VERBOSITY, 0) + verbose)


VERBOSE_HELP: Final = "-v: log retries; -vv: log every attempt."


def verbose_option() -> click.Option:
    """`-v`/`--verbose` for a command, so that it also works after the command's name.

    (click takes a group's options only before the command.)
    """
    return click.Option(
        ["-v", "--verbose"],
        count=True,
        expose_value=False,
        callback=_add_verbosity,
        help=VERBOSE_HELP,
    )
