"""``handle.statistics()``: frozen snapshots whose counts add up at every moment of a run
and of its drain, and equal the report once the run has ended.

The invariant is checked after every single task step of the run by a Trio instrument
(a snapshot is sync and every counter moves synchronously, so it must hold between any
two steps), not only at the moments a test happens to look.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import attrs
import pytest
import trio
import trio.testing
from helpers import GatedSink, checked

from trio_sink import (
    DeliveryReport,
    DrainStatistics,
    Infra,
    Pipeline,
    PipelineHandle,
    PipelineStatistics,
    Route,
    SinkStatistics,
    SourceStatistics,
)
from trio_sink.sinks import CollectSink, SlowSink
from trio_sink.testing import FlakySink, HangingSink, Pause, RecordingSink, ScriptedSource, running

# -- the watcher ---------------------------------------------------------------------

STATES = ("running", "draining", "stopped")


def problems_of(stats: PipelineStatistics) -> list[str]:
    """What is wrong with one snapshot on its own."""
    out: list[str] = []
    for s in stats.sinks.values():
        parts = (s.delivered, s.undelivered, s.waiting, s.buffered, s.in_flight)
        if s.routed != sum(parts):
            out.append(f"{s.name}: routed {s.routed} != delivered+undelivered+pending {parts}")
        if min(s.routed, *parts) < 0:
            out.append(f"{s.name}: a negative count {s}")
        if sum(s.undelivered_by_reason.values()) != s.undelivered:
            out.append(f"{s.name}: by reason {dict(s.undelivered_by_reason)} != {s.undelivered}")
    source = stats.source
    if source.received != stats.received:
        out.append(f"source received {source.received} != {stats.received}")
    if source.dispatched + source.undelivered != source.received:
        out.append(f"source: dispatched + undelivered != received in {source}")
    if (stats.drain is None) != (stats.state == "running"):
        out.append(f"state {stats.state} with drain {stats.drain}")
    if stats.drain is not None and stats.drain.pending_left != stats.pending:
        out.append(f"drain pending_left {stats.drain.pending_left} != pending {stats.pending}")
    if stats.time != trio.current_time():
        out.append(f"snapshot time {stats.time} != now {trio.current_time()}")
    return out


def regressions(before: PipelineStatistics, after: PipelineStatistics) -> list[str]:
    """What went backwards between two snapshots of one run."""
    out: list[str] = []
    if after.time < before.time:
        out.append("time went back")
    if STATES.index(after.state) < STATES.index(before.state):
        out.append(f"state {before.state} -> {after.state}")
    if after.received < before.received:
        out.append("received went back")
    for name, b in before.sinks.items():
        a = after.sinks[name]
        for field in ("routed", "delivered", "undelivered", "peak_buffered"):
            if getattr(a, field) < getattr(b, field):
                out.append(f"{name}.{field} went back: {getattr(b, field)} -> {getattr(a, field)}")
    return out


class Watcher(trio.abc.Instrument):
    """Takes a snapshot after every task step once :attr:`handle` is set, and notes
    every problem (an instrument must not raise: Trio would drop it)."""

    def __init__(self, *, peak: bool = False) -> None:
        self.handle: PipelineHandle | None = None
        self.peak = peak
        self.last: PipelineStatistics | None = None
        self.count = 0
        self.states: list[str] = []
        self.problems: list[str] = []
        self.max_pending = 0

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if self.handle is None or self.handle.report is not None:
            return
        stats = self.handle.statistics()
        self.count += 1
        found = problems_of(stats)
        if self.peak:
            found += [
                f"{s.name}: buffered {s.buffered} > peak_buffered {s.peak_buffered}"
                for s in stats.sinks.values()
                if s.buffered > s.peak_buffered
            ]
        if self.last is not None:
            found += regressions(self.last, stats)
        self.problems += [f"t={stats.time} after {task.name}: {p}" for p in found]
        if not self.states or self.states[-1] != stats.state:
            self.states.append(stats.state)
        self.max_pending = max(self.max_pending, stats.pending)
        self.last = stats


Script = Callable[[PipelineHandle], Awaitable[None]]


async def watched(
    pipeline: Pipeline, script: Script, *, peak: bool = False
) -> tuple[DeliveryReport, PipelineHandle, Watcher]:
    watcher = Watcher(peak=peak)
    trio.lowlevel.add_instrument(watcher)
    try:
        with trio.fail_after(1000):  # virtual seconds: a run that hangs fails the test
            async with running(pipeline) as handle:
                watcher.handle = handle
                watcher.after_task_step(trio.lowlevel.current_task())
                await script(handle)
        report = await handle.wait()
    finally:
        trio.lowlevel.remove_instrument(watcher)
    return report, handle, watcher


def assert_final_matches(stats: PipelineStatistics, report: DeliveryReport) -> None:
    """The final snapshot's counts are the report's."""
    assert stats.state == "stopped"
    assert stats.received == report.received
    assert stats.source.dispatched == report.dispatched
    assert stats.source.undelivered == sum(1 for u in report.undelivered if u.sink is None)
    assert {n: s.routed for n, s in stats.sinks.items()} == report.routed
    assert {n: s.delivered for n, s in stats.sinks.items()} == report.delivered
    per_sink = Counter(u.sink for u in report.undelivered)
    assert {n: s.undelivered for n, s in stats.sinks.items()} == {
        n: per_sink.get(n, 0) for n in report.routed
    }
    assert dict(stats.discarded) == dict(report.discarded)
    assert stats.undelivered == len(report.undelivered)
    assert stats.delivered == sum(report.delivered.values())
    assert stats.pending == 0
    assert all((s.waiting, s.buffered, s.in_flight) == (0, 0, 0) for s in stats.sinks.values())
    if stats.drain is not None:
        assert stats.drain.elapsed == report.drain_seconds
        assert stats.drain.pending_left == 0


def reason_kind(reason: str) -> str:
    return "sink error" if reason.startswith("sink raised") else reason


# -- the invariant at every step -----------------------------------------------------


def backlog_pipeline(drain_timeout: float | None) -> Pipeline:
    a = SlowSink(CollectSink("a"), per_batch=1.0)
    return Pipeline(
        range(40),
        routes=[Route("r", [a, CollectSink("b")])],
        batch_size=2,
        capacity=2,
        drain_timeout=drain_timeout,
    )


async def paused_then_stopped(handle: PipelineHandle) -> None:
    await trio.sleep(0.5)
    handle.pause("a")
    await trio.sleep(4.5)
    handle.stop()


async def paused_then_resumed(handle: PipelineHandle) -> None:
    await trio.sleep(0.5)
    handle.pause("a")
    await trio.sleep(4.5)
    handle.resume("a")


async def stopped_at_once(handle: PipelineHandle) -> None:
    await trio.sleep(3.25)
    handle.stop(immediate=True)


async def stopped_at_six(handle: PipelineHandle) -> None:
    await trio.sleep(6)
    handle.stop()


def mixed_pipeline() -> Pipeline:
    """An async source, a route that picks, failing, slow and hanging sinks, infra
    groups with and without sinks, and a monitor."""

    def parse(raw: int) -> int:
        if raw % 7 == 3:
            raise ValueError("bad item")
        return raw

    source = ScriptedSource([x for i in range(30) for x in (Pause(0.25), i)])
    return Pipeline(
        source,
        parse=parse,
        routes=[
            Route("even", [FlakySink(name="flaky", fail_on=lambda k, _: k % 3 == 1)], when=even),
            Route("all", [SlowSink(CollectSink("slow"), per_record=0.3), HangingSink(after=4)]),
        ],
        infra=Infra(default=CollectSink("dflt"), monitor=RecordingSink("mon")),
        batch_size=3,
        batch_timeout=0.5,
        capacity=1,
        drain_timeout=4.0,
    )


def even(payload: int) -> bool:
    return payload % 2 == 0


@pytest.mark.parametrize(
    ("make", "script", "kinds"),
    [
        (lambda: backlog_pipeline(5.0), paused_then_stopped, {"drain deadline"}),
        (lambda: backlog_pipeline(None), paused_then_resumed, set()),
        (lambda: backlog_pipeline(60.0), stopped_at_once, {"immediate stop"}),
        (mixed_pipeline, stopped_at_six, {"drain deadline", "sink error"}),
    ],
    ids=["paused-then-deadline", "paused-then-resumed", "immediate", "mixed"],
)
async def test_the_invariant_holds_after_every_task_step(
    autojump_clock: trio.testing.MockClock,
    make: Callable[[], Pipeline],
    script: Script,
    kinds: set[str],
) -> None:
    report, handle, watcher = await watched(make(), script)
    checked(report)
    assert watcher.problems == []
    assert watcher.count > 10
    assert watcher.states == ["running", "draining"]
    assert watcher.max_pending > 0
    final = handle.statistics()
    assert_final_matches(final, report)
    assert {reason_kind(u.reason) for u in report.undelivered} == kinds


async def test_a_task_sampling_every_virtual_step_sees_the_invariant(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The same, seen the way a user's task sees it: a snapshot every 1/16 s."""
    samples: list[PipelineStatistics] = []
    problems: list[str] = []
    pipeline = mixed_pipeline()
    async with trio.open_nursery() as nursery:
        handle: PipelineHandle = await nursery.start(pipeline.run)
        nursery.start_soon(stopped_at_six, handle)

        async def sample() -> None:
            while handle.report is None:
                stats = handle.statistics()
                problems.extend(problems_of(stats))
                if samples:
                    problems.extend(regressions(samples[-1], stats))
                samples.append(stats)
                await trio.sleep(1 / 16)

        nursery.start_soon(sample)
    report = checked(await handle.wait())
    assert problems == []
    assert len(samples) >= 10 * 16  # t=0 .. t=10, the deadline
    assert {s.state for s in samples} == {"running", "draining"}
    assert_final_matches(handle.statistics(), report)


