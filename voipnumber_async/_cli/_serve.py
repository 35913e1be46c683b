"""Serving until Ctrl-C, for the commands that run a server (`sandbox`, `listen`)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from ._output import EXIT_OTHER_ERROR, stderr

__all__ = ["serve_until_interrupted"]


def serve_until_interrupted(
    serve: Callable[[], Coroutine[Any, Any, None]], what: str, where: str
) -> None:
    """Run `serve` until Ctrl-C; say so, and fail clearly if the port is taken."""

    async def forever() -> None:
        await serve()
        await asyncio.Event().wait()

    try:
        asyncio.run(forever())
    except KeyboardInterrupt:
        stderr.print(f"{what} stopped.")
    except OSError as error:
        stderr.print(f"[bold red]cannot serve on {where}[/]: {error}")
        sys.exit(EXIT_OTHER_ERROR)
