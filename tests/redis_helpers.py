"""A real redis-server for the tests, on a free loopback port, always stopped after.

The tests that need one skip only when no ``redis-server`` binary can be found, and say
so; with ``TRIO_SINK_REQUIRE_REDIS=1`` (as ``.ci/run`` sets it) they fail instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PLACES = ("/usr/bin", "/usr/sbin", "/usr/local/bin")
"""Where Debian's package and a source build put ``redis-server``, also when not on PATH."""


def redis_server_binary() -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *PLACES])
    return shutil.which("redis-server", path=path)


def require_redis_server() -> str:
    """The path of ``redis-server``; skips the test (fails it, when required) without."""
    binary = redis_server_binary()
    if binary is None:
        reason = (
            "no redis-server binary on PATH or in " + ", ".join(PLACES) + ": the Redis tests"
            " need one (Debian: apt-get install redis-server)"
        )
        if os.environ.get("TRIO_SINK_REQUIRE_REDIS") == "1":
            pytest.fail(reason + "; TRIO_SINK_REQUIRE_REDIS=1 makes that a failure")
        pytest.skip(reason)
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A redis-server subprocess: no persistence, loopback only."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it on a free port (another one if that port was taken meanwhile), and
        wait until it answers."""
        for _ in range(5):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 20
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    if self.command("PING") == b"+PONG":
                        return
                except OSError:
                    time.sleep(0.01)
            self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def command(self, *words: str) -> bytes:
        """Send one command; its reply's first line (enough for +OK, :1, -ERR...)."""
        payload = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(payload.encode())
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        return reply.split(b"\r\n", 1)[0]


@contextmanager
def running_redis(directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(require_redis_server(), directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
