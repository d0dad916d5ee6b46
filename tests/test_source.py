"""The source stage: batching of sync and async sources, Stop, Source subclasses,
backpressure. Every run's report is checked with ``report.check()``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence

import pytest
import trio
import trio.testing
from helpers import GatedSink, checked

from trio_sink import (
    Pipeline,
    Record,
    Route,
    Source,
    SourceError,
    TrioSinkError,
)
from trio_sink.testing import RecordingSink, running


def writes(sink: RecordingSink) -> list[tuple[float, list[int]]]:
    """For every write, the time it started and the ids it was given."""
    return [(call.started, call.ids) for call in sink.calls]


def batches(sink: RecordingSink) -> list[list[int]]:
    return [call.ids for call in sink.calls]


# -- sync iterables ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "batch_size", "expected"),
    [
        (10, 4, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]),
        (8, 4, [[0, 1, 2, 3], [4, 5, 6, 7]]),
        (3, 128, [[0, 1, 2]]),
        (3, 1, [[0], [1], [2]]),
        (0, 4, []),
    ],
)
async def test_sync_iterable_is_cut_into_batch_size_batches(
    n: int, batch_size: int, expected: list[list[int]], autojump_clock: trio.testing.MockClock
) -> None:
    sink = RecordingSink("rec")
    start = trio.current_time()
    pipeline = Pipeline(
        [f"item {i}" for i in range(n)], routes=[Route("r", sink)], batch_size=batch_size
    )
    report = checked(await pipeline.run())
    assert batches(sink) == expected
    # A sync source never waits for batch_timeout: every write happens at once.
    assert all(t == start for t, _ in writes(sink))
    assert trio.current_time() == start
    assert report.received == n
    assert report.delivered == {"rec": n}
    assert report.ok


async def test_sync_records_carry_ids_in_source_order_and_raw_items() -> None:
    collected: list[Record] = []

    async def keep(batch: Sequence[Record]) -> None:
        collected.extend(batch)

    report = checked(await Pipeline(iter("abcde"), routes=[Route("r", keep)], batch_size=2).run())
    assert [(r.id, r.raw, r.payload) for r in collected] == [
        (0, "a", "a"),
        (1, "b", "b"),
        (2, "c", "c"),
        (3, "d", "d"),
        (4, "e", "e"),
    ]
    assert report.delivered == {"keep": 5}


def failing_after(n: int, pulled: list[int]) -> Iterator[int]:
    for i in range(n):
        pulled.append(i)
        yield i
    raise ValueError(f"source broke after {n}")


@pytest.mark.parametrize(
    ("n", "batch_size", "expected"),
    [
        (5, 3, [[0, 1, 2], [3, 4]]),  # raises in the middle of the second batch
        (2, 10, [[0, 1]]),  # raises in the middle of the first batch
        (6, 3, [[0, 1, 2], [3, 4, 5]]),  # raises at the start of a batch
        (0, 3, []),  # raises before any item
    ],
)
async def test_sync_iterator_raising_mid_batch_keeps_the_items_before(
    n: int, batch_size: int, expected: list[list[int]]
) -> None:
    sink = RecordingSink("rec")
    pulled: list[int] = []
    pipeline = Pipeline(failing_after(n, pulled), routes=[Route("r", sink)], batch_size=batch_size)
    with pytest.raises(SourceError) as info:
        await pipeline.run()
    report = checked(info.value.report)
    assert isinstance(info.value, TrioSinkError)
    assert isinstance(info.value.__cause__, ValueError)
    assert str(info.value.__cause__) == f"source broke after {n}"
    assert pulled == list(range(n))
    assert report.received == n
    assert batches(sink) == expected
    assert report.delivered == {"rec": n}
    assert report.ok


# -- async iterables -----------------------------------------------------------------


async def test_async_partial_batch_is_cut_after_batch_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    ended: list[float] = []

    async def source() -> AsyncIterator[str]:
        yield "at 0"
        await trio.sleep(1)
        yield "at 1"
        await trio.sleep(5)
        ended.append(trio.current_time() - start)

    sink = RecordingSink("rec")
    pipeline = Pipeline(source(), routes=[Route("r", sink)], batch_size=10, batch_timeout=0.3)
    report = checked(await pipeline.run())
    assert [(round(t - start, 9), ids) for t, ids in writes(sink)] == [
        (0.3, [0]),
        (1.3, [1]),
    ]
    assert ended == [6.0]
    assert report.received == 2
    assert report.delivered == {"rec": 2}


async def test_async_full_batches_go_at_once(autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()

    async def source() -> AsyncIterator[int]:
        for i in range(5):
            yield i
        await trio.sleep(10)

    sink = RecordingSink("rec")
    pipeline = Pipeline(source(), routes=[Route("r", sink)], batch_size=2, batch_timeout=0.3)
    report = checked(await pipeline.run())
    assert [(round(t - start, 9), ids) for t, ids in writes(sink)] == [
        (0.0, [0, 1]),
        (0.0, [2, 3]),
        (0.3, [4]),
    ]
    assert trio.current_time() - start == 10.0
    assert report.delivered == {"rec": 5}


async def test_async_source_end_flushes_partial_batch_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()

    async def source() -> AsyncIterator[int]:
        yield 0
        await trio.sleep(0.1)
        yield 1

    sink = RecordingSink("rec")
    pipeline = Pipeline(source(), routes=[Route("r", sink)], batch_size=10, batch_timeout=5)
    report = checked(await pipeline.run())
    assert [(round(t - start, 9), ids) for t, ids in writes(sink)] == [(0.1, [0, 1])]
    assert trio.current_time() - start == pytest.approx(0.1)
    assert report.drain_seconds == 0.0
    assert report.ok


async def test_async_sources_batches_follow_batch_timeout_not_item_count(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An item every 0.1 s, batch_timeout 0.35: each batch holds what arrived within
    0.35 s of its first item, never more than batch_size."""
    start = trio.current_time()

    async def source() -> AsyncIterator[int]:
        for i in range(10):
            yield i
            await trio.sleep(0.1)

    sink = RecordingSink("rec")
    pipeline = Pipeline(source(), routes=[Route("r", sink)], batch_size=3, batch_timeout=0.35)
    checked(await pipeline.run())
    # Items arrive at 0.0, 0.1, ... 0.9. Batch of 3 is full at 0.2, the next full at 0.5,
    # 0.8, and the last item (0.9) is flushed when the source ends at 1.0.
    assert batches(sink) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert [round(t - start, 9) for t, _ in writes(sink)] == [0.2, 0.5, 0.8, 1.0]


