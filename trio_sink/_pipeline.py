"""Pipeline: its settings, checked at construction, and :meth:`Pipeline.run`, the
nursery that holds the stages, end to end::

    source stage (pull, ids, batches, parse, route) ──▶ one channel and writer per sink

Every channel is bounded (``capacity`` batches) and carries whole batches. Stop closes
the send side of the source stage; each writer iterates its input to exhaustion, so
the end of input ripples down. The drain deadline (see ``_control``) bounds how long
that may take; past it, every stage reports what it holds, and the report lists every
record that was not delivered.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from typing import Any, final

import attrs
import trio

from ._acks import Acks
from ._breaker import CircuitBreaker
from ._checks import (
    check_function,
    check_int,
    check_seconds,
    check_source,
    per_sink,
    per_sink_seconds,
)
from ._control import StopControl, in_scope
from ._dest import Dest
from ._ending import end_run, log_deadline, read_back
from ._exceptions import ConfigError
from ._fanout import Fanout
from ._feeds import ErrorFeed, LossyFeed, SinkBatch
from ._handle import PipelineHandle
from ._ki import protected, unprotect
from ._ledger import Ledger
from ._observe import Monitor, Watch, snapshot, supervise
from ._recovery import Recovery
from ._report import DeliveryReport, SourceError
from ._rescue import RescueStore
from ._retry import DEFAULT_RETRY, RetryPolicy
from ._route import INFRA_GROUPS, Infra, Route, Router
from ._sink import SinkSlot
from ._source import Source, SourceStage, acknowledges, run_source_stage
from ._user_errors import UserErrors
from ._writer import SinkWriter
from .sources import off_the_loop

__all__ = ["Pipeline"]

log = logging.getLogger("trio_sink.pipeline")


@final
class Pipeline:
    """A source, a parse, routes and sinks, run with a lossless Stop and drain.

    Construction validates everything and raises :class:`ConfigError` naming the
    argument; a pipeline runs once. Beyond the contract's arguments:

    - ``max_batch_size``: batches grow from ``batch_size`` up to this size while the
      source keeps them full (each full batch doubles the next; one cut by
      ``batch_timeout`` starts again at ``batch_size``); a sink's buffer then holds at
      most ``capacity * batch_size`` records (or one batch). None: ``batch_size``.
    - ``stop_after_records``: Stop once this many records were received (exactly
      that many: the source is not pulled further).
    - ``stop_when_idle``: Stop once this many seconds passed with no new item from
      the source (time the source is paused does not count).
    - ``monitor_interval``: seconds between two statistics records sent to the
      ``monitor`` group (when it has a sink); a final one follows at the end.
    - ``progress_interval``: seconds between two ``drain.progress`` log lines while a
      drain lasts; None for none.
    - ``retry``: how failed writes are retried: one :class:`RetryPolicy` for every
      sink, or a mapping from sink name to policy (sinks not named keep the default).
      By default (:data:`DEFAULT_RETRY`), errors of a peer that is briefly away
      (``ConnectionError``, ``TimeoutError``, a :class:`WriteTimeout`) are retried twice,
      never past the drain deadline, and other errors reported at once. ``NO_RETRY`` or
      None: a failed write is reported at once.
    - ``write_timeout``: seconds after which a write is cancelled and counts as a failed
      attempt (:class:`WriteTimeout`: retried, counted by the breaker, stored or
      reported); one value for every sink or a mapping by sink name (sinks not named:
      60 s); None for no limit. A batch cancelled so may have been partly written:
      at-least-once, as at the drain deadline.
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
        max_batch_size: int | None = None,
        stop_after_records: int | None = None,
        stop_when_idle: float | None = None,
        monitor_interval: float = 1.0,
        progress_interval: float | None = 1.0,
        retry: RetryPolicy | Mapping[str, RetryPolicy] | None = DEFAULT_RETRY,
        write_timeout: float | Mapping[str, float | None] | None = 60.0,
        breaker: CircuitBreaker | Mapping[str, CircuitBreaker] | None = None,
        rescue: RescueStore | None = None,
    ) -> None:
        check_source(source)
        if parse is not None:
            check_function("parse", parse, "a sync callable (raw item -> payload) or None")
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
        self._source = off_the_loop(source)
        self._parse = parse
        self._routes = tuple(routes)
        self._infra = infra
        self._capacity = check_int("capacity", capacity, 0)
        self._batch_size = check_int("batch_size", batch_size, 1)
        most = self._batch_size if max_batch_size is None else max_batch_size
        self._max_batch_size = check_int("max_batch_size", most, self._batch_size)
        self._batch_timeout: float = check_seconds("batch_timeout", batch_timeout) or 0.0
        self._drain_timeout = check_seconds("drain_timeout", drain_timeout, optional=True)
        self._stop_after_records = (
            None
            if stop_after_records is None
            else check_int("stop_after_records", stop_after_records, 1)
        )
        self._stop_when_idle = check_seconds(
            "stop_when_idle", stop_when_idle, positive=True, optional=True
        )
        self._monitor_interval = check_seconds("monitor_interval", monitor_interval, positive=True)
        self._progress_interval = check_seconds(
            "progress_interval", progress_interval, positive=True, optional=True
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
        self._retry = per_sink("retry", retry, RetryPolicy, self.sink_names)
        if isinstance(retry, Mapping):  # the sinks it does not name keep the default
            self._retry = {**dict.fromkeys(self.sink_names, DEFAULT_RETRY), **self._retry}
        self._write_timeout = per_sink_seconds("write_timeout", write_timeout, self.sink_names)
        self._breaker = per_sink("breaker", breaker, CircuitBreaker, self.sink_names)
        self._rescue = rescue
        self._ran = False
        unprotect(parse, *(route.when or route.when_batch for route in self._routes))
        if not self._routes:
            raise ConfigError(
                "routes must hold at least one Route: with none, every record would go to"
                " the default group; for that, say Route('all', sink)"
            )

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

    @protected
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
        if self._rescue is not None:
            ledger.read_back = functools.partial(read_back, self._rescue)
        control = StopControl(self._drain_timeout, ledger)
        monitor_slot = self._infra_slots["monitor"]

        channels: dict[str, tuple[trio.MemorySendChannel[SinkBatch], Any]] = {}
        dests: dict[str, Dest] = {}
        for slot in self._slots:
            send, recv = trio.open_memory_channel[SinkBatch](self._capacity)
            channels[slot.name] = (send, recv)
            if slot is not monitor_slot:  # fed by the supervisor alone
                dests[slot.name] = Dest(ledger.accounts[slot.name], send)
        user_errors = UserErrors(self.monitor_interval)
        router = Router(
            self._parse,
            [
                (route.test, [dests[s.name] for s in slots])
                for route, slots in zip(self._routes, self._route_slots, strict=True)
            ],
            {
                g: None if s is None or s is monitor_slot else dests[s.name]
                for g, s in self._infra_slots.items()
            },
            ledger,
            user_errors,
            [route.name for route in self._routes],
        )
        stage = SourceStage(
            control,
            Fanout(router, list(dests.values())),
            self._batch_size,
            self._batch_timeout,
            max_size=self._max_batch_size,
            limit=self._stop_after_records,
            track_idle=self._stop_when_idle is not None,
        )
        acks = None
        if acknowledges(self._source):
            acks = stage.acks = Acks(self._source.ack, ledger, self._source.ack_interval)
            acks.control = control
        # The source stage and every sink task but the monitor's.
        watch = Watch(1 + len(dests))
        if acks is not None:
            watch.on_all_ended.append(acks.finishing)
        control.on_stop.append(watch.wake)
        stage.on_activity = watch.wake
        stage.on_end = watch.stage_ended
        monitor: Monitor | None = None
        if monitor_slot is not None:
            feed = LossyFeed(
                channels[monitor_slot.name][0],
                ledger.accounts[monitor_slot.name],
                ledger,
                "monitor",
            )
            monitor = Monitor(feed, self.monitor_interval)
        writers = [self._writer(slot, ledger, control, channels, watch) for slot in self._slots]
        grows = self._max_batch_size > self._batch_size  # buffers are then bounded in records
        bound = self._capacity * self._batch_size if grows else None
        stage.fanout.connect(writers, self._infra_slots["error"], bound)
        pauses = {w.name: w.pause for w in writers}
        breakers = {w.name: w.recovery.breaker for w in writers if w.recovery is not None}

        busy = {w.name: functools.partial(getattr, w, "busy_seconds") for w in writers}
        take_snapshot = functools.partial(snapshot, control, ledger, stage, pauses, breakers, busy)

        handle = PipelineHandle(
            control,
            ledger,
            stage,
            pauses,
            take_snapshot,
            None if monitor_slot is None else monitor_slot.name,
        )
        log.info(
            "pipeline.start sinks=%d capacity=%d batch_size=%d drain_timeout=%s",
            len(self._slots),
            self._capacity,
            self._batch_size,
            self._drain_timeout,
        )
        try:
            with control.scope:
                async with trio.open_nursery() as nursery:
                    for writer in writers:
                        if writer.write_timeout is not None:
                            nursery.start_soon(
                                writer.watchdog.watch, name=f"trio_sink.watch:{writer.name}"
                            )
                        scope = monitor.scope if monitor and writer.slot is monitor_slot else None
                        nursery.start_soon(
                            in_scope,
                            scope,
                            writer.run,
                            channels[writer.name][1],
                            name=f"trio_sink.sink:{writer.name}",
                        )
                    if stage.fanout.watchdog is not None:
                        nursery.start_soon(stage.fanout.watchdog.watch, name="trio_sink.watch")
                    if acks is not None:
                        nursery.start_soon(acks.run, name="trio_sink.acks")
                    nursery.start_soon(
                        functools.partial(
                            supervise,
                            control,
                            watch,
                            stage,
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
            user_errors.flush()
            try:
                await end_run(ledger, control, self._rescue, acks, stage, self._source)
            finally:
                # Also if the store write was interrupted (KeyboardInterrupt): the report
                # then says which records were stored.
                report = ledger.report(control.seconds_since_stop())
                if acks is not None:
                    report = attrs.evolve(report, acknowledged=acks.acknowledged)
                handle._finish(report)
            if report.timed_out:
                log_deadline(ledger, pauses)
            log.info(
                "pipeline.complete received=%d delivered=%d undelivered=%d"
                " timed_out=%s drain_seconds=%.3f",
                report.received,
                sum(report.delivered.values()),
                len(report.undelivered),
                report.timed_out,
                report.drain_seconds,
            )
        if stage.error is not None:
            raise SourceError(f"the source raised {stage.error!r}", report) from stage.error
        return report

    def _writer(
        self,
        slot: SinkSlot,
        ledger: Ledger,
        control: StopControl,
        channels: Mapping[str, tuple[trio.MemorySendChannel[SinkBatch], Any]],
        watch: Watch,
    ) -> SinkWriter:
        """The writer of ``slot``'s sink, with its policies."""
        name = slot.name
        monitor_slot = self._infra_slots["monitor"]
        error_slot = self._infra_slots["error"]
        data = slot is not monitor_slot
        # The records of failed writes go to the error group's sink too: each other
        # sink's writer gets a clone of its channel (whose input ends when all are
        # closed); the ledger sees that a record failing at several sinks goes once.
        errors = None
        if error_slot is not None and slot is not error_slot and data:
            errors = ErrorFeed(
                channels[error_slot.name][0].clone(), ledger.accounts[error_slot.name], ledger
            )
        breaker = self._breaker.get(name)
        rescue = self._rescue if data else None
        recovery = None if breaker is None else Recovery(breaker, name, rescue)
        writer = SinkWriter(
            slot,
            ledger.accounts[name],
            ledger,
            control=control,
            data=data,
            retry=self._retry.get(name),
            write_timeout=self._write_timeout[name],
            recovery=recovery,
            rescue=rescue,
            errors=errors,
            on_drained=watch.stage_ended if data else None,
        )
        if recovery is not None:
            recovery.bind(writer)
        return writer
