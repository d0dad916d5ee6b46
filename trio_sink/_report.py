"""The outcome of a run: :class:`DeliveryReport`, :class:`Undelivered`, and the kinds of
reasons a record is given up for."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Final, Literal, final

import attrs

from ._exceptions import AccountingError, TrioSinkError, describe
from ._record import Record

__all__ = [
    "CANCELLED",
    "DEADLINE",
    "IMMEDIATE",
    "STAT_KEYS",
    "DeliveryReport",
    "Reason",
    "ReasonKind",
    "SourceError",
    "Undelivered",
    "kind_of",
    "pipeline_failed",
    "sink_error",
    "stored_undelivered",
    "unhealthy",
]

ReasonKind = Literal[
    "deadline",
    "immediate",
    "cancelled",
    "sink_error",
    "unhealthy",
    "pipeline_failed",
    "no_sink",
    "not_routed",
    "held",
]
"""Why a record was given up, as a value code can test (:attr:`Undelivered.kind`)."""


@final
@attrs.frozen
class Reason:
    """Why records are given up: a kind, and the text for people."""

    kind: ReasonKind
    text: str


DEADLINE: Final = Reason("deadline", "drain deadline")
IMMEDIATE: Final = Reason("immediate", "immediate stop")
CANCELLED: Final = Reason("cancelled", "cancelled")


def sink_error(exc: BaseException) -> Reason:
    """A write raised ``exc``: ``"sink raised TypeName: message"``."""
    return Reason("sink_error", f"sink raised {describe(exc)}")


def unhealthy(last_error: str | None) -> Reason:
    """Set aside unwritten while the sink's breaker was open, with its last error."""
    return Reason("unhealthy", f"sink unhealthy: {last_error}")


def pipeline_failed(exc: BaseException) -> Reason:
    """A stage ended with ``exc`` (a bug, or a KeyboardInterrupt)."""
    return Reason("pipeline_failed", f"pipeline failed: {describe(exc)}")


STAT_KEYS: Final[Mapping[ReasonKind, str]] = MappingProxyType(
    {
        "deadline": "drain deadline",
        "immediate": "immediate stop",
        "cancelled": "cancelled",
        "sink_error": "sink error",
        "unhealthy": "sink error",
        "pipeline_failed": "pipeline failed",
        "no_sink": "no sink",
        "not_routed": "not routed",
        "held": "held by a writer",
    }
)
"""The key of each kind in ``SinkStatistics.undelivered_by_reason`` and the ``reason``
label of the metrics: the documented texts, which stay as they were (a batch set aside
while its sink's breaker was open counts as a sink error there)."""

REASON_KINDS: Final = (
    "drain deadline",
    "immediate stop",
    "cancelled",
    "sink error",
    "pipeline failed",
)
"""Every key of ``undelivered_by_reason`` a pipeline run can have."""

_PREFIXES: Final[tuple[tuple[str, ReasonKind], ...]] = (
    ("drain deadline", "deadline"),
    ("immediate stop", "immediate"),
    ("cancelled", "cancelled"),
    ("sink raised", "sink_error"),
    ("sink unhealthy", "unhealthy"),
    ("pipeline failed", "pipeline_failed"),
    ("no sink named", "no_sink"),
    ("not routed", "not_routed"),
    ("held by a live writer", "held"),
)


def kind_of(reason: str) -> ReasonKind:
    """The kind of a reason text, for an :class:`Undelivered` built without one (the
    pipeline always gives it). A text of no known form counts as a sink error."""
    if not isinstance(reason, str):  # a bad value, refused where it is used
        return "sink_error"
    for prefix, kind in _PREFIXES:
        if reason.startswith(prefix):
            return kind
    return "sink_error"


@final
@attrs.frozen
class Undelivered:
    """A record that did not reach one of its sinks, and why."""

    record: Record
    """The record, with its id."""
    sink: str | None
    """The sink it was meant for, or None when it was still before routing."""
    stage: str
    """Where it was when it was given up: ``"source"``, ``"route"`` or ``"sink"``."""
    reason: str
    """A short text: ``"drain deadline"``, ``"immediate stop"``, ``"cancelled"``, the
    sink's exception as ``"sink raised TypeName: message"``, or ``"sink unhealthy:
    TypeName: message"`` for a batch set aside while the sink's circuit breaker was open
    (with the last error that the sink raised)."""
    error: BaseException | None = attrs.field(default=None, eq=False, repr=False)
    """The sink's exception, when a write raised; None otherwise."""
    stored: bool = False
    """Kept in the pipeline's rescue store, for replay (see ``Pipeline(rescue=...)``)."""
    kind: ReasonKind = attrs.field(
        kw_only=True,
        default=attrs.Factory(lambda self: kind_of(self.reason), takes_self=True),
    )
    """The kind of :attr:`reason`, one of a few values (:data:`ReasonKind`) for code to
    test: ``"deadline"``, ``"immediate"``, ``"cancelled"``, ``"sink_error"``,
    ``"unhealthy"``, ``"pipeline_failed"``, and in a replay ``"no_sink"``,
    ``"not_routed"`` and ``"held"`` (in a segment a live writer still holds)."""


