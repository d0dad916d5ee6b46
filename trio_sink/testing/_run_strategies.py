"""Strategies for the parts of a run: sink behaviours, stop plans, pipeline settings,
and whole scenarios combining them."""

from __future__ import annotations

from collections.abc import Collection
from functools import cache
from typing import Any, Literal

import attrs
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from ._plans import STOP_KINDS, Stop, StopKind, StopPlan
from ._recipes import PipelineScenario, PipelineSettings, SinkBehaviour
from ._strategy_args import arg_bool, arg_int, arg_seconds, arg_seconds_range
from ._value_strategies import cached_durations

__all__ = [
    "DrainKind",
    "pipeline_scenarios",
    "pipeline_settings",
    "sink_behaviours",
    "stop_plans",
]

DrainKind = Literal["any", "finite", "unlimited"]

# As in _value_strategies: each factory checks its arguments, then builds the strategy
# in a cached helper, since a scenario is drawn hundreds of times per test.


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
        arg_seconds("max_per_record", max_per_record),
        arg_seconds("max_per_batch", max_per_batch),
        arg_bool("failures", failures),
        arg_int("max_fail_write", max_fail_write, 0),
        arg_bool("random_failures", random_failures),
        arg_bool("hangs", hangs),
        arg_int("max_hang_after", max_hang_after, 0),
    )


def _speeds(high: float) -> st.SearchStrategy[float]:
    return st.one_of(st.just(0.0), cached_durations(0.0, high, False))


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
    low, high = arg_seconds_range("min_at", min_at, "max_at", max_at)
    return _stop_plans(chosen, low, high)


@cache
def _stop_plans(
    kinds: tuple[StopKind, ...], low: float, high: float
) -> st.SearchStrategy[StopPlan]:
    times = cached_durations(low, high, False)

    @st.composite
    def plan(draw: st.DrawFn) -> StopPlan:
        kind = draw(st.sampled_from(kinds))
        if kind == "batch":
            return StopPlan()
        t = draw(times)
        if kind in ("graceful", "immediate"):
            return StopPlan((Stop(t, kind == "immediate"),))
        later = draw(st.one_of(st.just(t), cached_durations(t, high, False)))
        return StopPlan((Stop(t), Stop(later, kind == "graceful_then_immediate")))

    return plan()


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
    low, high = arg_seconds_range(
        "min_drain_timeout", min_drain_timeout, "max_drain_timeout", max_drain_timeout
    )
    return _pipeline_settings(
        arg_int("max_capacity", max_capacity, 0),
        arg_int("max_batch_size", max_batch_size, 1),
        arg_seconds("max_batch_timeout", max_batch_timeout),
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
    finite = cached_durations(low, high, False)
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
        batch_timeout=cached_durations(0.0, max_batch_timeout, False),
        drain_timeout=timeouts,
    )


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
        arg_int("max_items", max_items, 0),
        arg_int("max_sinks", max_sinks, 1),
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
    finite = cached_durations(0.0, 60.0, False)

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
        interval = draw(st.one_of(st.none(), cached_durations(0.0, 1 / 4, True)))
        return PipelineScenario(chosen, behaviours, plan, items, interval)

    return scenario()
