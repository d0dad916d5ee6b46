"""Pipeline and PipelineHandle: the nursery that holds the stages, end to end.

    source stage ──▶ route stage ──▶ one task per sink (business and infra alike)

Every channel is bounded (``capacity`` batches) and carries whole batches. Stop closes
the send side of the source stage; each later stage iterates its input to
exhaustion and closes its own output, so the end of input ripples down. The drain
deadline (see ``_drain``) bounds how long that may take; past it, every stage reports
what it holds, and the report lists every record that was not delivered.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
from collections import Counter
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, final

import trio
from trio_util import AsyncValue

from ._drain import DrainControl
from ._exceptions import ConfigError, UnknownSinkError
from ._faults import ErrorFeed
from ._ledger import Ledger, SinkAccount
from ._observe import Monitor, snapshot, supervise
from ._report import DEADLINE, IMMEDIATE, DeliveryReport, SourceError
from ._rescue import RescueStore
from ._retry import CircuitBreaker, RetryPolicy
from ._route import (
    INFRA_GROUPS,
    Dest,
    Fanout,
    Infra,
    Route,
    Router,
    SinkBatch,
    is_async_callable,
)
from ._sink import SinkSlot
from ._sink_stage import run_sink_stage
from ._source import Source, SourceStage, run_source_stage
from ._stats import PipelineStatistics

__all__ = ["Pipeline", "PipelineHandle"]

log = logging.getLogger("trio_sink.pipeline")
drain_log = logging.getLogger("trio_sink.drain")

T = TypeVar("T")


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _check_seconds(name: str, value: object, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        expected = "a finite number of seconds >= 0" + (" or None" if optional else "")
        raise ConfigError(f"{name} must be {expected}, got {value!r}")
    return float(value)


def _check_positive(name: str, value: object, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    seconds = _check_seconds(name, value)
    if not seconds:
        expected = "a finite number of seconds > 0" + (" or None" if optional else "")
        raise ConfigError(f"{name} must be {expected}, got {value!r}")
    return seconds


def _per_sink(name: str, value: object, kind: type[T], sinks: Sequence[str]) -> dict[str, T]:
    """One setting for every sink, or a mapping by sink name; as a mapping."""
    if value is None:
        return {}
    if isinstance(value, kind):
        return dict.fromkeys(sinks, value)
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{name} must be a {kind.__name__}, a mapping from sink name to"
            f" {kind.__name__}, or None; got {value!r}"
        )
    out: dict[str, T] = {}
    for key, item in value.items():
        if key not in sinks:
            raise ConfigError(
                f"{name} names the sink {key!r}, which the pipeline does not have;"
                f" its sinks are: {', '.join(map(repr, sinks))}"
            )
        if not isinstance(item, kind):
            raise ConfigError(f"{name}[{key!r}] must be a {kind.__name__}, got {item!r}")
        out[key] = item
    return out


def _check_source(source: object) -> None:
    if isinstance(source, (str, bytes)):
        raise ConfigError(
            f"source must be an iterable or async iterable of items, got the"
            f" {type(source).__name__} {source!r}; wrap it in a list for one item"
        )
    if inspect.isasyncgenfunction(source) or inspect.isgeneratorfunction(source):
        raise ConfigError(
            f"source must be an iterable or async iterable, got the generator function"
            f" {source!r}; call it to pass its generator"
        )
    if not isinstance(source, (Source, AsyncIterable, Iterable)):
        raise ConfigError(
            f"source must be an Iterable, an AsyncIterable or a trio_sink.Source, got {source!r}"
        )


@final
class PipelineHandle:
    """Controls a running pipeline; returned by ``await nursery.start(pipeline.run)``.

    Every control method is sync and not a checkpoint, so it can be called from any
    task of the run (or from a signal handler task); called after the run has ended,
    it does nothing. A sink is named by its name; an unknown name raises
    :class:`UnknownSinkError`, also after the run.
    """

    def __init__(
        self,
        control: DrainControl,
        take_snapshot: Callable[[], PipelineStatistics],
        monitor_sink: str | None,
    ) -> None:
        self._control = control
        self._snapshot = take_snapshot
        self._monitor_sink = monitor_sink
        self._report: DeliveryReport | None = None
        self._final: PipelineStatistics | None = None
        self._state = AsyncValue("running")

    def stop(self, *, immediate: bool = False) -> None:
        """Stop the run: stop pulling from the source and drain.

        Sync, not a checkpoint. Graceful: the deadline is ``drain_timeout`` after the
        first Stop. ``immediate=True``: the deadline is now, and every record not yet
        delivered is reported. A second call can only bring the deadline forward; a
        call after the run has ended does nothing.
        """
        self._control.stop("immediate stop" if immediate else "stop", immediate=immediate)

    def pause(self, sink: str) -> None:
        """Pause ``sink``: it writes nothing until resumed.

        Its backlog waits in its buffer; once that is full, the source waits too
        (backpressure), so nothing is dropped. A paused sink stays paused through a
        graceful Stop: resume it to let it drain, or its backlog is reported at the
        drain deadline. Pausing a paused sink does nothing.
        """
        account = self._account(sink)
        if not self._control.finished and not account.paused:
            account.pause()
            log.info("sink.paused sink=%s buffered=%d", sink, account.buffered)

    def resume(self, sink: str) -> None:
        """Resume ``sink`` after :meth:`pause` or :meth:`isolate`; its backlog goes on
        where it stopped. Resuming a sink that is not paused does nothing."""
        account = self._account(sink)
        if account.paused:
            account.resume()
            if not self._control.finished:
                log.info("sink.resumed sink=%s buffered=%d", sink, account.buffered)

    def resume_all(self) -> None:
        """Resume every paused sink."""
        for name in self._control.ledger.accounts:
            self.resume(name)

    def isolate(self, sink: str) -> None:
        """Let ``sink`` alone write: resume it and pause every other sink, business and
        infra alike, except the ``monitor`` group's (statistics keep flowing).
        :meth:`resume_all` ends it."""
        self._account(sink)
        for name in self._control.ledger.accounts:
            if name == sink:
                self.resume(name)
            elif name != self._monitor_sink:
                self.pause(name)

    def pause_source(self) -> None:
        """Stop pulling from the source, without stopping the run.

        Records already pulled still go through; the sinks keep writing. A Stop while
        the source is paused ends the pull at once. ``stop_when_idle`` does not count
        the time the source is paused.
        """
        self._control.pause_source()

    def resume_source(self) -> None:
        """Pull from the source again after :meth:`pause_source`."""
        self._control.resume_source()

    def statistics(self) -> PipelineStatistics:
        """A frozen snapshot of the run's figures. Sync, not a checkpoint, cheap.

        After the run has ended, it is the final snapshot, whose counts are the
        report's.
        """
        if self._final is not None:
            return self._final
        return self._snapshot()

    async def wait(self) -> DeliveryReport:
        """Wait until the run has ended, and return its report.

        A checkpoint. Cancelling it leaves the run untouched.
        """
        await self._state.wait_value("stopped")
        assert self._report is not None
        return self._report

    @property
    def report(self) -> DeliveryReport | None:
        """The report once the run has ended; None before."""
        return self._report

    def _account(self, sink: str) -> SinkAccount:
        accounts = self._control.ledger.accounts
        try:
            return accounts[sink]
        except (KeyError, TypeError):
            raise UnknownSinkError(sink, tuple(accounts)) from None

    def _finish(self, report: DeliveryReport) -> None:
        self._final = self._snapshot()
        self._report = report
        self._state.value = "stopped"


@final
class Pipeline:
    """A source, a parse, routes and sinks, run with a lossless Stop and drain.

    Construction validates everything and raises :class:`ConfigError` naming the
    argument; a pipeline runs once. Beyond the contract's arguments:

    - ``stop_after_records``: Stop once this many records were received (exactly
      that many: the source is not pulled further).
    - ``stop_when_idle``: Stop once this many seconds passed with no new item from
      the source (time the source is paused does not count).
    - ``monitor_interval``: seconds between two statistics records sent to the
      ``monitor`` group (when it has a sink); a final one follows at the end.
    - ``progress_interval``: seconds between two ``drain.progress`` log lines while a
      drain lasts; None for none.
    - ``retry``: how failed writes are retried: one :class:`RetryPolicy` for every
      sink, or a mapping from sink name to policy (sinks not named: no retry). None:
      a failed write is reported at once.
    - ``breaker``: when a failing sink is taken out of service and probed
      (:class:`CircuitBreaker`): one for every sink, a mapping by sink name, or None.
    - ``rescue``: a :class:`RescueStore` where every record not delivered is kept
      for replay (``Undelivered.stored`` says which were).
    """

    def __init__(
        self,
        source: Iterable[Any] | AsyncIterable[Any] | Source[Any],
        *,
        parse: Callable[[Any], Any] | None = None,
        routes: Sequence[Route] = (),
        infra: Infra | None = None,
        capacity: int = 128,
        batch_size: int = 128,
        batch_timeout: float = 0.3,
        drain_timeout: float | None = 60.0,
        stop_after_records: int | None = None,
        stop_when_idle: float | None = None,
        monitor_interval: float = 1.0,
        progress_interval: float | None = 1.0,
        retry: RetryPolicy | Mapping[str, RetryPolicy] | None = None,
        breaker: CircuitBreaker | Mapping[str, CircuitBreaker] | None = None,
        rescue: RescueStore | None = None,
    ) -> None:
        _check_source(source)
        if parse is not None and (not callable(parse) or is_async_callable(parse)):
            raise ConfigError(f"parse must be a sync callable or None, got {parse!r}")
        if isinstance(routes, Route) or not isinstance(routes, Sequence):
            raise ConfigError(f"routes must be a sequence of Route, got {routes!r}")
        for route in routes:
            if not isinstance(route, Route):
                raise ConfigError(f"routes must hold Route objects, got {route!r}")
        if rescue is not None and not isinstance(rescue, RescueStore):
            raise ConfigError(f"rescue must be a RescueStore or None, got {rescue!r}")
        names = [r.name for r in routes]
        if len(set(names)) != len(names):
            raise ConfigError(f"route names must be unique, got {names}")
        if infra is None:
            infra = Infra()
        elif not isinstance(infra, Infra):
            raise ConfigError(f"infra must be an Infra, got {infra!r}")
        self._source = source
        self._parse = parse
        self._routes = tuple(routes)
        self._infra = infra
        self._capacity = _check_int("capacity", capacity, 0)
        self._batch_size = _check_int("batch_size", batch_size, 1)
        self._batch_timeout: float = _check_seconds("batch_timeout", batch_timeout) or 0.0
        self._drain_timeout = _check_seconds("drain_timeout", drain_timeout, optional=True)
        self._stop_after_records = (
            None
            if stop_after_records is None
            else _check_int("stop_after_records", stop_after_records, 1)
        )
        self._stop_when_idle = _check_positive("stop_when_idle", stop_when_idle, optional=True)
        self._monitor_interval = _check_positive("monitor_interval", monitor_interval)
        self._progress_interval = _check_positive(
            "progress_interval", progress_interval, optional=True
        )
        # Every sink, business and infra, once: (slot, route name or infra group).
        self._slots: list[SinkSlot] = []
        self._route_slots: list[list[SinkSlot]] = []
        self._infra_slots: dict[str, SinkSlot | None] = {}
        seen_objects: dict[int, str] = {}
        seen_names: dict[str, str] = {}

        def add(obj: object, where: str) -> SinkSlot:
            slot = SinkSlot(obj)
            if id(obj) in seen_objects:
                raise ConfigError(
                    f"the same sink object {slot.name!r} is used twice: in"
                    f" {seen_objects[id(obj)]} and in {where}"
                )
            if slot.name in seen_names:
                raise ConfigError(
                    f"sink names must be unique: {slot.name!r} is used in"
                    f" {seen_names[slot.name]} and in {where}"
                )
            seen_objects[id(obj)] = where
            seen_names[slot.name] = where
            self._slots.append(slot)
            return slot

        for route in self._routes:
            self._route_slots.append([add(s, f"route {route.name!r}") for s in route.sinks])
        for group in INFRA_GROUPS:
            obj = getattr(infra, group)
            self._infra_slots[group] = None if obj is None else add(obj, f"infra {group!r}")
        self._retry = _per_sink("retry", retry, RetryPolicy, self.sink_names)
        self._breaker = _per_sink("breaker", breaker, CircuitBreaker, self.sink_names)
        self._rescue = rescue
        self._ran = False

    @property
    def capacity(self) -> int:
        """The bound of each sink's channel, in batches."""
        return self._capacity

    @property
    def batch_size(self) -> int:
        """The most records in one batch."""
        return self._batch_size

    @property
    def batch_timeout(self) -> float:
        """The longest a partial batch waits before it moves on, in seconds."""
        return self._batch_timeout

    @property
    def drain_timeout(self) -> float | None:
        """How long sinks may drain after Stop, in seconds; None for no limit."""
        return self._drain_timeout

    @property
    def stop_after_records(self) -> int | None:
        """Stop once this many records were received; None for no limit."""
        return self._stop_after_records

    @property
    def stop_when_idle(self) -> float | None:
        """Stop after this many seconds with no new item; None for never."""
        return self._stop_when_idle

    @property
    def monitor_interval(self) -> float:
        """Seconds between two statistics records sent to the ``monitor`` group."""
        assert self._monitor_interval is not None
        return self._monitor_interval

    @property
    def progress_interval(self) -> float | None:
        """Seconds between two ``drain.progress`` log lines; None for none."""
        return self._progress_interval

    @property
    def sink_names(self) -> tuple[str, ...]:
        """Every sink's name, business sinks first, in configuration order."""
        return tuple(s.name for s in self._slots)

    async def run(
        self, *, task_status: trio.TaskStatus[PipelineHandle] = trio.TASK_STATUS_IGNORED
    ) -> DeliveryReport:
        """Run until the source ends (then drain), or until stopped through the handle.

        ``await pipeline.run()`` is batch mode; ``await nursery.start(pipeline.run)``
        returns a :class:`PipelineHandle` once every stage is up. Returns the
        :class:`DeliveryReport`; raises :class:`SourceError` (with the report) if the
        source raised. If cancelled from outside, every record not yet delivered is
        reported, the report is built (``handle.wait()`` returns it) and ``Cancelled``
        propagates (inside an exception group from the stage nursery, as from any
        function with a nursery; Trio's cancel scopes take it as such). Sinks are
        closed in every case.
        """
        if self._ran:
            raise RuntimeError("a Pipeline runs once; build a new one for another run")
        self._ran = True
        ledger = Ledger(self.sink_names)
        control = DrainControl(self._drain_timeout, ledger)
        cap = self._capacity
        monitor_slot = self._infra_slots["monitor"]

        dests: dict[str, Dest] = {}
        stages: list[tuple[SinkSlot, trio.MemoryReceiveChannel[SinkBatch]]] = []
        monitor: Monitor | None = None
        for slot in self._slots:
            send, recv = trio.open_memory_channel[SinkBatch](cap)
            account = ledger.accounts[slot.name]
            if slot is monitor_slot:
                # Fed by the supervisor alone; its input ends after the final record.
                assert self._monitor_interval is not None
                monitor = Monitor(account, send, self._monitor_interval)
            else:
                dests[slot.name] = Dest(account, send)
            stages.append((slot, recv))
        router = Router(
            self._parse,
            [
                (route.when, [dests[s.name] for s in slots])
                for route, slots in zip(self._routes, self._route_slots, strict=True)
            ],
            {
                g: None if s is None or s is monitor_slot else dests[s.name]
                for g, s in self._infra_slots.items()
            },
            ledger,
        )
        fanout = Fanout(router, control, list(dests.values()))
        stage = SourceStage(
            control,
            fanout,
            self._batch_size,
            self._batch_timeout,
            limit=self._stop_after_records,
            track_idle=self._stop_when_idle is not None,
        )

        def take_snapshot() -> PipelineStatistics:
            return snapshot(control, stage)

        handle = PipelineHandle(
            control, take_snapshot, None if monitor_slot is None else monitor_slot.name
        )
        # The source stage and every sink stage but the monitor's.
        control.open_stages = 1 + len(dests)
        # The records of failed writes go to the error group's sink too: each other sink
        # task gets a clone of its channel (whose input ends when all are closed); the
        # ledger sees that a record failing at several sinks is sent there once.
        error_slot = self._infra_slots["error"]
        error_dest = None if error_slot is None else dests.get(error_slot.name)

        def error_feed(slot: SinkSlot) -> ErrorFeed | None:
            if error_dest is None or slot is error_slot or slot is monitor_slot:
                return None
            return ErrorFeed(error_dest.send.clone(), error_dest.account, ledger)

        log.info(
            "pipeline.start sinks=%d capacity=%d batch_size=%d drain_timeout=%s",
            len(self._slots),
            cap,
            self._batch_size,
            self._drain_timeout,
        )
        try:
            with control.scope:
                async with trio.open_nursery() as nursery:
                    for slot, recv in stages:
                        nursery.start_soon(
                            functools.partial(
                                _in_scope,
                                monitor.scope if monitor and slot is monitor_slot else None,
                                run_sink_stage,
                                slot,
                                ledger.accounts[slot.name],
                                control,
                                recv,
                                feeds_monitor=slot is not monitor_slot,
                                retry=self._retry.get(slot.name),
                                breaker=self._breaker.get(slot.name),
                                rescue=self._rescue,
                                report_error=error_feed(slot),
                            ),
                            name=f"trio_sink.sink:{slot.name}",
                        )
                    nursery.start_soon(
                        functools.partial(
                            supervise,
                            control,
                            take_snapshot,
                            monitor=monitor,
                            progress_interval=self._progress_interval,
                            stop_when_idle=self._stop_when_idle,
                        ),
                        name="trio_sink.supervisor",
                    )
                    await nursery.start(
                        functools.partial(run_source_stage, self._source, stage),
                        name="trio_sink.source",
                    )
                    task_status.started(handle)
        finally:
            control.finished = True
            control.end_time = trio.current_time()
            try:
                if self._rescue is not None:
                    await ledger.rescue_rest(self._rescue)
            finally:
                # Also if the store write was interrupted (KeyboardInterrupt): the report
                # then says which records were stored.
                report = ledger.report(control.seconds_since_stop())
                handle._finish(report)
            if report.timed_out:
                _log_deadline(report, ledger)
            log.info(
                "pipeline.complete received=%d delivered=%d undelivered=%d"
                " timed_out=%s drain_seconds=%.3f",
                report.received,
                sum(report.delivered.values()),
                len(report.undelivered),
                report.timed_out,
                report.drain_seconds,
            )
        source_error = control.source_error
        if source_error is not None:
            raise SourceError(f"the source raised {source_error!r}", report) from source_error
        return report


def _log_deadline(report: DeliveryReport, ledger: Ledger) -> None:
    """One ``drain.deadline`` line per sink that lost records to the deadline (or an
    immediate stop), whichever stage gave them up; ``sink=-`` for those before routing."""
    if not drain_log.isEnabledFor(logging.WARNING):
        return
    lost: Counter[tuple[str | None, str]] = Counter(
        (u.sink, u.reason) for u in report.undelivered if u.kind in (DEADLINE.kind, IMMEDIATE.kind)
    )
    for (sink, reason), n in lost.items():
        paused = sink is not None and ledger.accounts[sink].paused
        drain_log.warning(
            'drain.deadline sink=%s undelivered=%d reason="%s" paused=%s',
            "-" if sink is None else sink,
            n,
            reason,
            paused,
        )


async def _in_scope(
    scope: trio.CancelScope | None, fn: Callable[..., Awaitable[None]], *args: Any, **kw: Any
) -> None:
    """``await fn(*args, **kw)``, inside ``scope`` when there is one."""
    if scope is None:
        await fn(*args, **kw)
    else:
        with scope:
            await fn(*args, **kw)
