"""What `bulk` shows while it runs (a progress bar, or lines when piped) and after."""

from __future__ import annotations

import sys
import time

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from .._bulk import BulkSummary
from ._output import stderr, stdout

__all__ = ["BulkProgress", "print_summary"]


class BulkProgress:
    """A rich progress bar on a terminal; a plain line every second when piped."""

    def __init__(self, total: int, *, live: bool) -> None:
        self._total = total
        self._live = live
        self._last_line = 0.0
        self._bar = Progress(
            TextColumn("sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:,.0f}/s"),
            TimeRemainingColumn(),
            TextColumn("[red]{task.fields[failed]} failed[/] {task.fields[unknown]} unknown"),
            console=stderr,
            transient=False,
        )
        self._task = self._bar.add_task("bulk", total=total, rate=0.0, failed=0, unknown=0)

    def __enter__(self) -> BulkProgress:
        if self._live:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop redrawing the bar (before printing anything else)."""
        if self._live:
            self._bar.stop()

    def update(self, summary: BulkSummary, *, final: bool = False) -> None:
        """Show `summary`; piped, at most a line a second (and the final one)."""
        if self._live:
            self._bar.update(
                self._task,
                completed=summary.results,
                rate=summary.rate,
                failed=summary.failed_total,
                unknown=summary.unknown,
            )
            return
        now = time.monotonic()
        if final or now - self._last_line >= 1.0:
            self._last_line = now
            sys.stderr.write(
                f"{summary.results}/{self._total} sent={summary.sent + summary.already_sent} "
                f"failed={summary.failed_total} unknown={summary.unknown} "
                f"rate={summary.rate:.1f}/s\n"
            )
            sys.stderr.flush()


def print_summary(summary: BulkSummary, not_reached: int) -> None:
    table = Table(title="Summary", show_header=False, title_justify="left")
    table.add_row("messages", f"{summary.results + not_reached:,}")
    table.add_row("sent", f"{summary.sent:,}")
    if summary.already_sent:
        table.add_row("sent by an earlier run", f"{summary.already_sent:,}")
    for name, count in sorted(summary.failed.items()):
        table.add_row(f"failed: {name}", f"{count:,}")
    table.add_row("outcome unknown", f"{summary.unknown:,}")
    if summary.not_sent or not_reached:
        table.add_row("not sent (stopped)", f"{summary.not_sent + not_reached:,}")
    table.add_row("retries", f"{summary.retried:,}")
    if summary.rate_limited:
        table.add_row("paused for 429", f"{summary.rate_limited:,}")
    table.add_row("elapsed", f"{summary.elapsed_s:,.1f} s")
    table.add_row("rate", f"{summary.rate:,.1f} msg/s")
    stdout.print(table)