# -- Stop ----------------------------------------------------------------------------


async def items_then_block(items: Sequence[int], log: list[str]) -> AsyncIterator[int]:
    """Yield ``items`` at once, then wait for more forever; log the finally."""
    try:
        for item in items:
            yield item
        log.append("waiting")
        await trio.sleep_forever()
    finally:
        log.append("finally")


async def test_graceful_stop_flushes_partial_batch_immediately(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    log: list[str] = []
    sink = RecordingSink("rec")
    pipeline = Pipeline(
        items_then_block([7, 8, 9], log),
        routes=[Route("r", sink)],
        batch_size=10,
        batch_timeout=10,
    )
    async with running(pipeline) as handle:
        await trio.sleep(1)
        assert writes(sink) == []  # batch_timeout (10 s) has not passed yet
        handle.stop()
    report = checked(await handle.wait())
    # Flushed at the Stop (t=1), not at first_at + batch_timeout (t=10).
    assert [(t - start, ids) for t, ids in writes(sink)] == [(1.0, [0, 1, 2])]
    assert trio.current_time() - start == 1.0
    assert log == ["waiting", "finally"]
    assert report.received == 3
    assert report.ok
    assert not report.timed_out
    assert report.drain_seconds == 0.0


async def test_source_blocked_waiting_for_input_is_cancelled_by_stop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    log: list[str] = []
    sink = RecordingSink("rec")
    pipeline = Pipeline(items_then_block([], log), routes=[Route("r", sink)])
    async with running(pipeline) as handle:
        await trio.sleep(5)
        assert log == ["waiting"]
        handle.stop()
    report = checked(await handle.wait())
    assert trio.current_time() - start == 5.0
    assert log == ["waiting", "finally"]
    assert writes(sink) == []
    assert report.received == 0
    assert report.ok
    assert not report.timed_out


async def test_item_already_pulled_is_delivered_after_stop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The source yields one item, then is stopped while it waits for the next: the
    item is delivered, at the Stop, and nothing is reported."""
    log: list[str] = []
    sink = RecordingSink("rec")
    pipeline = Pipeline(items_then_block([42], log), routes=[Route("r", sink)], batch_timeout=3)
    async with running(pipeline) as handle:
        await trio.sleep(0.2)
        handle.stop()
    report = checked(await handle.wait())
    assert batches(sink) == [[0]]
    assert report.delivered == {"rec": 1}
    assert report.received == 1
    assert report.ok


async def test_async_generator_suspended_at_yield_is_closed_at_stop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Stop while the puller waits for room (the generator is suspended at a yield, not
    in an await): the generator is still closed, its finally runs, before run() ends."""
    log: list[str] = []

    async def endless() -> AsyncIterator[int]:
        i = 0
        try:
            while True:
                yield i
                i += 1
        finally:
            log.append(f"finally after {i}")

    sink = GatedSink()
    pipeline = Pipeline(endless(), routes=[Route("r", sink)], batch_size=1, capacity=0)
    async with running(pipeline) as handle:
        await trio.testing.wait_all_tasks_blocked()
        assert log == []
        handle.stop()
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(10):
            sink.permits.release()
    report = checked(await handle.wait())
    # The generator yielded 0, 1 and 2 (2 waits in the puller's buffer for room) and
    # was suspended at that yield; the pipeline still holds it, so no GC closed it.
    assert log == ["finally after 2"]
    # Everything pulled was delivered; nothing was lost or reported.
    assert sink.delivered == [0, 1, 2]
    assert report.received == 3
    assert report.ok


async def test_async_iterable_that_is_not_a_generator_is_accepted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Countdown:
        def __init__(self, n: int) -> None:
            self.n = n

        def __aiter__(self) -> Countdown:
            return self

        async def __anext__(self) -> int:
            await trio.sleep(0.01)
            if self.n == 0:
                raise StopAsyncIteration
            self.n -= 1
            return self.n

    collected: list[Record] = []

    async def keep(batch: Sequence[Record]) -> None:
        collected.extend(batch)

    report = checked(await Pipeline(Countdown(4), routes=[Route("r", keep)]).run())
    assert [r.raw for r in collected] == [3, 2, 1, 0]
    assert report.delivered == {"keep": 4}


async def test_async_source_raising_keeps_items_before(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def source() -> AsyncIterator[int]:
        yield 0
        yield 1
        await trio.sleep(1)
        yield 2
        raise OSError("device gone")

    sink = RecordingSink("rec")
    pipeline = Pipeline(source(), routes=[Route("r", sink)], batch_size=10, batch_timeout=5)
    with pytest.raises(SourceError) as info:
        await pipeline.run()
    report = checked(info.value.report)
    assert isinstance(info.value.__cause__, OSError)
    assert [r.id for r in sink.records] == [0, 1, 2]
    assert report.received == 3
    assert report.delivered == {"rec": 3}
    assert report.ok


# -- Source subclasses -----------------------------------------------------------------


class TracingSource(Source[int]):
    """Logs open, each pull and aclose, with the time."""

    def __init__(self, n: int, *, fail_open: bool = False, block: bool = False) -> None:
        self.n = n
        self.fail_open = fail_open
        self.block = block
        self.events: list[tuple[str, float]] = []

    def _log(self, event: str) -> None:
        self.events.append((event, trio.current_time()))

    async def open(self) -> None:
        self._log("open start")
        await trio.sleep(2)
        if self.fail_open:
            raise ConnectionError("cannot connect")
        self._log("open done")

    async def __aiter__(self) -> AsyncIterator[int]:
        for i in range(self.n):
            self._log(f"pull {i}")
            yield i
        if self.block:
            await trio.sleep_forever()

    async def aclose(self) -> None:
        self._log("aclose")
        await trio.lowlevel.checkpoint()


async def test_source_subclass_open_before_first_pull_aclose_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    source = TracingSource(3)
    sink = RecordingSink("rec")
    report = checked(await Pipeline(source, routes=[Route("r", sink)]).run())
    assert [(e, t - start) for e, t in source.events] == [
        ("open start", 0.0),
        ("open done", 2.0),
        ("pull 0", 2.0),
        ("pull 1", 2.0),
        ("pull 2", 2.0),
        ("aclose", 2.0),
    ]
    assert batches(sink) == [[0, 1, 2]]
    assert report.ok


async def test_source_subclass_open_raises_source_error_and_aclose_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    source = TracingSource(3, fail_open=True)
    sink = RecordingSink("rec")
    pipeline = Pipeline(source, routes=[Route("r", sink)])
    with pytest.raises(SourceError) as info:
        await pipeline.run()
    report = checked(info.value.report)
    assert isinstance(info.value.__cause__, ConnectionError)
    assert [e for e, _ in source.events] == ["open start", "aclose"]
    assert report.received == 0
    assert writes(sink) == []


@pytest.mark.parametrize("immediate", [False, True])
async def test_source_subclass_aclose_once_when_stopped(
    immediate: bool, autojump_clock: trio.testing.MockClock
) -> None:
    source = TracingSource(2, block=True)
    sink = RecordingSink("rec")
    pipeline = Pipeline(source, routes=[Route("r", sink)], batch_size=2)
    async with running(pipeline) as handle:
        await trio.sleep(3)
        handle.stop(immediate=immediate)
        handle.stop()
    report = checked(await handle.wait())
    assert [e for e, _ in source.events].count("aclose") == 1
    assert [e for e, _ in source.events][-1] == "aclose"
    assert batches(sink) == [[0, 1]]
    assert report.ok


async def test_source_subclass_generator_suspended_at_yield_is_closed_before_aclose(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A Source whose ``__aiter__`` is an async generator (the easy way, as its docstring
    says), stopped while the generator is suspended at a yield (the puller waits for
    room): the generator is closed by the pipeline, its finally runs before the
    source's aclose() tears down what it may still use, and before run() ends; it is
    not left for the garbage collector."""
    log: list[str] = []

    class Endless(Source[int]):
        async def __aiter__(self) -> AsyncIterator[int]:
            i = 0
            try:
                while True:
                    yield i
                    i += 1
            finally:
                log.append(f"finally after {i}")

        async def aclose(self) -> None:
            log.append("aclose")

    source = Endless()
    sink = GatedSink()
    pipeline = Pipeline(source, routes=[Route("r", sink)], batch_size=1, capacity=0)
    async with running(pipeline) as handle:
        await trio.testing.wait_all_tasks_blocked()
        handle.stop()
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(10):
            sink.permits.release()
    report = checked(await handle.wait())
    assert log == ["finally after 2", "aclose"]
    assert sink.delivered == [0, 1, 2]
    assert report.ok


# -- backpressure --------------------------------------------------------------------


async def test_slow_sink_with_capacity_1_bounds_how_far_the_source_gets_ahead(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pulled: list[int] = []

    def source() -> Iterator[int]:
        for i in range(20):
            pulled.append(i)
            yield i

    sink = GatedSink()
    pipeline = Pipeline(source(), routes=[Route("r", sink)], batch_size=1, capacity=1)
    async with running(pipeline) as handle:
        await trio.testing.wait_all_tasks_blocked()
        # One batch in the sink's hand, one in its buffer (capacity 1), one in the
        # source's send: the source is three items ahead, and no further.
        assert pulled == [0, 1, 2]
        assert sink.delivered == []
        for step in range(1, 21):
            sink.permits.release()
            await trio.testing.wait_all_tasks_blocked()
            assert len(sink.delivered) == step
            assert len(pulled) == min(20, step + 3)
    report = checked(await handle.wait())
    assert sink.delivered == list(range(20))
    assert report.ok


async def test_slow_sink_with_capacity_1_bounds_an_async_source_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pulled: list[int] = []

    async def source() -> AsyncIterator[int]:
        for i in range(40):
            pulled.append(i)
            yield i

    sink = GatedSink()
    pipeline = Pipeline(source(), routes=[Route("r", sink)], batch_size=2, capacity=1)
    async with running(pipeline) as handle:
        await trio.testing.wait_all_tasks_blocked()
        # In the sink's hand, in its buffer, in the batcher's send, and in the puller's
        # full local buffer: 4 batches of 2, and no more.
        ahead = len(pulled)
        assert sink.delivered == []
        assert ahead == 2 * 4
        for _ in range(3):
            sink.permits.release()
            await trio.testing.wait_all_tasks_blocked()
            assert len(pulled) - len(sink.delivered) == ahead
        for _ in range(20):
            sink.permits.release()
    report = checked(await handle.wait())
    assert sink.delivered == list(range(40))
    assert report.ok
