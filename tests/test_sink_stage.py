"""The sink stage: failing writes, failing flush and aclose, aclose exactly once in
every ending, and one sink's slowness kept to its own buffer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest
import trio
import trio.testing
from helpers import GatedSink, checked

from trio_sink import (
    Batch,
    DeliveryReport,
    Pipeline,
    PipelineHandle,
    Record,
    Route,
    Sink,
    SourceError,
)
from trio_sink._control import StopControl
from trio_sink._feeds import SinkBatch
from trio_sink._ledger import Ledger, Ticket
from trio_sink._sink import SinkSlot
from trio_sink._writer import SinkWriter
from trio_sink.sinks import CollectSink, SlowSink


class TracingSink(Sink):
    """Logs each call with what it was given; optionally slow, or failing."""

    def __init__(
        self,
        name: str,
        *,
        write_delay: float = 0.0,
        close_delay: float = 0.0,
        fail_writes: Sequence[int] = (),
        fail_all: bool = False,
        fail_flush: bool = False,
        fail_aclose: bool = False,
    ) -> None:
        self.name = name
        self.write_delay = write_delay
        self.close_delay = close_delay
        self.fail_writes = set(fail_writes)
        self.fail_all = fail_all
        self.fail_flush = fail_flush
        self.fail_aclose = fail_aclose
        self.events: list[str] = []
        self.delivered: list[int] = []
        self.calls = 0
        self.errors: list[Exception] = []

    async def write(self, batch: Sequence[Record]) -> None:
        call = self.calls
        self.calls += 1
        ids = [r.id for r in batch]
        self.events.append(f"write {ids}")
        if self.write_delay:
            await trio.sleep(self.write_delay)
        if self.fail_all or call in self.fail_writes:
            exc = ValueError(f"bad batch {call} of {len(batch)}")
            self.errors.append(exc)
            raise exc
        self.delivered.extend(ids)

    async def flush(self) -> None:
        self.events.append("flush")
        if self.fail_flush:
            raise OSError("disk full")

    async def aclose(self) -> None:
        self.events.append("aclose")
        try:
            await trio.sleep(self.close_delay)
        except trio.Cancelled:
            self.events.append("aclose cancelled")
            raise
        self.events.append("aclose done")
        if self.fail_aclose:
            raise RuntimeError("connection reset")


async def items_then_block(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i
    await trio.sleep_forever()


# -- failing writes ------------------------------------------------------------------


async def test_write_raising_reports_that_batch_and_later_batches_are_delivered() -> None:
    flaky = TracingSink("flaky", fail_writes=[1, 3])
    other = CollectSink("other")
    pipeline = Pipeline(range(10), routes=[Route("r", [flaky, other])], batch_size=2)
    report = checked(await pipeline.run())
    assert flaky.delivered == [0, 1, 4, 5, 8, 9]
    assert [(u.record.id, u.sink, u.stage) for u in report.undelivered] == [
        (2, "flaky", "sink"),
        (3, "flaky", "sink"),
        (6, "flaky", "sink"),
        (7, "flaky", "sink"),
    ]
    reasons = [u.reason for u in report.undelivered]
    assert (
        reasons
        == ["sink raised ValueError: bad batch 1 of 2"] * 2
        + ["sink raised ValueError: bad batch 3 of 2"] * 2
    )
    # .error is the very exception the write raised.
    errors = [u.error for u in report.undelivered]
    assert errors[0] is flaky.errors[0]
    assert errors[1] is flaky.errors[0]
    assert errors[2] is flaky.errors[1]
    assert errors[3] is flaky.errors[1]
    # The other sink of the same route is unaffected.
    assert [r.id for r in other.records] == list(range(10))
    assert report.delivered == {"flaky": 6, "other": 10}
    assert report.routed == {"flaky": 10, "other": 10}
    assert not report.ok
    assert not report.timed_out
    assert report.sink_errors == {}
    # flush and aclose still run once, after the last write.
    assert flaky.events[-3:] == ["flush", "aclose", "aclose done"]
    assert other.flushed == 1
    assert other.closed == 1


async def test_sink_that_always_raises_in_other_route_leaves_other_sinks_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    broken = TracingSink("broken", fail_all=True)
    fine = TracingSink("fine", write_delay=1.0)
    pipeline = Pipeline(
        range(6),
        routes=[Route("a", broken), Route("b", fine)],
        batch_size=3,
    )
    start = trio.current_time()
    report = checked(await pipeline.run())
    assert fine.delivered == list(range(6))
    assert broken.delivered == []
    assert trio.current_time() - start == 2.0  # the fine sink's two writes, no more
    assert report.delivered == {"broken": 0, "fine": 6}
    assert sorted(u.record.id for u in report.undelivered) == list(range(6))
    assert {u.reason for u in report.undelivered} == {
        "sink raised ValueError: bad batch 0 of 3",
        "sink raised ValueError: bad batch 1 of 3",
    }
    assert all(isinstance(u.error, ValueError) for u in report.undelivered)


async def test_write_raising_base_exception_subclass_of_exception_only_is_contained() -> None:
    """An ExceptionGroup from a write (a sink with its own nursery) is a plain
    Exception: contained and reported like any other."""

    async def grouped(batch: Sequence[Record]) -> None:
        raise ExceptionGroup("sink internals", [KeyError("k")])

    report = checked(await Pipeline(range(3), routes=[Route("r", grouped)]).run())
    assert [u.record.id for u in report.undelivered] == [0, 1, 2]
    assert report.undelivered[0].reason.startswith("sink raised ExceptionGroup: sink internals")
    assert isinstance(report.undelivered[0].error, ExceptionGroup)


# -- flush and aclose errors ---------------------------------------------------------


async def test_flush_raising_lands_in_sink_errors_without_losing_records() -> None:
    sink = TracingSink("s", fail_flush=True)
    other = CollectSink("other")
    report = checked(await Pipeline(range(5), routes=[Route("r", [sink, other])]).run())
    assert report.sink_errors == {"s": "flush raised OSError: disk full"}
    assert report.delivered == {"s": 5, "other": 5}
    assert report.ok
    assert sink.events == ["write [0, 1, 2, 3, 4]", "flush", "aclose", "aclose done"]
    assert other.closed == 1


async def test_aclose_raising_lands_in_sink_errors_without_losing_records() -> None:
    sink = TracingSink("s", fail_aclose=True)
    other = CollectSink("other")
    report = checked(await Pipeline(range(5), routes=[Route("r", [sink, other])]).run())
    assert report.sink_errors == {"s": "aclose raised RuntimeError: connection reset"}
    assert report.delivered == {"s": 5, "other": 5}
    assert report.ok
    assert sink.events.count("aclose") == 1
    assert other.closed == 1


async def test_flush_and_aclose_both_raising_keeps_both_in_sink_errors() -> None:
    """A failed flush may mean delivered records are not durable: an aclose that fails
    afterwards must not erase that from the report."""
    sink = TracingSink("s", fail_flush=True, fail_aclose=True)
    report = checked(await Pipeline(range(5), routes=[Route("r", sink)]).run())
    assert set(report.sink_errors) == {"s"}
    assert "flush raised OSError: disk full" in report.sink_errors["s"]
    assert "aclose raised RuntimeError: connection reset" in report.sink_errors["s"]
    assert report.delivered == {"s": 5}
    assert report.ok


# -- aclose exactly once, in every ending --------------------------------------------

ENDINGS = ["normal", "write raised", "source raised", "deadline", "immediate", "outer cancel"]


async def end_run(ending: str, sink: TracingSink) -> DeliveryReport:
    """Run a pipeline with ``sink`` to the given ending; return its report."""
    if ending in ("normal", "write raised"):
        return await Pipeline(range(4), routes=[Route("r", sink)], batch_size=2).run()
    if ending == "source raised":

        async def failing() -> AsyncIterator[int]:
            yield 0
            raise LookupError("gone")

        with pytest.raises(SourceError) as info:
            await Pipeline(failing(), routes=[Route("r", sink)]).run()
        return info.value.report
    if ending == "deadline":
        return await Pipeline(range(4), routes=[Route("r", sink)], drain_timeout=1.0).run()
    pipeline = Pipeline(items_then_block(4), routes=[Route("r", sink)], batch_size=2)
    if ending == "immediate":
        async with trio.open_nursery() as nursery:
            handle: PipelineHandle = await nursery.start(pipeline.run)
            await trio.sleep(1)
            handle.stop(immediate=True)
        return await handle.wait()
    assert ending == "outer cancel"
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(pipeline.run)
            await trio.sleep(1)
            scope.cancel()
    assert scope.cancelled_caught
    return await handle.wait()


@pytest.mark.parametrize("ending", ENDINGS)
async def test_aclose_is_called_exactly_once_in_every_ending(
    ending: str, autojump_clock: trio.testing.MockClock
) -> None:
    slow_write = 10.0 if ending in ("deadline", "immediate", "outer cancel") else 0.0
    sink = TracingSink(
        "s",
        write_delay=slow_write,
        close_delay=0.5,
        fail_all=ending == "write raised",
    )
    report = checked(await end_run(ending, sink))
    assert sink.events.count("aclose") == 1
    assert sink.events[-2] == "aclose" or sink.events[-1] == "aclose"
    if ending in ("deadline", "immediate", "outer cancel"):
        # Trio's convention: after a deadline or a cancellation, aclose runs cancelled.
        assert sink.events[-2:] == ["aclose", "aclose cancelled"]
        assert not report.ok
    else:
        # An ordinary end: aclose runs to completion, after the flush.
        assert sink.events[-3:] == ["flush", "aclose", "aclose done"]


async def test_aclose_after_deadline_runs_cancelled_and_the_run_ends_at_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = TracingSink("s", write_delay=100.0, close_delay=30.0)
    start = trio.current_time()
    report = checked(await Pipeline(range(3), routes=[Route("r", sink)], drain_timeout=5).run())
    assert trio.current_time() - start == 5.0  # not 5 + 30: aclose was cancelled
    assert sink.events == ["write [0, 1, 2]", "aclose", "aclose cancelled"]
    assert report.timed_out
    assert report.sink_errors == {}  # a cancelled aclose is not a sink error


async def test_aclose_at_an_ordinary_end_is_not_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = TracingSink("s", close_delay=3.0)
    start = trio.current_time()
    report = checked(await Pipeline(range(3), routes=[Route("r", sink)], drain_timeout=5).run())
    assert sink.events == ["write [0, 1, 2]", "flush", "aclose", "aclose done"]
    assert trio.current_time() - start == 3.0
    assert report.ok


async def test_aclose_slower_than_the_drain_deadline_is_cancelled_at_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Everything was delivered, but closing outlives the deadline: the run still ends
    at the deadline, and no record is reported (none was left)."""
    sink = TracingSink("s", close_delay=30.0)
    start = trio.current_time()
    report = checked(await Pipeline(range(3), routes=[Route("r", sink)], drain_timeout=5).run())
    assert sink.events == ["write [0, 1, 2]", "flush", "aclose", "aclose cancelled"]
    assert trio.current_time() - start == 5.0
    assert report.ok
    assert report.delivered == {"s": 3}
    assert not report.timed_out


