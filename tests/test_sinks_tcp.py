"""TcpLinesSink, against real TCP servers on 127.0.0.1.

Real time throughout (under an autojump clock, a wait on a socket counts as idle and
would jump to the sink's connect timeout). Every wait is on a condition, polled under a
generous ``fail_after``: none depends on how fast the machine is.
"""

from __future__ import annotations

import logging
import socket
import struct
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from sink_helpers import HOST, LineServer, line_server, parse_lines, recs

from trio_sink import ConfigError, Pipeline, Record, RetryPolicy, Route
from trio_sink._net_sinks import _readable
from trio_sink.sinks import SinkConnectionError, SinkTimeoutError, TcpLinesSink
from trio_sink.testing import check_sink


async def until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds, at most 30 s. Polled: what it asks about (the
    sockets) has no event to wait on."""
    with trio.fail_after(30):
        while not condition():  # noqa: ASYNC110 - polling state that signals nothing
            await trio.sleep(0.002)


@attrs.define
class Conn:
    """One connection the server took: what came, and whether it is over."""

    data: bytearray = attrs.Factory(bytearray)
    ended: trio.Event = attrs.Factory(trio.Event)

    def lines(self) -> list[bytes]:
        """The whole lines (a cut last line left out)."""
        return bytes(self.data).split(b"\n")[:-1]


class Server:
    """A TCP server in the test's run. Each connection, in turn, takes the next way of
    the ``script`` ("read" once it runs out):

    - ``read``: read until the client closes;
    - ``greet``: send a line first, then read;
    - ``close after 2 lines``: read two lines, then close;
    - ``reset``: read a first byte, then reset the connection (SO_LINGER 0);
    - ``hold``: read nothing until :attr:`go` is set, then read.
    """

    def __init__(self, sock: trio.socket.SocketType, nursery: trio.Nursery, script: Sequence[str]):
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self.nursery = nursery
        self.script = list(script)
        self.conns: list[Conn] = []
        self.go = trio.Event()

    async def listen(self) -> None:
        self.sock.listen()
        await self.nursery.start(
            trio.serve_listeners, self.handle, [trio.SocketListener(self.sock)]
        )

    async def _read(self, stream: trio.SocketStream, conn: Conn, until: int | None = None) -> None:
        while until is None or conn.data.count(b"\n") < until:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            conn.data += chunk

    async def handle(self, stream: trio.SocketStream) -> None:
        conn = Conn()
        self.conns.append(conn)
        how = self.script.pop(0) if self.script else "read"
        try:
            if how == "greet":
                await stream.send_all(b"hello\n")
            elif how == "close after 2 lines":
                await self._read(stream, conn, until=2)
                return
            elif how == "reset":
                conn.data += await stream.receive_some(1)
                stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            elif how == "hold":
                await self.go.wait()
            await self._read(stream, conn)
        except trio.BrokenResourceError:
            pass
        finally:
            await stream.aclose()
            conn.ended.set()

    def ids(self) -> list[int]:
        """The ids of the whole lines, every connection in turn."""
        return [obj["id"] for conn in self.conns for obj in parse_lines(b"\n".join(conn.lines()))]


@asynccontextmanager
async def serving(
    *script: str, listen: bool = True, receive_buffer: int | None = None
) -> AsyncIterator[Server]:
    """A server on 127.0.0.1, port 0. ``listen=False``: bound, not yet listening (a
    connection is refused until :meth:`Server.listen`). ``receive_buffer``: the size of
    each connection's receive buffer (set on the listening socket, which they inherit)."""
    sock = trio.socket.socket()
    with sock:
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        await sock.bind((HOST, 0))
        async with trio.open_nursery() as nursery:
            server = Server(sock, nursery, script)
            if listen:
                await server.listen()
            yield server
            nursery.cancel_scope.cancel()


def sees_peer_closed(sink: TcpLinesSink) -> bool:
    """Whether the sink's connection has something to read (here: the server's close).
    The test reaches into the sink to wait for what its next write will check."""
    stream = sink._stream
    return stream is not None and _readable(stream.socket.fileno())


