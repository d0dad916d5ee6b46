"""trio_sink.redis: RedisStreamSource against a real redis-server on loopback: the group,
reads and acknowledgements, its own pending entries first after a restart, entries taken
over from a dead consumer, poison, undecodable and deleted entries, a Stop during a read.

Real I/O in real time: waits are on conditions, with generous bounds.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import coredis
import msgspec
import pytest
import redis_helpers
import trio
from redis_helpers import RedisServer, running_redis

from trio_sink import ConfigError, Infra, Pipeline, Route, TrioSinkError, Undecodable
from trio_sink.redis import (
    EntryItem,
    PoisonEntry,
    PoisonEntryError,
    RedisStreamSource,
    StreamEntry,
    entry_parser,
)
from trio_sink.sinks import CollectSink

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


@asynccontextmanager
async def client_of(url: str) -> AsyncIterator[Client]:
    async with coredis.Redis.from_url(url, decode_responses=True) as client:
        yield client


@asynccontextmanager
async def opened(source: RedisStreamSource) -> AsyncIterator[RedisStreamSource]:
    await source.open()
    try:
        yield source
    finally:
        await source.aclose()


async def take(source: RedisStreamSource, n: int) -> list[EntryItem]:
    """The next ``n`` items of a fresh iteration of ``source`` (fails after 30 s)."""
    items: list[EntryItem] = []
    ait = aiter(source)
    try:
        with trio.fail_after(30):
            async for item in ait:
                items.append(item)
                if len(items) == n:
                    break
    finally:
        await ait.aclose()  # type: ignore[attr-defined]
    return items


async def add(client: Client, stream: str, n: int, start: int = 0) -> list[str]:
    ids: list[str] = []
    for i in range(start, start + n):
        ident = await client.xadd(stream, {"n": str(i)})
        assert ident is not None
        ids.append(ident)
    return ids


async def pending(client: Client, stream: str, group: str) -> dict[str, int]:
    """Pending entries by consumer."""
    summary: Any = await client.xpending(stream, group)
    return dict(summary.consumers)


async def calls(client: Client, command: str) -> int:
    """How many times ``command`` ran since the test began."""
    stats: Any = await client.info("commandstats")
    found = stats.get(f"cmdstat_{command}")
    return int(found["calls"]) if found else 0


def source_for(url: str, **kwargs: Any) -> RedisStreamSource:
    settings: dict[str, Any] = {"group": "g", "consumer": "c1", "block": 0.05, **kwargs}
    return RedisStreamSource(url, "s", **settings)


def ns(items: Sequence[EntryItem]) -> list[str]:
    return [item.fields["n"] for item in items if not isinstance(item, Undecodable)]


# -- the group ---------------------------------------------------------------------------


async def test_open_creates_the_group_with_its_stream_and_an_existing_group_is_used(
    url: str,
) -> None:
    async with client_of(url) as client:
        async with opened(source_for(url)):
            [info] = await client.xinfo_groups("s")
            assert (info["name"], info["consumers"], info["pending"]) == ("g", 0, 0)
        await add(client, "s", 2)
        async with opened(source_for(url, consumer="c2")) as source:
            assert ns(await take(source, 2)) == ["0", "1"]
        assert len(await client.xinfo_groups("s")) == 1


async def test_a_group_made_from_dollar_starts_after_the_entries_of_before(url: str) -> None:
    async with client_of(url) as client:
        await add(client, "s", 2)
        async with opened(source_for(url, group_start="$")) as source:
            await add(client, "s", 1, start=2)
            assert ns(await take(source, 1)) == ["2"]


# -- reading and acknowledging -----------------------------------------------------------


async def test_entries_stay_pending_until_acked_with_one_xack_per_call(url: str) -> None:
    async with client_of(url) as client:
        ids = await add(client, "s", 5)
        async with opened(source_for(url)) as source:
            items = await take(source, 5)
            assert items == [StreamEntry(i, {"n": str(k)}, 1) for k, i in enumerate(ids)]
            assert await pending(client, "s", "g") == {"c1": 5}
            assert source.statistics().unacknowledged == 5
            await source.ack(items[:3])
            assert await pending(client, "s", "g") == {"c1": 2}
            await source.ack(items[3:])
            await source.ack([])
            assert await pending(client, "s", "g") == {}
            assert await calls(client, "xack") == 2
            stats = source.statistics()
            assert (stats.yielded, stats.acknowledged, stats.unacknowledged) == (5, 5, 0)


async def test_an_ack_out_of_order_raises_and_the_source_then_ends(url: str) -> None:
    async with client_of(url) as client:
        await add(client, "s", 3)
        async with opened(source_for(url)) as source:
            ait = aiter(source)
            try:
                items = [await ait.__anext__() for _ in range(3)]
                with pytest.raises(TrioSinkError, match="not the next item"):
                    await source.ack([items[1]])
                with pytest.raises(TrioSinkError, match="acknowledging entries failed"):
                    await ait.__anext__()
            finally:
                await ait.aclose()  # type: ignore[attr-defined]
            assert await pending(client, "s", "g") == {"c1": 3}  # nothing acknowledged
            # A new run starts afresh, with what is pending first.
            again = await take(source, 3)
            assert ns(again) == ["0", "1", "2"]
            await source.ack(again)
            assert await pending(client, "s", "g") == {}


async def test_own_pending_entries_come_first_after_a_restart(url: str) -> None:
    async with client_of(url) as client:
        await add(client, "s", 5)
        async with opened(source_for(url, batch=3)) as source:  # reads 3 entries
            first = await take(source, 3)
            await source.ack(first[:1])
        # The run ended (or died) with entries 1 and 2 unacknowledged: read again first,
        # delivered twice now, then the new ones.
        async with opened(source_for(url)) as source:
            again = await take(source, 4)
            assert [(e.fields["n"], e.deliveries) for e in again] == [  # type: ignore[union-attr]
                ("1", 2),
                ("2", 2),
                ("3", 1),
                ("4", 1),
            ]
            assert source.statistics().reread == 2
            await source.ack(again)
        assert await pending(client, "s", "g") == {}


async def test_entries_of_a_dead_consumer_are_taken_over_after_claim_idle(url: str) -> None:
    async with client_of(url) as client:
        await client.xgroup_create("s", "g", "0", mkstream=True)
        await add(client, "s", 3)
        await client.xreadgroup("g", "dead", {"s": ">"}, count=2)  # then it died
        async with opened(source_for(url, claim_idle=0.3)) as source:
            began = trio.current_time()
            # The one nobody read comes at once; the dead one's, once idle 0.3 s.
            items = await take(source, 3)
            assert trio.current_time() - began >= 0.3
            assert [(e.fields["n"], e.deliveries) for e in items] == [  # type: ignore[union-attr]
                ("2", 1),
                ("0", 2),
                ("1", 2),
            ]
            assert source.statistics().claimed == 2
            await source.ack(items)
        assert await pending(client, "s", "g") == {}


async def test_entries_in_flight_here_are_not_taken_over_twice(url: str) -> None:
    async with client_of(url) as client:
        await add(client, "s", 2)
        async with opened(source_for(url, claim_idle=0.1)) as source:
            ait = aiter(source)
            try:
                first = [await ait.__anext__(), await ait.__anext__()]
                # Unacknowledged and idle past claim_idle: this consumer's own claim
                # rounds see them, and leave them to the pipeline that holds them.
                with trio.move_on_after(0.5):
                    extra = await ait.__anext__()
                    raise AssertionError(f"yielded again: {extra!r}")
            finally:
                await ait.aclose()  # type: ignore[attr-defined]
            assert source.statistics().yielded == 2
            await source.ack(first)
        assert await pending(client, "s", "g") == {}


# -- poison, undecodable, deleted --------------------------------------------------------


async def deliver_times(client: Client, n: int) -> None:
    """Entry "0" delivered ``n`` times to a consumer that never acknowledged it."""
    await client.xgroup_create("s", "g", "0", mkstream=True)
    [ident] = await add(client, "s", 1)
    await client.xreadgroup("g", "dead", {"s": ">"})
    for _ in range(n - 1):
        await client.xclaim("s", "g", "dead", 0, [ident])


async def test_an_entry_delivered_past_max_deliveries_goes_to_the_error_group(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_of(url) as client:
        await deliver_times(client, 3)  # the next delivery is the 4th
        await add(client, "s", 1, start=1)
        source = source_for(url, claim_idle=0.01, max_deliveries=3)
        kept, errors = CollectSink("kept"), CollectSink("errors")
        report = await Pipeline(
            source,
            parse=entry_parser(lambda entry: entry.fields["n"]),
            routes=[Route("all", kept)],
            infra=Infra(error=errors),
            stop_after_records=2,
        ).run()
    assert report.ok
    assert report.acknowledged == 2  # the error group's sink has the poison entry
    assert [r.payload for r in kept.records] == ["1"]
    [record] = errors.records
    assert record.raw == PoisonEntry(record.raw.id, {"n": "0"}, 4, 3)
    assert isinstance(record.error, PoisonEntryError)
    assert "delivered 4 times, more than max_deliveries=3" in str(record.error)
    assert source.statistics().poison == 1
    assert "redis.poison" in caplog.text


async def test_an_entry_that_is_not_utf8_goes_to_miss_with_its_bytes(url: str) -> None:
    async with client_of(url) as client:
        ident = await client.xadd("s", {"n": b"caf\xe9"})
        assert ident is not None
        kept, misses = CollectSink("kept"), CollectSink("misses")
        source = source_for(url)
        report = await Pipeline(
            source,
            parse=entry_parser(),
            routes=[Route("all", kept)],
            infra=Infra(miss=misses),
            stop_after_records=1,
        ).run()
    assert report.ok
    assert report.acknowledged == 1  # the miss group's sink has it
    assert not kept.records
    [record] = misses.records
    assert isinstance(record.raw, Undecodable)
    assert ident in record.raw.reason
    assert msgspec.msgpack.decode(record.raw.data) == {
        "id": ident.encode(),
        "fields": [[b"n", b"caf\xe9"]],
    }
    assert source.statistics().undecodable == 1


async def test_a_pending_entry_deleted_from_the_stream_is_acked_and_logged(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_of(url) as client:
        ids = await add(client, "s", 2)
        async with opened(source_for(url)) as source:
            await take(source, 2)
        await client.xdel("s", [ids[0]])  # trimmed while pending
        with caplog.at_level(logging.WARNING, "trio_sink.redis"):
            async with opened(source_for(url)) as source:
                assert ns(await take(source, 1)) == ["1"]
                assert source.statistics().gone == 1
        assert f"redis.entry_gone stream=s group=g id={ids[0]}" in caplog.text
        assert await pending(client, "s", "g") == {"c1": 1}


# -- Stop --------------------------------------------------------------------------------


async def test_a_stop_cancels_a_blocking_read_and_loses_nothing(url: str) -> None:
    async with client_of(url) as client:
        sink = CollectSink()
        source = source_for(url, block=30.0)
        pipeline = Pipeline(source, routes=[Route("all", sink)], batch_timeout=0.01)
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(pipeline.run)
            await add(client, "s", 1)
            with trio.fail_after(30):
                while not sink.records:  # noqa: ASYNC110 - real Redis: nothing to wait on
                    await trio.sleep(0.01)
            await trio.sleep(0.1)  # the source waits in XREADGROUP BLOCK 30000 again
            began = trio.current_time()
            handle.stop()
            report = await handle.wait()
        assert trio.current_time() - began < 5
        assert report.ok
        assert report.acknowledged == 1
        assert ns([r.raw for r in sink.records]) == ["0"]
        assert await pending(client, "s", "g") == {}


# -- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "http://localhost"}, "url must be a redis://"),
        ({"url": "redis://"}, "names no host"),
        ({"stream": ""}, "stream must be a non-empty str"),
        ({"group": None}, "group must be a non-empty str"),
        ({"consumer": 3}, "consumer must be a non-empty str"),
        ({"batch": 0}, "batch must be an int >= 1"),
        ({"block": 0}, "block must be a finite number of seconds > 0"),
        ({"claim_idle": -1}, "claim_idle must be"),
        ({"max_deliveries": 0}, "max_deliveries must be an int >= 1"),
    ],
)
def test_settings_are_checked_at_construction(kwargs: dict[str, Any], message: str) -> None:
    settings: dict[str, Any] = {
        "url": "redis://localhost",
        "stream": "s",
        "group": "g",
        "consumer": "c",
        **kwargs,
    }
    url, stream = settings.pop("url"), settings.pop("stream")
    with pytest.raises(ConfigError, match=message):
        RedisStreamSource(url, stream, **settings)


def test_without_redis_server_the_tests_skip_saying_why_or_fail_when_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redis_helpers, "redis_server_binary", lambda: None)
    monkeypatch.delenv("TRIO_SINK_REQUIRE_REDIS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no redis-server binary"):
        redis_helpers.require_redis_server()
    monkeypatch.setenv("TRIO_SINK_REQUIRE_REDIS", "1")  # as .ci/run sets it
    with pytest.raises(pytest.fail.Exception, match="TRIO_SINK_REQUIRE_REDIS=1"):
        redis_helpers.require_redis_server()