def stored_undelivered(
    records: Iterable[Record], sink: str, reason: Reason, error: BaseException | None
) -> list[Undelivered]:
    """``records`` given up by ``sink``'s writer, as entries for the rescue store."""
    text, kind = reason.text, reason.kind
    return [Undelivered(r, sink, "sink", text, error, True, kind=kind) for r in records]


def _frozen_map(d: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(d))


def _frozen_text_map(d: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(d))


def _as_tuple(items: Iterable[Undelivered]) -> Sequence[Undelivered]:
    if getattr(items, "keeps_its_records", True) is False:  # a view of the store's
        return items  # type: ignore[return-value]
    return tuple(items)


@final
@attrs.frozen
class DeliveryReport:
    """What became of every record of one run. Built when the run ends, also when it was
    cancelled from outside or failed."""

    received: int
    """Records the source produced."""
    routed: Mapping[str, int] = attrs.field(converter=_frozen_map)
    """Per sink name: records routed to it."""
    delivered: Mapping[str, int] = attrs.field(converter=_frozen_map)
    """Per sink name, business and infra sinks alike: records whose write returned.
    Every configured sink has an entry, 0 included."""
    undelivered: Sequence[Undelivered] = attrs.field(converter=_as_tuple)
    """Every record not delivered to a sink it was meant for, by id, with where and why."""
    discarded: Mapping[str, int] = attrs.field(converter=_frozen_map)
    """Per infra group that had no sink (``"default"``, ``"miss"``, ...): records counted
    there and dropped on purpose. Under ``"monitor"`` also the statistics records that
    found the monitor sink's buffer full, or that it had not written one interval after
    the data was done (dropped rather than wait: they are not data); under ``"error"``
    the copies of failed records that found the error sink's buffer full."""
    timed_out: bool
    """The drain deadline (an immediate stop's included) passed with records left."""
    drain_seconds: float
    """From the first Stop (or the end of the source) to the end of the run, on Trio's
    clock."""
    dispatched: int = 0
    """Records that left the route stage for at least one sink or discarded group. The
    rest of ``received`` is reported in ``undelivered`` with ``sink`` None."""
    sink_errors: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_text_map)
    """Per sink name: an exception its ``flush()`` or ``aclose()`` raised, as text.
    Records it had already delivered stay delivered."""
    generated: int = 0
    """Records the pipeline made itself: the statistics records sent to the ``monitor``
    group. Their ids are negative (-1, -2, ...), so they never clash with the source's;
    those sent to the monitor sink are counted in its ``routed`` like any other record,
    the rest in ``discarded["monitor"]``."""
    acknowledged: int | None = None
    """Items the source acknowledged in this run (see ``Source.ack``): the first
    ``acknowledged`` of the ``received``. None when the source does not acknowledge."""

    @property
    def ok(self) -> bool:
        """True when nothing is undelivered."""
        return not self.undelivered

    def check(self) -> None:
        """Raise :class:`AccountingError` unless every record is accounted for.

        For every sink S, ``delivered[S] + |undelivered with sink S| == routed[S]``, with
        no record reported twice for the same sink; and every record the source produced
        was dispatched by the route stage or reported with ``sink`` None.
        """
        problems: list[str] = []
        per_sink: Counter[str | None] = Counter(u.sink for u in self.undelivered)
        for name in sorted({*self.routed, *self.delivered}):
            routed = self.routed.get(name, 0)
            delivered = self.delivered.get(name, 0)
            lost = per_sink.get(name, 0)
            if delivered < 0 or delivered + lost != routed:
                problems.append(
                    f"sink {name!r}: delivered {delivered} + undelivered {lost} != routed {routed}"
                )
        unknown = {name for name in per_sink if name is not None} - set(self.routed)
        if unknown:
            problems.append(f"undelivered names unknown sinks {sorted(unknown)}")
        seen: set[tuple[str | None, int]] = set()
        for u in self.undelivered:
            key = (u.sink, u.record.id)
            if key in seen:
                problems.append(f"record {u.record.id} reported twice for sink {u.sink!r}")
            seen.add(key)
            if not -self.generated <= u.record.id < self.received:
                problems.append(
                    f"record id {u.record.id} outside {-self.generated}..{self.received - 1}"
                )
        unrouted = per_sink.get(None, 0)
        if self.dispatched + unrouted != self.received:
            problems.append(
                f"dispatched {self.dispatched} + unrouted {unrouted} != received {self.received}"
            )
        if problems:
            raise AccountingError("; ".join(problems))


class SourceError(TrioSinkError):
    """The source raised: the run stopped gracefully, drained, and ended with this error.

    ``__cause__`` is the source's exception and :attr:`report` the run's
    :class:`DeliveryReport`: every record the source produced before it failed was
    delivered or reported, as in any other run.
    """

    report: DeliveryReport

    def __init__(self, message: str, report: DeliveryReport) -> None:
        super().__init__(message)
        self.report = report
