"""trio_sink.redis: RedisStreamSink against a real redis-server on loopback (one script
call per batch, whole or nothing, failures reported), and how a payload becomes an
entry's fields."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import coredis
import coredis.exceptions
import pytest
import trio
from redis_helpers import RedisServer, running_redis

from trio_sink import NO_RETRY, ConfigError, Pipeline, Record, Route
from trio_sink.redis import PoisonEntry, RedisStreamSink, StreamEntry, fields_of
from trio_sink.testing import check_sink

Client = coredis.Redis[str]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def url(server: RedisServer) -> str:
    assert server.command("FLUSHALL") == "OK"
    assert server.command("CONFIG", "RESETSTAT") == "OK"
    return server.url


async def entries(url: str, stream: str) -> list[dict[str, str]]:
    async with coredis.Redis.from_url(url, decode_responses=True) as client:
        return [
            {str(k): str(v) for k, v in e.field_values.items()} for e in await client.xrange(stream)
        ]


async def calls(url: str, command: str) -> int:
    async with coredis.Redis.from_url(url, decode_responses=True) as client:
        stats: Any = await client.info("commandstats")
        found = stats.get(f"cmdstat_{command}")
        return int(found["calls"]) if found else 0


def records(payloads: Sequence[Any]) -> list[Record]:
    return [Record(i, p, p) for i, p in enumerate(payloads)]


# -- fields ------------------------------------------------------------------------------


@attrs.frozen
class Point:
    x: int
    y: int


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({"a": "x", "b": b"\xff"}, {"a": "x", "b": b"\xff"}),
        (
            {"n": 3, "ok": True, "none": None, "l": [1, 2]},
            {"n": b"3", "ok": b"true", "none": b"null", "l": b"[1,2]"},
        ),
        ({}, {"data": "{}"}),
        ("text", {"data": b'"text"'}),
        (42, {"data": b"42"}),
        ([1, "a"], {"data": b'[1,"a"]'}),
        (Point(1, 2), {"data": b'{"x":1,"y":2}'}),
        (StreamEntry("1-0", {"k": "v"}), {"k": "v"}),
        (PoisonEntry("1-0", {"k": "v"}, 9, 5), {"k": "v"}),
    ],
)
def test_fields_of_a_payload(payload: Any, fields: dict[str, Any]) -> None:
    assert fields_of(payload) == fields


@pytest.mark.parametrize("payload", [{1: "a"}, {"a": object()}, object()])
def test_a_payload_without_fields_raises_type_error(payload: Any) -> None:
    with pytest.raises(TypeError):
        fields_of(payload)


# -- writing -----------------------------------------------------------------------------


async def test_one_entry_per_record_and_one_script_call_per_batch(url: str) -> None:
    sink = RedisStreamSink(url, "out")
    assert sink.name == "redis:out"
    report = await Pipeline(
        [{"n": str(i)} for i in range(10)], routes=[Route("all", sink)], batch_size=4
    ).run()
    assert report.ok
    assert await entries(url, "out") == [{"n": str(i)} for i in range(10)]
    # One script call per batch (the first one loads the script: EVALSHA, SCRIPT LOAD,
    # EVALSHA again), each running an XADD per record.
    assert (await calls(url, "evalsha"), await calls(url, "xadd")) == (4, 10)


async def test_maxlen_trims_the_stream(url: str) -> None:
    sink = RedisStreamSink(url, "out", maxlen=10)
    for start in range(0, 1000, 100):
        await sink.write(records([{"n": str(i)} for i in range(start, start + 100)]))
    kept = await entries(url, "out")
    # MAXLEN ~: trimmed by whole nodes of the stream, so about 10, never fewer.
    assert 10 <= len(kept) < 1000
    assert kept[-1] == {"n": "999"}


async def test_a_sink_entered_around_the_run_keeps_one_pool(url: str) -> None:
    sink = RedisStreamSink(url, "out")
    async with sink:
        report = await Pipeline(
            [{"n": str(i)} for i in range(10)], routes=[Route("all", sink)], batch_size=2
        ).run()
    assert report.ok
    assert len(await entries(url, "out")) == 10
    async with coredis.Redis.from_url(url, decode_responses=True) as client:
        stats: Any = await client.info("stats")
    # One connection for the five writes, one to read, one here (not one per write).
    assert stats["total_connections_received"] <= 4


async def test_a_batch_with_a_payload_without_fields_writes_nothing(url: str) -> None:
    sink = RedisStreamSink(url, "out")
    with pytest.raises(TypeError):
        await sink.write(records([{"n": "0"}, {"n": object()}]))
    assert await entries(url, "out") == []


async def test_an_error_reply_fails_the_whole_batch(url: str) -> None:
    async with coredis.Redis.from_url(url, decode_responses=True) as client:
        await client.set("out", "not a stream")
    sink = RedisStreamSink(url, "out")
    with pytest.raises(coredis.exceptions.ResponseError, match="wrong kind of value"):
        await sink.write(records([{"n": "0"}, {"n": "1"}]))


async def test_a_stopped_server_fails_the_write_and_the_pipeline_reports_it(
    tmp_path: Path,
) -> None:
    with running_redis(tmp_path) as server:
        sink = RedisStreamSink(server.url, "out")
        await sink.write(records([{"n": "0"}]))
        url = server.url
    with pytest.raises(ConnectionError):  # the builtin one: the default policy retries it
        await sink.write(records([{"n": "1"}]))
    report = await Pipeline(
        [{"n": str(i)} for i in range(5)],
        routes=[Route("all", RedisStreamSink(url, "out"))],
        batch_size=5,
        retry=NO_RETRY,
    ).run()
    assert not report.ok
    assert sorted(u.record.id for u in report.undelivered) == [0, 1, 2, 3, 4]
    assert {type(u.error) for u in report.undelivered} == {ConnectionError}


async def test_a_write_cancelled_before_the_server_runs_it_writes_nothing(
    url: str, server: RedisServer
) -> None:
    sink = RedisStreamSink(url, "out")
    # The server holds every client's write commands (a script that writes included)
    # for a while: the write waits for its reply when it is cancelled, and its
    # connection is closed.
    assert server.command("CLIENT", "PAUSE", "10000", "WRITE") == "OK"
    try:
        with trio.move_on_after(0.3) as scope:
            await sink.write(records([{"n": "0"}, {"n": "1"}]))
        assert scope.cancelled_caught
    finally:
        assert server.command("CLIENT", "UNPAUSE") == "OK"
    await sink.write(records([{"n": "2"}]))
    assert await entries(url, "out") == [{"n": "2"}]


# Each entry holds only its payload's fields: the checked records (ids n, raw "raw-n",
# payloads {"n": n}) are made again from the field n of each entry, in stream order.
_STREAM_NS = """
local ns = {}
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  ns[#ns + 1] = entry[2][2]
end
return table.concat(ns, ',')
"""


def stream_records(server: RedisServer, stream: str) -> list[Record]:
    """The records the entries of ``stream`` were made from (read without a Trio
    checkpoint, as check_sink's ``delivered`` must be)."""
    ns = server.command("EVAL", _STREAM_NS, "1", stream)
    assert isinstance(ns, str)
    return [Record(int(n), f"raw-{n}", {"n": int(n)}) for n in ns.split(",") if n]


async def test_it_conforms(url: str, server: RedisServer) -> None:
    # A write cancelled once its script call was sent may have been run whole by the
    # server: at least once.
    await check_sink(
        lambda: RedisStreamSink(url, "out", name="redis"),
        delivered=lambda s: stream_records(server, "out"),
        at_least_once=True,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "localhost:6379"}, "url must be a redis://"),
        ({"stream": ""}, "stream must be a non-empty str"),
        ({"maxlen": 0}, "maxlen must be an int >= 1"),
        ({"name": ""}, "name must be a non-empty str"),
    ],
)
def test_settings_are_checked_at_construction(kwargs: dict[str, Any], message: str) -> None:
    settings: dict[str, Any] = {"url": "redis://localhost", "stream": "s", **kwargs}
    url, stream = settings.pop("url"), settings.pop("stream")
    with pytest.raises(ConfigError, match=message):
        RedisStreamSink(url, stream, **settings)