# -- drain fields ----------------------------------------------------------------------


async def test_drain_fields_before_during_and_after_a_graceful_stop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pipeline = Pipeline(
        ScriptedSource([0, 1, 2, Pause(100)]),
        routes=[Route("r", [HangingSink("h"), CollectSink("c")])],
        batch_size=3,
        batch_timeout=0,
        drain_timeout=10,
    )
    async with running(pipeline) as handle:
        await trio.sleep(3)
        before = handle.statistics()
        handle.stop()
        at_stop = handle.statistics()
        await trio.sleep(2)
        later = handle.statistics()
    report = checked(await handle.wait())
    final = handle.statistics()

    assert before.state == "running"
    assert before.drain is None
    assert at_stop.state == later.state == "draining"
    assert at_stop.drain == DrainStatistics(
        kind="stop", started_at=3, elapsed=0, pending_left=3, deadline=13, time_left=10
    )
    assert later.drain == DrainStatistics(
        kind="stop", started_at=3, elapsed=2, pending_left=3, deadline=13, time_left=8
    )
    assert final.drain == DrainStatistics(
        kind="stop", started_at=3, elapsed=10, pending_left=0, deadline=13, time_left=0
    )
    assert final.time == 13
    assert report.drain_seconds == 10
    assert_final_matches(final, report)


