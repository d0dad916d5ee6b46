"""Hypothesis strategies for testing pipelines in virtual time.

Imported explicitly (``from trio_sink.testing.strategies import stop_plans``): it is
the one module of trio_sink that needs Hypothesis.

Every value drawn is plain data (frozen attrs classes), so a shrunk failing example
reads as a recipe: a :class:`StopPlan`, :class:`PipelineSettings`, a
:class:`SinkBehaviour` per sink. Durations are mostly exact binary fractions (``k/64``,
``k/1024``), whose sums are exact in floating point: in virtual time a stop, a drain
deadline, a write's end and a source's next item then often fall on the very same
instant, where shutdown races live. Arbitrary floats are drawn as well.

A property test of your own pipeline is three lines::

    @given(plan=stop_plans(), clock=clocks())
    async def test_mine(plan: StopPlan, clock: MockClock) -> None:
        await run_scenario(make_my_pipeline, plan)

Every strategy takes keyword arguments that narrow it; bad ones raise Hypothesis's
:class:`~hypothesis.errors.InvalidArgument` when the strategy is built.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable
from functools import cache
from typing import Any, Literal, TypedDict, final

import attrs
import trio.testing
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from .. import ConfigError, Pipeline, Record, Route
from .._sink import SinkLike
from ..sinks import CollectSink, SlowSink
from ._flaky import FlakySink
from ._hanging import HangingSink
from ._recording import RecordingSink
from ._scripted import Pause, ScriptedSource

__all__ = [
    "STOP_KINDS",
    "DrainKind",
    "PipelineKwargs",
    "PipelineScenario",
    "PipelineSettings",
    "SinkBehaviour",
    "Stop",
    "StopKind",
    "StopPlan",
    "clocks",
    "durations",
    "pipeline_scenarios",
    "pipeline_settings",
    "record_batches",
    "records",
    "sink_behaviours",
    "stop_plans",
]

# Strategy factories validate their arguments, then build the strategy in a cached
# helper: a scenario is drawn hundreds of times per test (more while shrinking), and
# building strategies anew on every draw costs more than running the pipeline.


# -- argument checks -------------------------------------------------------------------


def _is_seconds(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value >= 0
    )


def _arg_seconds(name: str, value: object) -> float:
    if not _is_seconds(value):
        raise InvalidArgument(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    assert isinstance(value, (int, float))
    return float(value)


def _arg_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgument(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _arg_order(low_name: str, low: float, high_name: str, high: float) -> None:
    if low > high:
        raise InvalidArgument(f"{low_name}={low!r} must be <= {high_name}={high!r}")


def _arg_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{name} must be a bool, got {value!r}")
    return value


def _field_seconds(_inst: object, attribute: attrs.Attribute[float], value: object) -> None:
    if not _is_seconds(value):
        raise ConfigError(
            f"{attribute.name} must be a finite number of seconds >= 0, got {value!r}"
        )


def _field_int(minimum: int) -> Callable[[object, attrs.Attribute[int], object], None]:
    def check(_inst: object, attribute: attrs.Attribute[int], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{attribute.name} must be an int >= {minimum}, got {value!r}")

    return check


# -- clocks and durations --------------------------------------------------------------


def clocks(*, autojump_threshold: float = 0.0) -> st.SearchStrategy[trio.testing.MockClock]:
    """A fresh :class:`~trio.testing.MockClock` for each example, so every run starts
    at t=0, jumping ahead whenever every task has waited ``autojump_threshold`` real
    seconds (0: at once).

    Draw it inside ``@given`` (``clock=clocks()``) and pytest-trio runs the async test
    on it; do not combine ``@given`` with the ``autojump_clock`` fixture, whose one
    clock would carry its time from one example to the next.
    """
    return _clocks(_arg_seconds("autojump_threshold", autojump_threshold))


@cache
def _clocks(threshold: float) -> st.SearchStrategy[trio.testing.MockClock]:
    return st.builds(trio.testing.MockClock, autojump_threshold=st.just(threshold))


_ROUND = (0.0, 1 / 1024, 1 / 128, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0, 2.0, 3.0)


def durations(
    *, min_value: float = 0.0, max_value: float = 1.0, exact: bool = False
) -> st.SearchStrategy[float]:
    """Seconds in ``[min_value, max_value]``: round binary fractions (1/1024 ... 3),
    multiples of 1/64 and of 1/1024 and, unless ``exact``, any float."""
    low = _arg_seconds("min_value", min_value)
    high = _arg_seconds("max_value", max_value)
    _arg_order("min_value", low, "max_value", high)
    return _durations(low, high, _arg_bool("exact", exact))


def _over(denominator: int) -> Callable[[int], float]:
    return lambda k: k / denominator


@cache
def _durations(low: float, high: float, exact: bool) -> st.SearchStrategy[float]:
    branches: list[st.SearchStrategy[float]] = []
    round_ones = [x for x in _ROUND if low <= x <= high]
    if round_ones:
        branches.append(st.sampled_from(round_ones))
    for denominator in (64, 1024):
        first, last = math.ceil(low * denominator), math.floor(high * denominator)
        if first <= last:
            branches.append(st.integers(first, last).map(_over(denominator)))
    if not exact or not branches:
        branches.append(st.floats(low, high, allow_nan=False, allow_infinity=False))
    return st.one_of(branches)


# -- records ---------------------------------------------------------------------------


def records(
    *,
    min_id: int = 0,
    max_id: int = 10_000,
    raws: st.SearchStrategy[Any] | None = None,
    payloads: st.SearchStrategy[Any] | None = None,
) -> st.SearchStrategy[Record]:
    """One :class:`~trio_sink.Record` with an id in ``[min_id, max_id]``; ``raw`` from
    ``raws`` (default: ints) and ``payload`` from ``payloads`` (default: the raw item,
    as without ``parse``)."""
    low = _arg_int("min_id", min_id, 0)
    high = _arg_int("max_id", max_id, 0)
    _arg_order("min_id", low, "max_id", high)
    return _records(low, high, raws, payloads)


@cache
def _records(
    low: int,
    high: int,
    raws: st.SearchStrategy[Any] | None,
    payloads: st.SearchStrategy[Any] | None,
) -> st.SearchStrategy[Record]:
    raw_items = st.integers() if raws is None else raws

    @st.composite
    def record(draw: st.DrawFn) -> Record:
        ident = draw(st.integers(low, high))
        raw = draw(raw_items)
        return Record(ident, raw, raw if payloads is None else draw(payloads))

    return record()


def record_batches(
    *,
    min_size: int = 1,
    max_size: int = 16,
    raws: st.SearchStrategy[Any] | None = None,
    payloads: st.SearchStrategy[Any] | None = None,
) -> st.SearchStrategy[tuple[Record, ...]]:
    """A batch as a sink receives it: ``min_size`` to ``max_size`` records with
    strictly increasing ids."""
    low = _arg_int("min_size", min_size, 0)
    high = _arg_int("max_size", max_size, 0)
    _arg_order("min_size", low, "max_size", high)
    return _record_batches(low, high, raws, payloads)


@cache
def _record_batches(
    low: int,
    high: int,
    raws: st.SearchStrategy[Any] | None,
    payloads: st.SearchStrategy[Any] | None,
) -> st.SearchStrategy[tuple[Record, ...]]:
    one = _records(0, 0, raws, payloads)

    @st.composite
    def batch(draw: st.DrawFn) -> tuple[Record, ...]:
        first = draw(st.integers(0, 10_000))
        gaps = draw(st.lists(st.integers(1, 3), min_size=low, max_size=high))
        out: list[Record] = []
        ident = first
        for gap in gaps:
            r = draw(one)
            out.append(Record(ident, r.raw, r.payload))
            ident += gap
        return tuple(out)

    return batch()


# -- sink behaviours -------------------------------------------------------------------


def _write_numbers(numbers: Iterable[int]) -> frozenset[int]:
    return frozenset(numbers)


@final
@attrs.frozen
class SinkBehaviour:
    """How a fake sink behaves; :meth:`build` makes one.

    A write of ``n`` records first sleeps ``per_batch + per_record * n`` on Trio's
    clock; then write number ``k`` (0-based, every call counted) hangs until
    cancelled when ``hang_after`` is set and ``k >= hang_after``; else it raises when
    :meth:`fails` says so (or, with ``fail_probability``, at random but reproducibly
    from ``seed``), delivering nothing; else it delivers the batch.
    """

    per_record: float = attrs.field(default=0.0, validator=_field_seconds)
    per_batch: float = attrs.field(default=0.0, validator=_field_seconds)
    fail_writes: frozenset[int] = attrs.field(default=frozenset(), converter=_write_numbers)
    """Write numbers that raise."""
    fail_every: int = attrs.field(default=0, validator=_field_int(0))
    """When > 0, write ``k`` also raises if ``k % fail_every == fail_offset``."""
    fail_offset: int = attrs.field(default=0, validator=_field_int(0))
    fail_probability: float = attrs.field(default=0.0)
    seed: int = attrs.field(default=0, validator=_field_int(0))
    hang_after: int | None = attrs.field(default=None)
    """When set, write number ``hang_after`` and every later one hang until cancelled."""

    @fail_writes.validator
    def _check_fail_writes(self, attribute: attrs.Attribute[Any], value: frozenset[int]) -> None:
        if not all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in value):
            raise ConfigError(f"fail_writes must hold write numbers (ints >= 0), got {value!r}")

    @fail_probability.validator
    def _check_probability(self, attribute: attrs.Attribute[Any], value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ConfigError(f"fail_probability must be a number in [0, 1], got {value!r}")

    @hang_after.validator
    def _check_hang_after(self, attribute: attrs.Attribute[Any], value: int | None) -> None:
        if value is not None:
            _field_int(0)(self, attribute, value)

    def fails(self, k: int) -> bool:
        """Whether write number ``k`` raises by rule (``fail_writes``, ``fail_every``);
        random failures come on top."""
        if k in self.fail_writes:
            return True
        return self.fail_every > 0 and k % self.fail_every == self.fail_offset % self.fail_every

    @property
    def can_fail(self) -> bool:
        return bool(self.fail_writes) or self.fail_every > 0 or self.fail_probability > 0

    def build(self, name: str, *, error: Callable[[], Exception] | None = None) -> RecordingSink:
        """A sink named ``name`` that behaves as described: a
        :class:`~trio_sink.testing.RecordingSink` (every call, its batch, times and
        outcome in ``.calls``; delivered records in ``.records``) around
        ``SlowSink(HangingSink(FlakySink(CollectSink)))``, each layer only if needed.
        A failing write raises ``error()`` (default: FlakySink's ``OSError``)."""
        sink: SinkLike = CollectSink(name)
        if self.can_fail:
            extra: dict[str, Any] = {} if error is None else {"error": error}
            sink = FlakySink(
                sink,
                fail_on=lambda k, _batch: self.fails(k),
                probability=self.fail_probability,
                seed=self.seed,
                **extra,
            )
        if self.hang_after is not None:
            sink = HangingSink(sink, after=self.hang_after)
        if self.per_record or self.per_batch:
            sink = SlowSink(sink, per_record=self.per_record, per_batch=self.per_batch)
        return RecordingSink(name, inner=sink)


def sink_behaviours(
    *,
    max_per_record: float = 1 / 16,
    max_per_batch: float = 2.0,
    failures: bool = True,
    max_fail_write: int = 12,
    random_failures: bool = False,
    hangs: bool = False,
    max_hang_after: int = 8,
) -> st.SearchStrategy[SinkBehaviour]:
    """Sink behaviours: speeds per record in ``[0, max_per_record]`` and per batch in
    ``[0, max_per_batch]`` (often 0); with ``failures``, sometimes a few failing
    write numbers up to ``max_fail_write`` or every m-th write (m in 2..5); with
    ``random_failures``, sometimes a seeded failure probability; with ``hangs``,
    sometimes a hang from a write number up to ``max_hang_after``.

    A run with a hanging sink ends only if it is stopped (a hung write holds the source
    back, so batch mode may never reach the source's end), and then only at a finite
    drain deadline or an immediate stop.
    """
    return _sink_behaviours(
        _arg_seconds("max_per_record", max_per_record),
        _arg_seconds("max_per_batch", max_per_batch),
        _arg_bool("failures", failures),
        _arg_int("max_fail_write", max_fail_write, 0),
        _arg_bool("random_failures", random_failures),
        _arg_bool("hangs", hangs),
        _arg_int("max_hang_after", max_hang_after, 0),
    )


def _speeds(high: float) -> st.SearchStrategy[float]:
    return st.one_of(st.just(0.0), _durations(0.0, high, False))


@cache
def _sink_behaviours(
    max_per_record: float,
    max_per_batch: float,
    failures: bool,
    max_fail_write: int,
    random_failures: bool,
    hangs: bool,
    max_hang_after: int,
) -> st.SearchStrategy[SinkBehaviour]:
    never: st.SearchStrategy[dict[str, Any]] = st.just({})
    patterns = [never]
    if failures:
        listed = st.frozensets(st.integers(0, max_fail_write), min_size=1, max_size=4)
        patterns.append(st.builds(lambda s: {"fail_writes": s}, listed))
        patterns.append(
            st.builds(
                lambda m, r: {"fail_every": m, "fail_offset": r % m},
                st.integers(2, 5),
                st.integers(0, 4),
            )
        )
    if random_failures:
        patterns.append(
            st.builds(
                lambda p, s: {"fail_probability": p, "seed": s},
                st.sampled_from([1 / 8, 1 / 4, 1 / 2]),
                st.integers(0, 2**16),
            )
        )
    hang: st.SearchStrategy[int | None] = st.none()
    if hangs:
        hang = st.one_of(st.none(), st.integers(0, max_hang_after))

    return st.builds(
        lambda per_record, per_batch, pattern, hang_after: SinkBehaviour(
            per_record=per_record, per_batch=per_batch, hang_after=hang_after, **pattern
        ),
        _speeds(max_per_record),
        _speeds(max_per_batch),
        st.one_of(patterns),
        hang,
    )


# -- stop plans ------------------------------------------------------------------------


@final
@attrs.frozen
class Stop:
    """At ``at`` seconds after the run starts, ``handle.stop(immediate=immediate)``."""

    at: float = attrs.field(validator=_field_seconds)
    immediate: bool = False


def _as_stops(stops: Iterable[Stop]) -> tuple[Stop, ...]:
    return tuple(stops)


def _check_stops(_inst: object, attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
    for stop in value:
        if not isinstance(stop, Stop):
            raise ConfigError(f"stops must hold Stop values, got {stop!r}")
    times = [s.at for s in value]
    if times != sorted(times):
        raise ConfigError(f"stops must be in time order, got times {times}")


@final
@attrs.frozen
class StopPlan:
    """``stops`` empty: batch mode (``await pipeline.run()``; the source's end stops
    it). Otherwise daemon mode: each stop in order, unless the run has ended by then."""

    stops: tuple[Stop, ...] = attrs.field(default=(), converter=_as_stops, validator=_check_stops)

    @property
    def batch_mode(self) -> bool:
        return not self.stops

    def shifted(self, seconds: float) -> StopPlan:
        """The same plan with every stop ``seconds`` later (earlier when negative)."""
        return StopPlan(tuple(Stop(s.at + seconds, s.immediate) for s in self.stops))


StopKind = Literal["batch", "graceful", "immediate", "graceful_then_immediate", "graceful_twice"]
STOP_KINDS: tuple[StopKind, ...] = (
    "batch",
    "graceful",
    "immediate",
    "graceful_then_immediate",
    "graceful_twice",
)


def stop_plans(
    *,
    kinds: Collection[StopKind] = STOP_KINDS,
    min_at: float = 0.0,
    max_at: float = 5.0,
) -> st.SearchStrategy[StopPlan]:
    """Stop plans of the given ``kinds``, every stop at a time in ``[min_at, max_at]``:
    ``batch`` (no stop), ``graceful``, ``immediate``, ``graceful_then_immediate`` and
    ``graceful_twice`` (a second stop, which can only bring the deadline forward; it
    may come at the same instant as the first)."""
    if isinstance(kinds, str):
        raise InvalidArgument(f"kinds must be a collection of stop kinds, got the str {kinds!r}")
    chosen = tuple(dict.fromkeys(kinds))
    unknown = [k for k in chosen if k not in STOP_KINDS]
    if unknown or not chosen:
        raise InvalidArgument(
            f"kinds must be a non-empty collection of {STOP_KINDS}, got {list(kinds)!r}"
        )
    low = _arg_seconds("min_at", min_at)
    high = _arg_seconds("max_at", max_at)
    _arg_order("min_at", low, "max_at", high)
    return _stop_plans(chosen, low, high)


@cache
def _stop_plans(
    kinds: tuple[StopKind, ...], low: float, high: float
) -> st.SearchStrategy[StopPlan]:
    times = _durations(low, high, False)

    @st.composite
    def plan(draw: st.DrawFn) -> StopPlan:
        kind = draw(st.sampled_from(kinds))
        if kind == "batch":
            return StopPlan()
        t = draw(times)
        if kind in ("graceful", "immediate"):
            return StopPlan((Stop(t, kind == "immediate"),))
        later = draw(st.one_of(st.just(t), _durations(t, high, False)))
        return StopPlan((Stop(t), Stop(later, kind == "graceful_then_immediate")))

    return plan()


# -- pipeline settings -----------------------------------------------------------------


class PipelineKwargs(TypedDict):
    capacity: int
    batch_size: int
    batch_timeout: float
    drain_timeout: float | None


def _field_optional_seconds(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _field_seconds(_inst, attribute, value)


@final
@attrs.frozen
class PipelineSettings:
    """The tuning of a :class:`~trio_sink.Pipeline`: ``Pipeline(source,
    **settings.kwargs())``. Validated as ``Pipeline`` validates them."""

    capacity: int = attrs.field(default=128, validator=_field_int(0))
    batch_size: int = attrs.field(default=128, validator=_field_int(1))
    batch_timeout: float = attrs.field(default=0.3, validator=_field_seconds)
    drain_timeout: float | None = attrs.field(default=60.0, validator=_field_optional_seconds)

    def kwargs(self) -> PipelineKwargs:
        return PipelineKwargs(
            capacity=self.capacity,
            batch_size=self.batch_size,
            batch_timeout=self.batch_timeout,
            drain_timeout=self.drain_timeout,
        )


DrainKind = Literal["any", "finite", "unlimited"]


def pipeline_settings(
    *,
    max_capacity: int = 8,
    max_batch_size: int = 64,
    max_batch_timeout: float = 1.0,
    drain: DrainKind = "any",
    min_drain_timeout: float = 0.0,
    max_drain_timeout: float = 60.0,
) -> st.SearchStrategy[PipelineSettings]:
    """Settings with ``capacity`` in ``[0, max_capacity]``, ``batch_size`` in
    ``[1, max_batch_size]`` (often at most 8), ``batch_timeout`` in
    ``[0, max_batch_timeout]`` and a drain timeout that is ``drain``: ``"finite"`` (in
    ``[min_drain_timeout, max_drain_timeout]``), ``"unlimited"`` (None) or ``"any"``."""
    if drain not in ("any", "finite", "unlimited"):
        raise InvalidArgument(f"drain must be 'any', 'finite' or 'unlimited', got {drain!r}")
    low = _arg_seconds("min_drain_timeout", min_drain_timeout)
    high = _arg_seconds("max_drain_timeout", max_drain_timeout)
    _arg_order("min_drain_timeout", low, "max_drain_timeout", high)
    return _pipeline_settings(
        _arg_int("max_capacity", max_capacity, 0),
        _arg_int("max_batch_size", max_batch_size, 1),
        _arg_seconds("max_batch_timeout", max_batch_timeout),
        drain,
        low,
        high,
    )


@cache
def _pipeline_settings(
    max_capacity: int,
    max_batch_size: int,
    max_batch_timeout: float,
    drain: DrainKind,
    low: float,
    high: float,
) -> st.SearchStrategy[PipelineSettings]:
    finite = _durations(low, high, False)
    timeouts: st.SearchStrategy[float | None] = (
        st.none()
        if drain == "unlimited"
        else finite
        if drain == "finite"
        else st.one_of(st.none(), finite)
    )
    return st.builds(
        PipelineSettings,
        capacity=st.integers(0, max_capacity),
        batch_size=st.one_of(
            st.integers(1, min(8, max_batch_size)), st.integers(1, max_batch_size)
        ),
        batch_timeout=_durations(0.0, max_batch_timeout, False),
        drain_timeout=timeouts,
    )


# -- whole scenarios -------------------------------------------------------------------


@final
@attrs.frozen
class PipelineScenario:
    """A whole run, as data: ``run_scenario(scenario.pipeline, scenario.plan)``.

    The source yields ``items`` (the ints ``0 .. items - 1``): a plain list when
    ``interval`` is None, else a :class:`~trio_sink.testing.ScriptedSource` that waits
    ``interval`` seconds before each item. One route sends every record to every sink:
    ``sinks[i]`` is built as ``sink<i>``.
    """

    settings: PipelineSettings
    sinks: tuple[SinkBehaviour, ...]
    plan: StopPlan
    items: int = attrs.field(default=0, validator=_field_int(0))
    interval: float | None = attrs.field(default=None, validator=_field_optional_seconds)

    def pipeline(self) -> Pipeline:
        """A new pipeline for this scenario (a pipeline runs once)."""
        source: Any = list(range(self.items))
        if self.interval is not None:
            pause = [Pause(self.interval)] if self.interval else []
            source = ScriptedSource([step for x in source for step in (*pause, x)])
        sinks = [b.build(f"sink{i}") for i, b in enumerate(self.sinks)]
        return Pipeline(source, routes=[Route("all", sinks)], **self.settings.kwargs())


def pipeline_scenarios(
    *,
    max_items: int = 100,
    max_sinks: int = 3,
    settings: st.SearchStrategy[PipelineSettings] | None = None,
    sinks: st.SearchStrategy[SinkBehaviour] | None = None,
    plans: st.SearchStrategy[StopPlan] | None = None,
) -> st.SearchStrategy[PipelineScenario]:
    """Whole runs: ``pipeline_settings()``, 1 to ``max_sinks`` ``sink_behaviours()``
    (hangs included), a ``stop_plans()`` plan and up to ``max_items`` items, from a
    list or a paced source; each part can be replaced by a narrower strategy.

    Never a run that cannot end: in batch mode no sink hangs; when a sink may hang and
    the plan has no immediate stop, the drain timeout is made finite (a hang then ends
    at the deadline).
    """
    return _pipeline_scenarios(
        _arg_int("max_items", max_items, 0),
        _arg_int("max_sinks", max_sinks, 1),
        pipeline_settings() if settings is None else settings,
        sink_behaviours(hangs=True) if sinks is None else sinks,
        stop_plans() if plans is None else plans,
    )


@cache
def _pipeline_scenarios(
    max_items: int,
    max_sinks: int,
    settings: st.SearchStrategy[PipelineSettings],
    sinks: st.SearchStrategy[SinkBehaviour],
    plans: st.SearchStrategy[StopPlan],
) -> st.SearchStrategy[PipelineScenario]:
    finite = _durations(0.0, 60.0, False)

    @st.composite
    def scenario(draw: st.DrawFn) -> PipelineScenario:
        chosen = draw(settings)
        behaviours = tuple(draw(st.lists(sinks, min_size=1, max_size=max_sinks)))
        plan = draw(plans)
        if plan.batch_mode:
            # Nothing would stop the run: the source would wait on a hung sink for ever.
            behaviours = tuple(attrs.evolve(b, hang_after=None) for b in behaviours)
        may_hang = any(b.hang_after is not None for b in behaviours)
        if may_hang and chosen.drain_timeout is None and not any(s.immediate for s in plan.stops):
            chosen = attrs.evolve(chosen, drain_timeout=draw(finite))
        items = draw(st.integers(0, max_items))
        interval = draw(st.one_of(st.none(), _durations(0.0, 1 / 4, True)))
        return PipelineScenario(chosen, behaviours, plan, items, interval)

    return scenario()
