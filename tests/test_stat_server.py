"""The statistics endpoint alone, on a real loopback socket: GET /stats, what it refuses,
and clients that misbehave (garbage, silence, too many, too much)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
import trio
import trio.testing
from stat_helpers import snapshot

from trio_sink import ConfigError, Pipeline, Route
from trio_sink._stat_address import StatAddress, parse_stat_address
from trio_sink._stat_client import EndpointError, EndpointGone, read_statistics
from trio_sink._stat_server import (
    MAX_REQUEST_BYTES,
    StatBindError,
    StatServer,
    open_stat_server,
    statistics_document,
)
from trio_sink._stats import DrainStatistics, PipelineStatistics, SinkStatistics, SourceStatistics
from trio_sink.sinks import CollectSink

LOOPBACK = StatAddress("127.0.0.1", 0)


async def request(address: StatAddress, data: bytes) -> bytes:
    """Send ``data`` and read the whole answer, to the server's close."""
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(address.host, address.port)
        async with stream:
            await stream.send_all(data)
            answer = b""
            while chunk := await stream.receive_some():
                answer += chunk
            return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest.fixture
async def serving() -> AsyncIterator[Callable[..., Any]]:
    """Start a server on 127.0.0.1:0 answering with a given statistics(); return its
    address."""
    async with trio.open_nursery() as nursery, contextlib.AsyncExitStack() as stack:

        async def start(
            statistics: Callable[[], PipelineStatistics] = snapshot, **options: Any
        ) -> tuple[StatAddress, StatServer]:
            server = await stack.enter_async_context(open_stat_server(LOOPBACK, **options))
            nursery.start_soon(server.serve, statistics)
            return server.addresses[0], server

        yield start
        nursery.cancel_scope.cancel()


async def test_get_stats_answers_the_snapshot_as_json(serving: Any) -> None:
    address, _ = await serving()
    assert address.host == "127.0.0.1"
    assert address.port != 0
    answer = await request(address, b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Type: application/json" in head
    assert b"Connection: close" in head
    assert f"Content-Length: {len(body)}".encode() in head
    doc = msgspec.json.decode(body)
    assert doc["state"] == "running"
    assert doc["time"] == 5.0
    assert isinstance(doc["unix_time"], float)
    assert doc["received"] == 10
    assert doc["delivered"] == 15
    assert doc["undelivered"] == 1
    assert doc["pending"] == 6
    assert doc["source"]["acknowledged"] is None
    assert list(doc["sinks"]) == ["out", "slow"]
    assert doc["sinks"]["out"]["buffered"] == 3
    assert doc["sinks"]["out"]["in_flight"] == 2
    assert doc["sinks"]["out"]["pending"] == 6
    assert doc["sinks"]["slow"]["health"] == "unhealthy"
    assert doc["sinks"]["slow"]["undelivered_by_reason"] == {"sink error": 1}
    assert doc["discarded"] == {"miss": 4}
    assert doc["drain"] is None
    # A query string changes nothing; HEAD has the headers alone; HTTP/1.0 is answered.
    assert status_of(await request(address, b"GET /stats?x=1 HTTP/1.0\r\n\r\n")) == 200
    head_only = await request(address, b"HEAD /stats HTTP/1.1\r\n\r\n")
    assert status_of(head_only) == 200
    assert head_only.endswith(b"\r\n\r\n")


async def test_the_document_has_every_field_of_the_snapshot() -> None:
    stats = snapshot(
        state="draining",
        drain=DrainStatistics(
            kind="signal",
            started_at=4.0,
            elapsed=1.0,
            pending_left=6,
            deadline=64.0,
            time_left=59.0,
        ),
    )
    doc = msgspec.json.decode(msgspec.json.encode(statistics_document(stats, 1.5)))
    assert set(doc) == {
        "state",
        "time",
        "unix_time",
        "received",
        "delivered",
        "undelivered",
        "pending",
        "source",
        "sinks",
        "discarded",
        "drain",
    }
    assert set(doc["source"]) == {a.name for a in SourceStatistics.__attrs_attrs__}
    assert set(doc["sinks"]["out"]) == {a.name for a in SinkStatistics.__attrs_attrs__} | {
        "pending"
    }
    assert doc["drain"] == {
        "kind": "signal",
        "started_at": 4.0,
        "elapsed": 1.0,
        "pending_left": 6,
        "deadline": 64.0,
        "time_left": 59.0,
    }
    assert doc["unix_time"] == 1.5


async def test_a_real_run_is_served_and_its_final_snapshot_after_it_ends(serving: Any) -> None:
    out = CollectSink("out")
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(Pipeline(range(300), routes=[Route("all", out)]).run)
        address, _ = await serving(handle.statistics)
        await handle.wait()
        doc = await read_statistics(address)
    assert doc["state"] == "stopped"
    assert doc["received"] == 300
    assert doc["sinks"]["out"]["delivered"] == 300


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET /nope HTTP/1.1\r\n\r\n", 404),
        (b"GET / HTTP/1.1\r\n\r\n", 404),
        (b"POST /stats HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 405),
        (b"garbage\r\n\r\n", 400),
        (b"\x00\xff\xfe nonsense \x01\r\n\r\n", 400),
        (b"GET /stats HTTP/2.0\r\n\r\n", 400),
        (b"GET stats HTTP/1.1\r\n\r\n", 400),
        (b"GET /stats HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET /stats HTTP/1.1\r\nX: " + b"y" * MAX_REQUEST_BYTES, 431),
    ],
)
async def test_what_is_not_get_stats_is_refused_and_the_server_goes_on(
    serving: Any, data: bytes, status: int
) -> None:
    address, _ = await serving()
    assert status_of(await request(address, data)) == status
    assert status_of(await request(address, b"GET /stats HTTP/1.1\r\n\r\n")) == 200