async def test_drain_without_limit_has_no_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gated = GatedSink("g")
    pipeline = Pipeline(
        ScriptedSource([0, Pause(100)]),
        routes=[Route("r", gated)],
        batch_timeout=0,
        drain_timeout=None,
        write_timeout=None,
    )
    async with running(pipeline) as handle:
        await trio.sleep(1)
        handle.stop()
        await trio.sleep(1000)
        during = handle.statistics()
        gated.permits.release()
    report = checked(await handle.wait())
    assert during.drain == DrainStatistics(
        kind="stop", started_at=1, elapsed=1000, pending_left=1, deadline=None, time_left=None
    )
    assert report.ok
    assert_final_matches(handle.statistics(), report)


async def test_immediate_stop_has_its_deadline_now(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pipeline = Pipeline(
        ScriptedSource([0, Pause(100)]),
        routes=[Route("r", HangingSink("h"))],
        batch_timeout=0,
        drain_timeout=30,
    )
    async with running(pipeline) as handle:
        await trio.sleep(2)
        handle.stop()
        await trio.sleep(1)
        handle.stop(immediate=True)
        during = handle.statistics()
    report = checked(await handle.wait())
    assert during.drain == DrainStatistics(
        kind="stop", started_at=2, elapsed=1, pending_left=1, deadline=3, time_left=0
    )
    assert [(u.record.id, u.reason) for u in report.undelivered] == [(0, "immediate stop")]
    assert_final_matches(handle.statistics(), report)


async def test_source_exhausted_starts_the_drain_when_the_source_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pipeline = Pipeline(
        ScriptedSource([0, Pause(2), 1]),
        routes=[Route("r", SlowSink(CollectSink("s"), per_batch=5.0))],
        batch_size=1,
        batch_timeout=0,
    )
    async with running(pipeline) as handle:
        await trio.sleep(3)
        during = handle.statistics()
    report = checked(await handle.wait())
    # [0] written t=0..5, [1] t=5..10; the source ended at t=2.
    assert during.drain == DrainStatistics(
        kind="source exhausted",
        started_at=2,
        elapsed=1,
        pending_left=2,
        deadline=62,
        time_left=59,
    )
    assert trio.current_time() == 10
    assert report.drain_seconds == 8
    assert_final_matches(handle.statistics(), report)


# -- per-sink fields -----------------------------------------------------------------


async def test_peak_buffered_is_the_most_the_channel_held(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gated = GatedSink("g")
    send, recv = trio.open_memory_channel[int](0)
    pipeline = Pipeline(recv, routes=[Route("r", gated)], batch_size=1, batch_timeout=0)
    seen: list[tuple[int, int, int]] = []

    def look() -> None:
        s = handle.statistics().sinks["g"]
        seen.append((s.buffered, s.in_flight, s.peak_buffered))

    async with running(pipeline) as handle, send:
        await send.send(0)
        await trio.testing.wait_all_tasks_blocked()
        look()  # [0] in the write, waiting for a permit
        for i in (1, 2, 3):
            await send.send(i)
            await trio.testing.wait_all_tasks_blocked()
            look()
        for _ in range(4):
            gated.permits.release()
        await trio.testing.wait_all_tasks_blocked()
        look()
        await send.send(4)
        await trio.testing.wait_all_tasks_blocked()
        look()
        gated.permits.release()
    report = checked(await handle.wait())
    assert seen == [(0, 1, 1), (1, 1, 1), (2, 1, 2), (3, 1, 3), (0, 0, 3), (0, 1, 3)]
    assert gated.delivered == [0, 1, 2, 3, 4]
    assert handle.statistics().sinks["g"].peak_buffered == 3
    assert_final_matches(handle.statistics(), report)


async def test_peak_buffered_is_never_below_buffered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    report, handle, watcher = await watched(backlog_pipeline(None), paused_then_resumed, peak=True)
    checked(report)
    assert watcher.problems == []
    assert handle.statistics().sinks["a"].peak_buffered >= 6


async def test_in_flight_counts_the_write_being_made(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gated = GatedSink("g")
    pipeline = Pipeline(ScriptedSource([0, 1, 2, Pause(100)]), routes=[Route("r", gated)])
    async with running(pipeline) as handle:
        await trio.sleep(1)
        during = handle.statistics().sinks["g"]
        gated.permits.release()
        await trio.sleep(1)
        after = handle.statistics().sinks["g"]
        handle.stop()
    checked(await handle.wait())
    assert (during.in_flight, during.buffered, during.delivered, during.pending) == (3, 0, 0, 3)
    assert (after.in_flight, after.buffered, after.delivered, after.pending) == (0, 0, 3, 0)


async def test_pulled_counts_items_waiting_to_be_cut_into_a_batch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pipeline = Pipeline(
        ScriptedSource([0, 1, 2, Pause(100)]),
        routes=[Route("r", CollectSink("c"))],
        batch_size=10,
        batch_timeout=5,
    )
    async with running(pipeline) as handle:
        await trio.sleep(1)
        waiting = handle.statistics()
        await trio.sleep(5)
        shipped = handle.statistics()
        handle.stop()
    checked(await handle.wait())
    assert waiting.source == SourceStatistics(
        received=0, dispatched=0, undelivered=0, pulled=3, paused=False
    )
    assert waiting.received == 0
    assert shipped.source == SourceStatistics(
        received=3, dispatched=3, undelivered=0, pulled=0, paused=False
    )


async def test_undelivered_by_reason_sorts_reasons_into_kinds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    flaky = FlakySink(name="flaky", fail_on={0, 2})
    pipeline = Pipeline(
        range(8),
        routes=[Route("r", [flaky, HangingSink("hang", after=1)])],
        batch_size=2,
        drain_timeout=3,
    )
    async with running(pipeline) as handle:
        pass
    report = checked(await handle.wait())
    sinks = handle.statistics().sinks
    assert dict(sinks["flaky"].undelivered_by_reason) == {"sink error": 4}
    assert dict(sinks["hang"].undelivered_by_reason) == {"drain deadline": 6}
    assert (sinks["flaky"].delivered, sinks["hang"].delivered) == (4, 2)
    assert_final_matches(handle.statistics(), report)


async def test_undelivered_by_reason_immediate_stop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pipeline = Pipeline(
        ScriptedSource([0, 1, Pause(100)]), routes=[Route("r", HangingSink("hang"))]
    )
    async with running(pipeline) as handle:
        await trio.sleep(1)
        handle.stop(immediate=True)
    report = checked(await handle.wait())
    assert dict(handle.statistics().sinks["hang"].undelivered_by_reason) == {"immediate stop": 2}
    assert_final_matches(handle.statistics(), report)


async def test_undelivered_by_reason_cancelled_from_outside(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gated = GatedSink("g")
    pipeline = Pipeline(ScriptedSource([0, 1, Pause(100)]), routes=[Route("r", gated)])
    with trio.CancelScope() as scope:
        async with running(pipeline) as handle:
            await trio.sleep(1)
            scope.cancel()
    report = checked(await handle.wait())
    stats = handle.statistics()
    assert stats.state == "stopped"
    assert stats.drain is None  # no Stop: no drain
    assert dict(stats.sinks["g"].undelivered_by_reason) == {"cancelled": 2}
    assert_final_matches(stats, report)


# -- the snapshot itself -------------------------------------------------------------


async def test_statistics_is_not_a_checkpoint(autojump_clock: trio.testing.MockClock) -> None:
    pipeline = Pipeline(ScriptedSource([0, Pause(5)]), routes=[Route("r", CollectSink("c"))])
    async with running(pipeline) as handle:
        with trio.CancelScope() as scope:
            scope.cancel()
            taken = [handle.statistics() for _ in range(3)]
            with pytest.raises(trio.Cancelled):
                await trio.lowlevel.checkpoint()
        handle.stop()
    checked(await handle.wait())
    assert len(taken) == 3
    assert len({s.time for s in taken}) == 1


async def test_a_snapshot_is_frozen_and_does_not_follow_the_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pipeline = Pipeline(
        ScriptedSource([0, Pause(5), 1]), routes=[Route("r", CollectSink("c"))], batch_timeout=0
    )
    async with running(pipeline) as handle:
        await trio.sleep(1)
        early = handle.statistics()
    checked(await handle.wait())
    assert early.received == 1
    assert early.sinks["c"].delivered == 1
    assert early.state == "running"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        early.received = 5  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        early.sinks["c"].delivered = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        early.sinks["x"] = early.sinks["c"]  # type: ignore[index]
    with pytest.raises(TypeError):
        early.discarded["x"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        early.sinks["c"].undelivered_by_reason["x"] = 1  # type: ignore[index]
    assert handle.statistics().received == 2


async def test_sinks_are_listed_in_configuration_order_with_infra_after_business(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pipeline = Pipeline(
        range(3),
        routes=[Route("r1", [CollectSink("z"), CollectSink("a")]), Route("r2", CollectSink("m"))],
        infra=Infra(
            error=CollectSink("err"), default=CollectSink("dflt"), monitor=CollectSink("mon")
        ),
    )
    async with running(pipeline) as handle:
        names = list(handle.statistics().sinks)
    checked(await handle.wait())
    assert names == ["z", "a", "m", "dflt", "err", "mon"]
    assert list(handle.statistics().sinks) == names
    assert all(isinstance(s, SinkStatistics) for s in handle.statistics().sinks.values())


async def test_discarded_counts_infra_groups_without_a_sink(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def parse(raw: int) -> int:
        if raw == 2:
            raise ValueError("two")
        return raw

    pipeline = Pipeline(range(6), parse=parse, routes=[Route("odd", CollectSink("o"), when=odd)])
    async with running(pipeline) as handle:
        pass
    report = checked(await handle.wait())
    stats = handle.statistics()
    assert dict(stats.discarded) == {"default": 2, "error": 1}
    assert stats.sinks["o"].delivered == 3
    assert_final_matches(stats, report)


def odd(payload: int) -> bool:
    return payload % 2 == 1


async def test_a_stalled_monitor_sink_keeps_the_counts_equal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The monitor's records it could not write in its grace after the data is done are
    counted as discarded (taken back from its routed), and the final snapshot (taken
    after the monitor's task ended) still equals the report."""
    pipeline = Pipeline(
        ScriptedSource([0, Pause(3.5), 1]),
        routes=[Route("r", CollectSink("c"))],
        infra=Infra(monitor=HangingSink("mon", after=1)),
        drain_timeout=2,
    )
    async with running(pipeline) as handle:
        pass
    report = checked(await handle.wait())
    stats = handle.statistics()
    assert report.generated == 4
    assert stats.sinks["mon"].routed == report.routed["mon"] == 1
    assert stats.sinks["mon"].delivered == 1
    assert report.discarded["monitor"] == 3
    assert report.undelivered == ()
    assert_final_matches(stats, report)


# -- odd shapes ----------------------------------------------------------------------


async def numbers(n: int) -> AsyncIterator[int]:
    for i in range(n):
        await trio.sleep(0.125)
        yield i


async def test_properties_add_up_the_sinks(autojump_clock: trio.testing.MockClock) -> None:
    pipeline = Pipeline(
        ScriptedSource([0, 1, 2, 3, Pause(100)]),
        routes=[
            Route("r", [GatedSink("g"), CollectSink("c"), FlakySink(name="f", fail_on={0})]),
        ],
        batch_size=2,
        batch_timeout=0,
        capacity=4,
    )
    async with running(pipeline) as handle:
        await trio.sleep(1)
        stats = handle.statistics()
        handle.stop(immediate=True)
    checked(await handle.wait())
    assert stats.delivered == sum(s.delivered for s in stats.sinks.values()) == 4 + 2
    assert stats.undelivered == 2
    assert stats.pending == sum(s.pending for s in stats.sinks.values()) == 4
    assert stats.time == 1


async def test_busy_and_blocked_seconds_are_wall_clock_time_in_writes_and_in_waits() -> None:
    """In real time: a sink whose writes take 20 ms, with no buffer to spare."""
    from trio_sink import Pipeline, Route
    from trio_sink.sinks import CollectSink, SlowSink
    from trio_sink.testing import running

    slow, quick = SlowSink(CollectSink("slow"), per_batch=0.02), CollectSink("quick")
    pipeline = Pipeline(range(50), routes=[Route("all", [slow, quick])], batch_size=10, capacity=0)
    async with running(pipeline) as handle:
        await handle.wait()
    stats = handle.statistics().sinks
    assert stats["slow"].busy_seconds >= 5 * 0.02
    assert stats["slow"].blocked_seconds > 0.02  # the source waited for it
    assert stats["quick"].busy_seconds < stats["slow"].busy_seconds
