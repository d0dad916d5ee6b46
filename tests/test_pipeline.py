"""Pipeline end to end: the seed scenario, daemon mode and the handle, one run per
pipeline, SourceError, failing sinks, and infra groups without sinks."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
import trio
import trio.testing
from helpers import checked

from trio_sink import (
    DeliveryReport,
    Infra,
    Miss,
    Pipeline,
    PipelineHandle,
    Record,
    RescueStore,
    Residue,
    Route,
    Sink,
    SourceError,
    TrioSinkError,
)
from trio_sink.sinks import CollectSink, NullSink, SlowSink
from trio_sink.testing import running

SEED_RECORDS = 10_000


def seed_lines() -> list[str]:
    return [f"2026-11-29T12:00:00 host{i % 7} line {i}" for i in range(SEED_RECORDS)]


class FailingSink(Sink):
    """Every write raises."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.attempts = 0
        self.closed = 0

    async def write(self, batch: Sequence[Record]) -> None:
        self.attempts += 1
        raise ConnectionError(f"{self.name} is down")

    async def aclose(self) -> None:
        self.closed += 1


async def ticking(log: list[str] | None = None) -> AsyncIterator[int]:
    """An endless source: one item every millisecond."""
    i = 0
    try:
        while True:
            yield i
            i += 1
            await trio.sleep(0.001)
    finally:
        if log is not None:
            log.append(f"source closed after {i}")


# -- the seed scenario ---------------------------------------------------------------


async def test_seed_slow_bkh_without_drain_limit_delivers_all_in_1000_virtual_seconds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    inner = NullSink("slow_bkh")
    pipeline = Pipeline(
        seed_lines(),
        routes=[Route("bkh", SlowSink(inner, per_record=0.1))],
        drain_timeout=None,
    )
    report = checked(await pipeline.run())
    assert inner.count == SEED_RECORDS
    assert report.received == SEED_RECORDS
    assert report.routed == {"slow_bkh": SEED_RECORDS}
    assert report.delivered == {"slow_bkh": SEED_RECORDS}
    assert report.ok
    assert not report.timed_out
    assert trio.current_time() - start == pytest.approx(1000.0)
    assert report.drain_seconds == pytest.approx(1000.0)  # the source ended at t=0


async def test_seed_slow_bkh_with_drain_timeout_60_reports_the_rest_by_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    inner = NullSink("slow_bkh")
    pipeline = Pipeline(
        seed_lines(),
        routes=[Route("bkh", SlowSink(inner, per_record=0.1))],
        drain_timeout=60,
    )
    report = checked(await pipeline.run())
    # The source ends at t=0 (every batch fits in the sink's channel): that is the
    # Stop in batch mode, so the run ends exactly 60 s later.
    assert trio.current_time() - start == 60.0
    assert report.drain_seconds == 60.0
    assert report.timed_out
    assert not report.ok
    delivered = report.delivered["slow_bkh"]
    assert delivered == inner.count
    assert delivered == 4 * 128  # four full batches of 12.8 s; the fifth is cut off
    assert delivered + len(report.undelivered) == SEED_RECORDS
    ids = [u.record.id for u in report.undelivered]
    assert len(set(ids)) == len(ids)  # every undelivered id listed once
    assert sorted(ids) == list(range(delivered, SEED_RECORDS))
    assert {u.sink for u in report.undelivered} == {"slow_bkh"}
    assert {(u.stage, u.reason) for u in report.undelivered} == {("sink", "drain deadline")}
    lines = seed_lines()
    assert all(u.record.raw == lines[u.record.id] for u in report.undelivered)


# -- daemon mode ---------------------------------------------------------------------


