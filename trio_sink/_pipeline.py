"""Pipeline and PipelineHandle: the nursery that holds the stages, end to end.

    source stage ──▶ route stage ──▶ one task per sink (business and infra alike)

Every channel is bounded (``capacity`` batches) and carries whole batches. Stop closes
the send side of the source stage; each later stage iterates its input to
exhaustion and closes its own output, so the end of input ripples down. The drain
deadline (see ``_drain``) bounds how long that may take; past it, every stage reports
what it holds, and the report lists every record that was not delivered.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from typing import Any, final

import trio
from trio_util import AsyncValue

from ._drain import DrainControl
from ._exceptions import ConfigError, SourceError
from ._ledger import DeliveryReport, Ledger
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
from ._source import Source, run_source_stage

__all__ = ["Pipeline", "PipelineHandle"]

log = logging.getLogger("trio_sink.pipeline")


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
    """Controls a running pipeline; returned by ``await nursery.start(pipeline.run)``."""

    def __init__(self, control: DrainControl) -> None:
        self._control = control
        self._report: DeliveryReport | None = None
        self._state = AsyncValue("running")

    def stop(self, *, immediate: bool = False) -> None:
        """Stop the run: stop pulling from the source and drain.

        Sync, not a checkpoint. Graceful: the deadline is ``drain_timeout`` after the
        first Stop. ``immediate=True``: the deadline is now, and every record not yet
        delivered is reported. A second call can only bring the deadline forward; a
        call after the run has ended does nothing.
        """
        self._control.stop("immediate stop" if immediate else "stop", immediate=immediate)

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

    def _finish(self, report: DeliveryReport) -> None:
        self._report = report
        self._state.value = "stopped"


@final
class Pipeline:
    """A source, a parse, routes and sinks, run with a lossless Stop and drain.

    Construction validates everything and raises :class:`ConfigError` naming the
    argument; a pipeline runs once.
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
    ) -> None:
        _check_source(source)
        if parse is not None and (not callable(parse) or is_async_callable(parse)):
            raise ConfigError(f"parse must be a sync callable or None, got {parse!r}")
        if isinstance(routes, Route) or not isinstance(routes, Sequence):
            raise ConfigError(f"routes must be a sequence of Route, got {routes!r}")
        for route in routes:
            if not isinstance(route, Route):
                raise ConfigError(f"routes must hold Route objects, got {route!r}")
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
        handle = PipelineHandle(control)
        cap = self._capacity

        dests: dict[str, Dest] = {}
        stages: list[tuple[SinkSlot, trio.MemoryReceiveChannel[SinkBatch]]] = []
        for slot in self._slots:
            send, recv = trio.open_memory_channel[SinkBatch](cap)
            dests[slot.name] = Dest(ledger.accounts[slot.name], send)
            stages.append((slot, recv))
        router = Router(
            self._parse,
            [
                (route.when, [dests[s.name] for s in slots])
                for route, slots in zip(self._routes, self._route_slots, strict=True)
            ],
            {g: None if s is None else dests[s.name] for g, s in self._infra_slots.items()},
            ledger,
        )
        fanout = Fanout(router, control, list(dests.values()))
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
                            run_sink_stage,
                            slot,
                            ledger.accounts[slot.name],
                            control,
                            recv,
                            name=f"trio_sink.sink:{slot.name}",
                        )
                    await nursery.start(self._run_source, control, fanout)
                    task_status.started(handle)
        finally:
            control.finished = True
            report = ledger.report(control.seconds_since_stop())
            handle._finish(report)
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

    async def _run_source(
        self,
        control: DrainControl,
        fanout: Fanout,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        await run_source_stage(
            self._source,
            control,
            fanout,
            batch_size=self._batch_size,
            batch_timeout=self._batch_timeout,
            task_status=task_status,
        )
