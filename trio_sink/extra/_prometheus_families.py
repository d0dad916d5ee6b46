"""The metric families of one scrape, and how a pipeline's snapshot fills them.

See :mod:`trio_sink.extra.prometheus`; ``docs/metrics.md`` lists the metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import final

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

from .._report import REASON_KINDS
from .._stats import PipelineStatistics, SinkStatistics

__all__ = ["OWN_LABELS", "REASONS", "Families"]

STATES = ("running", "draining", "stopped")
OWN_LABELS = frozenset({"group", "kind", "reason", "sink", "state"})
"""The label names the metrics use themselves; a pipeline's own labels must differ."""
# The kinds of SinkStatistics.undelivered_by_reason. Every sink exports each of them,
# 0 included, so that a first undelivered record shows as an increase (a series that
# appears with its first sample has no increase to show); a kind not listed here is
# exported once it occurs.
REASONS = REASON_KINDS
OTHER_REASON = "other"


@final
class Families:
    """The metric families of one scrape, filled with one snapshot per pipeline."""

    def __init__(self, namespace: str, label_names: Sequence[str]) -> None:
        def counter(name: str, doc: str, *labels: str) -> CounterMetricFamily:
            return CounterMetricFamily(
                f"{namespace}_{name}", doc, labels=[*label_names, *labels], unit=_unit(name)
            )

        def gauge(name: str, doc: str, *labels: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(
                f"{namespace}_{name}", doc, labels=[*label_names, *labels], unit=_unit(name)
            )

        self.up = gauge(
            "up", "1 if the pipeline's statistics were read, 0 if that failed (see the log)."
        )
        self.state = gauge(
            "state", "1 for the pipeline's state (running, draining, stopped), else 0.", "state"
        )
        self.received = counter("received_records", "Records the source produced.")
        self.dispatched = counter(
            "dispatched_records", "Records routed to at least one sink or counted as discarded."
        )
        self.source_undelivered = counter(
            "source_undelivered_records", "Records given up before routing (sink None)."
        )
        self.source_pulled = gauge(
            "source_pulled_items", "Items pulled from an async source, not yet in a batch."
        )
        self.source_paused = gauge("source_paused", "1 while the source is paused, else 0.")
        self.acknowledged = counter(
            "source_acknowledged_items",
            "Items the source acknowledged (only for a source that acknowledges).",
        )
        self.unacknowledged_age = gauge(
            "source_unacknowledged_age_seconds",
            "Seconds the oldest item not yet acknowledged has waited; 0 when none.",
        )
        self.pending = gauge(
            "pending_records", "Records routed to a sink and not settled yet, all sinks."
        )
        self.discarded = counter(
            "discarded_records", "Records counted in an infra group without a sink.", "group"
        )
        self.routed = counter("routed_records", "Records routed to the sink.", "sink")
        self.delivered = counter(
            "delivered_records", "Records whose write to the sink returned.", "sink"
        )
        self.undelivered = counter(
            "undelivered_records",
            "Records reported undelivered for the sink, by kind of reason.",
            "sink",
            "reason",
        )
        self.waiting = gauge(
            "waiting_records", "Records for the sink held back while its buffer is full.", "sink"
        )
        self.buffered = gauge(
            "buffered_records", "Records in the sink's buffer, waiting for a write.", "sink"
        )
        self.in_flight = gauge(
            "in_flight_records", "Records of the sink's write in progress.", "sink"
        )
        self.peak_buffered = gauge(
            "peak_buffered_records", "The most records the sink's buffer has held.", "sink"
        )
        self.sink_paused = gauge("sink_paused", "1 while the sink is paused, else 0.", "sink")
        self.busy = counter(
            "sink_busy_seconds", "Wall-clock seconds the sink's writes took.", "sink"
        )
        self.blocked = counter(
            "sink_blocked_seconds",
            "Wall-clock seconds the source waited for room in the sink's buffer.",
            "sink",
        )
        self.drain = InfoMetricFamily(
            f"{namespace}_drain", "What started the drain, once it started.", labels=label_names
        )
        self.drain_pending = gauge(
            "drain_pending_records", "Records left to settle in the drain, all sinks."
        )
        self.drain_elapsed = gauge(
            "drain_elapsed_seconds", "Seconds since the drain started (its length, once over)."
        )
        self.drain_time_left = gauge(
            "drain_time_left_seconds",
            "Seconds until the drain deadline; 0 once passed, +Inf without one.",
        )

    def all(self) -> list[Metric]:
        return [m for m in vars(self).values() if isinstance(m, Metric)]

    def add(self, labels: tuple[str, ...], stats: PipelineStatistics | None) -> None:
        """Add the samples of one pipeline; for None (no snapshot), ``up 0`` only."""
        self.up.add_metric(labels, 0.0 if stats is None else 1.0)
        if stats is None:
            return
        for state in STATES:
            self.state.add_metric((*labels, state), float(stats.state == state))
        self.received.add_metric(labels, stats.received)
        self.dispatched.add_metric(labels, stats.source.dispatched)
        self.source_undelivered.add_metric(labels, stats.source.undelivered)
        self.source_pulled.add_metric(labels, stats.source.pulled)
        self.source_paused.add_metric(labels, float(stats.source.paused))
        if stats.source.acknowledged is not None:
            self.acknowledged.add_metric(labels, stats.source.acknowledged)
            self.unacknowledged_age.add_metric(labels, stats.source.unacknowledged_age or 0.0)
        self.pending.add_metric(labels, stats.pending)
        for group, n in stats.discarded.items():
            self.discarded.add_metric((*labels, group), n)
        for sink in stats.sinks.values():
            per_sink = (*labels, sink.name)
            self.routed.add_metric(per_sink, sink.routed)
            self.delivered.add_metric(per_sink, sink.delivered)
            for reason, n in _undelivered_by_reason(sink).items():
                self.undelivered.add_metric((*per_sink, reason), n)
            self.waiting.add_metric(per_sink, sink.waiting)
            self.buffered.add_metric(per_sink, sink.buffered)
            self.in_flight.add_metric(per_sink, sink.in_flight)
            self.peak_buffered.add_metric(per_sink, sink.peak_buffered)
            self.sink_paused.add_metric(per_sink, float(sink.paused))
            self.busy.add_metric(per_sink, sink.busy_seconds)
            self.blocked.add_metric(per_sink, sink.blocked_seconds)
        drain = stats.drain
        if drain is not None:
            self.drain.add_metric(labels, {"kind": drain.kind})
            self.drain_pending.add_metric(labels, drain.pending_left)
            self.drain_elapsed.add_metric(labels, drain.elapsed)
            time_left = math.inf if drain.time_left is None else drain.time_left
            self.drain_time_left.add_metric(labels, time_left)


def _unit(name: str) -> str:
    for unit in ("records", "seconds", "items"):
        if name.endswith("_" + unit):
            return unit
    return ""


def _undelivered_by_reason(sink: SinkStatistics) -> dict[str, int]:
    """Every known kind (0 included), the others that occurred, and ``"other"`` for
    whatever ``undelivered`` counts beyond them: the sum is ``undelivered``."""
    counts = dict.fromkeys(REASONS, 0)
    counts.update(sink.undelivered_by_reason)
    rest = sink.undelivered - sum(sink.undelivered_by_reason.values())
    if rest > 0:
        counts[OTHER_REASON] = counts.get(OTHER_REASON, 0) + rest
    return counts
