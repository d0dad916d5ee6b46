"""The monitor stream (a statistics record to the ``monitor`` group every
``monitor_interval``, and a final one) and the drain's log lines.

The monitor must never hold the pipeline: a record that finds its buffer full is
counted in ``report.discarded["monitor"]``; a monitor sink that fails is reported like
any sink. All timing is virtual (``autojump_clock``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from helpers import checked, ended, messages

from trio_sink import (
    CircuitBreaker,
    DeliveryReport,
    Infra,
    Pipeline,
    PipelineStatistics,
    Record,
    RescueStore,
    Route,
)
from trio_sink._feeds import LossyFeed, SinkBatch
from trio_sink._ledger import Ledger
from trio_sink.sinks import CollectSink, JsonlFileSink, SlowSink
from trio_sink.testing import FlakySink, HangingSink, Pause, RecordingSink, ScriptedSource, running


def monitor_accounted(report: DeliveryReport, name: str = "mon") -> None:
    """Every statistics record made went to the monitor sink or was discarded."""
    assert report.generated == report.routed[name] + report.discarded.get("monitor", 0)


# -- the stream ------------------------------------------------------------------------


@pytest.mark.parametrize(("interval", "ticks"), [(0.5, 10), (1.0, 5), (2.0, 2), (10.0, 0)])
async def test_one_record_per_interval_and_a_final_one(
    autojump_clock: trio.testing.MockClock, interval: float, ticks: int
) -> None:
    monitor = RecordingSink("mon")
    a = CollectSink("a")
    pipeline = Pipeline(
        ScriptedSource([0, Pause(5.25), 1]),
        routes=[Route("r", a)],
        infra=Infra(monitor=monitor),
        monitor_interval=interval,
        batch_timeout=0,
    )
    report = checked(await pipeline.run())
    records = monitor.records
    n = ticks + 1
    assert [r.id for r in records] == [-k for k in range(1, n + 1)]
    assert [r.payload.time for r in records] == [interval * k for k in range(1, n)] + [5.25]
    assert all(isinstance(r.payload, PipelineStatistics) for r in records)
    assert all(r.raw is r.payload for r in records)
    assert [r.payload.state for r in records] == ["running"] * ticks + ["draining"]
    assert (report.generated, report.routed["mon"], report.delivered["mon"]) == (n, n, n)
    assert "monitor" not in report.discarded
    assert report.ok
    assert trio.current_time() == 5.25


async def test_the_final_record_comes_once_every_other_stage_has_ended(
    autojump_clock: trio.testing.MockClock,
) -> None:
    monitor = RecordingSink("mon")
    slow = RecordingSink("slow")
    pipeline = Pipeline(
        range(4),
        routes=[Route("r", [CollectSink("fast"), SlowSink(slow, per_batch=1.25)])],
        infra=Infra(monitor=monitor),
        batch_size=2,
    )
    report = checked(await pipeline.run())
    final = monitor.records[-1].payload
    assert isinstance(final, PipelineStatistics)
    # The source ended at t=0; the slow sink wrote until t=2.5.
    assert [r.payload.time for r in monitor.records] == [1.0, 2.0, 2.5]
    assert final.state == "draining"
    assert final.drain is not None
    assert (final.drain.kind, final.drain.started_at, final.drain.elapsed) == (
        "source exhausted",
        0,
        2.5,
    )
    assert final.received == 4
    for name in ("fast", "slow"):
        assert final.sinks[name].delivered == 4
        assert final.sinks[name].pending == 0
    # The monitor's own count at the moment the snapshot was taken.
    assert final.sinks["mon"].routed == 2
    assert report.generated == 3


async def test_without_a_monitor_sink_no_record_is_made(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pipeline = Pipeline(
        ScriptedSource([0, Pause(5.5), 1]),
        routes=[Route("r", CollectSink("a"))],
        monitor_interval=0.25,
    )
    report = checked(await pipeline.run())
    assert report.generated == 0
    assert "monitor" not in report.discarded
    assert "monitor" not in report.routed


async def test_the_stream_encodes_to_json_lines(
    mock_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # The file sink writes in a worker thread: the clock jumps only after 50 ms of real
    # idleness, far longer than a write, so that no jump cuts the monitor's grace short.
    mock_clock.autojump_threshold = 0.05
    path = tmp_path / "monitor.jsonl"
    pipeline = Pipeline(
        ScriptedSource([0, Pause(2.5), 1]),
        routes=[Route("r", CollectSink("a"))],
        infra=Infra(monitor=JsonlFileSink(path, name="mon")),
        batch_timeout=0,
        # The file sink writes in a worker thread, during which the autojump clock may
        # run ahead: no deadline, so that it cannot cut the monitor short.
        drain_timeout=None,
    )
    report = checked(await pipeline.run())
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert report.ok
    assert report.delivered["mon"] == report.generated == len(lines) == 3
    assert [line["id"] for line in lines] == [-1, -2, -3]
    for line in lines:
        assert line["raw"] == line["payload"]
        assert set(line) == {"id", "raw", "payload"}
    payloads = [line["payload"] for line in lines]
    assert [p["time"] for p in payloads] == [1.0, 2.0, 2.5]
    assert [p["state"] for p in payloads] == ["running", "running", "draining"]
    assert [p["received"] for p in payloads] == [1, 1, 2]
    assert payloads[0]["source"] == {
        "received": 1,
        "dispatched": 1,
        "undelivered": 0,
        "pulled": 0,
        "paused": False,
        "acknowledged": None,
        "unacknowledged_age": None,
    }
    assert payloads[0]["drain"] is None
    assert payloads[2]["drain"]["kind"] == "source exhausted"
    assert payloads[2]["drain"]["deadline"] is None


async def test_the_stream_encodes_sinks_and_discarded_as_json_objects(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    path = tmp_path / "monitor.jsonl"
    pipeline = Pipeline(
        ScriptedSource([0, Pause(1.5), 1]),
        routes=[Route("r", CollectSink("a"))],
        infra=Infra(monitor=JsonlFileSink(path, name="mon")),
        batch_timeout=0,
        drain_timeout=None,
    )
    checked(await pipeline.run())
    payload: dict[str, Any] = json.loads(path.read_text().splitlines()[0])["payload"]
    assert payload["discarded"] == {}
    assert payload["sinks"]["a"]["delivered"] == 1
    assert payload["sinks"]["a"]["undelivered_by_reason"] == {}


# -- a monitor that lags, is paused, fails ---------------------------------------------


async def test_a_slow_monitor_never_holds_the_pipeline(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink")
    a = RecordingSink("a")
    monitor = RecordingSink("mon")
    source = ScriptedSource(endless=lambda i: i, interval=0.5)
    pipeline = Pipeline(
        source,
        routes=[Route("r", a)],
        infra=Infra(monitor=SlowSink(monitor, per_batch=10.0)),
        batch_size=1,
        batch_timeout=0,
        capacity=1,
        drain_timeout=None,
    )
    async with running(pipeline) as handle:
        await trio.sleep(20.25)
        during = handle.statistics()
        handle.stop()
    report = checked(await handle.wait())

    # The business sink took every item the moment it came.
    assert ended(a) == [0.5 * k for k in range(1, 41)]
    assert report.received == 40
    assert report.delivered["a"] == 40
    # The monitor: one record in its write, one in its channel, the rest discarded.
    mon = during.sinks["mon"]
    assert (mon.in_flight, mon.buffered) == (1, 1)
    assert during.discarded["monitor"] >= 15
    assert report.generated == 21  # t=1 .. t=20, and the final record
    monitor_accounted(report)
    assert report.delivered["mon"] == report.routed["mon"] == len(monitor.records)
    assert report.ok  # discarded on purpose is not undelivered
    full = messages(caplog, "monitor.full")
    assert 1 <= len(full) < report.discarded["monitor"]
    assert all(r.levelno == logging.WARNING for r in caplog.records if "monitor.full" in r.msg)


async def test_a_paused_monitor_fills_its_buffer_then_discards(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a = CollectSink("a")
    monitor = RecordingSink("mon")
    pipeline = Pipeline(
        ScriptedSource(endless=lambda i: i, interval=0.3),
        routes=[Route("r", a)],
        infra=Infra(monitor=SlowSink(monitor, per_batch=0.75)),
        batch_size=1,
        batch_timeout=0,
        capacity=2,
    )
    async with running(pipeline) as handle:
        await trio.sleep(1.5)
        handle.pause("mon")  # during the write of -1 (t=1 .. 1.75), which completes
        await trio.sleep(8)
        during = handle.statistics()
        handle.resume("mon")
        handle.stop()  # t=9.5
    report = checked(await handle.wait())
    mon = during.sinks["mon"]
    assert mon.paused
    assert (mon.delivered, mon.buffered, mon.in_flight) == (1, 2, 0)  # -2 and -3 wait
    assert during.discarded["monitor"] == 6  # t=4 .. t=9
    # After the resume at 9.5 the final record (-10) is made at once, and the monitor
    # gets one interval (to 10.5) for its backlog: -2 is written (0.75 s), -3 and the
    # final record are cut, and counted as discarded rather than reported.
    assert [r.id for r in monitor.records] == [-1, -2]
    assert ended(monitor) == [1.75, 10.25]
    assert report.generated == 10
    assert report.discarded["monitor"] == 8
    monitor_accounted(report)
    assert len(a.records) == report.received == 31
    assert report.ok


async def test_a_failing_monitor_sink_never_makes_the_run_not_ok(
    autojump_clock: trio.testing.MockClock,
) -> None:
    monitor = FlakySink(name="mon", fail_on=lambda k, _batch: True)
    a = CollectSink("a")
    pipeline = Pipeline(
        ScriptedSource([0, Pause(3.5), 1]),
        routes=[Route("r", a)],
        infra=Infra(monitor=monitor),
        batch_timeout=0,
    )
    async with running(pipeline) as handle:
        pass
    report = checked(await handle.wait())
    assert [r.id for r in a.records] == [0, 1]
    assert report.delivered == {"a": 2, "mon": 0}
    # Its statistics records are not data: what it failed to write is discarded, and
    # the run is ok.
    assert report.ok
    assert report.discarded == {"monitor": 4}
    assert report.routed["mon"] == 0
    assert monitor.writes == 4
    stats = handle.statistics()
    assert dict(stats.sinks["mon"].undelivered_by_reason) == {}
    assert stats.drain is not None
    assert stats.drain.kind == "source exhausted"
    monitor_accounted(report)


async def test_a_hanging_monitor_never_holds_the_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pipeline = Pipeline(
        ScriptedSource([0, Pause(2.5), 1]),
        routes=[Route("r", CollectSink("a"))],
        infra=Infra(monitor=HangingSink("mon")),
        batch_timeout=0,
        drain_timeout=None,
    )
    report = checked(await pipeline.run())
    # The data is done at 2.5; the monitor gets one interval for what it holds, then
    # its statistics records are counted as discarded: the run is ok, not timed out.
    assert trio.current_time() == 3.5
    assert report.delivered == {"a": 2, "mon": 0}
    assert report.undelivered == ()
    assert report.discarded["monitor"] == report.generated == 3
    assert report.ok
    assert not report.timed_out


async def test_the_monitor_keeps_flowing_under_isolate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    monitor = RecordingSink("mon")
    a, b = RecordingSink("a"), RecordingSink("b")
    # Items at t=0.25, 0.75, 1.25, ...: never at a monitor tick.
    script = [Pause(0.25)] + [step for i in range(20) for step in (i, Pause(0.5))]
    pipeline = Pipeline(
        ScriptedSource(script),
        routes=[Route("r", [SlowSink(a, per_batch=0.25), b])],
        infra=Infra(monitor=monitor),
        batch_size=1,
        batch_timeout=0,
        capacity=100,
    )
    async with running(pipeline) as handle:
        await trio.sleep(0.375)  # during a's write of [0] (0.25 .. 0.5)
        handle.isolate("b")
        await trio.sleep(5)
        isolated = [r.payload for r in monitor.records]
        handle.resume_all()
        handle.stop()
    report = checked(await handle.wait())
    assert [s.time for s in isolated] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert all(s.sinks["a"].paused and not s.sinks["b"].paused for s in isolated)
    assert [s.sinks["a"].delivered for s in isolated] == [1] * 5
    assert [s.sinks["b"].delivered for s in isolated] == [2, 4, 6, 8, 10]
    assert report.ok


# -- the drain's log lines -------------------------------------------------------------


async def test_drain_logs_started_progress_and_complete(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink")
    pipeline = Pipeline(
        range(4),
        routes=[Route("r", [SlowSink(CollectSink("slow"), per_batch=1.0), CollectSink("fast")])],
        batch_size=1,
        capacity=10,
        drain_timeout=10,
        progress_interval=1.25,
    )
    report = checked(await pipeline.run())
    assert report.ok
    assert messages(caplog, "pipeline.stop") == [
        "pipeline.stop kind=source exhausted received=4 drain_timeout=10.0"
    ]
    started = messages(caplog, "drain.started")
    # When the source ended (t=0), the fast sink had taken at most its first batch.
    assert started[0] == "drain.started sink=slow pending=4"
    assert len(started) == 2
    assert started[1].startswith("drain.started sink=fast pending=")
    # Writes of the slow sink end at t=1, 2, 3, 4; the fast sink is done at once.
    assert messages(caplog, "drain.progress") == [
        "drain.progress sink=slow pending_left=3 seconds=1.250 time_left=8.750",
        "drain.progress sink=slow pending_left=2 seconds=2.500 time_left=7.500",
        "drain.progress sink=slow pending_left=1 seconds=3.750 time_left=6.250",
    ]
    assert sorted(messages(caplog, "drain.complete")) == [
        "drain.complete sink=fast seconds=0.000 delivered=4",
        "drain.complete sink=slow seconds=4.000 delivered=4",
    ]
    assert all(r.name == "trio_sink.drain" for r in caplog.records if r.msg.startswith("drain."))
    assert all(r.levelno == logging.INFO for r in caplog.records if r.msg.startswith("drain."))


async def test_drain_progress_without_a_deadline_and_when_disabled(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink")
    for progress in (1.0, None):
        caplog.clear()
        pipeline = Pipeline(
            range(2),
            routes=[Route("r", SlowSink(CollectSink("s"), per_batch=1.25))],
            batch_size=1,
            drain_timeout=None,
            progress_interval=progress,
        )
        checked(await pipeline.run())
        expected = [
            "drain.progress sink=s pending_left=2 seconds=1.000 time_left=none",
            "drain.progress sink=s pending_left=1 seconds=2.000 time_left=none",
        ]
        assert messages(caplog, "drain.progress") == (expected if progress else [])


async def test_drain_deadline_is_a_warning_naming_the_paused_state(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink")
    pipeline = Pipeline(
        range(6),
        routes=[Route("r", [HangingSink("h", after=1), CollectSink("c")])],
        batch_size=2,
        drain_timeout=3,
    )
    report = checked(await pipeline.run())
    assert sorted(u.record.id for u in report.undelivered) == [2, 3, 4, 5]
    records = [r for r in caplog.records if r.getMessage().startswith("drain.deadline")]
    assert [r.getMessage() for r in records] == [
        'drain.deadline sink=h undelivered=4 reason="drain deadline" paused=False'
    ]
    assert records[0].levelno == logging.WARNING
    assert records[0].name == "trio_sink.drain"
    assert messages(caplog, "drain.complete") == ["drain.complete sink=c seconds=0.000 delivered=6"]


async def test_drain_deadline_counts_every_record_given_up_for_the_sink(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink")
    a = RecordingSink("a")
    pipeline = Pipeline(
        range(20),
        routes=[Route("r", [SlowSink(a, per_batch=1.0), CollectSink("b")])],
        batch_size=2,
        capacity=2,
        drain_timeout=5,
    )
    async with running(pipeline) as handle:
        await trio.sleep(0.5)
        handle.pause("a")
        await trio.sleep(4.5)
        handle.stop()
    report = checked(await handle.wait())
    lost = {name: sum(1 for u in report.undelivered if u.sink == name) for name in ("a", "b")}
    assert lost == {"a": 6, "b": 2}
    assert sorted(messages(caplog, "drain.deadline")) == [
        'drain.deadline sink=a undelivered=6 reason="drain deadline" paused=True',
        'drain.deadline sink=b undelivered=2 reason="drain deadline" paused=False',
    ]


# -- the monitor and the rescue store ---------------------------------------------------------


@pytest.fixture
def inline_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Store writes in the event loop, after a checkpoint: under the autojump clock a
    worker thread would let virtual time jump ahead by its real duration."""

    async def run_sync(fn: Any, *args: Any, **kwargs: Any) -> Any:
        await trio.lowlevel.checkpoint()
        return fn(*args)

    monkeypatch.setattr(trio.to_thread, "run_sync", run_sync)