async def test_a_client_that_closes_mid_request_is_dropped(serving: Any) -> None:
    address, _ = await serving()
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(address.host, address.port)
        async with stream:
            await stream.send_all(b"GET /sta")
            await stream.send_eof()
            assert await stream.receive_some() == b""  # closed, unanswered
    assert status_of(await request(address, b"GET /stats HTTP/1.1\r\n\r\n")) == 200


async def test_a_silent_client_holds_nothing_and_is_dropped_after_client_seconds(
    serving: Any,
) -> None:
    address, _ = await serving(client_seconds=0.5)
    with trio.fail_after(10):
        silent = await trio.open_tcp_stream(address.host, address.port)
        async with silent:
            # Others are answered meanwhile...
            for _ in range(3):
                assert status_of(await request(address, b"GET /stats HTTP/1.1\r\n\r\n")) == 200
            # ...and the silent one is closed, unanswered, once its time is up.
            assert await silent.receive_some() == b""


async def test_connections_over_the_limit_are_closed_at_once(serving: Any) -> None:
    address, _ = await serving(max_connections=1)
    with trio.fail_after(10):
        held = await trio.open_tcp_stream(address.host, address.port)
        async with held:
            await held.send_all(b"GET /st")  # accepted, and waiting for the rest
            await trio.testing.wait_all_tasks_blocked()
            extra = await trio.open_tcp_stream(address.host, address.port)
            async with extra:
                assert await extra.receive_some() == b""  # closed at once, unanswered
            await held.send_all(b"ats HTTP/1.1\r\n\r\n")
            answer = b""
            while chunk := await held.receive_some():
                answer += chunk
    assert status_of(answer) == 200
    assert status_of(await request(address, b"GET /stats HTTP/1.1\r\n\r\n")) == 200


async def test_statistics_that_raise_answer_500_and_the_server_goes_on(serving: Any) -> None:
    calls = []

    def statistics() -> PipelineStatistics:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return snapshot()

    address, _ = await serving(statistics)
    assert status_of(await request(address, b"GET /stats HTTP/1.1\r\n\r\n")) == 500
    assert status_of(await request(address, b"GET /stats HTTP/1.1\r\n\r\n")) == 200


async def test_stop_ends_serve_and_the_address_goes_away(serving: Any) -> None:
    address, server = await serving()
    server.stop()
    await trio.testing.wait_all_tasks_blocked()
    with pytest.raises(EndpointGone):
        await read_statistics(address)


async def test_an_address_in_use_raises_stat_bind_error(serving: Any) -> None:
    address, _ = await serving()
    with pytest.raises(StatBindError, match=f"cannot listen on {address}"):
        async with open_stat_server(address):
            pass


async def test_the_client_reads_the_document_or_says_what_is_wrong(serving: Any) -> None:
    address, _ = await serving()
    doc = await read_statistics(address)
    assert doc == msgspec.json.decode(
        msgspec.json.encode(statistics_document(snapshot(), doc["unix_time"]))
    )

    async def other(stream: trio.SocketStream) -> None:
        await stream.receive_some()
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, other, 0)
        port = listeners[0].socket.getsockname()[1]
        with pytest.raises(EndpointError, match="not a run's statistics"):
            await read_statistics(StatAddress("127.0.0.1", port))
        nursery.cancel_scope.cancel()
    with pytest.raises(EndpointGone, match="cannot connect"):
        await read_statistics(StatAddress("127.0.0.1", port))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8125", StatAddress("127.0.0.1", 8125)),
        (":8125", StatAddress("127.0.0.1", 8125)),
        ("8125", StatAddress("127.0.0.1", 8125)),
        ("0", StatAddress("127.0.0.1", 0)),
        ("localhost:1", StatAddress("localhost", 1)),
        ("0.0.0.0:9000", StatAddress("0.0.0.0", 9000)),
        ("[::1]:9000", StatAddress("::1", 9000)),
    ],
)
def test_stat_addresses(text: str, expected: StatAddress) -> None:
    assert parse_stat_address(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://127.0.0.1:8125", StatAddress("127.0.0.1", 8125)),
        ("http://localhost:8125/", StatAddress("localhost", 8125)),
        ("http://[::1]:8125/stats", StatAddress("::1", 8125)),
        ("8125", StatAddress("127.0.0.1", 8125)),
    ],
)
def test_stat_urls(text: str, expected: StatAddress) -> None:
    assert parse_stat_address(text, url=True) == expected


@pytest.mark.parametrize(
    ("text", "url", "message"),
    [
        ("", False, "no port"),
        ("host", False, "no port"),
        ("host:", False, "the port must be a number"),
        ("host:65536", False, "the port must be a number"),
        ("host:-1", False, "the port must be a number"),
        ("::1:80", False, "in brackets"),
        ("a b:80", False, "not a host name"),
        ("https://host:80", True, "only http://"),
        ("http://host:80/metrics", True, "at /stats"),
        ("http://host", True, "no port"),
        ("http://host:0", True, "port 0"),
        ("stats.toml", True, "no port"),
    ],
)
def test_bad_stat_addresses_say_what_was_expected(text: str, url: bool, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_stat_address(text, url=url)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"client_seconds": 0}, "client_seconds must be a finite number of seconds > 0"),
        ({"client_seconds": float("inf")}, "client_seconds must be"),
        ({"max_connections": 0}, "max_connections must be an int >= 1"),
    ],
)
async def test_bad_server_options_are_refused_before_listening(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        async with open_stat_server(LOOPBACK, **options):
            pass