async def test_daemon_mode_handle_stop_and_wait(autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    sink = CollectSink("kept")
    pipeline = Pipeline(ticking(log), routes=[Route("r", sink)])
    async with running(pipeline) as handle:
        assert isinstance(handle, PipelineHandle)
        await trio.sleep(1.0)
        assert handle.report is None  # still running
        assert log == []
        handle.stop()
        report = checked(await handle.wait())
    assert handle.report is report
    assert await handle.wait() is report
    assert isinstance(report, DeliveryReport)
    assert report.received > 900  # about one item a millisecond for one second
    assert [r.id for r in sink.records] == list(range(report.received))
    assert [r.raw for r in sink.records] == list(range(report.received))
    assert report.ok
    assert len(log) == 1
    assert sink.closed == 1


async def test_daemon_mode_immediate_stop_reports_what_is_in_flight(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    inner = CollectSink("slow")
    pipeline = Pipeline(
        ticking(), routes=[Route("r", SlowSink(inner, per_batch=0.5))], batch_timeout=0.1
    )
    async with running(pipeline) as handle:
        await trio.sleep(2.0)
        handle.stop(immediate=True)
    report = checked(await handle.wait())
    assert trio.current_time() - start == 2.0
    assert report.timed_out
    assert report.undelivered
    assert {u.reason for u in report.undelivered} == {"immediate stop"}
    delivered = [r.id for r in inner.records]
    assert delivered == list(range(len(delivered)))
    assert sorted(u.record.id for u in report.undelivered) == list(
        range(len(delivered), report.received)
    )


async def test_daemon_mode_wait_from_several_tasks_and_cancelled_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = CollectSink("kept")
    pipeline = Pipeline(ticking(), routes=[Route("r", sink)])
    got: list[DeliveryReport] = []

    async def waiter(handle: PipelineHandle) -> None:
        got.append(await handle.wait())

    async with trio.open_nursery() as nursery:
        handle: PipelineHandle = await nursery.start(pipeline.run)
        with trio.move_on_after(0.5):
            await handle.wait()  # cancelling a wait leaves the run untouched
        nursery.start_soon(waiter, handle)
        nursery.start_soon(waiter, handle)
        await trio.sleep(0.5)
        assert got == []
        handle.stop()
    assert len(got) == 2
    assert got[0] is got[1] is handle.report
    report = checked(got[0])
    assert report.received > 900
    assert report.ok


async def test_batch_mode_in_a_nursery_start_returns_handle_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A finite source under nursery.start: the run ends by itself, wait() returns."""
    sink = CollectSink("kept")
    pipeline = Pipeline(range(300), routes=[Route("r", sink)])
    async with running(pipeline) as handle:
        report = checked(await handle.wait())
    assert report.delivered == {"kept": 300}
    assert report.ok


# -- a pipeline runs once --------------------------------------------------------------


async def test_a_pipeline_runs_once() -> None:
    sink = CollectSink("kept")
    pipeline = Pipeline(range(3), routes=[Route("r", sink)])
    checked(await pipeline.run())
    with pytest.raises(RuntimeError, match="runs once"):
        await pipeline.run()
    assert len(sink.records) == 3
    assert sink.closed == 1


async def test_a_pipeline_runs_once_also_while_it_is_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = CollectSink("kept")
    pipeline = Pipeline(ticking(), routes=[Route("r", sink)])
    async with running(pipeline) as handle:
        with pytest.raises(RuntimeError):
            await pipeline.run()
        await trio.sleep(0.1)
        handle.stop()
    report = checked(await handle.wait())
    assert report.ok
    assert report.received > 0
    assert sink.closed == 1


# -- SourceError ---------------------------------------------------------------------


async def test_source_error_carries_report_and_cause() -> None:
    failure = OSError("device gone")

    def source() -> Iterator[str]:
        yield "a"
        yield "b"
        yield "c"
        raise failure

    sink = CollectSink("kept")
    with pytest.raises(SourceError) as info:
        await Pipeline(source(), routes=[Route("r", sink)], batch_size=2).run()
    exc = info.value
    assert isinstance(exc, TrioSinkError)
    assert exc.__cause__ is failure
    report = checked(exc.report)
    assert isinstance(report, DeliveryReport)
    assert report.received == 3
    assert report.delivered == {"kept": 3}
    assert [r.raw for r in sink.records] == ["a", "b", "c"]
    assert report.ok
    assert sink.closed == 1


async def test_source_error_after_a_drain_deadline_carries_the_undelivered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The source fails; the run still drains, under the deadline, then raises."""
    start = trio.current_time()

    def source() -> Iterator[int]:
        yield from range(6)
        raise KeyError("offset")

    inner = CollectSink("slow")
    pipeline = Pipeline(
        source(),
        routes=[Route("r", SlowSink(inner, per_batch=4.0))],
        batch_size=2,
        drain_timeout=10,
    )
    with pytest.raises(SourceError) as info:
        await pipeline.run()
    report = checked(info.value.report)
    assert isinstance(info.value.__cause__, KeyError)
    assert trio.current_time() - start == 10.0
    assert report.timed_out
    assert [r.id for r in inner.records] == [0, 1, 2, 3]
    assert [u.record.id for u in report.undelivered] == [4, 5]


async def test_source_error_in_daemon_mode_report_also_through_the_handle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def source() -> AsyncIterator[int]:
        for i in range(5):
            yield i
            await trio.sleep(1)
        raise ValueError("bad frame")

    sink = CollectSink("kept")
    pipeline = Pipeline(source(), routes=[Route("r", sink)])
    handles: list[PipelineHandle] = []
    with pytest.RaisesGroup(SourceError) as info:
        async with trio.open_nursery() as nursery:
            handles.append(await nursery.start(pipeline.run))
    (exc,) = info.value.exceptions
    assert isinstance(exc, SourceError)
    assert isinstance(exc.__cause__, ValueError)
    report = checked(await handles[0].wait())
    assert exc.report is report
    assert report.delivered == {"kept": 5}


# -- failing sinks -------------------------------------------------------------------


async def test_a_failing_sink_never_stops_the_pipeline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    broken = FailingSink("broken")
    kept = CollectSink("kept")
    pipeline = Pipeline(ticking(), routes=[Route("a", broken), Route("b", kept)])
    async with running(pipeline) as handle:
        await trio.sleep(3.0)
        handle.stop()
    report = checked(await handle.wait())  # the run ended normally: no exception
    assert report.received > 2900  # the source kept going for the whole 3 s
    assert broken.attempts > 1
    assert broken.closed == 1
    assert report.delivered == {"broken": 0, "kept": report.received}
    assert sorted(u.record.id for u in report.undelivered) == list(range(report.received))
    assert {(u.sink, u.stage, u.reason) for u in report.undelivered} == {
        ("broken", "sink", "sink raised ConnectionError: broken is down")
    }
    assert all(isinstance(u.error, ConnectionError) for u in report.undelivered)
    assert not report.timed_out


async def test_a_failing_infra_sink_never_stops_the_pipeline() -> None:
    def parse(raw: int) -> int:
        if raw % 2:
            raise Miss("odd")
        return raw

    broken = FailingSink("misses")
    kept = CollectSink("kept")
    report = checked(
        await Pipeline(
            range(10), parse=parse, routes=[Route("r", kept)], infra=Infra(miss=broken)
        ).run()
    )
    assert [r.raw for r in kept.records] == [0, 2, 4, 6, 8]
    assert report.delivered == {"kept": 5, "misses": 0}
    assert sorted(u.record.id for u in report.undelivered) == [1, 3, 5, 7, 9]
    assert {u.sink for u in report.undelivered} == {"misses"}


# -- infra groups without sinks --------------------------------------------------------


def tricky_parse(raw: int) -> int | Residue:
    if raw % 5 == 0:
        raise Miss("multiple of 5")
    if raw % 7 == 0:
        raise ValueError(f"cannot parse {raw}")
    if raw % 3 == 0:
        return Residue(raw, "tail")
    return raw


def expected_groups(n: int) -> tuple[list[int], Counter[str]]:
    """A model of the routing below: the ids the 'even' route gets, and the counts of
    every infra group."""
    even: list[int] = []
    groups: Counter[str] = Counter()
    for i in range(n):
        if i % 5 == 0:
            groups["miss"] += 1
        elif i % 7 == 0:
            groups["error"] += 1
        else:
            if i % 3 == 0:
                groups["residue"] += 1
            if i % 2 == 0:
                even.append(i)
            else:
                groups["default"] += 1
    return even, groups


async def test_infra_groups_without_sinks_are_counted_in_discarded() -> None:
    even = CollectSink("even")
    every = CollectSink("every")
    pipeline = Pipeline(
        range(100),
        parse=tricky_parse,
        # "every" accepts every parsed record (no payload is 0: 0 is a Miss), so the
        # default group gets nothing, and is not in discarded.
        routes=[Route("even", even, when=lambda p: p % 2 == 0), Route("every", every, when=bool)],
        batch_size=16,
    )
    report = checked(await pipeline.run())
    expected_even, groups = expected_groups(100)
    assert [r.id for r in even.records] == expected_even
    assert len(every.records) == len(expected_even) + groups["default"]
    assert dict(report.discarded) == {
        "miss": groups["miss"],
        "error": groups["error"],
        "residue": groups["residue"],
    }
    assert report.received == 100
    assert report.ok  # discarded on purpose is not undelivered


async def test_default_group_without_sink_is_counted_in_discarded() -> None:
    even = CollectSink("even")
    pipeline = Pipeline(
        range(100),
        parse=tricky_parse,
        routes=[Route("even", even, when=lambda p: p % 2 == 0)],
        batch_size=16,
    )
    report = checked(await pipeline.run())
    expected_even, groups = expected_groups(100)
    assert all(groups[g] > 0 for g in ("default", "miss", "error", "residue"))
    assert [r.id for r in even.records] == expected_even
    assert dict(report.discarded) == dict(groups)
    assert report.delivered == {"even": len(expected_even)}
    assert report.ok
    # Every record is accounted for: routed to a sink or discarded.
    assert report.received == 100
    assert report.dispatched == 100


async def test_infra_groups_with_sinks_discard_nothing() -> None:
    sinks = {g: CollectSink(g) for g in ("default", "miss", "residue", "error")}
    even = CollectSink("even")
    pipeline = Pipeline(
        range(100),
        parse=tricky_parse,
        routes=[Route("even", even, when=lambda p: p % 2 == 0)],
        infra=Infra(
            default=sinks["default"],
            miss=sinks["miss"],
            residue=sinks["residue"],
            error=sinks["error"],
        ),
        batch_size=16,
    )
    report = checked(await pipeline.run())
    expected_even, groups = expected_groups(100)
    assert dict(report.discarded) == {}
    assert {g: len(s.records) for g, s in sinks.items()} == dict(groups)
    assert all(isinstance(r.error, ValueError) for r in sinks["error"].records)
    assert all(r.rest == "tail" for r in sinks["residue"].records)
    assert report.delivered == {"even": len(expected_even), **groups}
    assert report.ok


async def test_every_configured_sink_has_a_delivered_entry_zero_included() -> None:
    never = NullSink("never")
    kept = CollectSink("kept")
    monitor = NullSink("monitor")
    report = checked(
        await Pipeline(
            range(5),
            routes=[Route("none", never, when=lambda p: False), Route("all", kept)],
            infra=Infra(monitor=monitor),
        ).run()
    )
    # The monitor gets its final statistics record, made by the pipeline.
    assert report.delivered == {"never": 0, "kept": 5, "monitor": 1}
    assert report.routed == {"never": 0, "kept": 5, "monitor": 1}
    assert report.generated == 1
    assert dict(report.discarded) == {}


async def test_a_run_with_nothing_to_store_never_writes_to_its_store(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # Every record delivered: the end of the run has nothing to store and does not touch
    # the store, so that a store that would refuse a write (closed here) is no error.
    store = RescueStore(tmp_path / "rescue")
    store.close()
    out = CollectSink("out")
    report = checked(await Pipeline(range(5), routes=[Route("r", out)], rescue=store).run())
    assert report.ok
    assert dict(report.sink_errors) == {}
    assert store.statistics().written == 0