def slow_monitor() -> Any:
    return SlowSink(RecordingSink("mon"), per_batch=10.0)


def hung_monitor() -> Any:
    return HangingSink("mon")


def monitor_failing_then_hung() -> Any:
    return FlakySink(HangingSink("mon"), fail_on={0})


@pytest.mark.parametrize(
    ("make_monitor", "breaker"),
    [
        pytest.param(slow_monitor, False, id="slow"),
        pytest.param(hung_monitor, False, id="hung"),
        pytest.param(monitor_failing_then_hung, False, id="failing-then-hung"),
        pytest.param(monitor_failing_then_hung, True, id="failing-behind-a-breaker"),
    ],
)
async def test_no_statistics_record_reaches_the_rescue_store(
    autojump_clock: trio.testing.MockClock,
    tmp_path: Path,
    inline_threads: None,
    make_monitor: Callable[[], Any],
    breaker: bool,
) -> None:
    # The data sink takes 1 s a record: at the drain deadline (t=2.5) records 2 .. 5
    # are given up and stored. The monitor is slow or hung then (its records -1 at
    # t=1 and -2 at t=2 are in its hands or channel); a failing one has given up -1
    # (with a breaker, -2 too: set aside while the breaker is open). Whether given-up
    # statistics records are reported (never stored) or counted as discarded, none of
    # them is in the store.
    path = tmp_path / "rescue"
    with RescueStore(path, fsync="never") as store:
        pipeline = Pipeline(
            range(6),
            routes=[Route("r", SlowSink(CollectSink("a"), per_batch=1.0))],
            infra=Infra(monitor=make_monitor()),
            batch_size=1,
            drain_timeout=2.5,
            monitor_interval=1.0,
            breaker={"mon": CircuitBreaker(failures=1, probe_interval=10.0)} if breaker else None,
            rescue=store,
        )
        report = checked(await pipeline.run())
    assert report.timed_out
    assert report.delivered["a"] == 2
    statistics = [u for u in report.undelivered if u.record.id < 0]
    assert all(u.sink == "mon" and not u.stored for u in statistics)
    assert report.generated == 2
    assert len(statistics) + report.discarded.get("monitor", 0) == report.generated
    data = sorted(u.record.id for u in report.undelivered if u.record.id >= 0)
    assert data == [2, 3, 4, 5]
    assert all(u.stored for u in report.undelivered if u.record.id >= 0)
    # Read back by a fresh store object, as a later process would.
    entries = list(RescueStore(path).entries())
    assert [e.id for e in entries if e.id < 0] == []
    assert sorted((e.sink, e.id) for e in entries) == [("a", i) for i in data]


async def test_a_lossy_feed_logs_the_first_loss_of_each_spell(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A loss is logged when a spell of losses begins; a batch that finds room ends the
    # spell, and the next loss is logged again.
    ledger = Ledger(["mon"])
    send, recv = trio.open_memory_channel[SinkBatch](1)
    feed = LossyFeed(send, ledger.accounts["mon"], ledger, "monitor")

    def stats(i: int) -> tuple[Record, ...]:
        return (Record(-i, {"n": i}, {"n": i}),)

    with caplog.at_level(logging.WARNING, logger="trio_sink.pipeline"):
        assert feed.offer(stats(1))
        assert not feed.offer(stats(2))  # full: a spell begins
        assert not feed.offer(stats(3))
        recv.receive_nowait()
        ledger.take(ledger.accounts["mon"], 1)  # the monitor's task took it
        assert feed.offer(stats(4))  # room: the spell ended
        assert not feed.offer(stats(5))  # a new spell
    assert messages(caplog, "monitor.full") == ["monitor.full sink=mon buffered=1"] * 2
    assert ledger.discarded == {"monitor": 3}
    assert ledger.accounts["mon"].routed == 2
