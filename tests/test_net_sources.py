"""trio_sink.sources: TcpLinesSource and SyslogSource, over real sockets on 127.0.0.1.

Every wait is on a condition (a count reached, every task blocked), polled under a
generous ``fail_after``: none depends on how fast the machine is.
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from helpers import messages

from trio_sink import (
    ConfigError,
    DeliveryReport,
    Infra,
    Pipeline,
    PipelineHandle,
    Record,
    Route,
    Sink,
    SourceError,
    Undecodable,
)
from trio_sink.sinks import CollectSink
from trio_sink.sources import NetSourceStatistics, SyslogSource, TcpLinesSource
from trio_sink.testing import running

HOST = "127.0.0.1"


async def until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds, at most 30 s. Polled: what it asks about (the
    sockets, the pipeline's counts) has no event to wait on."""
    with trio.fail_after(30):
        while not condition():  # noqa: ASYNC110 - polling state that signals nothing
            await trio.sleep(0.002)


def received(handle: PipelineHandle) -> int:
    return handle.statistics().source.received


def raws(sink: CollectSink) -> list[Any]:
    return [r.raw for r in sink.records]


class Run:
    """A pipeline over ``source`` with an ``all`` route and a ``miss`` sink, running."""

    def __init__(
        self,
        source: TcpLinesSource | SyslogSource,
        handle: PipelineHandle,
        sink: CollectSink,
        miss: CollectSink,
    ) -> None:
        self.source = source
        self.handle = handle
        self.sink = sink
        self.miss = miss

    def stats(self) -> NetSourceStatistics:
        return self.source.statistics()

    async def until_received(self, n: int) -> None:
        await until(lambda: received(self.handle) >= n)
        await until(lambda: len(self.sink.records) + len(self.miss.records) >= n)

    @property
    def report(self) -> DeliveryReport:
        report = self.handle.report
        assert report is not None
        report.check()
        return report


@asynccontextmanager
async def serving(source: TcpLinesSource | SyslogSource, **settings: Any) -> AsyncIterator[Run]:
    """Run a pipeline over ``source`` for the block, and stop it at the end."""
    sink, miss = CollectSink("all"), CollectSink("miss")
    pipeline = Pipeline(
        source,
        routes=[Route("all", sink)],
        infra=Infra(miss=miss),
        batch_timeout=0.005,
        **settings,
    )
    async with running(pipeline) as handle:
        assert source.listening.is_set()
        yield Run(source, handle, sink, miss)
        handle.stop()


async def connect(source: TcpLinesSource | SyslogSource) -> trio.SocketStream:
    return await trio.open_tcp_stream(HOST, source.port)


# -- TcpLinesSource ---------------------------------------------------------------------


