"""Celery worker processes on this machine: for the demo, the tests and the benchmarks.

Each `LocalWorker` is a real `celery worker` (prefork pool) started as a subprocess of
this interpreter, on the campaign app of `voipnumber_async.celery.worker`, so that
what runs is what a user runs, processes and all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Final

__all__ = ["WORKER_START_TIMEOUT_S", "LocalWorker"]

#: How long a worker has to say it is ready: Celery starts in a few seconds; this
#: bounds a broken environment.
WORKER_START_TIMEOUT_S: Final = 60.0
#: How long a stopping worker has to finish its chunk (Celery's warm shutdown).
WORKER_STOP_TIMEOUT_S: Final = 30.0
#: What Celery writes to its log file once it consumes tasks.
_READY: Final = " ready."


class LocalWorker:
    """One `celery -A voipnumber_async.celery.worker worker` process, and its log file.

    Args:
        name: The worker's node name (`name@host`), unique among running workers.
        environment: The worker's whole environment: the account's credentials and
            `VOIPNUMBER_REDIS_URL` (and `VOIPNUMBER_BROKER_URL`) among it.
        directory: Where its log file goes.
        concurrency: Pool processes (each sends one chunk at a time).
    """

    def __init__(
        self, name: str, environment: Mapping[str, str], directory: Path, *, concurrency: int = 1
    ) -> None:
        self.name = name
        self.environment = dict(environment)
        self.log = directory / f"{name}.log"
        # A file, not a pipe: nobody reads a pipe while the worker runs, and a full one
        # would block it.
        self.errors = directory / f"{name}.stderr"
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the worker; return once it consumes tasks.

        Raises:
            RuntimeError: It exited, or was not ready within `WORKER_START_TIMEOUT_S`.
        """
        command = [
            sys.executable, "-m", "celery", "-A", "voipnumber_async.celery.worker", "worker",
            "--pool", "prefork", "--concurrency", str(self.concurrency), "--loglevel", "info",
            "--hostname", f"{self.name}@%h", "--without-mingle", "--without-gossip",
            "--without-heartbeat", "--logfile", str(self.log),
        ]  # fmt: skip
        with self.errors.open("wb") as errors:
            self.process = subprocess.Popen(  # noqa: S603 - our interpreter, our arguments
                command, env=self.environment, stdout=subprocess.DEVNULL, stderr=errors
            )
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while _READY not in self.log_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                error = self._stop(signal.SIGKILL)
                raise RuntimeError(f"a Celery worker did not start ({error}); see {self.log}")
            time.sleep(0.05)

    def log_text(self) -> str:
        """What the worker has logged so far."""
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def pool_processes(self) -> list[int]:
        """The pids of its pool processes (the ones that run chunks). Linux only."""
        if self.process is None:
            return []
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [int(child) for child in children]

    def kill_pool_processes(self) -> list[int]:
        """SIGKILL its pool processes, as an OOM kill would; the worker starts new ones."""
        killed = self.pool_processes()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        return killed

    def stop(self) -> None:
        """Warm shutdown (SIGTERM: the running chunk finishes), SIGKILL after a timeout."""
        self._stop(signal.SIGTERM)

    def _stop(self, how: signal.Signals) -> str:
        if self.process is None:
            return ""
        if self.process.poll() is None:
            self.process.send_signal(how)
        try:
            self.process.wait(WORKER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        error = self.errors.read_text(errors="replace").strip()
        return error.splitlines()[-1] if error else "no output"

    def __enter__(self) -> LocalWorker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
