"""Recovery (``_recovery.py``), the part of a sink's writer that its circuit breaker
adds: parking, and the in-run replay of parked batches, when the store fails or a
store write is cancelled. In virtual time, with store writes in the event loop (see
``inline_threads``); every report is checked, and the ledger is strict."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from helpers import CancelledIntoAnError, checked

import trio_sink._parking
from trio_sink import (
    CircuitBreaker,
    PermanentError,
    Pipeline,
    Record,
    RescueEntry,
    RescueStore,
    Route,
    Sink,
)
from trio_sink._segment_log import SegmentLog
from trio_sink.testing import FlakySink, Pause, ScriptedSource

UNHEALTHY = "sink unhealthy: OSError: flaky write"


@pytest.fixture
def inline_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """``trio.to_thread.run_sync`` in the event loop, after a checkpoint: a store write
    takes no virtual time, and cancelled at the checkpoint, nothing ran."""

    async def run_sync(fn: Any, *args: Any, **kwargs: Any) -> Any:
        await trio.lowlevel.checkpoint()
        return fn(*args)

    monkeypatch.setattr(trio.to_thread, "run_sync", run_sync)


@pytest.fixture
def store(tmp_path: Path, inline_threads: None) -> Iterator[RescueStore]:
    with RescueStore(tmp_path / "rescue", fsync="never") as store:
        yield store


def every_second(n: int) -> ScriptedSource:
    """Items 0 .. n-1, item i at t = i + 1."""
    return ScriptedSource([x for i in range(n) for x in (Pause(1.0), i)])


def stored(report: Any) -> list[tuple[str | None, int]]:
    """The (sink, id) of every record the report says is stored."""
    return sorted((u.sink, u.record.id) for u in report.undelivered if u.stored)


def entries(store: RescueStore) -> list[tuple[str | None, int]]:
    """The (sink, id) of every entry of this store's run, read back once sealed."""
    store.seal()
    return sorted((e.sink, e.id) for e in RescueStore(store.path).entries() if e.run == store.run)


def disk_full(entries: Sequence[RescueEntry], chunk_size: int = 0) -> int:
    raise OSError("disk full")


def failing_log(*args: Any, **kwargs: Any) -> SegmentLog:
    """A segment log whose writes all raise, as on a full disk."""
    log = SegmentLog(*args, **kwargs)
    log.write_some = disk_full  # type: ignore[method-assign]
    return log


async def test_a_failed_batch_whose_parking_is_cancelled_is_reported_once_unparked(
    autojump_clock: trio.testing.MockClock, store: RescueStore
) -> None:
    # At the drain deadline the write fails, and parking it is cancelled before the
    # store write begins: reported with the write's error, settled, and stored once at
    # the end of the run (not parked: nothing was written).
    pipeline = Pipeline(
        [10, 11, 12],
        routes=[Route("r", CancelledIntoAnError())],
        breaker=CircuitBreaker(failures=1, probe_interval=1.0),
        drain_timeout=1.0,
        rescue=store,
    )
    report = checked(await pipeline.run())
    assert [(u.record.id, u.reason, u.stored) for u in report.undelivered] == [
        (i, "sink raised OSError: connection reset", True) for i in range(3)
    ]
    assert entries(store) == [("db", 0), ("db", 1), ("db", 2)]


async def test_batches_the_store_fails_to_park_are_reported_unparked_and_stored_at_the_end(
    autojump_clock: trio.testing.MockClock,
    store: RescueStore,
    monkeypatch: pytest.MonkeyPatch,
    inline_threads: None,
) -> None:
    # The parking writer (a segment log of its own) fails; the run's store does not.
    # Nothing is parked: the batches are reported unstored while the run goes on, then
    # stored once by the end of the run, never replayed.
    monkeypatch.setattr(trio_sink._parking, "SegmentLog", failing_log)
    # Record 0 fails at t=1 and opens the breaker, record 1 (t=2) is set aside, and the
    # probe at t=2.75 closes it again.
    sink = FlakySink(name="db", outages=[(0, 2.5)], has_probe=True)
    pipeline = Pipeline(
        every_second(6),
        routes=[Route("r", sink)],
        batch_size=1,
        breaker=CircuitBreaker(failures=1, probe_interval=1.75),
        rescue=store,
    )
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(pipeline.run)
        await trio.sleep(2.5)
        during = handle.statistics().sinks["db"]
    report = checked(await handle.wait())
    assert (during.undelivered, during.stored) == (2, 0)
    assert "rescue store raised OSError: disk full" in report.sink_errors["rescue"]
    assert [r.id for r in sink.records] == [2, 3, 4, 5]
    assert [(u.record.id, u.reason, u.stored) for u in report.undelivered] == [
        (0, "sink raised OSError: flaky write", True),
        (1, UNHEALTHY, True),
    ]
    assert entries(store) == stored(report) == [("db", 0), ("db", 1)]


