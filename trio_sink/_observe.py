"""Watching a run: statistics snapshots, the monitor stream, drain progress, idleness.

One task, the supervisor, does the periodic work of a run: it sends a statistics
record to the ``monitor`` group every ``monitor_interval``, logs ``drain.progress``
every ``progress_interval`` while a drain lasts, and stops the run when
``stop_when_idle`` has passed with no new item. It never waits on a sink: a monitor
record that finds the monitor's buffer full is counted in the report's ``discarded``
(a newer one follows) instead of waiting.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping

import trio

from ._breaker import BreakerState
from ._control import Pause, StopControl
from ._exceptions import describe
from ._feeds import LossyFeed
from ._ki import protected
from ._ledger import Ledger
from ._record import Record
from ._source import SourceStage
from ._stats import (
    DrainStatistics,
    PipelineState,
    PipelineStatistics,
    SinkStatistics,
    SourceStatistics,
)

__all__ = ["Monitor", "Watch", "snapshot", "supervise"]

MONITOR_GROUP = "monitor"

drain_log = logging.getLogger("trio_sink.drain")
log = logging.getLogger("trio_sink.pipeline")


class Watch:
    """What the supervisor watches: the stages still feeding the sinks, and a wake-up
    call. Stages tell it when they end (:meth:`stage_ended`); the source, when it
    produced something (:meth:`wake`, for ``stop_when_idle``)."""

    def __init__(self, open_stages: int) -> None:
        self.open_stages = open_stages
        # Set, and replaced, whenever the supervisor should look again.
        self.wakeup = trio.Event()
        self.on_all_ended: list[Callable[[], object]] = []
        """Called when the last stage ends."""

    def wake(self) -> None:
        self.wakeup.set()

    def stage_ended(self) -> None:
        self.open_stages -= 1
        if self.open_stages == 0:
            self.wake()
            for hook in self.on_all_ended:
                hook()


def snapshot(
    control: StopControl,
    ledger: Ledger,
    stage: SourceStage,
    pauses: dict[str, Pause],
    breakers: dict[str, BreakerState],
    busy: Mapping[str, Callable[[], float]] | None = None,
) -> PipelineStatistics:
    """A frozen snapshot of the run's counters. Sync; no checkpoint. ``busy``: per
    sink, what tells the seconds its writes took."""
    now = trio.current_time()
    sinks = {}
    pending_left = 0
    blocked = {d.account.name: d.blocked_seconds for d in stage.fanout.dests}
    for name, a in ledger.accounts.items():
        breaker = breakers.get(name)
        took = None if busy is None else busy.get(name)
        sinks[name] = SinkStatistics(
            name=name,
            routed=a.routed,
            delivered=a.delivered,
            undelivered=a.undelivered,
            waiting=a.waiting,
            buffered=a.buffered,
            in_flight=a.in_flight,
            peak_buffered=a.peak_buffered,
            paused=pauses[name].paused,
            undelivered_by_reason=a.by_reason,
            health="healthy" if breaker is None else _HEALTH[breaker.state],
            retries=a.retries,
            stored=a.stored,
            replayed=a.replayed,
            breaker_opened=0 if breaker is None else breaker.times_opened,
            busy_seconds=0.0 if took is None else took(),
            blocked_seconds=blocked.get(name, 0.0),
        )
        pending_left += a.pending
    state: PipelineState
    if control.finished:
        state = "stopped"
    elif control.stopping:
        state = "draining"
    else:
        state = "running"
    drain = None
    if control.stop_time is not None:
        assert control.stop_kind is not None
        deadline = control.deadline
        drain = DrainStatistics(
            kind=control.stop_kind,
            started_at=control.stop_time,
            elapsed=control.seconds_since_stop(),
            pending_left=pending_left,
            deadline=deadline,
            time_left=None if deadline is None else max(0.0, deadline - now),
        )
    return PipelineStatistics(
        state=state,
        time=now,
        received=ledger.received,
        source=SourceStatistics(
            received=ledger.received,
            dispatched=ledger.dispatched,
            undelivered=ledger.unrouted,
            pulled=len(stage.buf),
            paused=stage.pause.paused,
            acknowledged=None if stage.acks is None else stage.acks.acknowledged,
            unacknowledged_age=None if stage.acks is None else stage.acks.oldest_age(),
        ),
        sinks=sinks,
        discarded=ledger.discarded,
        drain=drain,
    )


_HEALTH = {"closed": "healthy", "open": "unhealthy", "half-open": "probing"}


class Monitor:
    """The monitor group's sink, as the supervisor feeds it: one record a snapshot, sent
    without waiting (a record that finds no room is counted as discarded: waiting would
    let the monitor hold the pipeline; a newer snapshot follows)."""

    def __init__(self, feed: LossyFeed, interval: float) -> None:
        self.feed = feed
        self.interval = interval
        # Around the monitor's task: after the final record, it gets one interval to
        # write what it holds, so that a slow or hung monitor never holds the run.
        self.scope = trio.CancelScope()

    def emit(self, stats: PipelineStatistics) -> None:
        """Send one statistics record. Sync: never waits for the monitor sink."""
        rid = self.feed.ledger.generate()
        self.feed.offer((Record(rid, stats, stats),))


@protected
async def supervise(
    control: StopControl,
    watch: Watch,
    stage: SourceStage,
    take_snapshot: Callable[[], PipelineStatistics],
    *,
    monitor: Monitor | None,
    progress_interval: float | None,
    stop_when_idle: float | None,
) -> None:
    """The run's periodic work, until every stage that feeds the sinks has ended; then
    the monitor's final record, and the end of the monitor's input."""
    now = trio.current_time()
    next_monitor = math.inf if monitor is None else now + monitor.interval
    next_progress = math.inf
    try:
        while watch.open_stages > 0:
            watch.wakeup = trio.Event()
            if control.stopping and next_progress == math.inf and progress_interval:
                assert control.stop_time is not None
                next_progress = control.stop_time + progress_interval
            next_idle = math.inf
            if (
                stop_when_idle is not None
                and not control.stopping
                and not stage.pause.paused
                and not stage.shipping  # it wakes this task when it has shipped
            ):
                next_idle = stage.last_activity + stop_when_idle
            with trio.move_on_at(min(next_monitor, next_progress, next_idle)):
                await watch.wakeup.wait()
            now = trio.current_time()
            if (
                stop_when_idle is not None
                and not control.stopping
                and not stage.pause.paused
                and not stage.shipping
                and now >= stage.last_activity + stop_when_idle
            ):
                log.info("pipeline.idle seconds=%.3f", now - stage.last_activity)
                control.stop("idle")
            if now >= next_progress and progress_interval:
                _log_progress(take_snapshot())
                next_progress = _next_tick(next_progress, progress_interval, now)
            if monitor is not None and now >= next_monitor:
                _emit(monitor, take_snapshot)
                next_monitor = _next_tick(next_monitor, monitor.interval, now)
        if monitor is not None:
            _emit(monitor, take_snapshot)  # the final record
            monitor.scope.deadline = trio.current_time() + monitor.interval
    finally:
        if monitor is not None:
            monitor.feed.close()


def _next_tick(tick: float, interval: float, now: float) -> float:
    """The next tick after ``now`` on the grid ``tick + k * interval`` (ticks missed
    while the task waited are skipped, not made up)."""
    return tick + interval * (math.floor((now - tick) / interval) + 1)


def _emit(monitor: Monitor, take_snapshot: Callable[[], PipelineStatistics]) -> None:
    try:
        stats = take_snapshot()
    except Exception as exc:  # pragma: no cover - a snapshot only reads counters
        log.error('monitor.snapshot_failed error="%s"', describe(exc), exc_info=exc)
        return
    monitor.emit(stats)


def _log_progress(stats: PipelineStatistics) -> None:
    if not drain_log.isEnabledFor(logging.INFO):
        return
    drain = stats.drain
    assert drain is not None
    time_left = "none" if drain.time_left is None else f"{drain.time_left:.3f}"
    for sink in stats.sinks.values():
        if sink.pending:
            drain_log.info(
                "drain.progress sink=%s pending_left=%d seconds=%.3f time_left=%s",
                sink.name,
                sink.pending,
                drain.elapsed,
                time_left,
            )