@pytest.fixture(params=["selector", "every socket"])
def readiness(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of finding readable sockets: an epoll/kqueue selector waited on as one
    descriptor, and (as on Windows) every socket tried and waited on by a task."""
    if request.param == "every socket":
        monkeypatch.setattr(selectors, "DefaultSelector", selectors.SelectSelector)
    return str(request.param)


async def test_lines_of_several_clients_at_once(readiness: str) -> None:
    clients, lines = 6, 200
    async with serving(TcpLinesSource(HOST, 0)) as run:
        assert run.source.port != 0

        async def client(c: int) -> None:
            data = b"".join(f"client {c} line {i}\n".encode() for i in range(lines))
            async with await connect(run.source) as stream:
                # Pieces of odd sizes: lines cut anywhere, several lines a piece.
                size = 7 + 13 * c
                for start in range(0, len(data), size):
                    await stream.send_all(data[start : start + size])

        async with trio.open_nursery() as nursery:
            for c in range(clients):
                nursery.start_soon(client, c)
        await run.until_received(clients * lines)
    assert run.report.ok
    assert run.report.received == clients * lines
    got = raws(run.sink)
    for c in range(clients):  # each client's lines, whole and in order
        assert [x for x in got if x.startswith(f"client {c} ")] == [
            f"client {c} line {i}" for i in range(lines)
        ]
    stats = run.stats()
    assert (stats.accepted, stats.items_read, stats.lost_items) == (clients, clients * lines, 0)
    assert stats.connections == 0  # closed at the end of the run


async def test_out_of_file_descriptors_pauses_accepting(
    readiness: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The first accept() fails as in a process out of descriptors: the source stops
    # accepting for a while (the client waits in the listen queue), then takes it.
    real_accept = socket.socket.accept
    failures = [OSError(errno.EMFILE, "Too many open files")]

    def accept(sock: socket.socket) -> tuple[socket.socket, Any]:
        if failures:
            raise failures.pop()
        return real_accept(sock)

    monkeypatch.setattr(socket.socket, "accept", accept)
    async with serving(TcpLinesSource(HOST, 0)) as run:
        async with await connect(run.source) as stream:
            await stream.send_all(b"let me in\n")
        await run.until_received(1)
    assert raws(run.sink) == ["let me in"]
    assert messages(caplog, "source.accept_paused") == [
        "source.accept_paused seconds=0.1 error=[Errno 24] Too many open files"
    ]


async def test_a_line_split_across_reads_is_yielded_whole() -> None:
    async with serving(TcpLinesSource(HOST, 0)) as run:
        pieces = [b"hel", b"lo\r", b"\nwor", b"ld", b"\n\n", b"x\r\n"]
        sent = 0
        async with await connect(run.source) as stream:
            for piece in pieces:
                await stream.send_all(piece)
                sent += len(piece)
                # The source has read this piece before the next is sent.
                await until(lambda n=sent: run.stats().bytes_read == n)  # type: ignore[misc]
            await run.until_received(4)
    assert raws(run.sink) == ["hello", "world", "", "x"]


async def test_a_partial_last_line_is_yielded_when_the_client_closes() -> None:
    async with serving(TcpLinesSource(HOST, 0)) as run:
        async with await connect(run.source) as stream:
            await stream.send_all(b"one\ntwo\r\nlast words")
        await run.until_received(3)
    assert raws(run.sink) == ["one", "two", "last words"]
    assert run.report.ok


async def test_an_over_long_line_goes_to_miss_with_its_first_bytes() -> None:
    source = TcpLinesSource(HOST, 0, max_line_bytes=10)
    async with serving(source) as run, await connect(source) as stream:
        # One over-long line whole in a read, one arriving in pieces (never held
        # whole), one exactly at the limit, with a \r.
        await stream.send_all(b"short\n" + b"x" * 25 + b"\nafter\n")
        for _ in range(5):
            await stream.send_all(b"y" * 8)
        await stream.send_all(b"yy\n0123456789\r\nend\n")
        await run.until_received(6)
    assert raws(run.sink) == ["short", "after", "0123456789", "end"]
    missed = raws(run.miss)
    assert [m.data for m in missed] == [b"x" * 10, b"y" * 10]
    assert all(isinstance(m, Undecodable) and "longer than 10 bytes" in m.reason for m in missed)
    assert run.report.discarded == {}
    assert run.report.delivered["miss"] == 2
    assert (run.stats().over_long, run.stats().undecodable) == (2, 2)


async def test_a_client_that_never_ends_its_line_holds_no_memory() -> None:
    # 8 MiB without a newline: the source keeps the first 1000 bytes, drops the rest as
    # it comes (its sweeps go on while the client sends, in the same event loop).
    source = TcpLinesSource(HOST, 0, max_line_bytes=1000)
    async with serving(source) as run, await connect(source) as stream:
        for _ in range(128):
            await stream.send_all(b"z" * 65536)
        await stream.send_all(b"\nok\n")
        await run.until_received(2)
    assert raws(run.sink) == ["ok"]
    assert [m.data for m in raws(run.miss)] == [b"z" * 1000]
    assert run.stats().bytes_read == 128 * 65536 + 4


async def test_invalid_utf8_goes_to_miss_with_its_bytes() -> None:
    async with serving(TcpLinesSource(HOST, 0)) as run:
        async with await connect(run.source) as stream:
            await stream.send_all(b"ok\n\xff\xfe bad\ncaf\xc3\xa9\n")
        await run.until_received(3)
    assert raws(run.sink) == ["ok", "caf\u00e9"]
    [bad] = raws(run.miss)
    assert bad == Undecodable(bad.data, "utf-8", bad.reason)
    assert bad.data == b"\xff\xfe bad"
    assert "can't decode byte 0xff" in bad.reason
    assert run.stats().undecodable == 1


async def test_a_stop_while_a_client_is_connected_ends_the_run_promptly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink.sources")
    source = TcpLinesSource(HOST, 0)
    async with serving(source, drain_timeout=60.0) as run:
        stream = await connect(source)
        await stream.send_all(b"a\nb\nc\nunfinished")
        await run.until_received(3)
        await until(lambda: run.stats().bytes_read == 16)
        began = trio.current_time()
        run.handle.stop()
        await run.handle.wait()
        assert trio.current_time() - began < 10.0  # not the 60 s drain deadline
    report = run.report
    assert report.ok
    assert report.received == 3
    assert raws(run.sink) == ["a", "b", "c"]
    # The unfinished line was read and never yielded: counted, in no report.
    stats = run.stats()
    assert (stats.lost_items, stats.lost_bytes, stats.connections) == (0, 10, 0)
    assert messages(caplog, "source.") == [
        f"source.listening name=tcp host=127.0.0.1 port={source.port}",
        "source.closed name=tcp items_read=3 lost_items=0 lost_bytes=10",
    ]
    assert caplog.records[-1].levelno == logging.WARNING  # something was lost
    with trio.fail_after(30):  # the client was hung up on
        assert await stream.receive_some() == b""
    await stream.aclose()
    with pytest.raises(OSError, match="connect"):  # nobody listens any more
        await connect(source)


class HeldSink(Sink):
    """Writes nothing until the test opens it."""

    def __init__(self) -> None:
        self.name = "held"
        self.open = trio.Event()
        self.records: list[Record] = []

    async def write(self, batch: Sequence[Record]) -> None:
        await self.open.wait()
        self.records.extend(batch)


async def test_a_full_pipeline_stops_the_reads_and_the_clients() -> None:
    # The sink holds its first write: the pipeline's buffers fill, then the source is
    # pulled no more, so it reads no more, and the client's sends block (TCP's flow
    # control) instead of the source queueing what they send. Once the sink writes
    # again, every line arrives.
    line = b"%07d " + b"x" * 1015 + b"\n"  # 1 KiB a line
    total = 16 * 1024  # 16 MiB: many times what the sockets' buffers hold
    source = TcpLinesSource(HOST, 0)
    sink = HeldSink()
    pipeline = Pipeline(source, routes=[Route("held", sink)], capacity=2, batch_size=16)
    sent = 0
    async with running(pipeline) as handle:
        async with await connect(source) as stream, trio.open_nursery() as nursery:
            # A fixed send buffer: the system does not grow it to megabytes.
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)

            async def client() -> None:
                nonlocal sent
                for i in range(0, total, 64):
                    await stream.send_all(b"".join(line % n for n in range(i, i + 64)))
                    sent += 64

            nursery.start_soon(client)
            await until(lambda: received(handle) > 0)
            await trio.testing.wait_all_tasks_blocked(cushion=0.2)
            held = source.statistics()
            assert sent < total  # the client is held back
            # What the source read: the pipeline's buffers (a few batches) and at most
            # one sweep (64 KiB) and one read; nothing like the megabytes sent.
            assert held.bytes_read < 512 * 1024
            assert held.items_read - received(handle) <= 200
            sink.open.set()
        await until(lambda: len(sink.records) == total)
        handle.stop()
    assert handle.report is not None
    assert handle.report.ok
    assert [r.raw for r in sink.records[:3]] == [(line % n)[:-1].decode() for n in range(3)]
    assert source.statistics().lost_items == 0


async def test_a_stop_under_backpressure_accounts_for_every_line_read() -> None:
    # The sink holds its writes while the client sends more than the pipeline holds;
    # Stop, then let the sink write. What the source had read and not yielded is
    # counted as lost; everything it yielded is in the report, delivered.
    lines = [f"line {i:05}".encode() + b"\n" for i in range(5000)]
    source = TcpLinesSource(HOST, 0)
    sink = HeldSink()
    pipeline = Pipeline(source, routes=[Route("held", sink)], capacity=1, batch_size=8)
    async with running(pipeline) as handle, await connect(source) as stream:
        await stream.send_all(b"".join(lines))
        await until(lambda: received(handle) > 0)
        await trio.testing.wait_all_tasks_blocked(cushion=0.2)
        handle.stop()
        sink.open.set()
    report = handle.report
    assert report is not None
    report.check()
    assert report.ok
    stats = source.statistics()
    assert report.received + stats.lost_items == stats.items_read
    assert report.received < len(lines)
    # The lines delivered are the first ones sent, in order: none skipped.
    assert [r.raw for r in sink.records] == [x[:-1].decode() for x in lines[: report.received]]


async def test_as_a_plain_async_iterable_it_listens_from_the_first_pull() -> None:
    source = TcpLinesSource(HOST, 0, name="plain")
    got: list[str | Undecodable] = []

    async def send() -> None:
        await source.listening.wait()
        async with await connect(source) as stream:
            await stream.send_all(b"a\nb\n")

    items = source.__aiter__()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        async for item in items:
            got.append(item)
            if len(got) == 2:
                break
    assert got == ["a", "b"]
    assert source.listening.is_set()
    await items.aclose()  # closes the sockets, as aclose() does
    assert not source.listening.is_set()
    with pytest.raises(OSError, match="connect"):
        await connect(source)


async def test_a_source_serves_one_run_after_another() -> None:
    source = TcpLinesSource(HOST, 0)
    ports = []
    for run_lines in ([b"a\n", b"b\n"], [b"c\n"]):
        async with serving(source) as run:
            ports.append(source.port)
            async with await connect(source) as stream:
                await stream.send_all(b"".join(run_lines))
            await run.until_received(len(run_lines))
        assert raws(run.sink) == [x[:-1].decode() for x in run_lines]
        assert not source.listening.is_set()
    assert 0 not in ports
    assert (source.statistics().accepted, source.statistics().items_read) == (2, 3)


async def test_a_port_in_use_fails_the_run() -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        source = TcpLinesSource(HOST, taken.getsockname()[1])
        pipeline = Pipeline(source, routes=[Route("all", CollectSink())])
        with pytest.raises(SourceError) as info:
            await pipeline.run()
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.report.received == 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TcpLinesSource("", 0), "host must be a non-empty str"),
        (lambda: TcpLinesSource(HOST, -1), "port must be an int >= 0"),
        (lambda: TcpLinesSource(HOST, 65536), "port must be an int from 0 to 65535"),
        (lambda: TcpLinesSource(HOST, True), "port must be an int"),
        (lambda: TcpLinesSource(HOST, 0, max_line_bytes=0), "max_line_bytes must be"),
        (lambda: TcpLinesSource(HOST, 0, name=""), "name must be a non-empty str"),
        (lambda: SyslogSource(HOST, 0, protocol="sctp"), "protocol must be one of udp, tcp"),  # type: ignore[arg-type]
        (lambda: SyslogSource(HOST, 0, max_message_bytes=0), "max_message_bytes must be"),
        (lambda: SyslogSource(HOST, 0, strict=1), "strict must be a bool"),  # type: ignore[arg-type]
    ],
)
def test_settings_are_checked_at_construction(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


# -- SyslogSource -----------------------------------------------------------------------

RFC5424 = (
    b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47"
    b' [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
    b" \xef\xbb\xbfAn application event log entry"
)
RFC3164 = b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8"


def check_examples(fields: list[dict[str, Any]]) -> None:
    """The parsed RFC5424 and RFC3164 messages above, in that order."""
    first, second = fields
    assert first["format"] == "rfc5424"
    assert (first["facility"], first["severity"], first["msgid"]) == (20, 5, "ID47")
    assert first["structured_data"]["exampleSDID@32473"]["eventID"] == "1011"
    assert first["message"] == "An application event log entry"
    assert second["format"] == "rfc3164"
    assert (second["hostname"], second["app_name"]) == ("mymachine", "su")
    assert second["message"] == "'su root' failed for lonvick on /dev/pts/8"


async def test_syslog_over_udp_a_message_a_datagram() -> None:
    source = SyslogSource(HOST, 0, max_message_bytes=300)
    async with serving(source) as run:
        udp = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with udp:
            for datagram in [RFC5424 + b"\n", RFC3164, b"no syslog", b"<13>\xff", b"<1>" * 101]:
                await udp.sendto(datagram, (HOST, source.port))
            await run.until_received(5)
    check_examples(raws(run.sink))
    assert raws(run.sink)[0]["raw"] == RFC5424.decode()  # without the trailing newline
    reasons = [m.reason for m in raws(run.miss)]
    assert reasons[0] == "not a syslog message: no <PRI> at the start (it must be <0> to <191>)"
    assert "can't decode byte 0xff" in reasons[1]
    assert "longer than 300 bytes" in reasons[2]
    assert [m.data for m in raws(run.miss)][:2] == [b"no syslog", b"<13>\xff"]
    stats = run.stats()
    assert (stats.items_read, stats.undecodable, stats.over_long, stats.not_syslog) == (5, 3, 1, 1)


async def test_syslog_not_strict_yields_other_text_as_a_message() -> None:
    async with serving(SyslogSource(HOST, 0, strict=False)) as run:
        udp = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with udp:
            await udp.sendto(b"hello there\n", (HOST, run.source.port))
            await run.until_received(1)
    [fields] = raws(run.sink)
    assert fields["format"] is None
    assert fields["message"] == fields["raw"] == "hello there"
    assert fields["structured_data"] == {}
    assert fields["severity"] is None
    assert (run.stats().not_syslog, run.stats().undecodable) == (1, 0)


async def test_syslog_over_tcp_with_both_framings_mixed(readiness: str) -> None:
    def counted(message: bytes) -> bytes:
        return b"%d %s" % (len(message), message)

    # Octet counting and newline framing, mixed in one stream; a counted message may
    # hold a newline; empty lines are skipped; cut in pieces of every size.
    multiline = b"<13>1 - host app - - - two\nlines"
    stream_bytes = (
        counted(RFC5424)
        + RFC3164
        + b"\r\n\n"
        + counted(multiline)
        + b"<14>plain\n"
        + counted(b"x")
        + b"12345678901 not a count\n"
    )
    async with serving(SyslogSource(HOST, 0, protocol="tcp")) as run:

        async def client(piece: int) -> None:
            async with await connect(run.source) as stream:
                for start in range(0, len(stream_bytes), piece):
                    await stream.send_all(stream_bytes[start : start + piece])

        async with trio.open_nursery() as nursery:
            for piece in (1, 5, 64, 4096):
                nursery.start_soon(client, piece)
        await run.until_received(4 * 6)
    parsed = raws(run.sink)
    assert len(parsed) == 4 * 4
    # The clients' messages interleave; sort them back apart by their text.
    messages = sorted(p["message"] for p in parsed)
    assert messages == sorted(
        4 * ["An application event log entry", "'su root' failed for lonvick on /dev/pts/8"]
        + 4 * ["two\nlines", "plain"]
    )
    assert sorted(m.data for m in raws(run.miss)) == 4 * [b"12345678901 not a count"] + 4 * [b"x"]
    assert run.report.ok


async def test_syslog_over_tcp_a_message_cut_short_goes_to_miss() -> None:
    async with serving(SyslogSource(HOST, 0, protocol="tcp", max_message_bytes=20)) as run:
        async with await connect(run.source) as stream:
            await stream.send_all(b"30 <13>1 - - - - - - " + b"y" * 12 + b"<13>ok\n")
            await stream.send_all(b"50 <13>cut")
        await run.until_received(3)
    [ok] = raws(run.sink)
    assert ok["message"] == "ok"
    over, cut = raws(run.miss)
    assert over.data == b"<13>1 - - - - - - yy"
    assert "longer than 20 bytes" in over.reason
    assert cut.data == b"<13>cut"
    assert cut.reason == "the connection closed 7 bytes into a message of 50 bytes"
