"""Recipes for a run under test, as plain data: how each sink behaves, the pipeline's
settings, a whole scenario. Each builds what it describes; a shrunk failing example
reads as one. They need no Hypothesis: :mod:`trio_sink.testing.strategies` draws them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypedDict, final

import attrs

from .. import ConfigError, Pipeline, Route
from .._sink import SinkLike
from ..sinks import CollectSink, SlowSink
from ._checks import field_int, field_optional_seconds, field_seconds, is_write_number
from ._flaky import FlakySink
from ._hanging import HangingSink
from ._plans import StopPlan
from ._recording import RecordingSink
from ._scripted import Pause, ScriptedSource

__all__ = ["PipelineKwargs", "PipelineScenario", "PipelineSettings", "SinkBehaviour"]


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

    per_record: float = attrs.field(default=0.0, validator=field_seconds)
    per_batch: float = attrs.field(default=0.0, validator=field_seconds)
    fail_writes: frozenset[int] = attrs.field(default=frozenset(), converter=_write_numbers)
    """Write numbers that raise."""
    fail_every: int = attrs.field(default=0, validator=field_int(0))
    """When > 0, write ``k`` also raises if ``k % fail_every == fail_offset``."""
    fail_offset: int = attrs.field(default=0, validator=field_int(0))
    fail_probability: float = attrs.field(default=0.0)
    seed: int = attrs.field(default=0, validator=field_int(0))
    hang_after: int | None = attrs.field(default=None)
    """When set, write number ``hang_after`` and every later one hang until cancelled."""

    @fail_writes.validator
    def _check_fail_writes(self, attribute: attrs.Attribute[Any], value: frozenset[int]) -> None:
        if not all(is_write_number(k) for k in value):
            raise ConfigError(f"fail_writes must hold write numbers (ints >= 0), got {value!r}")

    @fail_probability.validator
    def _check_probability(self, attribute: attrs.Attribute[Any], value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ConfigError(f"fail_probability must be a number in [0, 1], got {value!r}")

    @hang_after.validator
    def _check_hang_after(self, attribute: attrs.Attribute[Any], value: int | None) -> None:
        if value is not None:
            field_int(0)(self, attribute, value)

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


class PipelineKwargs(TypedDict):
    capacity: int
    batch_size: int
    batch_timeout: float
    drain_timeout: float | None


@final
@attrs.frozen
class PipelineSettings:
    """The tuning of a :class:`~trio_sink.Pipeline`: ``Pipeline(source,
    **settings.kwargs())``. Validated as ``Pipeline`` validates them."""

    capacity: int = attrs.field(default=128, validator=field_int(0))
    batch_size: int = attrs.field(default=128, validator=field_int(1))
    batch_timeout: float = attrs.field(default=0.3, validator=field_seconds)
    drain_timeout: float | None = attrs.field(default=60.0, validator=field_optional_seconds)

    def kwargs(self) -> PipelineKwargs:
        return PipelineKwargs(
            capacity=self.capacity,
            batch_size=self.batch_size,
            batch_timeout=self.batch_timeout,
            drain_timeout=self.drain_timeout,
        )


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
    items: int = attrs.field(default=0, validator=field_int(0))
    interval: float | None = attrs.field(default=None, validator=field_optional_seconds)

    def pipeline(self) -> Pipeline:
        """A new pipeline for this scenario (a pipeline runs once)."""
        source: Any = list(range(self.items))
        if self.interval is not None:
            pause = [Pause(self.interval)] if self.interval else []
            source = ScriptedSource([step for x in source for step in (*pause, x)])
        sinks = [b.build(f"sink{i}") for i, b in enumerate(self.sinks)]
        return Pipeline(source, routes=[Route("all", sinks)], **self.settings.kwargs())
