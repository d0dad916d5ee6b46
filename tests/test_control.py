"""The control plane of a running pipeline: PipelineHandle's pause, resume, isolate,
pause_source, resume_source and stop, and the stop conditions stop_after_records and
stop_when_idle.

Every test runs in virtual time (``autojump_clock``), so every time it states is exact.
A sink that must be caught in the middle of a write is a ``SlowSink`` around a
``RecordingSink``, whose calls carry the times each write ended.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence

import pytest
import trio
import trio.testing
from helpers import GatedSink, checked, ended, ids, messages

from trio_sink import (
    DeliveryReport,
    Infra,
    Pipeline,
    PipelineHandle,
    PipelineStatistics,
    Record,
    Route,
    UnknownSinkError,
)
from trio_sink.sinks import CollectSink, SlowSink
from trio_sink.testing import Pause, RecordingSink, ScriptedSource, running

# -- helpers -------------------------------------------------------------------------


def lost(report: DeliveryReport, sink: str | None) -> list[int]:
    """The ids reported undelivered for ``sink``, sorted."""
    return sorted(u.record.id for u in report.undelivered if u.sink == sink)


def reasons(report: DeliveryReport) -> set[str]:
    return {u.reason for u in report.undelivered}


def counted(items: Iterable[int], pulled: list[int]) -> Iterator[int]:
    """A sync generator that notes each item as it yields it."""
    for item in items:
        pulled.append(item)
        yield item


async def counted_async(
    n: int, pulled: list[int], *, interval: float = 1.0, after: list[str] | None = None
) -> AsyncIterator[int]:
    """An async generator yielding ``0 .. n-1``, one every ``interval`` seconds (the
    first at once), noting each item as it yields it, and in ``after`` whether it was
    resumed after an item (it must not be, past a record limit)."""
    for i in range(n):
        if i:
            await trio.sleep(interval)
        pulled.append(i)
        yield i
        if after is not None:
            after.append(f"after {i}")


def drain_kind(stats: PipelineStatistics) -> str | None:
    return None if stats.drain is None else stats.drain.kind


def invariant_holds(stats: PipelineStatistics) -> bool:
    return all(
        s.routed == s.delivered + s.undelivered + s.waiting + s.buffered + s.in_flight
        for s in stats.sinks.values()
    )


# -- pause and resume ----------------------------------------------------------------


def paused_backlog_pipeline(
    pulled: list[int], *, drain_timeout: float | None = 60.0
) -> tuple[Pipeline, RecordingSink, RecordingSink]:
    """20 items, batches of 2; sink ``a`` takes 1 s a write and has room for 2 batches;
    ``b`` is fast. Pausing ``a`` at t=0.5 (during its first write) makes it hold
    [2..5] in its channel and the source wait on [6, 7]: 8 items pulled."""
    a = RecordingSink("a")
    b = RecordingSink("b")
    pipeline = Pipeline(
        counted(range(20), pulled),
        routes=[Route("r", [SlowSink(a, per_batch=1.0), b])],
        batch_size=2,
        capacity=2,
        drain_timeout=drain_timeout,
    )
    return pipeline, a, b


async def test_pause_backlog_fills_the_channel_then_the_source_waits_and_resume_delivers_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pulled: list[int] = []
    pipeline, a, b = paused_backlog_pipeline(pulled)
    snapshots: list[PipelineStatistics] = []
    async with running(pipeline) as handle:
        await trio.sleep(0.5)
        handle.pause("a")  # during a's first write, which completes
        await trio.sleep(4.5)
        snapshots.append(handle.statistics())  # t=5
        await trio.sleep(45)
        snapshots.append(handle.statistics())  # t=50: nothing moved
        handle.resume("a")
    report = checked(await handle.wait())

    for stats in snapshots:
        assert invariant_holds(stats)
        assert stats.state == "running"
        assert stats.received == 8
        sa, sb = stats.sinks["a"], stats.sinks["b"]
        assert sa.paused
        assert not sb.paused
        assert (sa.routed, sa.delivered, sa.undelivered, sa.in_flight) == (8, 2, 0, 0)
        # [2..5] in the channel, [6, 7] in the send that waits for room.
        assert sa.pending == sa.buffered + sa.waiting == 6
        assert sa.buffered >= 4
        # b got every batch but the one behind a's full channel.
        assert (sb.routed, sb.delivered, sb.waiting, sb.buffered) == (8, 6, 2, 0)
    assert pulled == list(range(20))  # the source waited at 8 until the resume
    assert ids(a.records) == list(range(20))
    assert ids(b.records) == list(range(20))
    # Nothing written between t=1 (the write in progress at the pause) and the resume
    # at t=50; then one batch a second, in order.
    assert ended(a) == [1.0, *[50.0 + k for k in range(1, 10)]]
    assert report.ok
    assert trio.current_time() == 59.0


async def test_pause_while_the_backlog_waits_nothing_is_pulled_beyond_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pulled: list[int] = []
    pipeline, _, _ = paused_backlog_pipeline(pulled)
    async with running(pipeline) as handle:
        await trio.sleep(0.5)
        handle.pause("a")
        await trio.sleep(100)
        assert pulled == list(range(8))
        handle.resume("a")
    checked(await handle.wait())


async def test_pause_of_a_sink_waiting_for_input_holds_the_next_batch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a = RecordingSink("a")
    source = ScriptedSource([0, Pause(5), 1, 2])
    pipeline = Pipeline(source, routes=[Route("r", a)], batch_size=1, batch_timeout=0)
    async with running(pipeline) as handle:
        await trio.sleep(1)  # [0] delivered; a's task waits for its next batch
        handle.pause("a")
        await trio.sleep(9)  # [1] and [2] arrive at t=5
        while_paused = ids(a.records)
        handle.resume("a")
    checked(await handle.wait())
    assert ids(a.records) == [0, 1, 2]
    assert while_paused == [0]


async def test_resume_then_pause_in_the_same_step_writes_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a = RecordingSink("a")
    pipeline = Pipeline(
        range(6), routes=[Route("r", SlowSink(a, per_batch=1.0))], batch_size=1, capacity=10
    )
    async with running(pipeline) as handle:
        await trio.sleep(0.5)
        handle.pause("a")  # [0] completes at t=1, then a waits
        await trio.sleep(1.5)
        handle.resume("a")
        handle.pause("a")
        await trio.sleep(8)
        while_paused = ids(a.records)
        handle.resume("a")
    checked(await handle.wait())
    assert while_paused == [0]


async def test_pause_then_graceful_stop_reports_the_backlog_at_the_deadline(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink")
    pulled: list[int] = []
    pipeline, a, b = paused_backlog_pipeline(pulled, drain_timeout=5.0)
    async with running(pipeline) as handle:
        await trio.sleep(0.5)
        handle.pause("a")
        await trio.sleep(4.5)
        handle.stop()  # t=5: deadline t=10; a stays paused
        await trio.sleep(2)
        during = handle.statistics()
    report = checked(await handle.wait())

    assert trio.current_time() == 10.0
    assert during.state == "draining"
    assert during.sinks["a"].paused
    assert during.drain is not None
    assert (during.drain.kind, during.drain.deadline, during.drain.time_left) == ("stop", 10, 3)
    assert pulled == list(range(8))  # Stop ends the pull: nothing more was taken
    assert report.received == 8
    assert ids(a.records) == [0, 1]
    assert lost(report, "a") == [2, 3, 4, 5, 6, 7]
    # b's share of the batch that waited behind a's full channel.
    assert ids(b.records) == list(range(6))
    assert lost(report, "b") == [6, 7]
    assert reasons(report) == {"drain deadline"}
    assert report.timed_out
    assert report.drain_seconds == 5.0
    warnings = [r for r in caplog.records if r.getMessage().startswith("drain.deadline sink=a")]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert 'reason="drain deadline" paused=True' in warnings[0].getMessage()


async def test_pause_then_stop_then_resume_drains_the_backlog(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pulled: list[int] = []
    pipeline, a, b = paused_backlog_pipeline(pulled, drain_timeout=60.0)
    async with running(pipeline) as handle:
        await trio.sleep(0.5)
        handle.pause("a")
        await trio.sleep(4.5)
        handle.stop()
        await trio.sleep(1)
        handle.resume("a")  # t=6: [2, 3] ... [6, 7], one a second
    report = checked(await handle.wait())
    assert report.ok
    assert report.received == 8
    assert ids(a.records) == ids(b.records) == list(range(8))
    assert trio.current_time() == 9.0
    assert report.drain_seconds == 4.0


async def test_pause_then_immediate_stop_reports_the_backlog_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pulled: list[int] = []
    pipeline, a, _ = paused_backlog_pipeline(pulled)
    async with running(pipeline) as handle:
        await trio.sleep(0.5)
        handle.pause("a")
        await trio.sleep(4.5)
        handle.stop(immediate=True)
    report = checked(await handle.wait())
    assert trio.current_time() == 5.0
    assert ids(a.records) == [0, 1]
    assert lost(report, "a") == [2, 3, 4, 5, 6, 7]
    assert lost(report, "b") == [6, 7]
    assert reasons(report) == {"immediate stop"}
    assert report.drain_seconds == 0.0
    stats = handle.statistics()
    assert drain_kind(stats) == "immediate stop"


async def test_pause_and_resume_are_idempotent_and_logged_once(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink")
    a = CollectSink("a")
    pipeline = Pipeline(ScriptedSource([Pause(10)]), routes=[Route("r", a)])
    async with running(pipeline) as handle:
        handle.resume("a")  # not paused: nothing
        handle.pause("a")
        handle.pause("a")
        assert handle.statistics().sinks["a"].paused
        handle.resume("a")
        handle.resume("a")
        assert not handle.statistics().sinks["a"].paused
    checked(await handle.wait())
    assert messages(caplog, "sink.paused") == ["sink.paused sink=a buffered=0"]
    assert messages(caplog, "sink.resumed") == ["sink.resumed sink=a buffered=0"]


async def test_resume_all_resumes_every_paused_sink(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b, c = CollectSink("a"), CollectSink("b"), CollectSink("c")
    pipeline = Pipeline(ScriptedSource([Pause(10)]), routes=[Route("r", [a, b, c])])
    async with running(pipeline) as handle:
        handle.pause("a")
        handle.pause("c")
        paused = {n: s.paused for n, s in handle.statistics().sinks.items()}
        handle.resume_all()
        after = {n: s.paused for n, s in handle.statistics().sinks.items()}
    checked(await handle.wait())
    assert paused == {"a": True, "b": False, "c": True}
    assert after == {"a": False, "b": False, "c": False}


# -- isolate -------------------------------------------------------------------------


async def test_isolate_lets_one_sink_write_and_the_monitor_keep_flowing(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink")
    rec = {name: RecordingSink(name) for name in ("a", "b", "c", "dflt")}
    monitor = RecordingSink("mon")
    pipeline = Pipeline(
        range(12),
        routes=[Route("r", [SlowSink(rec[n], per_batch=1.0) for n in ("a", "b", "c")])],
        infra=Infra(default=rec["dflt"], monitor=monitor),
        batch_size=2,
        capacity=10,
        drain_timeout=None,
    )
    async with running(pipeline) as handle:
        await trio.sleep(0.5)
        handle.isolate("b")  # a and c are in their first write, which completes
        await trio.sleep(10)  # t=10.5
        stats = handle.statistics()
        isolated = {n: ids(rec[n].records) for n in ("a", "b", "c")}
        monitored = ids(monitor.records)
        handle.resume_all()
    report = checked(await handle.wait())

    assert {n: s.paused for n, s in stats.sinks.items()} == {
        "a": True,
        "b": False,
        "c": True,
        "dflt": True,  # infra sinks too
        "mon": False,  # but never the monitor's
    }
    assert isolated == {"a": [0, 1], "b": list(range(12)), "c": [0, 1]}
    assert monitored == [-k for k in range(1, 11)]  # t=1 .. t=10
    assert report.ok
    assert ids(rec["a"].records) == ids(rec["c"].records) == list(range(12))
    # resumed at t=10.5: five more writes of 1 s
    assert trio.current_time() == 15.5
    assert messages(caplog, "sink.paused") == [
        "sink.paused sink=a buffered=10",
        "sink.paused sink=c buffered=10",
        "sink.paused sink=dflt buffered=0",
    ]
    assert report.generated == 16  # t=1 .. t=15, and the final record at 15.5


async def test_isolate_resumes_the_isolated_sink(autojump_clock: trio.testing.MockClock) -> None:
    a, b = CollectSink("a"), CollectSink("b")
    pipeline = Pipeline(ScriptedSource([Pause(10)]), routes=[Route("r", [a, b])])
    async with running(pipeline) as handle:
        handle.pause("a")
        handle.isolate("a")
        paused = {n: s.paused for n, s in handle.statistics().sinks.items()}
        handle.isolate("b")  # the other way round
        swapped = {n: s.paused for n, s in handle.statistics().sinks.items()}
        handle.resume_all()
    checked(await handle.wait())
    assert paused == {"a": False, "b": True}
    assert swapped == {"a": True, "b": False}


# -- pause_source and resume_source --------------------------------------------------


async def test_pause_source_stops_pulling_and_resume_source_goes_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink")
    a = RecordingSink("a")
    source = ScriptedSource(endless=lambda i: i, interval=1.0)  # items at t=1, 2, 3, ...
    pipeline = Pipeline(source, routes=[Route("r", a)], batch_size=1, batch_timeout=0)
    async with running(pipeline) as handle:
        await trio.sleep(3.5)
        handle.pause_source()
        # The pull already waiting for item 3 (due at t=4) completes; nothing after it.
        await trio.sleep(6.5)  # t=10
        paused = handle.statistics()
        handle.resume_source()  # the next item comes one interval later, at t=11
        await trio.sleep(2.5)
        handle.stop()  # t=12.5
    report = checked(await handle.wait())

    assert paused.state == "running"
    assert paused.source.paused
    assert paused.received == 4
    assert source.pulled == 6
    assert ids(a.records) == list(range(6))
    assert ended(a) == [1.0, 2.0, 3.0, 4.0, 11.0, 12.0]
    assert not handle.statistics().source.paused
    assert report.ok
    assert messages(caplog, "pipeline.source_paused") == ["pipeline.source_paused received=3"]
    assert messages(caplog, "pipeline.source_resumed") == ["pipeline.source_resumed received=4"]


async def test_pause_source_of_a_sync_source_takes_nothing_more(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pulled: list[tuple[int, float]] = []

    def items() -> Iterator[int]:
        for i in range(8):
            pulled.append((i, trio.current_time()))
            yield i

    a = RecordingSink("a")
    pipeline = Pipeline(
        items(), routes=[Route("r", SlowSink(a, per_batch=1.0))], batch_size=2, capacity=0
    )
    async with running(pipeline) as handle:
        await trio.sleep(0.5)
        handle.pause_source()  # [2, 3] waits for a, which takes it at t=1
        await trio.sleep(4.5)
        during = [i for i, _ in pulled]
        handle.resume_source()  # t=5
    report = checked(await handle.wait())
    assert during == [0, 1, 2, 3]
    assert pulled == [(0, 0.0), (1, 0.0), (2, 0.0), (3, 0.0)] + [(i, 5.0) for i in range(4, 8)]
    assert ended(a) == [1.0, 2.0, 6.0, 7.0]
    assert report.ok
    stats = handle.statistics()
    assert drain_kind(stats) == "source exhausted"


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_stop_while_the_source_is_paused_ends_the_run_normally(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    pulled: list[int] = []
    source: object
    if kind == "sync":
        source = counted(range(1000), pulled)
        sink: object = SlowSink(CollectSink("a"), per_batch=1.0)
    else:
        source = counted_async(1000, pulled)
        sink = CollectSink("a")
    pipeline = Pipeline(
        source,
        routes=[Route("r", sink)],
        batch_size=1,
        batch_timeout=0,
        capacity=0,
    )
    async with running(pipeline) as handle:
        await trio.sleep(2.5)
        handle.pause_source()
        await trio.sleep(10)
        at_stop = list(pulled)
        handle.stop()  # t=12.5
    report = checked(await handle.wait())
    assert report.ok
    assert trio.current_time() == 12.5
    assert pulled == at_stop  # nothing pulled after the Stop
    assert report.received == len(pulled)
    assert report.delivered == {"a": len(pulled)}
    stats = handle.statistics()
    assert drain_kind(stats) == "stop"
    assert stats.source.paused  # it was paused when the run ended


async def test_pause_source_twice_and_resume_without_pause_do_nothing(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink")
    pipeline = Pipeline(ScriptedSource([Pause(10)]), routes=[Route("r", CollectSink("a"))])
    async with running(pipeline) as handle:
        handle.resume_source()
        handle.pause_source()
        handle.pause_source()
        handle.resume_source()
        handle.resume_source()
    checked(await handle.wait())
    assert len(messages(caplog, "pipeline.source_paused")) == 1
    assert len(messages(caplog, "pipeline.source_resumed")) == 1


# -- stop_after_records --------------------------------------------------------------


@pytest.mark.parametrize(("limit", "batch_size"), [(10, 4), (8, 4), (1, 128), (7, 1)])
async def test_stop_after_records_sync_source_takes_exactly_n(
    autojump_clock: trio.testing.MockClock, limit: int, batch_size: int
) -> None:
    pulled: list[int] = []
    a = CollectSink("a")
    pipeline = Pipeline(
        counted(range(100), pulled),
        routes=[Route("r", a)],
        stop_after_records=limit,
        batch_size=batch_size,
    )
    report = checked(await pipeline.run())
    assert pulled == list(range(limit))  # item n+1 was never pulled
    assert report.received == limit
    assert ids(a.records) == list(range(limit))
    assert report.ok


@pytest.mark.parametrize(("limit", "batch_size"), [(10, 4), (8, 4), (1, 128), (7, 1)])
async def test_stop_after_records_async_source_takes_exactly_n(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    limit: int,
    batch_size: int,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink")
    pulled: list[int] = []
    after: list[str] = []
    a = CollectSink("a")
    pipeline = Pipeline(
        counted_async(100, pulled, after=after),
        routes=[Route("r", a)],
        stop_after_records=limit,
        batch_size=batch_size,
        batch_timeout=0.25,
    )
    async with running(pipeline) as handle:
        pass
    report = checked(await handle.wait())
    assert pulled == list(range(limit))
    # The generator was not even resumed after the last item it gave.
    assert after == [f"after {i}" for i in range(limit - 1)]
    assert report.received == limit
    assert ids(a.records) == list(range(limit))
    stats = handle.statistics()
    assert stats.drain is not None
    assert stats.drain.kind == "record limit"
    assert stats.drain.started_at == limit - 1  # the last item came at t = limit - 1
    assert messages(caplog, "pipeline.stop") == [
        f"pipeline.stop kind=record limit received={limit} drain_timeout=60.0"
    ]


async def test_stop_after_records_kind_is_record_limit_for_a_sync_source(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pipeline = Pipeline(range(100), routes=[Route("r", CollectSink("a"))], stop_after_records=5)
    async with running(pipeline) as handle:
        pass
    checked(await handle.wait())
    stats = handle.statistics()
    assert drain_kind(stats) == "record limit"


async def test_stop_after_records_beyond_the_source_ends_with_the_source(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pipeline = Pipeline(range(5), routes=[Route("r", CollectSink("a"))], stop_after_records=50)
    async with running(pipeline) as handle:
        pass
    report = checked(await handle.wait())
    assert report.received == 5
    stats = handle.statistics()
    assert drain_kind(stats) == "source exhausted"


async def test_stop_after_records_of_an_endless_source_stops_at_the_nth_item(
    autojump_clock: trio.testing.MockClock,
) -> None:
    source = ScriptedSource(endless=lambda i: i, interval=0.5)
    a = RecordingSink("a")
    pipeline = Pipeline(
        source, routes=[Route("r", a)], stop_after_records=6, batch_size=4, batch_timeout=10
    )
    report = checked(await pipeline.run())
    assert source.pulled == 6
    assert ids(a.records) == list(range(6))
    assert report.ok
    # [0..3] is full at t=2; [4, 5] leaves at once when the limit is reached, t=3.
    assert ended(a) == [2.0, 3.0]
    assert trio.current_time() == 3.0


# -- stop_when_idle ------------------------------------------------------------------


async def test_stop_when_idle_fires_exactly_that_long_after_the_last_item(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink")
    source = ScriptedSource([0, Pause(1), 1, Pause(3), 2, Pause(100), 3])
    a = CollectSink("a")
    pipeline = Pipeline(source, routes=[Route("r", a)], stop_when_idle=4.5, batch_size=1)
    async with running(pipeline) as handle:
        pass
    report = checked(await handle.wait())
    # Items at t=0, 1 and 4 (the 3 s gap is shorter than 4.5): idle from 4 to 8.5.
    assert trio.current_time() == 8.5
    assert report.ok
    assert ids(a.records) == [0, 1, 2]
    assert source.pulled == 3
    stats = handle.statistics()
    assert stats.drain is not None
    assert (stats.drain.kind, stats.drain.started_at) == ("idle", 8.5)
    assert messages(caplog, "pipeline.idle") == ["pipeline.idle seconds=4.500"]
    assert messages(caplog, "pipeline.stop") == [
        "pipeline.stop kind=idle received=3 drain_timeout=60.0"
    ]


async def test_stop_when_idle_counts_from_the_start_when_no_item_ever_comes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    source = ScriptedSource([Pause(100), 0])
    pipeline = Pipeline(source, routes=[Route("r", CollectSink("a"))], stop_when_idle=3)
    report = checked(await pipeline.run())
    assert trio.current_time() == 3.0
    assert report.received == 0
    assert report.ok


async def test_stop_when_idle_never_fires_while_items_keep_coming(
    autojump_clock: trio.testing.MockClock,
) -> None:
    source = ScriptedSource(endless=lambda i: i, interval=2.0)
    pipeline = Pipeline(
        source, routes=[Route("r", CollectSink("a"))], stop_when_idle=2.5, batch_size=1
    )
    async with running(pipeline) as handle:
        await trio.sleep(100)
        state = handle.statistics().state
        handle.stop()
    report = checked(await handle.wait())
    assert state == "running"
    assert report.ok


async def test_stop_when_idle_does_not_count_the_time_the_source_is_paused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    source = ScriptedSource([0, Pause(1), 1, Pause(100), 2])
    pipeline = Pipeline(
        source, routes=[Route("r", CollectSink("a"))], stop_when_idle=5, batch_size=1
    )
    async with running(pipeline) as handle:
        await trio.sleep(3)
        handle.pause_source()  # the last item came at t=1
        await trio.sleep(30)
        state = handle.statistics().state
        handle.resume_source()  # t=33: idle time counts from here
    report = checked(await handle.wait())
    assert state == "running"
    assert trio.current_time() == 38.0
    stats = handle.statistics()
    assert drain_kind(stats) == "idle"
    assert report.received == 2


async def test_stop_when_idle_does_not_fire_while_a_slow_sink_holds_the_source(
    autojump_clock: trio.testing.MockClock,
) -> None:
    source = ScriptedSource(endless=lambda i: i, interval=1.0)  # an item every second
    pipeline = Pipeline(
        source,
        routes=[Route("r", SlowSink(CollectSink("a"), per_batch=10.0))],
        batch_size=1,
        batch_timeout=0,
        capacity=0,
        stop_when_idle=5,
    )
    async with running(pipeline) as handle:
        await trio.sleep(100)
        stats = handle.statistics()
        handle.stop()
    checked(await handle.wait())
    assert stats.drain is None
    assert stats.state == "running"


async def test_stop_when_idle_does_not_fire_while_a_paused_sink_holds_the_source(
    autojump_clock: trio.testing.MockClock,
) -> None:
    source = ScriptedSource(endless=lambda i: i, interval=1.0)
    pipeline = Pipeline(
        source,
        routes=[Route("r", CollectSink("a"))],
        batch_size=1,
        batch_timeout=0,
        capacity=1,
        stop_when_idle=5,
    )
    async with running(pipeline) as handle:
        await trio.sleep(2.5)
        handle.pause("a")
        await trio.sleep(20)
        stats = handle.statistics()
        handle.resume("a")
        handle.stop()
    checked(await handle.wait())
    assert stats.drain is None


# -- stop ----------------------------------------------------------------------------


async def test_stop_is_graceful_and_a_second_stop_only_brings_the_deadline_forward(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a = RecordingSink("a")
    source = ScriptedSource(endless=lambda i: i, interval=1.0)
    pipeline = Pipeline(
        source,
        routes=[Route("r", SlowSink(a, per_batch=4.0))],
        batch_size=1,
        batch_timeout=0,
        drain_timeout=30,
    )
    snapshots = []
    async with running(pipeline) as handle:
        await trio.sleep(2.5)  # [0] in the write (t=1..5), [1] buffered
        handle.stop()
        snapshots.append(handle.statistics())
        await trio.sleep(1)
        handle.stop()  # the same deadline: nothing changes
        snapshots.append(handle.statistics())
        handle.stop(immediate=True)  # t=3.5: now
        snapshots.append(handle.statistics())
    report = checked(await handle.wait())
    deadlines = [(s.drain.kind, s.drain.deadline) for s in snapshots if s.drain is not None]
    assert deadlines == [("stop", 32.5), ("stop", 32.5), ("stop", 3.5)]
    assert trio.current_time() == 3.5
    assert lost(report, "a") == [0, 1]
    assert reasons(report) == {"immediate stop"}
    assert report.received == 2


# -- after the run, and unknown names ------------------------------------------------


async def test_control_calls_after_the_run_do_nothing(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    a = CollectSink("a")
    pipeline = Pipeline(range(5), routes=[Route("r", [a, CollectSink("b")])])
    async with running(pipeline) as handle:
        handle.pause("b")
        handle.resume("b")
    report = checked(await handle.wait())
    final = handle.statistics()
    caplog.set_level(logging.DEBUG, logger="trio_sink")
    handle.stop()
    handle.stop(immediate=True)
    handle.pause("a")
    handle.resume("a")
    handle.pause("b")
    handle.resume_all()
    handle.isolate("a")
    handle.pause_source()
    handle.resume_source()
    await trio.sleep(10)
    assert caplog.records == []
    assert handle.report is report
    assert await handle.wait() is report
    assert handle.statistics() == final
    assert handle.statistics().state == "stopped"
    assert not any(s.paused for s in final.sinks.values())
    assert ids(a.records) == list(range(5))


@pytest.mark.parametrize("call", ["pause", "resume", "isolate"])
async def test_an_unknown_sink_name_raises_unknown_sink_error_naming_the_known_ones(
    autojump_clock: trio.testing.MockClock, call: str
) -> None:
    pipeline = Pipeline(
        ScriptedSource([0, Pause(5), 1]),
        routes=[Route("r", [CollectSink("a"), CollectSink("b")])],
        infra=Infra(miss=CollectSink("m")),
    )
    async with running(pipeline) as handle:
        with pytest.raises(UnknownSinkError) as during:
            getattr(handle, call)("nope")
        unchanged = handle.statistics()
    report = checked(await handle.wait())
    with pytest.raises(UnknownSinkError) as after:
        getattr(handle, call)("nope")
    for info in (during, after):
        err = info.value
        assert isinstance(err, LookupError)
        assert err.sink == "nope"
        assert err.known == ("a", "b", "m")
        assert str(err) == "the pipeline has no sink named 'nope'; its sinks are: 'a', 'b', 'm'"
    # The failed call changed nothing.
    assert not any(s.paused for s in unchanged.sinks.values())
    assert report.ok


async def test_an_unhashable_sink_name_raises_unknown_sink_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pipeline = Pipeline(range(3), routes=[Route("r", CollectSink("a"))])
    async with running(pipeline) as handle:
        with pytest.raises(UnknownSinkError, match=r"\[\]"):
            handle.pause([])  # type: ignore[arg-type]
    checked(await handle.wait())


# -- from other tasks, in cancelled scopes -------------------------------------------


async def test_control_calls_work_from_the_pipeline_own_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A sink's write and the parse run in the pipeline's own tasks; they can steer it."""
    handles: list[PipelineHandle] = []
    b = RecordingSink("b")
    seen: list[int] = []

    async def steer(batch: Sequence[Record]) -> None:
        for r in batch:
            seen.append(r.id)
            if r.id == 3:
                handles[0].pause("b")
            if r.id == 6:
                handles[0].resume("b")
            if r.id == 9:
                handles[0].stop()

    def parse(raw: int) -> int:
        if raw == 4:
            handles[0].pause_source()
        return raw

    source = ScriptedSource(endless=lambda i: i, interval=1.0)
    pipeline = Pipeline(
        source, parse=parse, routes=[Route("r", [steer, b])], batch_size=1, batch_timeout=0
    )
    async with running(pipeline) as handle:
        handles.append(handle)
        await trio.sleep(20)
        paused_source = handles[0].statistics().source.paused
        handles[0].resume_source()
    report = checked(await handles[0].wait())
    assert paused_source
    assert report.ok
    assert seen == ids(b.records) == list(range(report.received))
    assert report.received == 10
    stats = handles[0].statistics()
    assert drain_kind(stats) == "stop"