async def test_flush_is_called_once_after_the_last_write() -> None:
    sink = TracingSink("s")
    checked(await Pipeline(range(5), routes=[Route("r", sink)], batch_size=2).run())
    assert sink.events == [
        "write [0, 1]",
        "write [2, 3]",
        "write [4]",
        "flush",
        "aclose",
        "aclose done",
    ]


async def test_plain_function_sink_is_named_after_the_function() -> None:
    got: list[int] = []

    async def audit_log(batch: Sequence[Record]) -> None:
        got.extend(r.id for r in batch)

    report = checked(await Pipeline(range(3), routes=[Route("r", audit_log)]).run())
    assert got == [0, 1, 2]
    assert report.delivered == {"audit_log": 3}


# -- one slow sink, one fast ---------------------------------------------------------


@pytest.mark.parametrize("capacity", [0, 1, 3])
async def test_slow_sink_slows_fast_sink_only_once_its_own_buffer_is_full(
    capacity: int, autojump_clock: trio.testing.MockClock
) -> None:
    slow = GatedSink("slow")
    fast = CollectSink("fast")
    pipeline = Pipeline(
        range(20),
        routes=[Route("r", [slow, fast])],
        batch_size=2,
        capacity=capacity,
    )
    result: list[DeliveryReport] = []

    async def run() -> None:
        result.append(await pipeline.run())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await trio.testing.wait_all_tasks_blocked()
        # The slow sink holds one batch in its write and `capacity` in its buffer; the
        # source waits to send it the next one. Until then the fast sink kept pace.
        assert slow.delivered == []
        assert [r.id for r in fast.records] == list(range(2 * (capacity + 1)))
        slow.permits.release()
        await trio.testing.wait_all_tasks_blocked()
        assert slow.delivered == [0, 1]
        assert [r.id for r in fast.records] == list(range(2 * (capacity + 2)))
        for _ in range(10):
            slow.permits.release()
    report = checked(result[0])
    assert report.delivered == {"slow": 20, "fast": 20}


