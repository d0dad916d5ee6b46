"""Batches that grow while the source keeps them full (``max_batch_size``), start
small again when it slows down, and buffers bounded in records whatever their size."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest
import trio
import trio.lowlevel
import trio.testing
from helpers import GatedSink, checked

from trio_sink import (
    NO_RETRY,
    CircuitBreaker,
    ConfigError,
    Pipeline,
    PipelineHandle,
    Record,
    Route,
    Sink,
)
from trio_sink.sinks import CollectSink


class Sizes(Sink):
    """Notes the size of every batch it is given; never blocks."""

    never_blocks = True

    def __init__(self, name: str = "sizes") -> None:
        self.name = name
        self.sizes: list[int] = []
        self.ids: list[int] = []

    async def write(self, batch: Sequence[Record]) -> None:
        self.sizes.append(len(batch))
        self.ids.extend(r.id for r in batch)


async def sizes_of(source: AsyncIterator[int]) -> Sizes:
    """The sink of a run of ``source`` with batches from 10 to 40 records (a timeout of
    0.5 s), after checking that the run delivered everything."""
    sink = Sizes()
    report = checked(
        await Pipeline(
            source,
            routes=[Route("all", sink)],
            batch_size=10,
            max_batch_size=40,
            batch_timeout=0.5,
        ).run()
    )
    assert report.ok
    return sink


async def test_batches_double_up_to_the_most_while_a_sync_source_fills_them() -> None:
    sink = Sizes()
    report = checked(
        await Pipeline(
            range(1000), routes=[Route("all", sink)], batch_size=10, max_batch_size=80
        ).run()
    )
    assert report.ok
    assert sink.sizes[:5] == [10, 20, 40, 80, 80]
    assert max(sink.sizes) == 80
    assert sink.ids == list(range(1000))


async def test_batches_grow_to_the_most_when_it_is_no_doubling_of_batch_size() -> None:
    sink = Sizes()
    report = checked(
        await Pipeline(
            range(300), routes=[Route("all", sink)], batch_size=10, max_batch_size=50
        ).run()
    )
    assert report.ok
    assert sink.sizes == [10, 20, 40, 50, 50, 50, 50, 30]
    assert sink.ids == list(range(300))


async def test_batches_never_grow_by_default() -> None:
    sink = Sizes()
    await Pipeline(range(100), routes=[Route("all", sink)], batch_size=10).run()
    assert set(sink.sizes) == {10}


async def test_an_async_source_that_slows_down_gets_small_batches_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def bursty() -> AsyncIterator[int]:
        for i in range(70):  # fast: every batch fills
            yield i
        for i in range(70, 75):  # slow: each batch is cut by the timeout
            await trio.sleep(1.0)
            yield i

    sink = await sizes_of(bursty())
    assert sink.ids == list(range(75))
    assert sink.sizes[:3] == [10, 20, 40]
    assert sink.sizes[-5:] == [1, 1, 1, 1, 1]


async def test_batches_grow_again_from_batch_size_after_a_slow_spell(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def fast_slow_fast() -> AsyncIterator[int]:
        for i in range(150):  # fast: every batch fills, up to the most
            yield i
        for i in range(150, 153):  # slow: each batch is cut by the timeout
            await trio.sleep(1.0)
            yield i
        await trio.sleep(1.0)
        for i in range(153, 223):  # fast again: from batch_size
            yield i

    sink = await sizes_of(fast_slow_fast())
    assert sink.ids == list(range(223))
    assert sink.sizes == [10, 20, 40, 40, 40, 1, 1, 1, 10, 20, 40]


async def test_a_buffer_holds_at_most_capacity_times_batch_size_records(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gated = GatedSink()
    fast = CollectSink("fast")
    async with trio.open_nursery() as nursery:
        handle: PipelineHandle = await nursery.start(
            Pipeline(
                range(2000),
                routes=[Route("all", [gated, fast])],
                batch_size=10,
                max_batch_size=80,
                capacity=4,  # 40 records, beyond one batch
            ).run
        )
        await trio.testing.wait_all_tasks_blocked()
        stats = handle.statistics().sinks["gated"]
        # One batch in the gated sink's hands, at most 40 records in its buffer (the
        # next batch waits for room: it would pass the bound).
        assert stats.in_flight == 10
        assert 0 < stats.buffered <= 40
        assert stats.waiting > 0
        assert len(fast.records) < 2000  # the source waits: backpressure
        for _ in range(1_000):
            gated.permits.release()
        with trio.fail_after(100):  # a source never told of room would wait for ever
            report = checked(await handle.wait())
    assert report.ok
    assert report.delivered == {"gated": 2000, "fast": 2000}
    assert handle.statistics().sinks["gated"].peak_buffered <= 40 + 80


async def test_a_batch_larger_than_the_bound_goes_into_an_empty_buffer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gated = GatedSink()
    async with trio.open_nursery() as nursery:
        handle: PipelineHandle = await nursery.start(
            Pipeline(
                range(500),
                routes=[Route("all", gated)],
                batch_size=10,
                max_batch_size=160,
                capacity=1,  # 10 records: every grown batch is larger
            ).run
        )
        for _ in range(20):
            await trio.testing.wait_all_tasks_blocked()
            gated.permits.release()
        for _ in range(1_000):
            gated.permits.release()
        report = checked(await handle.wait())
    assert report.ok
    assert gated.delivered == list(range(500))


async def test_a_stop_while_the_source_waits_for_room_reports_what_it_holds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gated = GatedSink()
    async with trio.open_nursery() as nursery:
        handle: PipelineHandle = await nursery.start(
            Pipeline(
                range(2000),
                routes=[Route("all", gated)],
                batch_size=10,
                max_batch_size=80,
                capacity=2,
                drain_timeout=5.0,
            ).run
        )
        await trio.testing.wait_all_tasks_blocked()
        assert handle.statistics().sinks["gated"].waiting > 0
        handle.stop()
        report = checked(await handle.wait())
    assert report.timed_out
    assert report.delivered == {"gated": 0}
    assert sorted(u.record.id for u in report.undelivered) == list(range(report.received))


@pytest.mark.parametrize("bad", [0, 5, 9, True, 1.5])
def test_max_batch_size_below_batch_size_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="max_batch_size must be an int >= 10"):
        Pipeline(range(3), routes=[Route("all", Sizes())], batch_size=10, max_batch_size=bad)  # type: ignore[arg-type]


async def test_a_breaker_that_sets_the_buffer_aside_makes_room(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Regression: the routing task waited for room on an event that only the writer's
    main loop set; an open breaker taking the whole buffer aside never set it."""

    class Down(Sink):
        name = "down"

        async def write(self, batch: Sequence[Record]) -> None:
            await trio.lowlevel.checkpoint()
            raise ConnectionError("down")

    send, recv = trio.open_memory_channel[int](1000)
    async with trio.open_nursery() as nursery:
        handle: PipelineHandle = await nursery.start(
            Pipeline(
                recv,
                routes=[Route("all", Down())],
                batch_size=1,
                max_batch_size=4,
                capacity=2,
                batch_timeout=0.1,
                retry=NO_RETRY,
                drain_timeout=None,
                breaker=CircuitBreaker(failures=1, probe_interval=1000),
            ).run
        )
        send.send_nowait(0)
        await trio.sleep(1)  # the write fails: the breaker opens
        handle.pause("down")
        await trio.sleep(1)
        for i in range(1, 21):
            send.send_nowait(i)
        await trio.sleep(1)
        handle.resume("down")
        await trio.sleep(1)
        send.close()
        with trio.fail_after(100):
            report = checked(await handle.wait())
    assert report.received == 21
    assert len(report.undelivered) == 21
