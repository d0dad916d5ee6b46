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


def free_port(*, bus: bool = False) -> int:
    """A free loopback port; with ``bus``, one whose cluster bus port (+10000) is free
    too."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if not bus:
            return port
        if port + 10000 <= 65535:
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


def nowhere() -> str:
    """The URL of a loopback port where no server listens (a connection is refused)."""
    return f"redis://127.0.0.1:{free_port()}"


class RedisServer:
    """A redis-server subprocess: no persistence, loopback only."""

    def __init__(self, binary: str, directory: Path, *args: str) -> None:
        self.binary = binary
        self.directory = directory
        self.args = args
        """More settings, such as ``--cluster-enabled yes``."""
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it on a free port (another one if that port was taken meanwhile), and
        wait until it answers."""
        for _ in range(5):
            self.port = free_port(bus="--cluster-enabled" in self.args)
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
                    *self.args,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 20
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    if self.command("PING") == "PONG":
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

    def command(self, *words: str) -> str | int | None:
        """Send one command; its reply, if a simple string, an integer or a bulk string
        (an error reply raises ``RuntimeError``)."""
        payload = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(payload.encode())
            reply = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    raise OSError("connection closed before the reply ended")
                reply += chunk
                head, sep, rest = reply.partition(b"\r\n")
                if not sep:
                    continue
                kind, value = head[:1], head[1:].decode()
                if kind == b"+":
                    return value
                if kind == b"-":
                    raise RuntimeError(value)
                if kind == b":":
                    return int(value)
                if kind == b"$":
                    if int(value) < 0:
                        return None
                    if len(rest) >= int(value) + 2:
                        return rest[: int(value)].decode()
                    continue
                raise NotImplementedError(f"reply {head!r}")


@contextmanager
def running_redis(directory: Path) -> Iterator[RedisServer]:
    directory.mkdir(parents=True, exist_ok=True)
    server = RedisServer(require_redis_server(), directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def running_redis_cluster(directory: Path, nodes: int = 3) -> Iterator[list[RedisServer]]:
    """A Redis Cluster of ``nodes`` masters on loopback, the slots shared out evenly."""
    binary = require_redis_server()
    servers: list[RedisServer] = []
    try:
        for k in range(nodes):
            (directory / str(k)).mkdir(parents=True, exist_ok=True)
            server = RedisServer(
                binary, directory / str(k), "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
            )  # fmt: skip
            servers.append(server)
            server.start()
        first = servers[0]
        for server in servers[1:]:
            assert first.command("CLUSTER", "MEET", "127.0.0.1", str(server.port)) == "OK"
        for k, server in enumerate(servers):
            low, high = k * 16384 // nodes, (k + 1) * 16384 // nodes - 1
            assert server.command("CLUSTER", "ADDSLOTSRANGE", str(low), str(high)) == "OK"
        deadline = time.monotonic() + 30
        while not all(
            "cluster_state:ok" in str(server.command("CLUSTER", "INFO")) for server in servers
        ):
            assert time.monotonic() < deadline, "the cluster never came up"
            time.sleep(0.05)
        yield servers
    finally:
        for server in servers:
            server.stop()