class RefusesRepeats(Sink):
    """Down until ``up_at`` (its probe too); then takes each record once, and refuses
    for good (PermanentError) a batch with a record it has taken before."""

    name = "db"

    def __init__(self, up_at: float) -> None:
        self.up_at = up_at
        self.records: list[Record] = []
        self.repeats: list[int] = []

    async def write(self, batch: Sequence[Record]) -> None:
        await trio.lowlevel.checkpoint()
        if trio.current_time() < self.up_at:
            raise OSError("down")
        taken = {r.id for r in self.records}
        again = [r.id for r in batch if r.id in taken]
        if again:
            self.repeats.extend(again)
            raise PermanentError(f"written twice: {again}")
        self.records.extend(batch)

    async def probe(self) -> None:
        await trio.lowlevel.checkpoint()
        if trio.current_time() < self.up_at:
            raise OSError("still down")


async def test_each_parked_record_is_replayed_once_and_leaves_the_store(
    autojump_clock: trio.testing.MockClock, store: RescueStore
) -> None:
    # Records 0 (failed at t=1) and 1 (set aside at t=2) are parked; the probe at t=3
    # closes the breaker and the replay writes each once, consuming it in the store.
    sink = RefusesRepeats(up_at=2.5)
    pipeline = Pipeline(
        every_second(5),
        routes=[Route("r", sink)],
        batch_size=1,
        breaker=CircuitBreaker(failures=1, probe_interval=2.0),
        rescue=store,
    )
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(pipeline.run)
    report = checked(await handle.wait())
    assert report.ok
    assert sink.repeats == []
    assert sorted(r.id for r in sink.records) == [0, 1, 2, 3, 4]
    assert handle.statistics().sinks["db"].replayed == 2
    assert entries(store) == []


async def test_a_replayed_chunk_the_sink_refuses_stays_parked_while_the_store_fails(
    autojump_clock: trio.testing.MockClock,
    store: RescueStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Records 0 .. 9 are parked while the sink is down (t=1 .. 10). Replayed once it is
    # back (taking turns with 10 and 11), record 3 is refused for good (PermanentError),
    # and the store then fails to take it as an ordinary entry: it stays parked (kept in
    # the store, with its first reason), and the replay waits for the next probe, after
    # the end of the run. So 3 .. 9 stay parked, each kept in the store once.
    def poison(k: int, batch: Sequence[Record]) -> bool:
        return any(r.id == 3 for r in batch)

    sink = FlakySink(name="db", outages=[(0, 8.5)], has_probe=True, permanent=poison)
    pipeline = Pipeline(
        every_second(12),
        routes=[Route("r", sink)],
        batch_size=1,
        breaker=CircuitBreaker(failures=1, probe_interval=10),
        rescue=store,
        drain_timeout=None,
    )
    # Only the run's store object fails: the parking writer is one of its own.
    monkeypatch.setattr(store, "_write", disk_full)
    report = checked(await pipeline.run())
    monkeypatch.undo()
    assert [(u.record.id, u.reason, u.stored) for u in report.undelivered] == [
        (i, UNHEALTHY, True) for i in range(3, 10)
    ]
    assert "rescue store raised OSError: disk full" in report.sink_errors["rescue"]
    assert [r.id for r in sink.records] == [0, 10, 1, 2, 11]
    assert entries(store) == stored(report) == [("db", i) for i in range(3, 10)]


async def test_a_trial_write_that_closes_the_breaker_is_delivered_even_as_the_last_batch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # No probe() and no store: the next batch after the probe interval is the trial
    # write. Record 0 fails at t=1 and opens the breaker; record 1 (t=6, the last) is
    # the trial, succeeds, and is delivered and settled like any write.
    sink = FlakySink(name="db", outages=[(0, 5)])
    pipeline = Pipeline(
        ScriptedSource([Pause(1.0), 0, Pause(5.0), 1]),
        routes=[Route("r", sink)],
        batch_size=1,
        batch_timeout=0,
        breaker=CircuitBreaker(failures=1, probe_interval=3.0),
    )
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(pipeline.run)
    report = checked(await handle.wait())
    assert sink.writes == 2
    assert [r.id for r in sink.records] == [1]
    assert report.delivered == {"db": 1}
    assert [(u.record.id, u.reason) for u in report.undelivered] == [
        (0, "sink raised OSError: flaky write")
    ]
    db = handle.statistics().sinks["db"]
    assert (db.health, db.breaker_opened, db.in_flight) == ("healthy", 1, 0)
