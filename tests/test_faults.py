"""Sink faults inside a pipeline: retries, the circuit breaker, the rescue store while a
sink is down, replay after it recovers, and the error hook; in virtual time.

Store writes run in worker threads, and under an autojump clock a thread lets virtual
time jump ahead: the tests with a store assert counts and order, not times.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from helpers import GatedSink, checked, open_ticket

import trio_sink._pipeline
from trio_sink import (
    NO_RETRY,
    Batch,
    CircuitBreaker,
    DeliveryReport,
    Infra,
    Pipeline,
    PipelineHandle,
    PipelineStatistics,
    Record,
    RescueStore,
    RetryPolicy,
    Route,
    Sink,
    replay,
)
from trio_sink._control import StopControl, take_buffered
from trio_sink._feeds import ErrorFeed, SinkBatch
from trio_sink._ledger import ERROR_IDS_AT_LEAST, Ledger, Ticket
from trio_sink._sink import SinkSlot
from trio_sink._writer import SinkWriter
from trio_sink.sinks import CollectSink, SlowSink
from trio_sink.testing import FlakySink, Pause, RecordingSink, ScriptedSource, running

FLAKY = "sink raised OSError: flaky write"
UNHEALTHY = "sink unhealthy: OSError: flaky write"


def every_second(n: int) -> ScriptedSource:
    """Items 0 .. n-1, item i at t = i + 1."""
    return ScriptedSource([x for i in range(n) for x in (Pause(1.0), i)])


async def run(
    pipeline: Pipeline, sample_at: Sequence[float] = ()
) -> tuple[DeliveryReport, list[PipelineStatistics]]:
    """Run ``pipeline`` to its end. Returns its report, and statistics taken at the times
    ``sample_at``, then at the end."""
    samples: list[PipelineStatistics] = []
    async with running(pipeline) as handle:
        for t in sample_at:
            await trio.sleep_until(t)
            samples.append(handle.statistics())
        report = await handle.wait()
    samples.append(handle.statistics())
    return checked(report), samples


def undelivered_of(report: DeliveryReport, sink: str) -> dict[int, str]:
    return {u.record.id: u.reason for u in report.undelivered if u.sink == sink}


def stored_ids(report: DeliveryReport, sink: str) -> list[int]:
    return sorted(u.record.id for u in report.undelivered if u.sink == sink and u.stored)


def entry_ids(store: RescueStore, sink: str) -> list[int]:
    return sorted(e.id for e in store.entries(sink=sink) if e.run == store.run)


def events(caplog: pytest.LogCaptureFixture, *names: str) -> list[str]:
    """The event names of the ``trio_sink.sink`` log lines among ``names``."""
    out = []
    for r in caplog.records:
        event = r.getMessage().split()[0]
        if r.name == "trio_sink.sink" and event in names:
            out.append(event)
    return out


@pytest.fixture
def store(tmp_path: Path, inline_threads: None) -> Iterator[RescueStore]:
    """A rescue store whose writes take no virtual time (see ``inline_threads``)."""
    with RescueStore(tmp_path / "rescue", fsync="never") as store:
        yield store


@pytest.fixture
def threaded_store(tmp_path: Path) -> Iterator[RescueStore]:
    """A rescue store written from worker threads, as in production: under the autojump
    clock, only counts can be asserted."""
    with RescueStore(tmp_path / "rescue", fsync="never") as store:
        yield store


# -- retries ---------------------------------------------------------------------------


async def test_a_write_is_retried_after_exact_backoffs_until_it_succeeds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = RecordingSink("db", inner=FlakySink(name="db", fail_on={0, 1}))
    policy = RetryPolicy(attempts=3, initial_backoff=1.0, multiplier=3.0, jitter=0)
    report, _ = await run(Pipeline([1, 2, 3], routes=[Route("r", sink)], retry=policy))
    assert report.ok
    assert [c.outcome for c in sink.calls] == ["raised", "raised", "delivered"]
    t0 = sink.calls[0].started
    assert [c.started - t0 for c in sink.calls] == [0.0, 1.0, 4.0]
    assert [r.id for r in sink.records] == [0, 1, 2]


async def test_retries_are_counted_and_logged(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FlakySink(name="db", fail_on={0, 2, 3})
    policy = RetryPolicy(attempts=3, initial_backoff=0.5, jitter=0)
    pipeline = Pipeline(range(4), routes=[Route("r", sink)], retry=policy, batch_size=2)
    with caplog.at_level(logging.WARNING, logger="trio_sink.sink"):
        async with running(pipeline) as handle:
            report = checked(await handle.wait())
    assert report.ok
    assert handle.statistics().sinks["db"].retries == 3
    assert events(caplog, "sink.retry") == ["sink.retry"] * 3


async def test_a_batch_that_fails_every_attempt_is_reported_with_the_last_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    errors = iter(range(100))
    sink = FlakySink(
        name="db", fail_on=lambda k, batch: True, error=lambda: OSError(f"try {next(errors)}")
    )
    policy = RetryPolicy(attempts=3, initial_backoff=1.0, jitter=0)
    pipeline = Pipeline(range(4), routes=[Route("r", sink)], retry=policy, batch_size=2)
    async with running(pipeline) as handle:
        report = checked(await handle.wait())
    assert sink.writes == 6
    assert undelivered_of(report, "db") == {
        0: "sink raised OSError: try 2",
        1: "sink raised OSError: try 2",
        2: "sink raised OSError: try 5",
        3: "sink raised OSError: try 5",
    }
    assert not any(u.stored for u in report.undelivered)
    stats = handle.statistics().sinks["db"]
    assert (stats.retries, stats.stored, stats.undelivered_by_reason) == (4, 0, {"sink error": 4})


async def test_retry_delays_are_drawn_from_a_generator_seeded_by_the_sink_name(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def starts(name: str) -> list[float]:
        sink = RecordingSink(name, inner=FlakySink(name=name, fail_on={0, 1, 2}))
        policy = RetryPolicy(attempts=4, initial_backoff=1.0, jitter=1.0)
        await run(Pipeline([1], routes=[Route("r", sink)], retry=policy))
        t0 = sink.calls[0].started
        return [c.started - t0 for c in sink.calls]

    first, again, other = await starts("db"), await starts("db"), await starts("cache")
    assert first == pytest.approx(again)
    assert first != pytest.approx(other)
    assert len(first) == 4
    gaps = [b - a for a, b in itertools.pairwise(first)]
    assert all(0 < gap <= 2.0**k for k, gap in enumerate(gaps))


async def test_a_permanent_error_is_not_retried_and_spares_the_breaker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = FlakySink(name="db", permanent={0, 1, 2})
    pipeline = Pipeline(
        range(4),
        routes=[Route("r", sink)],
        batch_size=1,
        retry=RetryPolicy(attempts=5),
        breaker=CircuitBreaker(failures=1),
    )
    async with running(pipeline) as handle:
        report = checked(await handle.wait())
    assert sink.writes == 4
    assert undelivered_of(report, "db") == dict.fromkeys(
        [0, 1, 2], "sink raised PermanentError: flaky write"
    )
    assert report.delivered["db"] == 1
    stats = handle.statistics().sinks["db"]
    assert (stats.retries, stats.breaker_opened, stats.health) == (0, 0, "healthy")


async def test_a_retry_policy_for_one_sink_leaves_the_others_without(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a = FlakySink(name="a", fail_on={0})
    b = FlakySink(name="b", fail_on={0})
    policy = RetryPolicy(attempts=2, initial_backoff=0.1)
    report, _ = await run(Pipeline([1], routes=[Route("r", [a, b])], retry={"a": policy}))
    assert (a.writes, b.writes) == (2, 1)
    assert report.delivered == {"a": 1, "b": 0}


async def test_a_backoff_that_would_pass_the_drain_deadline_is_not_waited_for(
    autojump_clock: trio.testing.MockClock, store: RescueStore
) -> None:
    sink = FlakySink(name="db", fail_on=lambda k, batch: True)
    pipeline = Pipeline(
        [1, 2],
        routes=[Route("r", sink)],
        retry=RetryPolicy(attempts=10, initial_backoff=10.0, jitter=0),
        drain_timeout=5.0,
        rescue=store,
    )
    report, _ = await run(pipeline)
    # The source ended (a Stop) before the first write: its 10 s backoff would end past
    # the 5 s deadline, so the batch is reported with its error at once, not at the
    # deadline.
    assert sink.writes == 1
    assert not report.timed_out
    assert report.drain_seconds == 0.0
    assert [(u.record.id, u.reason, u.stored) for u in report.undelivered] == [
        (0, "sink raised OSError: flaky write", True),
        (1, "sink raised OSError: flaky write", True),
    ]
    store.seal()
    assert entry_ids(store, "db") == [0, 1]


async def test_a_drain_deadline_during_a_backoff_reports_the_batch_and_stores_it(
    autojump_clock: trio.testing.MockClock, store: RescueStore
) -> None:
    sink = FlakySink(name="db", fail_on=lambda k, batch: True)
    pipeline = Pipeline(
        ScriptedSource([1, 2, Pause(20.0)]),
        routes=[Route("r", sink)],
        retry=RetryPolicy(attempts=10, initial_backoff=10.0, jitter=0),
        batch_timeout=0,
        drain_timeout=5.0,
        rescue=store,
    )
    async with running(pipeline) as handle:
        await trio.sleep(1.0)  # the first write failed at 0: a backoff until 10
        handle.stop()  # the deadline, at 6, comes during the backoff
    report = checked(await handle.wait())
    assert sink.writes == 1
    assert report.timed_out
    assert report.drain_seconds == 5.0
    assert [(u.record.id, u.reason, u.stored) for u in report.undelivered] == [
        (0, "drain deadline", True),
        (1, "drain deadline", True),
    ]
    store.seal()
    assert entry_ids(store, "db") == [0, 1]


# -- the rescue store without a breaker ----------------------------------------------------


async def test_a_failed_batch_is_stored_at_once(
    autojump_clock: trio.testing.MockClock, store: RescueStore
) -> None:
    sink = FlakySink(name="db", fail_on={0})
    pipeline = Pipeline(every_second(4), routes=[Route("r", sink)], batch_size=1, rescue=store)
    report, samples = await run(pipeline, sample_at=[1.5])
    # Stored by the sink's task while the run went on, not at its end.
    assert (samples[0].state, samples[0].sinks["db"].stored) == ("running", 1)
    assert [(u.record.id, u.reason, u.stored) for u in report.undelivered] == [(0, FLAKY, True)]
    store.seal()
    entries = list(store.entries())
    assert [(e.id, e.sink, e.stage, e.reason, e.error) for e in entries] == [
        (0, "db", "sink", FLAKY, "OSError: flaky write"),
    ]


async def test_a_failing_store_is_noted_and_the_sink_goes_on(
    autojump_clock: trio.testing.MockClock,
    store: RescueStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store.close()  # every write now raises ClosedResourceError
    sink = FlakySink(name="db", fail_on={0})
    pipeline = Pipeline([1, 2, 3], routes=[Route("r", sink)], batch_size=1, rescue=store)
    with caplog.at_level(logging.ERROR, logger="trio_sink.rescue"):
        report, _ = await run(pipeline)
    assert report.delivered["db"] == 2
    assert [(u.record.id, u.stored) for u in report.undelivered] == [(0, False)]
    assert "rescue store raised ClosedResourceError" in report.sink_errors["rescue"]
    failed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rescue.failed")]
    assert failed[0].startswith("rescue.failed sink=db records=1 ")


async def test_the_backlog_left_at_the_end_is_stored_from_a_worker_thread(
    autojump_clock: trio.testing.MockClock,
    threaded_store: RescueStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An immediate stop with 300 records waiting behind a hung sink: they are written
    # to the store at the end of the run, not in the event loop's thread.
    writers: list[bool] = []
    write_some = threaded_store.segment_log.write_some

    def watched(entries: Any, chunk_size: int) -> Any:
        writers.append(threading.current_thread() is threading.main_thread())
        return write_some(entries, chunk_size)

    monkeypatch.setattr(threaded_store.segment_log, "write_some", watched)
    sink = GatedSink("db")
    pipeline = Pipeline(range(300), routes=[Route("r", sink)], rescue=threaded_store)
    async with running(pipeline) as handle:
        await trio.testing.wait_all_tasks_blocked()
        handle.stop(immediate=True)
        report = checked(await handle.wait())
    assert len(report.undelivered) == 300
    assert all(u.stored for u in report.undelivered)
    assert writers == [False]
    threaded_store.seal()
    assert entry_ids(threaded_store, "db") == list(range(300))


async def test_a_run_cancelled_from_outside_still_stores_its_backlog(
    autojump_clock: trio.testing.MockClock, threaded_store: RescueStore
) -> None:
    sink = GatedSink("db")
    pipeline = Pipeline(range(300), routes=[Route("r", sink)], rescue=threaded_store)
    with trio.move_on_after(5) as scope:
        await pipeline.run()
    assert scope.cancelled_caught
    threaded_store.seal()
    assert entry_ids(threaded_store, "db") == list(range(300))


async def test_an_interrupted_end_of_run_store_write_still_finishes_the_report(
    autojump_clock: trio.testing.MockClock,
    store: RescueStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def interrupted(undelivered: object, **kwargs: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "arescue_some", interrupted)
    sink = GatedSink("db")
    pipeline = Pipeline(range(300), routes=[Route("r", sink)], rescue=store)
    handles: list[PipelineHandle] = []

    async def stopped_at_once() -> None:
        async with trio.open_nursery() as nursery:
            handles.append(await nursery.start(pipeline.run))
            await trio.testing.wait_all_tasks_blocked()
            handles[0].stop(immediate=True)

    with pytest.raises(BaseExceptionGroup) as info:
        await stopped_at_once()
    assert info.group_contains(KeyboardInterrupt)
    with trio.fail_after(1):  # the handle has its report: wait() does not hang
        report = checked(await handles[0].wait())
    assert len(report.undelivered) == 300
    assert not any(u.stored for u in report.undelivered)  # what the report says is true


# -- the circuit breaker -----------------------------------------------------------------


async def test_the_breaker_opens_probes_at_its_interval_and_closes(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FlakySink(name="db", outages=[(0, 25)], has_probe=True)
    other = CollectSink("other")
    pipeline = Pipeline(
        every_second(40),
        routes=[Route("r", [sink, other])],
        batch_size=1,
        breaker=CircuitBreaker(failures=2, probe_interval=10.1),
    )
    with caplog.at_level(logging.INFO, logger="trio_sink.sink"):
        report, (during, after, _) = await run(pipeline, sample_at=[20.5, 35.5])
    # Records 0 and 1 failed (t=1, 2): open at t=2; probes at 12.1, 22.2 and 32.3.
    assert sink.probes == pytest.approx([12.1, 22.2, 32.3])
    assert sink.writes == 2 + 8
    assert [r.id for r in sink.records] == list(range(32, 40))
    assert undelivered_of(report, "db") == {
        **dict.fromkeys([0, 1], FLAKY),
        **dict.fromkeys(range(2, 32), UNHEALTHY),
    }
    assert report.delivered == {"db": 8, "other": 40}
    db = during.sinks["db"]
    assert (db.health, db.breaker_opened, db.undelivered) == ("unhealthy", 1, 20)
    assert db.undelivered_by_reason == {"sink error": 20}
    assert (after.sinks["db"].health, after.sinks["db"].breaker_opened) == ("healthy", 1)
    assert events(caplog, "sink.breaker_open", "sink.probe_failed", "sink.breaker_closed") == [
        "sink.breaker_open",
        "sink.probe_failed",
        "sink.probe_failed",
        "sink.breaker_closed",
    ]


async def test_without_a_probe_the_next_batch_is_the_trial_write(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = FlakySink(name="db", outages=[(0, 15)])
    pipeline = Pipeline(
        every_second(25),
        routes=[Route("r", sink)],
        batch_size=1,
        breaker=CircuitBreaker(failures=1, probe_interval=10.1),
    )
    report, _ = await run(pipeline)
    # Open at t=1; record 11 (t=12) is the first trial and fails; record 22 (t=23)
    # is the next one and closes the breaker.
    assert sink.writes == 5
    assert [r.id for r in sink.records] == [22, 23, 24]
    assert undelivered_of(report, "db") == {
        0: FLAKY,
        **dict.fromkeys(range(1, 11), UNHEALTHY),
        11: FLAKY,
        **dict.fromkeys(range(12, 22), UNHEALTHY),
    }


async def test_an_open_breaker_keeps_the_channel_moving_for_the_other_sinks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Each failing write takes 5 s: without the breaker the others would wait on it
    (capacity 1) for 50 x 5 s; with it, one failure and the channel moves again."""
    slow = SlowSink(FlakySink(name="db", outages=[(0, math.inf)]), per_batch=5.0)
    other = RecordingSink("other")
    pipeline = Pipeline(
        range(50),
        routes=[Route("r", [slow, other])],
        batch_size=1,
        capacity=1,
        breaker=CircuitBreaker(failures=1, probe_interval=100.0),
    )
    report, _ = await run(pipeline)
    assert report.delivered == {"db": 0, "other": 50}
    assert other.calls[-1].ended <= 5.0
    assert len(report.undelivered) == 50


