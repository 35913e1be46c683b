"""`voipnumber segments`: how many SMS segments a body is sent as, offline."""

from __future__ import annotations

import sys
from typing import Final

import click

from ..._errors import InvalidRequestError
from ..._segments import estimate_segments
from ..._validation import check_body
from .._output import exit_status, print_error

__all__ = ["segments"]

#: The `segments` command's name for the body, for its error messages.
_SEGMENTS_ARGUMENTS: Final = {"body": "BODY"}


@click.command()
@click.argument("body")
def segments(body: str) -> None:
    """Estimate how many SMS segments BODY is sent as, and in which encoding.

    BODY - reads the body from standard input (one final newline is not part of it).
    """
    if body == "-":
        body = _read_standard_input()
    try:
        check_body(body)
    except InvalidRequestError as error:
        print_error(error, _SEGMENTS_ARGUMENTS)
        sys.exit(exit_status(error))
    estimate = estimate_segments(body)
    click.echo(
        f"{estimate.segments} segment(s), {estimate.encoding}, "
        f"{estimate.units} units ({estimate.units_per_segment} per segment)"
    )


def _read_standard_input() -> str:
    """All of standard input as UTF-8, without the one newline that `echo` adds."""
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise click.UsageError(
            f"standard input is not UTF-8 (byte 0x{data[error.start]:02x} at offset "
            f"{error.start}): convert it first, e.g. with iconv -t UTF-8"
        ) from None
    return text.removesuffix("\n").removesuffix("\r")
