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
from collections.abc import Callable

import trio

from ._drain import DrainControl
from ._exceptions import describe
from ._ledger import SinkAccount, Ticket
from ._record import Record
from ._route import SinkBatch
from ._source import SourceStage
from ._stats import (
    DrainStatistics,
    PipelineState,
    PipelineStatistics,
    SinkStatistics,
    SourceStatistics,
)

__all__ = ["Monitor", "snapshot", "supervise"]

MONITOR_GROUP = "monitor"

drain_log = logging.getLogger("trio_sink.drain")
log = logging.getLogger("trio_sink.pipeline")


def snapshot(control: DrainControl, stage: SourceStage) -> PipelineStatistics:
    """A frozen snapshot of the run's counters. Sync; no checkpoint."""
    ledger = control.ledger
    now = trio.current_time()
    waiting = stage.fanout.waiting()
    sinks = {}
    pending_left = 0
    for name, a in ledger.accounts.items():
        w = waiting.get(name, 0)
        sinks[name] = SinkStatistics(
            name=name,
            routed=a.routed,
            delivered=a.delivered,
            undelivered=a.undelivered,
            waiting=w,
            buffered=a.buffered,
            in_flight=a.in_flight,
            peak_buffered=a.peak_buffered,
            paused=a.paused,
            undelivered_by_reason=a.by_reason,
            health=_health(a),
            retries=a.retries,
            stored=a.stored,
            replayed=a.replayed,
            breaker_opened=0 if a.breaker is None else a.breaker.times_opened,
        )
        pending_left += w + a.buffered + a.in_flight
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
            paused=control.source_paused,
        ),
        sinks=sinks,
        discarded=ledger.discarded,
        drain=drain,
    )


_HEALTH = {"closed": "healthy", "open": "unhealthy", "half-open": "probing"}


def _health(account: SinkAccount) -> str:
    breaker = account.breaker
    return "healthy" if breaker is None else _HEALTH[breaker.state]


class Monitor:
    """The monitor group's sink, as the supervisor feeds it: one record a snapshot."""

    def __init__(
        self, account: SinkAccount, send: trio.MemorySendChannel[SinkBatch], interval: float
    ) -> None:
        self.account = account
        self.send = send
        self.interval = interval
        self.full = False  # the last record found no room (logged once a spell)
        # Around the monitor's task: after the final record, it gets one interval to
        # write what it holds, so that a slow or hung monitor never holds the run.
        self.scope = trio.CancelScope()

    def emit(self, control: DrainControl, stats: PipelineStatistics) -> None:
        """Send one statistics record, or report it if the monitor's buffer is full.
        Sync: never waits for the monitor sink."""
        ledger = control.ledger
        ledger.generated += 1
        record = Record(-ledger.generated, stats, stats)
        account = self.account
        try:
            self.send.send_nowait(((record,), Ticket(record.id, 1, 1)))
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            # No room (or the monitor's task has ended): counted and dropped on purpose,
            # a newer snapshot follows. Waiting would let the monitor hold the pipeline.
            ledger.discarded[MONITOR_GROUP] += 1
            if not self.full:
                self.full = True
                log.warning("monitor.full sink=%s buffered=%d", account.name, account.buffered)
        else:
            self.full = False
            account.routed += 1
            account.add_buffered(1)


async def supervise(
    control: DrainControl,
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
        while control.open_stages > 0:
            control.wakeup = trio.Event()
            if control.stopping and next_progress == math.inf and progress_interval:
                assert control.stop_time is not None
                next_progress = control.stop_time + progress_interval
            next_idle = math.inf
            if stop_when_idle is not None and not control.stopping and not control.source_paused:
                if control.shipping:
                    control.idle_deferred = True
                else:
                    next_idle = control.last_activity + stop_when_idle
            with trio.move_on_at(min(next_monitor, next_progress, next_idle)):
                await control.wakeup.wait()
            now = trio.current_time()
            if (
                stop_when_idle is not None
                and not control.stopping
                and not control.source_paused
                and not control.shipping
                and now >= control.last_activity + stop_when_idle
            ):
                log.info("pipeline.idle seconds=%.3f", now - control.last_activity)
                control.stop("idle")
            if now >= next_progress and progress_interval:
                _log_progress(control, take_snapshot())
                next_progress = _next_tick(next_progress, progress_interval, now)
            if monitor is not None and now >= next_monitor:
                _emit(monitor, control, take_snapshot)
                next_monitor = _next_tick(next_monitor, monitor.interval, now)
        if monitor is not None:
            _emit(monitor, control, take_snapshot)  # the final record
            monitor.scope.deadline = trio.current_time() + monitor.interval
    finally:
        if monitor is not None:
            monitor.send.close()


def _next_tick(tick: float, interval: float, now: float) -> float:
    """The next tick after ``now`` on the grid ``tick + k * interval`` (ticks missed
    while the task waited are skipped, not made up)."""
    return tick + interval * (math.floor((now - tick) / interval) + 1)


def _emit(
    monitor: Monitor, control: DrainControl, take_snapshot: Callable[[], PipelineStatistics]
) -> None:
    try:
        stats = take_snapshot()
    except Exception as exc:  # pragma: no cover - a snapshot only reads counters
        log.error('monitor.snapshot_failed error="%s"', describe(exc), exc_info=exc)
        return
    monitor.emit(control, stats)


def _log_progress(control: DrainControl, stats: PipelineStatistics) -> None:
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