async def test_slow_sink_with_room_leaves_fast_sink_at_full_speed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slow = SlowSink(CollectSink("slow"), per_batch=10.0)
    fast = TracingSink("fast")
    written_at: list[float] = []

    async def timed(batch: Sequence[Record]) -> None:
        written_at.append(trio.current_time())

    start = trio.current_time()
    pipeline = Pipeline(
        range(20),
        routes=[Route("r", [slow, fast]), Route("t", timed)],
        batch_size=2,
        capacity=16,
        drain_timeout=None,
    )
    report = checked(await pipeline.run())
    assert written_at == [start] * 10  # every batch reached the fast sinks at t=0
    assert fast.delivered == list(range(20))
    assert trio.current_time() - start == 100.0  # 10 batches x 10 s in the slow sink
    assert report.delivered == {"slow": 20, "fast": 20, "timed": 20}


# -- taking input: the count of buffered records picks a wait or no wait -------------


@pytest.mark.parametrize("count_ahead", [True, False])
async def test_sink_stage_takes_every_batch_whatever_its_buffered_count_says(
    autojump_clock: trio.testing.MockClock, count_ahead: bool
) -> None:
    """The stage takes from its channel without waiting while ``buffered`` says it
    holds records. The count can run ahead of the channel for a moment (a send waiting
    for room is counted, and is uncounted only when its cancellation reaches its task):
    the stage then waits for input instead. A batch in the channel is taken whatever
    the count says."""
    sink = CollectSink("c")
    slot = SinkSlot(sink)
    ledger = Ledger([slot.name])
    account = ledger.accounts[slot.name]
    send, recv = trio.open_memory_channel[SinkBatch](4)
    early = (Record(0, "a", "a"),)
    late = (Record(1, "b", "b"), Record(2, "c", "c"))
    if count_ahead:
        ledger.route(account, 5)
        ledger.send(account, 5)  # counted, not in the channel yet (a send waits for room)
    else:
        ledger.admit(account, 1)
        send.send_nowait((Batch.of(early), Ticket(0, 1, 1)))

    async def feed() -> None:
        await trio.sleep(1.0)
        if count_ahead:
            send.send_nowait((Batch.of(early), Ticket(0, 1, 1)))
            ledger.unsend(account, 5 - len(early))  # the rest of the count was cancelled
        await trio.sleep(1.0)
        ledger.admit(account, len(late))
        send.send_nowait((Batch.of(late), Ticket(1, 2, 1)))
        send.close()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed)
        await SinkWriter(slot, account, ledger, control=StopControl(None, ledger)).run(recv)
    assert [r.id for r in sink.records] == [0, 1, 2]
    assert (account.delivered, account.buffered, account.in_flight) == (3, 0, 0)
    assert trio.current_time() == 2.0
