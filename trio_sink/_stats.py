"""Statistics: frozen snapshots of a run, for ``handle.statistics()`` and the monitor.

A snapshot is built synchronously from the counters the stages keep per batch, so it
costs a few microseconds and never waits. Every record routed to a sink is, at any
moment, in exactly one of five places, and the snapshot counts each::

    routed == delivered + undelivered + waiting + buffered + in_flight

``waiting``: held by the source stage because the sink's buffer is full
(backpressure); ``buffered``: in the sink's channel; ``in_flight``: in the write being
made. At the end of the run the last three are 0 and the counts equal the report's.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, final

import attrs

__all__ = [
    "DrainStatistics",
    "PipelineState",
    "PipelineStatistics",
    "SinkStatistics",
    "SourceStatistics",
]

PipelineState = Literal["running", "draining", "stopped"]


def _frozen_counts(d: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(d))


def _frozen_sinks(d: Mapping[str, SinkStatistics]) -> Mapping[str, SinkStatistics]:
    return MappingProxyType(dict(d))


@final
@attrs.frozen
class SinkStatistics:
    """One sink's figures, business and infra sinks alike."""

    name: str
    """The sink's name."""
    routed: int
    """Records routed to it so far."""
    delivered: int
    """Records whose write returned."""
    undelivered: int
    """Records reported undelivered for it (see the report's ``undelivered``)."""
    waiting: int
    """Records routed to it that the source stage holds, because its buffer is full."""
    buffered: int
    """Records in its channel, waiting for their write."""
    in_flight: int
    """Records of the write being made (0 between writes)."""
    peak_buffered: int
    """The most records its channel has held at once in this run."""
    paused: bool
    """Paused by ``handle.pause()`` or ``handle.isolate()``: it writes nothing meanwhile."""
    undelivered_by_reason: Mapping[str, int] = attrs.field(converter=_frozen_counts)
    """``undelivered`` split by kind of reason: ``"drain deadline"``, ``"immediate
    stop"``, ``"cancelled"``, ``"sink error"`` (a write raised), ``"pipeline
    failed"``."""
    health: str = "healthy"
    """``"healthy"``; ``"unhealthy"`` while its circuit breaker is open (its batches go
    to the rescue store, or are reported, unwritten); ``"probing"`` while a probe runs.
    Always ``"healthy"`` for a sink without a breaker."""
    retries: int = 0
    """Writes tried again after a failure (see ``Pipeline(retry=...)``)."""
    stored: int = 0
    """Records of ``undelivered`` kept in the rescue store (``Undelivered.stored``)."""
    replayed: int = 0
    """Records delivered from the rescue store during the run, once the sink had
    recovered (counted in ``delivered`` too)."""
    breaker_opened: int = 0
    """How many times its circuit breaker opened."""
    busy_seconds: float = 0.0
    """Wall-clock seconds the sink's writes took so far; its growth over elapsed time
    is how busy the sink is."""
    blocked_seconds: float = 0.0
    """Wall-clock seconds the source stage waited for room in this sink's buffer: the
    backpressure this sink put on the whole pipeline."""

    @property
    def pending(self) -> int:
        """Records routed to it and not settled yet: ``waiting + buffered + in_flight``."""
        return self.waiting + self.buffered + self.in_flight


@final
@attrs.frozen
class SourceStatistics:
    """The source stage's figures (it also parses and routes)."""

    received: int
    """Records the source produced (given ids) so far."""
    dispatched: int
    """Records routed to at least one sink or counted as discarded."""
    undelivered: int
    """Records given up before routing (reported with ``sink`` None)."""
    pulled: int
    """Items pulled from an async source and not yet cut into a batch (no id yet)."""
    paused: bool
    """Paused by ``handle.pause_source()``: it pulls nothing meanwhile."""
    acknowledged: int | None = None
    """Items the source acknowledged (see ``Source.ack``). None when it does not
    acknowledge: then a crash loses every item received and not yet delivered."""
    unacknowledged_age: float | None = None
    """Seconds the oldest item not yet acknowledged has waited since it was received;
    None when every item is acknowledged or the source does not acknowledge."""


@final
@attrs.frozen
class DrainStatistics:
    """The drain, from the first Stop (or the end of the source) on."""

    kind: str
    """What started it: ``"stop"``, ``"immediate stop"``, ``"source exhausted"``,
    ``"source failed"``, ``"record limit"``, ``"idle"``, ``"signal"``, ..."""
    started_at: float
    """When it started, on Trio's clock."""
    elapsed: float
    """Seconds since it started (until the end of the run, once stopped)."""
    pending_left: int
    """Records routed to a sink and not settled yet, all sinks together."""
    deadline: float | None
    """When the rest is reported, on Trio's clock; None for no limit."""
    time_left: float | None
    """Seconds until ``deadline`` (0 once passed); None for no limit."""


@final
@attrs.frozen
class PipelineStatistics:
    """A snapshot of one run. Sync and cheap to take: see ``PipelineHandle.statistics()``.

    Its counts agree with the run's :class:`~trio_sink.DeliveryReport`: once the run
    has ended, ``received``, each sink's ``routed`` / ``delivered`` / ``undelivered``
    and ``discarded`` are the report's.
    """

    state: PipelineState
    """``"running"``, ``"draining"`` (after Stop, until the run ends) or ``"stopped"``."""
    time: float
    """When the snapshot was taken, on Trio's clock."""
    received: int
    """Records the source produced so far."""
    source: SourceStatistics
    """The source stage."""
    sinks: Mapping[str, SinkStatistics] = attrs.field(converter=_frozen_sinks)
    """Per sink name, in configuration order (business sinks first)."""
    discarded: Mapping[str, int] = attrs.field(converter=_frozen_counts)
    """Per infra group without a sink: records counted there."""
    drain: DrainStatistics | None
    """The drain, once it started; None before."""

    @property
    def delivered(self) -> int:
        """Records delivered, all sinks together."""
        return sum(s.delivered for s in self.sinks.values())

    @property
    def undelivered(self) -> int:
        """Undelivered reports, all sinks together, plus those before routing."""
        return self.source.undelivered + sum(s.undelivered for s in self.sinks.values())

    @property
    def pending(self) -> int:
        """Records routed to a sink and not settled yet, all sinks together."""
        return sum(s.pending for s in self.sinks.values())
