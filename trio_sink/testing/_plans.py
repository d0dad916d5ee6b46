"""Stop plans: when a run under test is stopped, as plain data.

They need no Hypothesis: :func:`~trio_sink.testing.run_scenario` takes a plan written by
hand as well as one drawn by :func:`~trio_sink.testing.strategies.stop_plans`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, final

import attrs

from .._exceptions import ConfigError
from ._checks import field_seconds

__all__ = ["STOP_KINDS", "Stop", "StopKind", "StopPlan"]


@final
@attrs.frozen
class Stop:
    """At ``at`` seconds after the run starts, ``handle.stop(immediate=immediate)``."""

    at: float = attrs.field(validator=field_seconds)
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
