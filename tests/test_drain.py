"""Stop, the drain deadline, and the Trio traps where a record could slip away.

Each regression test is named after the trap it guards. Every run's report is checked
with ``report.check()``; all timing is virtual (``autojump_clock``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Sequence

import pytest
import trio
import trio.testing
from helpers import GatedSink, checked

from trio_sink import DeliveryReport, Pipeline, PipelineHandle, Record, Route, Sink
from trio_sink.sinks import CollectSink, SlowSink
from trio_sink.testing import running


class TracingSink(Sink):
    """Logs each write (and whether it was cancelled), flush and aclose."""

    def __init__(self, name: str, *, write_delay: float = 0.0) -> None:
        self.name = name
        self.write_delay = write_delay
        self.events: list[str] = []
        self.delivered: list[int] = []

    async def write(self, batch: Sequence[Record]) -> None:
        ids = [r.id for r in batch]
        self.events.append(f"write {ids}")
        try:
            await trio.sleep(self.write_delay)
        except trio.Cancelled:
            self.events.append(f"cancelled {ids}")
            raise
        self.delivered.extend(ids)

    async def flush(self) -> None:
        self.events.append("flush")

    async def aclose(self) -> None:
        self.events.append("aclose")


def lost(report: DeliveryReport, sink: str | None) -> list[int]:
    """The ids reported undelivered for ``sink``, in report order."""
    return [u.record.id for u in report.undelivered if u.sink == sink]


async def items_then_block(n: int, log: list[str] | None = None) -> AsyncIterator[int]:
    """Yield ``n`` items at once, then wait for more forever."""
    try:
        for i in range(n):
            yield i
        await trio.sleep_forever()
    finally:
        if log is not None:
            log.append("source finally")


# -- receive-then-cancel -------------------------------------------------------------


async def test_receive_then_cancel_batch_being_written_at_deadline_is_reported(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    sink = TracingSink("s", write_delay=10.0)
    pipeline = Pipeline(range(4), routes=[Route("r", sink)], batch_size=4, drain_timeout=5)
    report = checked(await pipeline.run())
    assert trio.current_time() - start == 5.0
    assert sink.events == ["write [0, 1, 2, 3]", "cancelled [0, 1, 2, 3]", "aclose"]
    assert [(u.record.id, u.sink, u.stage, u.reason) for u in report.undelivered] == [
        (i, "s", "sink", "drain deadline") for i in range(4)
    ]
    assert report.delivered == {"s": 0}
    assert report.timed_out


async def test_receive_then_cancel_batch_received_after_the_stop_is_reported(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The immediate stop comes after the send handed the batch to the waiting sink
    task, but before that task ran: its receive still returns the batch, and the
    batch must be reported from the sink's hand, not dropped."""
    go = trio.Event()
    handles: list[PipelineHandle] = []

    async def source() -> AsyncIterator[str]:
        await go.wait()
        yield "x"
        await trio.sleep_forever()

    def parse(raw: str) -> str:
        handles[0].stop(immediate=True)  # between the routing and the send
        return raw

    sink = TracingSink("s", write_delay=1.0)
    pipeline = Pipeline(source(), parse=parse, routes=[Route("r", sink)], batch_size=1)
    async with running(pipeline) as handle:
        handles.append(handle)
        await trio.testing.wait_all_tasks_blocked()
        go.set()
    report = checked(handles[0].report or await handles[0].wait())
    assert sink.events == ["write [0]", "cancelled [0]", "aclose"]
    assert [(u.record.id, u.sink, u.stage, u.reason) for u in report.undelivered] == [
        (0, "s", "sink", "immediate stop")
    ]
    assert report.received == 1
    assert report.timed_out


# -- closed-receiver buffer ----------------------------------------------------------


