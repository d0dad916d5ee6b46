"""Strategies for values: mock clocks, durations, records and batches."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache
from typing import Any

import trio.testing
from hypothesis import strategies as st

from .._record import Record
from ._strategy_args import arg_bool, arg_int_range, arg_seconds, arg_seconds_range

__all__ = ["cached_durations", "clocks", "durations", "record_batches", "records"]

# Strategy factories validate their arguments, then build the strategy in a cached
# helper: a scenario is drawn hundreds of times per test (more while shrinking), and
# building strategies anew on every draw costs more than running the pipeline.


def clocks(*, autojump_threshold: float = 0.0) -> st.SearchStrategy[trio.testing.MockClock]:
    """A fresh :class:`~trio.testing.MockClock` for each example, so every run starts
    at t=0, jumping ahead whenever every task has waited ``autojump_threshold`` real
    seconds (0: at once).

    Draw it inside ``@given`` (``clock=clocks()``) and pytest-trio runs the async test
    on it; do not combine ``@given`` with the ``autojump_clock`` fixture, whose one
    clock would carry its time from one example to the next.
    """
    return _clocks(arg_seconds("autojump_threshold", autojump_threshold))


@cache
def _clocks(threshold: float) -> st.SearchStrategy[trio.testing.MockClock]:
    return st.builds(trio.testing.MockClock, autojump_threshold=st.just(threshold))


_ROUND = (0.0, 1 / 1024, 1 / 128, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0, 2.0, 3.0)


def durations(
    *, min_value: float = 0.0, max_value: float = 1.0, exact: bool = False
) -> st.SearchStrategy[float]:
    """Seconds in ``[min_value, max_value]``: round binary fractions (1/1024 ... 3),
    multiples of 1/64 and of 1/1024 and, unless ``exact``, any float."""
    low, high = arg_seconds_range("min_value", min_value, "max_value", max_value)
    return cached_durations(low, high, arg_bool("exact", exact))


def _over(denominator: int) -> Callable[[int], float]:
    return lambda k: k / denominator


@cache
def cached_durations(low: float, high: float, exact: bool) -> st.SearchStrategy[float]:
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
    low, high = arg_int_range("min_id", min_id, "max_id", max_id)
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
    low, high = arg_int_range("min_size", min_size, "max_size", max_size)
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
