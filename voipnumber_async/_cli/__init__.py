"""The `voipnumber` command. Its dependencies come with the `cli` extra."""

from __future__ import annotations

import sys


def main() -> None:
    """Run the `voipnumber` command line."""
    try:
        from ._group import cli  # noqa: PLC0415 - click and rich are an optional extra
    except ModuleNotFoundError as error:
        if error.name not in ("click", "rich"):
            raise
        sys.stderr.write(
            f"voipnumber: the command line needs {error.name}: pip install 'voipnumber[cli]'\n"
        )
        raise SystemExit(1) from None
    cli()