async def test_closed_receiver_buffer_batches_waiting_at_deadline_are_reported(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    sink = SlowSink(CollectSink("s"), per_batch=3.0)
    pipeline = Pipeline(
        range(10), routes=[Route("r", sink)], batch_size=2, capacity=10, drain_timeout=5
    )
    report = checked(await pipeline.run())
    assert trio.current_time() - start == 5.0
    # [0, 1] delivered at t=3; [2, 3] in the write at t=5; [4..9] in the channel.
    assert report.delivered == {"s": 2}
    assert lost(report, "s") == [2, 3, 4, 5, 6, 7, 8, 9]
    assert {(u.stage, u.reason) for u in report.undelivered} == {("sink", "drain deadline")}


async def test_closed_receiver_buffer_sink_that_never_received_reports_its_whole_channel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Two sinks; the gated one takes its first batch and then never receives again:
    everything it was routed except the batch in hand waits in its channel."""
    gated = GatedSink("gated")
    other = CollectSink("other")
    pipeline = Pipeline(
        range(12),
        routes=[Route("r", [gated, other])],
        batch_size=3,
        capacity=8,
        drain_timeout=2,
    )
    report = checked(await pipeline.run())
    assert report.delivered == {"gated": 0, "other": 12}
    assert lost(report, "gated") == list(range(12))
    assert lost(report, "other") == []
    assert gated.closed == 1
    assert other.closed == 1


async def test_closed_receiver_buffer_immediate_stop_reports_every_buffered_batch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gated = GatedSink("gated")
    pipeline = Pipeline(items_then_block(9), routes=[Route("r", gated)], batch_size=3)
    async with running(pipeline) as handle:
        await trio.testing.wait_all_tasks_blocked()
        gated.permits.release()
        await trio.testing.wait_all_tasks_blocked()
        handle.stop(immediate=True)
    report = checked(await handle.wait())
    assert gated.delivered == [0, 1, 2]
    # [3, 4, 5] in the write; [6, 7, 8] in the channel.
    assert lost(report, "gated") == [3, 4, 5, 6, 7, 8]
    assert {u.reason for u in report.undelivered} == {"immediate stop"}
    assert report.timed_out


# -- send to a closed receiver -------------------------------------------------------
#
# When the deadline passes, each sink stage reports its channel and closes its receive
# side. A source that reaches its next send without a checkpoint after that moment (the
# batcher was woken by an item just before the deadline was processed) must report the
# batch, not raise trio.BrokenResourceError out of run(). Trio runs the tasks woken in
# one step in a random order, so each case is run many times: with the order that
# exposes the trap coming up in about one run in four, 40 runs all but never miss it.

TRIALS = 40


async def one_item_at(t: float) -> AsyncIterator[str]:
    await trio.sleep(t)
    yield "late"


async def test_send_to_closed_receiver_item_arriving_at_immediate_stop_is_reported(
    autojump_clock: trio.testing.MockClock,
) -> None:
    for _ in range(TRIALS):
        start = trio.current_time()
        sink = TracingSink("s")
        pipeline = Pipeline(one_item_at(1), routes=[Route("r", sink)], batch_size=1)
        async with running(pipeline) as handle:
            await trio.sleep_until(start + 1)  # the item arrives at this very moment
            handle.stop(immediate=True)
        report = checked(await handle.wait())
        assert trio.current_time() == start + 1
        assert sink.delivered == []
        # The item was either never produced (the pull was cancelled first) or reported.
        assert [(u.record.raw, u.reason) for u in report.undelivered] == [
            ("late", "immediate stop")
        ] * report.received


async def test_send_to_closed_receiver_item_arriving_at_outer_cancel_is_reported(
    autojump_clock: trio.testing.MockClock,
) -> None:
    for _ in range(TRIALS):
        start = trio.current_time()
        sink = TracingSink("s")
        pipeline = Pipeline(one_item_at(1), routes=[Route("r", sink)], batch_size=1)
        with trio.CancelScope() as scope:
            async with running(pipeline) as handle:
                await trio.sleep_until(start + 1)
                scope.cancel()
        report = checked(await handle.wait())
        assert sink.delivered == []
        assert [(u.record.raw, u.reason) for u in report.undelivered] == [
            ("late", "cancelled")
        ] * report.received


# -- partial batch at Stop -----------------------------------------------------------


async def test_partial_batch_at_graceful_stop_is_delivered_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    sink = TracingSink("s")
    pipeline = Pipeline(
        items_then_block(3), routes=[Route("r", sink)], batch_size=10, batch_timeout=60
    )
    async with running(pipeline) as handle:
        await trio.sleep(1)
        handle.stop()
    report = checked(await handle.wait())
    assert trio.current_time() - start == 1.0
    assert sink.events == ["write [0, 1, 2]", "flush", "aclose"]
    assert report.ok


async def test_partial_batch_at_immediate_stop_is_reported_before_routing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = TracingSink("s")
    pipeline = Pipeline(
        items_then_block(3), routes=[Route("r", sink)], batch_size=10, batch_timeout=60
    )
    async with running(pipeline) as handle:
        await trio.sleep(1)
        handle.stop(immediate=True)
    report = checked(await handle.wait())
    assert sink.delivered == []
    assert [(u.record.id, u.record.raw, u.sink, u.stage, u.reason) for u in report.undelivered] == [
        (0, 0, None, "source", "immediate stop"),
        (1, 1, None, "source", "immediate stop"),
        (2, 2, None, "source", "immediate stop"),
    ]
    assert report.received == 3
    assert report.routed == {"s": 0}
    assert report.timed_out


# -- nursery cancelled from outside --------------------------------------------------


async def test_nursery_cancelled_from_outside_reports_every_record_as_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slow = SlowSink(CollectSink("slow"), per_batch=10.0)
    fast = CollectSink("fast")
    pipeline = Pipeline(range(10), routes=[Route("r", [slow, fast])], batch_size=2)
    raised: list[BaseException] = []

    async def run(task_status: trio.TaskStatus[PipelineHandle]) -> None:
        try:
            await pipeline.run(task_status=task_status)
        except BaseException as exc:
            raised.append(exc)
            raise
        raised.append(AssertionError("run() returned although it was cancelled"))

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            handle: PipelineHandle = await nursery.start(run)
            await trio.sleep(15)
            assert handle.report is None
            scope.cancel()
    assert scope.cancelled_caught
    # Only Cancelled propagates: bare, or (through run()'s nursery, Trio's strict
    # exception groups) in a group holding nothing else.
    assert len(raised) == 1
    exc = raised[0]
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(trio.Cancelled)
        assert matched is not None
        assert rest is None
    else:
        assert isinstance(exc, trio.Cancelled)
    report = checked(await handle.wait())
    assert handle.report is report
    # [0, 1] delivered at t=10; [2, 3] in the write at t=15; [4..9] in the channel.
    assert report.delivered == {"slow": 2, "fast": 10}
    assert lost(report, "slow") == [2, 3, 4, 5, 6, 7, 8, 9]
    assert {(u.stage, u.reason) for u in report.undelivered} == {("sink", "cancelled")}
    assert not report.timed_out
    inner = slow.inner
    assert isinstance(inner, CollectSink)
    assert inner.closed == 1
    assert fast.closed == 1


async def test_nursery_cancelled_from_outside_reports_the_source_partial_batch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    sink = TracingSink("s")
    pipeline = Pipeline(
        items_then_block(3, log), routes=[Route("r", sink)], batch_size=10, batch_timeout=60
    )
    with trio.CancelScope() as scope:
        async with running(pipeline) as handle:
            await trio.sleep(1)
            scope.cancel()
    report = checked(await handle.wait())
    assert [(u.record.id, u.sink, u.stage, u.reason) for u in report.undelivered] == [
        (0, None, "source", "cancelled"),
        (1, None, "source", "cancelled"),
        (2, None, "source", "cancelled"),
    ]
    assert log == ["source finally"]
    assert sink.events == ["aclose"]
    assert not report.timed_out


class KeepHandle:
    """A task_status that only keeps the handle, for a run awaited directly."""

    def __init__(self) -> None:
        self.handle: PipelineHandle | None = None

    def started(self, value: PipelineHandle | None = None) -> None:
        self.handle = value


async def test_nursery_cancelled_from_outside_batch_mode_run_raises_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = TracingSink("s", write_delay=10.0)
    pipeline = Pipeline(range(4), routes=[Route("r", sink)], drain_timeout=None)
    status = KeepHandle()
    reached_end = False
    with trio.move_on_after(3) as scope:
        await pipeline.run(task_status=status)
        reached_end = True
    assert scope.cancelled_caught
    assert not reached_end
    assert sink.events == ["write [0, 1, 2, 3]", "cancelled [0, 1, 2, 3]", "aclose"]
    assert status.handle is not None
    report = checked(await status.handle.wait())
    assert [(u.record.id, u.stage, u.reason) for u in report.undelivered] == [
        (i, "sink", "cancelled") for i in range(4)
    ]
    assert not report.timed_out


# -- stop before the stages ran ------------------------------------------------------


class StopAtStart:
    """A task_status that stops the run the moment ``run()`` reports it is up."""

    def __init__(self, *, immediate: bool) -> None:
        self.immediate = immediate
        self.handle: PipelineHandle | None = None

    def started(self, value: PipelineHandle | None = None) -> None:
        assert value is not None
        self.handle = value
        value.stop(immediate=self.immediate)


@pytest.mark.parametrize("immediate", [False, True])
async def test_stop_before_the_stages_ran(
    immediate: bool, autojump_clock: trio.testing.MockClock
) -> None:
    """Stop from inside ``task_status.started()``: the earliest moment a handle exists,
    before the puller or the sinks got to run. Repeated, as the order in which Trio
    runs the stages woken together is random (see TRIALS)."""
    for _ in range(TRIALS):
        start = trio.current_time()
        log: list[str] = []
        sink = TracingSink("s")
        pipeline = Pipeline(items_then_block(5, log), routes=[Route("r", sink)], batch_timeout=60)
        status = StopAtStart(immediate=immediate)
        report = checked(await pipeline.run(task_status=status))
        assert status.handle is not None
        assert status.handle.report is report
        assert trio.current_time() == start  # no wait: not batch_timeout, not drain_timeout
        assert log == ["source finally"]
        assert sink.events[-1] == "aclose"
        if immediate:
            assert sink.delivered == []
            assert [u.reason for u in report.undelivered] == ["immediate stop"] * report.received
            assert report.timed_out == (report.received > 0)
        else:
            assert sink.delivered == list(range(report.received))
            assert report.ok
            assert not report.timed_out


@pytest.mark.parametrize("immediate", [False, True])
async def test_stop_right_after_start_ends_the_run_at_once(
    immediate: bool, autojump_clock: trio.testing.MockClock
) -> None:
    start = trio.current_time()
    sink = TracingSink("s", write_delay=1.0)
    pipeline = Pipeline(items_then_block(20), routes=[Route("r", sink)], batch_size=4)
    async with running(pipeline) as handle:
        handle.stop(immediate=immediate)
    report = checked(await handle.wait())
    assert sink.events.count("aclose") == 1
    if immediate:
        assert trio.current_time() == start
        assert report.delivered == {"s": 0}
        assert len(report.undelivered) == report.received
        assert {u.reason for u in report.undelivered} == {"immediate stop"}
    else:
        # Whatever was pulled before the Stop is delivered, one second a batch.
        assert sink.delivered == list(range(report.received))
        assert report.ok
        assert trio.current_time() - start == len(sink.events) - 2  # writes; flush, aclose


# -- a second stop -------------------------------------------------------------------


async def run_with_stops(
    stops: Sequence[tuple[float, bool]], *, drain_timeout: float | None
) -> tuple[DeliveryReport, float]:
    """Stop at each (time, immediate) of ``stops``; return the report and the end time."""
    start = trio.current_time()
    sink = SlowSink(CollectSink("s"), per_batch=1000.0)
    pipeline = Pipeline(
        items_then_block(4), routes=[Route("r", sink)], batch_size=2, drain_timeout=drain_timeout
    )
    async with running(pipeline) as handle:
        for at, immediate in stops:
            await trio.sleep_until(start + at)
            handle.stop(immediate=immediate)
    report = checked(await handle.wait())
    assert report.received == 4
    assert len(report.undelivered) == 4
    return report, trio.current_time() - start


async def test_second_stop_immediate_brings_graceful_deadline_forward(
    autojump_clock: trio.testing.MockClock,
) -> None:
    report, ended = await run_with_stops([(1, False), (11, True)], drain_timeout=100)
    assert ended == 11.0
    assert {u.reason for u in report.undelivered} == {"immediate stop"}
    assert report.drain_seconds == 10.0
    assert report.timed_out


async def test_second_stop_immediate_ends_an_unbounded_drain(
    autojump_clock: trio.testing.MockClock,
) -> None:
    report, ended = await run_with_stops([(1, False), (50, True)], drain_timeout=None)
    assert ended == 50.0
    assert {u.reason for u in report.undelivered} == {"immediate stop"}


async def test_second_stop_graceful_after_immediate_keeps_immediate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    report, ended = await run_with_stops([(1, True), (1, False)], drain_timeout=100)
    assert ended == 1.0
    assert {u.reason for u in report.undelivered} == {"immediate stop"}
    assert report.drain_seconds == 0.0


async def test_second_stop_graceful_does_not_postpone_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    report, ended = await run_with_stops([(1, False), (6, False)], drain_timeout=10)
    assert ended == 11.0  # the first Stop's deadline, not 6 + 10
    assert {u.reason for u in report.undelivered} == {"drain deadline"}
    assert report.drain_seconds == 10.0


async def test_stop_after_the_run_ended_is_a_no_op(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_sink")
    sink = TracingSink("s")
    pipeline = Pipeline(range(3), routes=[Route("r", sink)])
    async with running(pipeline) as handle:
        pass
    report = checked(await handle.wait())
    logged = len(caplog.records)
    handle.stop()
    handle.stop(immediate=True)
    await trio.sleep(100)
    assert handle.report is report
    assert await handle.wait() is report
    assert report.ok
    assert report.delivered == {"s": 3}
    assert len(caplog.records) == logged
    assert sink.events == ["write [0, 1, 2]", "flush", "aclose"]


# -- deadline, drain_timeout=None, drain_seconds, timed_out ------------------------------


async def test_drain_timeout_none_waits_as_long_as_it_takes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    sink = SlowSink(CollectSink("s"), per_batch=1000.0)
    pipeline = Pipeline(
        items_then_block(6),
        routes=[Route("r", sink)],
        batch_size=2,
        drain_timeout=None,
        write_timeout=None,
    )
    async with running(pipeline) as handle:
        await trio.sleep(1)
        handle.stop()
    report = checked(await handle.wait())
    assert trio.current_time() - start == 3000.0
    assert report.drain_seconds == 2999.0
    assert report.delivered == {"s": 6}
    assert report.ok
    assert not report.timed_out


async def test_deadline_is_exact_in_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()
    sink = SlowSink(CollectSink("s"), per_batch=1000.0)
    pipeline = Pipeline(
        items_then_block(6), routes=[Route("r", sink)], batch_size=2, drain_timeout=7.25
    )
    async with running(pipeline) as handle:
        await trio.sleep(2.5)
        stopped_at = trio.current_time()
        handle.stop()
    report = checked(await handle.wait())
    assert trio.current_time() == stopped_at + 7.25
    assert trio.current_time() - start == 9.75
    assert report.drain_seconds == 7.25
    assert report.timed_out
    assert lost(report, "s") == [0, 1, 2, 3, 4, 5]


async def test_batch_mode_deadline_counts_from_the_end_of_the_source(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()

    async def source() -> AsyncIterator[int]:
        for i in range(4):
            yield i
        await trio.sleep(20)  # the source ends at t=20: that is the Stop

    sink = SlowSink(CollectSink("s"), per_batch=1000.0)
    pipeline = Pipeline(source(), routes=[Route("r", sink)], drain_timeout=3)
    report = checked(await pipeline.run())
    assert trio.current_time() - start == 23.0
    assert report.drain_seconds == 3.0
    assert report.timed_out


async def test_timed_out_is_false_for_an_immediate_stop_with_nothing_left(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = TracingSink("s")
    pipeline = Pipeline(items_then_block(5), routes=[Route("r", sink)], batch_size=5)
    async with running(pipeline) as handle:
        await trio.sleep(1)
        handle.stop(immediate=True)
    report = checked(await handle.wait())
    assert sink.delivered == [0, 1, 2, 3, 4]
    assert report.ok
    assert not report.timed_out
    assert report.drain_seconds == 0.0


async def test_timed_out_is_false_when_everything_drained_before_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = SlowSink(CollectSink("s"), per_batch=2.0)
    report = checked(
        await Pipeline(range(6), routes=[Route("r", sink)], batch_size=2, drain_timeout=6.5).run()
    )
    assert report.ok
    assert not report.timed_out
    assert report.drain_seconds == 6.0  # three batches of 2 s, done before the deadline


@pytest.mark.parametrize(("per_batch", "expected"), [(0.0, 0.0), (4.0, 12.0), (25.0, 60.0)])
async def test_drain_seconds_runs_from_stop_to_the_end_of_the_run(
    per_batch: float, expected: float, autojump_clock: trio.testing.MockClock
) -> None:
    sink = SlowSink(CollectSink("s"), per_batch=per_batch)
    pipeline = Pipeline(range(6), routes=[Route("r", sink)], batch_size=2)
    report = checked(await pipeline.run())
    assert report.drain_seconds == expected
    assert report.timed_out == (expected == 60.0)


async def test_drain_seconds_in_daemon_mode_counts_from_the_stop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = SlowSink(CollectSink("s"), per_batch=4.0)
    pipeline = Pipeline(items_then_block(6), routes=[Route("r", sink)], batch_size=2)
    async with running(pipeline) as handle:
        await trio.sleep(5)  # at t=5: batch 0 written, batch 1 half way
        handle.stop()
    report = checked(await handle.wait())
    assert report.drain_seconds == 7.0  # the three batches end at t=12
    assert report.ok


# -- log lines -----------------------------------------------------------------------


def drain_events(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, dict[str, str]]]:
    """(event, level, fields) of each record of the ``trio_sink.drain`` logger."""
    out = []
    for rec in caplog.records:
        if rec.name != "trio_sink.drain":
            continue
        event, _, rest = rec.getMessage().partition(" ")
        # key=value fields; a value with spaces is double-quoted (reason="drain deadline").
        fields = {k: q or v for k, q, v in re.findall(r'(\w+)=(?:"([^"]*)"|(\S*))', rest)}
        out.append((event, rec.levelno, fields))
    return out


async def test_drain_log_lines(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink.drain")
    quick = SlowSink(CollectSink("quick"), per_batch=2.0)
    stuck = GatedSink("stuck")
    pipeline = Pipeline(
        items_then_block(6),
        routes=[Route("r", [quick, stuck])],
        batch_size=3,
        drain_timeout=5,
    )
    async with running(pipeline) as handle:
        await trio.sleep(1)
        assert drain_events(caplog) == []
        handle.stop()
        handle.stop()  # a second Stop logs nothing more
    report = checked(await handle.wait())
    assert report.delivered == {"quick": 6, "stuck": 0}
    events = drain_events(caplog)
    started = [(lvl, f) for e, lvl, f in events if e == "drain.started"]
    assert sorted((lvl, f["sink"], f["pending"]) for lvl, f in started) == [
        (logging.INFO, "quick", "6"),
        (logging.INFO, "stuck", "6"),
    ]
    complete = [(lvl, f) for e, lvl, f in events if e == "drain.complete"]
    assert [(lvl, f["sink"], float(f["seconds"])) for lvl, f in complete] == [
        (logging.INFO, "quick", 3.0)  # its last write ended at t=4, Stop was at t=1
    ]
    deadline = [(lvl, f) for e, lvl, f in events if e == "drain.deadline"]
    assert [(lvl, f["sink"], f["undelivered"], f["reason"]) for lvl, f in deadline] == [
        (logging.WARNING, "stuck", "6", "drain deadline")
    ]
    # The order: started before anything else, the deadline last.
    assert [e for e, _, _ in events][:2] == ["drain.started", "drain.started"]
    assert events[-1][0] == "drain.deadline"


async def test_drain_log_lines_in_batch_mode(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink.drain")
    sink = SlowSink(CollectSink("s"), per_batch=1.3)
    report = checked(await Pipeline(range(8), routes=[Route("r", sink)], batch_size=2).run())
    assert report.ok
    events = drain_events(caplog)
    # A batch of 2 takes 1.3 s: progress every second while the drain lasts (no tick
    # falls on the end of a write, so the order of the lines is certain).
    assert [(e, lvl, f["sink"]) for e, lvl, f in events] == [
        ("drain.started", logging.INFO, "s"),
        *[("drain.progress", logging.INFO, "s")] * 5,
        ("drain.complete", logging.INFO, "s"),
    ]
    assert events[0][2]["pending"] == "8"  # the source ended at t=0 with all 8 pending
    progress = [(f["seconds"], f["pending_left"], f["time_left"]) for _, _, f in events[1:-1]]
    assert progress == [
        ("1.000", "8", "59.000"),
        ("2.000", "6", "58.000"),
        ("3.000", "4", "57.000"),
        ("4.000", "2", "56.000"),
        ("5.000", "2", "55.000"),
    ]
    assert float(events[-1][2]["seconds"]) == pytest.approx(5.2)
