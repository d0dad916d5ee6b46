"""trio_sink.redis end to end: Pipeline runs from a Redis stream to a Redis stream on a
real redis-server. An entry is acknowledged once its records were delivered or stored,
and only then: what a run could not deliver stays pending and comes first in the next
run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import coredis
import pytest
from redis_helpers import RedisServer, nowhere, running_redis

from trio_sink import NO_RETRY, Pipeline, RescueStore, Route
from trio_sink.redis import RedisStreamSink, RedisStreamSource, entry_parser

Client = coredis.Redis[str]
N = 1000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def url(server: RedisServer) -> str:
    assert server.command("FLUSHALL") == "OK"
    return server.url


@asynccontextmanager
async def client_of(url: str) -> AsyncIterator[Client]:
    async with coredis.Redis.from_url(url, decode_responses=True) as client:
        yield client


async def fill(url: str, n: int = N) -> None:
    async with client_of(url) as client, client.pipeline(transaction=False) as pipe:
        for i in range(n):
            pipe.xadd("in", {"n": str(i)})


async def out_ns(url: str, stream: str = "out") -> list[int]:
    async with client_of(url) as client:
        return [int(e.field_values["n"]) for e in await client.xrange(stream)]


async def pending(url: str) -> dict[str, int]:
    async with client_of(url) as client:
        summary: Any = await client.xpending("in", "g")
        return dict(summary.consumers)


def source_for(url: str) -> RedisStreamSource:
    return RedisStreamSource(url, "in", group="g", consumer="w1", block=0.05)


@pytest.mark.parametrize("held", [False, True], ids=["connection-per-call", "held-pool"])
async def test_stream_to_stream_delivers_and_acknowledges_every_entry(url: str, held: bool) -> None:
    await fill(url)
    source, sink = source_for(url), RedisStreamSink(url, "out")
    pipeline = Pipeline(
        source,
        parse=entry_parser(),  # the entry itself: the sink copies its fields
        routes=[Route("all", sink)],
        stop_after_records=N,
        batch_size=100,
    )
    async with AsyncExitStack() as stack:
        if held:
            await stack.enter_async_context(source)
            await stack.enter_async_context(sink)
        report = await pipeline.run()
    report.check()
    assert report.ok
    assert report.acknowledged == N
    assert await out_ns(url) == list(range(N))
    assert await pending(url) == {}
    stats = source.statistics()
    assert (stats.yielded, stats.acknowledged, stats.unacknowledged) == (N, N, 0)


async def test_what_a_run_could_not_deliver_stays_pending_and_comes_first_next_time(
    url: str,
) -> None:
    await fill(url, 10)
    dead = nowhere()
    report = await Pipeline(
        source_for(url),
        parse=entry_parser(lambda entry: entry.fields),
        routes=[Route("all", RedisStreamSink(dead, "out"))],
        stop_after_records=10,
        retry=NO_RETRY,
    ).run()
    assert len(report.undelivered) == 10
    assert report.acknowledged == 0
    assert await pending(url) == {"w1": 10}
    # The next run, same consumer: its pending entries first, delivered twice now.
    source = source_for(url)
    report = await Pipeline(
        source,
        parse=entry_parser(lambda entry: {**entry.fields, "deliveries": entry.deliveries}),
        routes=[Route("all", RedisStreamSink(url, "out"))],
        stop_after_records=10,
    ).run()
    assert report.ok
    assert report.acknowledged == 10
    assert await out_ns(url) == list(range(10))
    assert source.statistics().reread == 10
    async with client_of(url) as client:
        assert {e.field_values["deliveries"] for e in await client.xrange("out")} == {"2"}
    assert await pending(url) == {}


async def test_entries_whose_records_went_to_the_rescue_store_are_acknowledged(
    url: str, tmp_path: Path
) -> None:
    await fill(url, 10)
    dead = nowhere()
    store = RescueStore(tmp_path / "rescue")
    report = await Pipeline(
        source_for(url),
        parse=entry_parser(lambda entry: entry.fields),
        routes=[Route("all", RedisStreamSink(dead, "out"))],
        stop_after_records=10,
        retry=NO_RETRY,
        rescue=store,
    ).run()
    assert len(report.undelivered) == 10
    assert all(u.stored for u in report.undelivered)
    assert report.acknowledged == 10
    assert await pending(url) == {}
    with RescueStore(tmp_path / "rescue") as reader:
        assert reader.pending() == 10