def more_than_the_buffers_hold() -> int:
    """Bytes that a connection's buffers cannot all take while the peer reads none: the
    most a send buffer grows to, and a MiB (the peer's receive buffer is made small)."""
    try:
        wmem_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        wmem_max = 4 << 20
    if wmem_max > 32 << 20:
        pytest.skip(f"send buffers of up to {wmem_max} bytes: too much for one test batch")
    return wmem_max + (1 << 20)


def big_batch(first: int, nbytes: int) -> list[Record]:
    return [Record(i, "b" * 4000, {"i": i}) for i in range(first, first + nbytes // 4000 + 1)]


# -- delivery -----------------------------------------------------------------------------


async def test_a_pipeline_sends_every_record_in_order() -> None:
    async with serving() as server:
        sink = TcpLinesSink(HOST, server.port)
        report = await Pipeline(range(500), routes=[Route("all", sink)], batch_size=32).run()
        report.check()
        assert report.delivered[sink.name] == 500
        await server.conns[0].ended.wait()  # the sink closed its connection at the end
        assert server.ids() == list(range(500))
        stats = sink.statistics()
        assert (stats.connected, stats.connects, stats.batches, stats.failures) == (
            False,
            1,
            16,
            0,
        )
        assert stats.bytes_sent == len(server.conns[0].data)


async def test_the_connection_is_made_by_the_first_write() -> None:
    async with serving() as server:
        sink = TcpLinesSink(HOST, server.port)
        await trio.testing.wait_all_tasks_blocked()
        assert server.conns == []
        await sink.write([])
        assert server.conns == []
        await sink.write(recs(0, 2))
        await until(lambda: server.ids() == [0, 1])
        assert sink.statistics().connects == 1
        await sink.aclose()
        await sink.aclose()
        await server.conns[0].ended.wait()


async def test_a_connection_the_server_closed_is_made_again_before_the_next_write() -> None:
    async with serving("close after 2 lines") as server:
        sink = TcpLinesSink(HOST, server.port)
        await sink.write(recs(0, 2))
        await server.conns[0].ended.wait()
        await until(lambda: sees_peer_closed(sink))
        await sink.write(recs(2, 3))  # not into the closed connection: a new one
        await until(lambda: server.ids() == [0, 1, 2, 3, 4])
        stats = sink.statistics()
        assert (stats.connects, stats.failures) == (2, 0)
        await sink.aclose()


async def test_what_the_server_sends_is_read_and_dropped() -> None:
    async with serving("greet") as server:
        sink = TcpLinesSink(HOST, server.port)
        await sink.write(recs(0, 1))
        await until(lambda: sees_peer_closed(sink))  # readable: the greeting is there
        await sink.write(recs(1, 1))
        await until(lambda: server.ids() == [0, 1])
        assert sink.statistics().connects == 1
        await sink.aclose()


# -- failures -----------------------------------------------------------------------------


async def test_a_connection_broken_during_a_write_raises_connection_error() -> None:
    batch = big_batch(0, more_than_the_buffers_hold())
    async with serving("reset", receive_buffer=4096) as server:
        sink = TcpLinesSink(HOST, server.port, name="lines")
        with pytest.raises(SinkConnectionError, match=r"^lines: the connection to 127\.0\.0\.1"):
            await sink.write(batch)
        stats = sink.statistics()
        assert (stats.connected, stats.failures, stats.batches) == (False, 1, 0)
        await sink.write(recs(0, 2))  # a new connection
        await until(lambda: server.ids() == [0, 1])
        assert sink.statistics().connects == 2
        await sink.aclose()


async def test_the_pipeline_retries_a_broken_connection_and_every_record_arrives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = big_batch(0, more_than_the_buffers_hold())
    async with serving("reset", receive_buffer=4096) as server:
        sink = TcpLinesSink(HOST, server.port)
        with caplog.at_level(logging.WARNING, logger="trio_sink.sink"):
            report = await Pipeline(
                [r.raw for r in records], routes=[Route("all", sink)], batch_size=len(records)
            ).run()
        report.check()
        assert report.ok
        await until(lambda: len(server.conns) == 2)
        await server.conns[1].ended.wait()
        # At least once: the first connection took a part (a cut line at most), the
        # retry sent the batch whole.
        assert server.ids() == list(range(len(records)))
        assert server.conns[0].lines() == []
        stats = sink.statistics()
        assert (stats.connects, stats.failures, stats.batches) == (2, 1, 1)
    [retry] = [r.getMessage() for r in caplog.records]
    assert retry.startswith(f"sink.retry sink={sink.name} attempt=1 ")
    assert 'error="SinkConnectionError: ' in retry


async def test_a_refused_connection_is_retried_until_the_server_listens() -> None:
    async with serving(listen=False) as server:
        sink = TcpLinesSink(HOST, server.port)
        with pytest.raises(SinkConnectionError, match=r"cannot connect to 127\.0\.0\.1:"):
            await sink.write(recs(0, 1))
        assert sink.statistics().failures == 1
        patient = RetryPolicy(attempts=10_000, initial_backoff=0.005, max_backoff=0.005, jitter=0.0)
        async with trio.open_nursery() as nursery:

            async def run() -> None:
                report = await Pipeline(range(3), routes=[Route("all", sink)], retry=patient).run()
                report.check()
                assert report.ok

            nursery.start_soon(run)
            await until(lambda: sink.statistics().failures >= 2)  # the pipeline's attempts
            await server.listen()
        await server.conns[0].ended.wait()
        assert server.ids() == [0, 1, 2]


@pytest.mark.skipif(sys.platform != "linux", reason="Linux drops a SYN to a full backlog")
async def test_a_connection_not_made_in_time_raises_timeout_error() -> None:
    with socket.create_server((HOST, 0), backlog=0) as listener:
        port = listener.getsockname()[1]
        with socket.create_connection((HOST, port)):  # fills the backlog: no accept
            sink = TcpLinesSink(HOST, port, name="lines", connect_timeout=0.2)
            message = (
                r"^lines: no connection to 127\.0\.0\.1:\d+ within 0\.2 s \(connect_timeout\)$"
            )
            with pytest.raises(SinkTimeoutError, match=message):
                await sink.write(recs(0, 1))
            assert sink.statistics().failures == 1
            await sink.aclose()


async def test_a_cancelled_write_drops_the_connection_and_the_next_makes_one() -> None:
    batch = big_batch(0, more_than_the_buffers_hold())
    async with serving("hold", receive_buffer=4096) as server:
        sink = TcpLinesSink(HOST, server.port)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sink.write, batch)
            await until(lambda: sink.statistics().connected)
            await trio.testing.wait_all_tasks_blocked()  # the buffers are full
            nursery.cancel_scope.cancel()
        assert not sink.statistics().connected
        server.go.set()
        await server.conns[0].ended.wait()
        await sink.write(recs(0, 2))
        await until(lambda: server.ids()[-2:] == [0, 1])
        first = server.conns[0]
        assert 0 < len(first.data) < sum(len(r.raw) for r in batch)  # a first part
        assert sink.statistics().connects == 2
        await sink.aclose()


# -- the contract and the settings --------------------------------------------------------


def received(server: LineServer, made: list[TcpLinesSink]) -> list[Record]:
    """What the server has of everything the sinks sent, once it has all of it."""
    server.wait_bytes(sum(s.statistics().bytes_sent for s in made))
    return server.records()


async def test_it_conforms() -> None:
    made: list[TcpLinesSink] = []

    def make() -> TcpLinesSink:
        made.append(TcpLinesSink(HOST, server.port, name="tcp"))
        return made[-1]

    with line_server() as server:
        await check_sink(make, delivered=lambda s: received(server, made))
    assert len(made) > 5


def test_its_name_says_where_it_sends() -> None:
    assert TcpLinesSink("localhost", 9000).name == "tcp:localhost:9000"
    assert TcpLinesSink("localhost", 9000, name="out").name == "out"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"host": "", "port": 1}, "host must be a non-empty str, got ''"),
        ({"host": "h", "port": 0}, "port must be an int >= 1, got 0"),
        ({"host": "h", "port": 65536}, "port must be an int from 1 to 65535, got 65536"),
        ({"host": "h", "port": "80"}, "port must be an int >= 1, got '80'"),
        ({"host": "h", "port": 1, "connect_timeout": 0}, "connect_timeout must be a finite"),
        ({"host": "h", "port": 1, "name": ""}, "name must be a non-empty str"),
    ],
)
def test_settings_are_checked_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TcpLinesSink(**kwargs)