async def test_control_calls_work_from_another_task_of_the_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gated = GatedSink("g")
    pipeline = Pipeline(ScriptedSource([0, 1, 2, Pause(100)]), routes=[Route("r", gated)])
    handles: list[PipelineHandle] = []

    async def controller() -> None:
        await trio.sleep(1)
        handles[0].pause("g")
        handles[0].resume("g")
        handles[0].isolate("g")
        handles[0].pause_source()
        handles[0].resume_source()
        gated.permits.release()
        await trio.sleep(1)
        handles[0].stop()

    async with trio.open_nursery() as nursery:
        handles.append(await nursery.start(pipeline.run))
        nursery.start_soon(controller)
    report = checked(await handles[0].wait())
    assert gated.delivered == [0, 1, 2]
    assert report.ok
    assert trio.current_time() == 2.0


async def test_control_calls_are_not_checkpoints(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pipeline = Pipeline(
        ScriptedSource([0, Pause(5), 1]), routes=[Route("r", [CollectSink("a"), CollectSink("b")])]
    )
    async with running(pipeline) as handle:
        with trio.CancelScope() as scope:
            scope.cancel()
            handle.pause("a")
            handle.resume("a")
            handle.isolate("b")
            handle.resume_all()
            handle.pause_source()
            handle.resume_source()
            handle.statistics()
            handle.stop()
            reached = True
            await trio.lowlevel.checkpoint()
            reached_after_checkpoint = True  # pragma: no cover - the checkpoint raises
        assert scope.cancelled_caught
    checked(await handle.wait())
    assert reached
    assert "reached_after_checkpoint" not in locals()


async def test_a_graceful_stop_after_an_immediate_one_at_the_same_instant_keeps_its_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # With drain_timeout=0 both stops put the deadline at the same instant: the
    # graceful one changes nothing, and what is given up is an "immediate stop".
    a = RecordingSink("a")
    pipeline = Pipeline(
        ScriptedSource(endless=lambda i: i, interval=1.0),
        routes=[Route("r", SlowSink(a, per_batch=4.0))],
        batch_size=1,
        batch_timeout=0,
        drain_timeout=0,
    )
    async with trio.open_nursery() as nursery:
        handle: PipelineHandle = await nursery.start(pipeline.run)
        await trio.sleep(2.5)  # [0] in the write (t=1..5), [1] buffered
        handle.stop(immediate=True)
        handle.stop()
    report = checked(await handle.wait())
    assert trio.current_time() == 2.5
    assert lost(report, "a") == [0, 1]
    assert reasons(report) == {"immediate stop"}
    assert {u.kind for u in report.undelivered} == {"immediate"}
