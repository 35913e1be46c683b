"""Stopping a bulk run on a signal: SIGINT (Ctrl-C) and SIGTERM (systemd, `docker stop`).

The first signal calls `run.stop()`: no new request starts, requests on the wire may
finish, every other message is reported `not_sent` (and journaled as unsent, so a
resume sends it). A second signal aborts at once. `print_stopped` then says what the
stop did and what to run next.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Final

from voipnumber_sync import SendMany

from .._bulk import DRAIN_TIMEOUT_S, BulkSummary
from ._output import stderr

__all__ = ["EXIT_SIGNALLED_BASE", "STOP_SIGNALS", "Stopper", "print_stopped"]

#: A run stopped by a signal exits 128 + its number, as the shell reports a command it
#: killed: 130 for SIGINT, 143 for SIGTERM.
EXIT_SIGNALLED_BASE = 128
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


class Stopper:
    """Turns the first SIGINT or SIGTERM into `run.stop()`; a second one quits at once.

    The handlers run in the main thread, between two of its bytecodes or while it waits
    for a result: `stop()` is safe there, and so is quitting with `os._exit`, which
    leaves the results file as written so far: rows are flushed whole, one `write` each.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.finished = False
        self.stopped = False
        #: Results the library had decided when the signal came, and the unknown ones.
        self.results_at_stop = self.unknown_at_stop = 0
        self._run: SendMany | None = None

    @contextlib.contextmanager
    def installed(self, run: SendMany) -> Iterator[None]:
        """Handle SIGINT and SIGTERM for `run` until the block ends."""
        self._run = run
        previous = {number: signal.signal(number, self._handle) for number in STOP_SIGNALS}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def stop(self) -> None:
        """Stop the run: nothing new is sent; iteration goes on to its end."""
        if not self.stopped and self._run is not None:
            self.stopped = True
            self._run.stop()

    def _handle(self, signum: int, _: FrameType | None) -> None:
        if self.finished:  # every result is in: nothing left to stop, it exits in a moment
            return
        name = signal.Signals(signum).name
        if self.signum is not None:
            _say(
                f"Aborted by a second {name}: the rows written to --results stand; with "
                "--journal, a resume reports as unknown the messages whose outcome the "
                "journal had not yet recorded.\n"
            )
            # At once, as asked: not waiting for the requests on the wire, nor for threads.
            os._exit(EXIT_SIGNALLED_BASE + signum)
        self.signum = signum
        if self._run is not None:
            summary = self._run.summary
            self.results_at_stop, self.unknown_at_stop = summary.results, summary.unknown
        self.stop()
        _say(
            f"\nStopping ({name}): no new request starts; those on the wire may finish (at "
            f"most {DRAIN_TIMEOUT_S:g} s). Send it again to quit at once.\n"
        )


def _say(text: str) -> None:
    """Write to stderr from a signal handler: a raw write, safe even amid a print."""
    os.write(sys.stderr.fileno(), text.encode())


def print_stopped(
    stopper: Stopper,
    summary: BulkSummary,
    not_reached: int,
    *,
    journal: str | None,
    results: str | None,
) -> None:
    """Say what a signal's stop did: what was let finish, what was not sent, what next."""
    assert stopper.signum is not None
    not_sent = summary.not_sent + not_reached
    # Decided since the signal, and not by the stop itself: requests that were on the wire.
    finished = max(0, summary.results - stopper.results_at_stop - summary.not_sent)
    cut_off = summary.unknown - stopper.unknown_at_stop
    lines = [
        f"Stopped by {signal.Signals(stopper.signum).name}: no new request was made after "
        f"it; {finished:,} already on the wire were let finish"
        + (f" ({cut_off:,} of them with an unknown outcome)" if cut_off else "")
        + f", and {not_sent:,} messages were not sent."
    ]
    if journal is not None:
        lines.append(f"Run the same command to resume: it sends the {not_sent:,} not sent.")
        if summary.unknown:
            lines.append(
                f"{summary.unknown:,} have an unknown outcome: resume with --resend-unknown "
                "to send them again with their original keys (no duplicate if the service "
                "got them)."
            )
    elif results is not None:
        lines.append(
            f"Without --journal there is nothing to resume from: the not_sent rows of "
            f"{results} are what remains to send."
        )
    else:
        lines.append("Use --journal next time to be able to resume.")
    stderr.print("\n".join(lines), highlight=False)