class DownSink(Sink):
    """Writes fail; the probe hangs until cancelled."""

    def __init__(self, name: str = "db") -> None:
        self.name = name
        self.probes: list[float] = []
        self.closes = 0

    async def write(self, batch: Sequence[Record]) -> None:
        await trio.lowlevel.checkpoint()
        raise OSError("down")

    async def probe(self) -> None:
        self.probes.append(trio.current_time())
        await trio.sleep_forever()

    async def aclose(self) -> None:
        self.closes += 1


async def test_a_probe_that_does_not_answer_fails_after_the_interval(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    sink = DownSink()
    pipeline = Pipeline(
        every_second(40),
        routes=[Route("r", [sink, CollectSink("other")])],
        batch_size=1,
        capacity=16,
        breaker=CircuitBreaker(failures=1, probe_interval=10.5),
    )
    with caplog.at_level(logging.INFO, logger="trio_sink.sink"):
        report, _ = await run(pipeline)
    assert sink.probes == [11.5, 32.5]
    assert report.delivered == {"db": 0, "other": 40}
    assert len(undelivered_of(report, "db")) == 40
    failed = [r.getMessage() for r in caplog.records if "probe_failed" in r.getMessage()]
    assert failed[0].endswith('error="_ProbeTimeout: no answer within 10.5 s"')
    assert sink.closes == 1


async def test_a_drain_deadline_during_a_probe_reports_everything_once(
    autojump_clock: trio.testing.MockClock, store: RescueStore
) -> None:
    sink = DownSink()
    pipeline = Pipeline(
        every_second(12),
        routes=[Route("r", sink)],
        batch_size=1,
        breaker=CircuitBreaker(failures=1, probe_interval=10.5),
        drain_timeout=0.25,
        rescue=store,
    )
    report, _ = await run(pipeline)
    assert report.delivered == {"db": 0}
    assert sorted(undelivered_of(report, "db")) == list(range(12))
    assert all(u.stored for u in report.undelivered)
    assert sink.closes == 1
    store.seal()
    assert entry_ids(store, "db") == list(range(12))


# -- the store while a sink is down, and replay after it recovers ------------------------------


async def test_while_open_batches_are_stored_then_replayed_in_order_after_recovery(
    autojump_clock: trio.testing.MockClock,
    store: RescueStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    inner = SlowSink(CollectSink("db"), per_batch=0.5)
    sink = FlakySink(inner, outages=[(0, 25)], has_probe=True)
    pipeline = Pipeline(
        every_second(40),
        routes=[Route("r", [sink, CollectSink("other")])],
        batch_size=1,
        capacity=2,
        breaker=CircuitBreaker(failures=2, probe_interval=10.1),
        rescue=store,
        drain_timeout=None,
    )
    with caplog.at_level(logging.INFO, logger="trio_sink.sink"):
        report, (during, end) = await run(pipeline, sample_at=[20.5])
    assert report.ok
    assert report.delivered == {"db": 40, "other": 40}
    # Records 0 and 1 failed (t=1, 2), 2 .. 31 were parked until the probe at t=32.3
    # closed the breaker; each write takes 0.5 s, and the parked records come back in
    # order, one between two new ones while new ones arrive (each second from t=33).
    assert sink.probes == pytest.approx([12.1, 22.2, 32.3])
    assert [r.id for r in sink.records] == [
        0,
        1,
        *(x for k in range(32, 40) for x in (k, k - 30)),
        *range(10, 32),
    ]
    db = during.sinks["db"]
    assert (db.health, db.stored, db.undelivered, db.replayed) == ("unhealthy", 20, 20, 0)
    db = end.sinks["db"]
    assert (db.stored, db.undelivered, db.replayed, db.breaker_opened) == (0, 0, 32, 1)
    store.seal()
    assert store.pending() == 0
    assert [p.name for p in store.path.iterdir() if p.name.startswith("seg-")] == []
    assert events(
        caplog, "sink.breaker_open", "sink.parking", "sink.replay_started", "sink.replay_complete"
    ) == ["sink.breaker_open", "sink.parking", "sink.replay_started", "sink.replay_complete"]


async def test_a_failed_batch_is_replayed_once_a_later_one_is_delivered(
    autojump_clock: trio.testing.MockClock, store: RescueStore
) -> None:
    sink = FlakySink(name="db", fail_on={0, 3})
    pipeline = Pipeline(
        every_second(6),
        routes=[Route("r", sink)],
        batch_size=1,
        breaker=CircuitBreaker(failures=3),
        rescue=store,
    )
    report, (end,) = await run(pipeline)
    assert report.ok
    # Writes 0 and 3 failed (records 0 and 2); the breaker never opened, and each
    # failed record came back right after the next record delivered.
    assert [r.id for r in sink.records] == [1, 0, 3, 2, 4, 5]
    db = end.sinks["db"]
    assert (db.replayed, db.breaker_opened, db.health) == (2, 0, "healthy")
    store.seal()
    assert store.pending() == 0


async def test_with_worker_threads_every_record_is_delivered_or_stored(
    autojump_clock: trio.testing.MockClock, threaded_store: RescueStore
) -> None:
    """The store's writes in real worker threads: under the autojump clock, virtual time
    races ahead while a thread runs, so only the accounting is asserted."""
    store = threaded_store
    sinks = [
        FlakySink(name="a", outages=[(0, 12)], has_probe=True),
        FlakySink(name="b", outages=[(3, 8)]),
        FlakySink(name="c", fail_on={1, 2}, permanent={5}),
    ]
    pipeline = Pipeline(
        every_second(30),
        routes=[Route("r", sinks)],
        batch_size=2,
        retry=RetryPolicy(attempts=2),
        breaker={"a": CircuitBreaker(failures=1, probe_interval=4), "b": CircuitBreaker()},
        rescue=store,
        drain_timeout=2.0,
    )
    report, _ = await run(pipeline)
    store.seal()
    for name in ("a", "b", "c"):
        stored = stored_ids(report, name)
        assert report.delivered[name] + len(stored) == report.routed[name] == 30
        assert entry_ids(store, name) == stored
    assert not any(u.stored is False for u in report.undelivered)


async def test_a_parked_batch_is_the_trial_write_of_a_sink_without_a_probe(
    autojump_clock: trio.testing.MockClock, store: RescueStore
) -> None:
    sink = FlakySink(name="db", outages=[(0, 15)])
    pipeline = Pipeline(
        every_second(30),
        routes=[Route("r", sink)],
        batch_size=1,
        breaker=CircuitBreaker(failures=1, probe_interval=10.1),
        rescue=store,
        drain_timeout=None,
    )
    report, _ = await run(pipeline)
    assert report.ok
    # Open at t=1; the trial writes of record 0 (the oldest parked) at t=11.1 and
    # t=21.2; the second closes the breaker, and the rest follows at once.
    assert sink.writes == 1 + 2 + 29
    assert [r.id for r in sink.records] == list(range(30))
    store.seal()
    assert store.pending() == 0


async def test_a_sink_that_never_recovers_leaves_its_records_in_the_store(
    autojump_clock: trio.testing.MockClock, store: RescueStore
) -> None:
    sink = FlakySink(name="db", outages=[(0, math.inf)], has_probe=True)
    pipeline = Pipeline(
        every_second(20),
        routes=[Route("r", sink)],
        batch_size=1,
        breaker=CircuitBreaker(failures=2, probe_interval=3),
        rescue=store,
    )
    report, _ = await run(pipeline)
    assert report.delivered == {"db": 0}
    reasons = undelivered_of(report, "db")
    assert sorted(reasons) == list(range(20))
    assert {reasons[i] for i in range(2)} == {FLAKY}
    assert {reasons[i] for i in range(2, 20)} == {UNHEALTHY}
    assert all(u.stored for u in report.undelivered)
    assert sink.probes
    store.seal()
    assert entry_ids(store, "db") == list(range(20))
    # A later replay delivers them, with their values.
    target = CollectSink("db")
    again = checked(await replay(store, [target]))
    assert again.delivered == {"db": 20}
    assert sorted(r.raw for r in target.records) == list(range(20))
    assert store.pending() == 0


async def test_a_permanent_failure_during_replay_moves_the_chunk_to_the_store(
    autojump_clock: trio.testing.MockClock, store: RescueStore
) -> None:
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
    report, _ = await run(pipeline)
    # Record 0 failed and opened the breaker; 1 .. parked; 3 could never be taken.
    assert [(u.record.id, u.reason, u.stored) for u in report.undelivered] == [
        (3, "sink raised PermanentError: flaky write", True)
    ]
    assert sorted(r.id for r in sink.records) == [i for i in range(12) if i != 3]
    store.seal()
    assert [(e.id, e.reason) for e in store.entries()] == [
        (3, "sink raised PermanentError: flaky write")
    ]


class RecoveringSink(Sink):
    """Down until ``up_at``; from then on every write takes ``seconds``."""

    def __init__(self, up_at: float, seconds: float) -> None:
        self.name = "db"
        self.up_at = up_at
        self.seconds = seconds
        self.records: list[Record] = []
        self.closes = 0

    async def write(self, batch: Sequence[Record]) -> None:
        if trio.current_time() < self.up_at:
            await trio.lowlevel.checkpoint()
            raise OSError("down")
        await trio.sleep(self.seconds)
        self.records.extend(batch)

    async def probe(self) -> None:
        await trio.lowlevel.checkpoint()
        if trio.current_time() < self.up_at:
            raise OSError("still down")

    async def aclose(self) -> None:
        self.closes += 1


async def test_a_drain_deadline_during_replay_leaves_the_rest_in_the_store_once(
    autojump_clock: trio.testing.MockClock, store: RescueStore
) -> None:
    # Open at t=1 (record 0 failed); the probe at t=6 fails, the one at t=11 closes
    # the breaker with records 0 .. 9 parked. Each write takes 2 s, parked and new
    # records take turns, and the drain deadline (t=22.3) cancels the write of 12.
    sink = RecoveringSink(up_at=10.0, seconds=2.0)
    pipeline = Pipeline(
        every_second(15),
        routes=[Route("r", sink)],
        batch_size=1,
        breaker=CircuitBreaker(failures=1, probe_interval=5),
        rescue=store,
        drain_timeout=7.0,
    )
    report, _ = await run(pipeline)
    assert report.timed_out
    assert report.drain_seconds == pytest.approx(7.0)
    assert sink.closes == 1
    assert [r.id for r in sink.records] == [0, 10, 1, 11, 2]
    assert report.delivered["db"] == 5
    assert {(u.record.id, u.reason, u.stored) for u in report.undelivered} == {
        (3, "sink unhealthy: OSError: down", True),
        (4, "sink unhealthy: OSError: down", True),
        *((i, "sink unhealthy: OSError: still down", True) for i in range(5, 10)),
        *((i, "drain deadline", True) for i in (12, 13, 14)),
    }
    store.seal()
    assert entry_ids(store, "db") == [*range(3, 10), 12, 13, 14]
    target = CollectSink("db")
    again = checked(await replay(store, [target]))
    assert again.delivered == {"db": 10}
    assert [r.raw for r in target.records] == [*range(3, 10), 12, 13, 14]


class Identity(trio.abc.Instrument):
    """After every task step, checks each sink's ``routed == delivered + undelivered +
    waiting + buffered + in_flight`` and ``stored <= undelivered``; notes what breaks
    (an instrument must not raise)."""

    def __init__(self) -> None:
        self.handle: PipelineHandle | None = None
        self.steps = 0
        self.problems: list[str] = []
        self.seen: set[str] = set()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if self.handle is None or self.handle.report is not None:
            return
        self.steps += 1
        for s in self.handle.statistics().sinks.values():
            self.seen.add(s.health)
            held = s.delivered + s.undelivered + s.waiting + s.buffered + s.in_flight
            if s.routed != held or not 0 <= s.stored <= s.undelivered:
                self.problems.append(f"{s!r}")


async def test_the_statistics_add_up_after_every_task_step(
    autojump_clock: trio.testing.MockClock, store: RescueStore
) -> None:
    sinks = [
        FlakySink(SlowSink(CollectSink("a"), per_batch=0.25), outages=[(2, 9)], has_probe=True),
        FlakySink(name="b", outages=[(1, 4)], permanent={12}),
        FlakySink(name="c", fail_on={1, 2, 3, 7}),
    ]
    pipeline = Pipeline(
        ScriptedSource([x for i in range(60) for x in (Pause(0.25), i)]),
        routes=[Route("r", sinks)],
        batch_size=2,
        capacity=1,
        retry=RetryPolicy(attempts=2, initial_backoff=0.25),
        breaker=CircuitBreaker(failures=1, probe_interval=1.0),
        rescue=store,
        drain_timeout=2.0,
    )
    watcher = Identity()
    trio.lowlevel.add_instrument(watcher)
    try:
        async with running(pipeline) as handle:
            watcher.handle = handle
            report = checked(await handle.wait())
    finally:
        trio.lowlevel.remove_instrument(watcher)
    assert watcher.problems == []
    assert watcher.steps > 200
    assert watcher.seen == {"healthy", "unhealthy", "probing"}
    end = handle.statistics().sinks
    assert sum(s.replayed for s in end.values()) > 0
    for name, s in end.items():
        assert s.stored == len(stored_ids(report, name))


# -- the error hook ------------------------------------------------------------------------


async def run_stage(sink: object, batches: Sequence[Sequence[int]], **kwargs: Any) -> Ledger:
    """Run one sink's writer on ``batches`` of record ids, outside a pipeline."""
    slot = SinkSlot(sink)
    ledger = Ledger([slot.name])
    account = ledger.accounts[slot.name]
    send, recv = trio.open_memory_channel[SinkBatch](len(batches))
    for ids in batches:
        batch = Batch.of([Record(i, f"raw {i}", i) for i in ids])
        ledger.admit(account, len(batch))
        send.send_nowait((batch, Ticket(ids[0], len(ids), 1)))
    send.close()
    control = StopControl(None, ledger)
    await SinkWriter(slot, account, ledger, control=control, **kwargs).run(recv)
    return ledger


class Hook:
    def __init__(self, fail: bool = False) -> None:
        self.got: list[list[Record]] = []
        self.closed = 0
        self.fail = fail

    def __call__(self, records: Sequence[Record]) -> None:
        self.got.append(list(records))
        if self.fail:
            raise RuntimeError("hook broke")

    def close(self) -> None:
        self.closed += 1


async def test_the_error_hook_gets_copies_of_the_failed_records_with_their_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = FlakySink(name="db", fail_on={1}, permanent={2})
    hook = Hook()
    ledger = await run_stage(sink, [[0, 1], [2], [3], [4]], errors=hook)
    assert [[r.id for r in got] for got in hook.got] == [[2], [3]]
    assert [type(r.error).__name__ for got in hook.got for r in got] == [
        "OSError",
        "PermanentError",
    ]
    assert hook.got[0][0].raw == "raw 2"
    assert hook.closed == 1
    assert ledger.accounts["db"].delivered == 3


async def test_an_error_hook_that_raises_is_disabled_and_logged(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FlakySink(name="db", fail_on={0, 1})
    hook = Hook(fail=True)
    ledger = await run_stage(sink, [[0], [1], [2]], errors=hook)
    assert len(hook.got) == 1
    assert hook.closed == 1
    assert [r.getMessage().split()[0] for r in caplog.records if r.levelno == logging.ERROR] == [
        "sink.write_failed",
        "sink.error_hook_failed",
        "sink.write_failed",
    ]
    assert ledger.accounts["db"].undelivered == 2


async def test_the_error_sink_gets_each_failed_record_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    db = FlakySink(name="db", fail_on={0})
    cache = FlakySink(name="cache", fail_on={0})
    errors = FlakySink(name="errors", fail_on={1})
    pipeline = Pipeline(
        [10, 11, 12, 13],
        routes=[Route("r", [db, cache])],
        infra=Infra(error=errors),
        batch_size=2,
    )
    report, _ = await run(pipeline)
    # Records 0 and 1 failed at both sinks: the error sink gets them once.
    assert [(r.id, r.raw, type(r.error).__name__) for r in errors.records] == [
        (0, 10, "OSError"),
        (1, 11, "OSError"),
    ]
    assert report.routed["errors"] == 2


async def test_the_error_feed_sends_without_waiting_and_counts_what_finds_no_room() -> None:
    ledger = Ledger(["error"])
    account = ledger.accounts["error"]
    send, recv = trio.open_memory_channel[SinkBatch](1)
    feed = ErrorFeed(send.clone(), account, ledger)
    send.close()
    feed([Record(0, "a", "a", error=OSError("x")), Record(1, "b", "b", error=OSError("x"))])
    feed([Record(2, "c", "c", error=OSError("x"))])  # no room: counted, dropped
    assert (account.routed, account.buffered, account.peak_buffered) == (2, 2, 2)
    assert ledger.discarded == {"error": 1}
    batch, ticket = recv.receive_nowait()
    assert [r.id for r in batch] == [0, 1]
    assert (ticket.first_id, ticket.count, ticket.pending) == (0, 2, 1)
    feed.close()
    with pytest.raises(trio.EndOfChannel):
        recv.receive_nowait()
    feed([Record(3, "d", "d")])  # closed: counted too
    assert ledger.discarded == {"error": 2}


async def test_error_feeds_of_one_ledger_send_each_record_once() -> None:
    ledger = Ledger(["error"])
    account = ledger.accounts["error"]
    send, recv = trio.open_memory_channel[SinkBatch](4)
    open_ticket(ledger, Ticket(0, 3, 2))  # the records' source batch is not settled
    a = ErrorFeed(send.clone(), account, ledger)
    b = ErrorFeed(send.clone(), account, ledger)
    a([Record(0, "a", "a"), Record(1, "b", "b")])
    b([Record(1, "b", "b"), Record(2, "c", "c")])
    b([Record(0, "a", "a")])
    assert [[r.id for r in batch] for batch, _ in take_buffered(recv)] == [[0, 1], [2]]
    assert (account.routed, ledger.discarded) == (3, {})


async def test_a_long_run_with_steady_failures_remembers_a_bounded_set_of_error_ids(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Every record fails at "all"; the even ones also make the when of "odd" raise.
    # Each reaches the error sink once, and the ledger forgets the ids of settled
    # batches instead of keeping one per failed record for the whole run.
    caplog.set_level(logging.CRITICAL, logger="trio_sink")
    most = 0

    class WatchedLedger(Ledger):
        def sent_to_errors(self, records: Iterable[Record]) -> list[Record]:
            nonlocal most
            fresh = super().sent_to_errors(records)
            most = max(most, self.error_ids_kept)
            return fresh

    monkeypatch.setattr(trio_sink._pipeline, "Ledger", WatchedLedger)

    async def failing(batch: Sequence[Record]) -> None:
        raise OSError("down")

    n = 40_000
    errors, odd = CollectSink("errors"), CollectSink("odd")
    report = await Pipeline(
        range(n),
        routes=[Route("all", failing), Route("odd", odd, when=lambda p: 1 // (p % 2) == 1)],
        infra=Infra(error=errors),
        retry=NO_RETRY,
    ).run()
    checked(report)
    ids = [r.id for r in errors.records]
    assert sorted(ids) == list(range(n))  # each once
    assert len(odd.records) == n // 2
    assert 0 < most < ERROR_IDS_AT_LEAST + 2 * 128


async def test_the_monitor_stage_never_stores_its_statistics_records(
    autojump_clock: trio.testing.MockClock, store: RescueStore
) -> None:
    sink = FlakySink(name="mon", fail_on=lambda k, batch: True)
    ledger = await run_stage(sink, [[-1], [-2]], data=False, rescue=store)
    assert (ledger.accounts["mon"].undelivered, ledger.discarded) == (0, {"monitor": 2})
    assert not any(u.stored for u in ledger.undelivered)
    store.seal()
    assert store.pending() == 0


# -- docs/faults.md --------------------------------------------------------------------------

DOC = Path(__file__).parent.parent / "docs" / "faults.md"


async def test_the_example_in_the_docs_runs_as_it_says(
    autojump_clock: trio.testing.MockClock,
    tmp_path: Path,
    inline_threads: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    namespace: dict[str, Any] = {}
    exec(compile(blocks[-1], str(DOC), "exec"), namespace)
    report = checked(await namespace["ride_out_an_outage"](tmp_path / "rescue"))
    assert capsys.readouterr().out.splitlines() == [
        "unhealthy",
        "True {'db': 80, 'archive': 80}",
        "1 True",
    ]
    assert report.ok
    with RescueStore(tmp_path / "rescue") as store:
        assert store.pending() == 0
