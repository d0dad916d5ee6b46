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

The plain data (stop plans, sink behaviours, settings, scenarios) needs no Hypothesis
and lives beside the fakes; the strategies that draw it live here.
"""

from __future__ import annotations

from ._plans import STOP_KINDS as STOP_KINDS
from ._plans import Stop as Stop
from ._plans import StopKind as StopKind
from ._plans import StopPlan as StopPlan
from ._recipes import PipelineKwargs as PipelineKwargs
from ._recipes import PipelineScenario as PipelineScenario
from ._recipes import PipelineSettings as PipelineSettings
from ._recipes import SinkBehaviour as SinkBehaviour
from ._run_strategies import DrainKind as DrainKind
from ._run_strategies import pipeline_scenarios as pipeline_scenarios
from ._run_strategies import pipeline_settings as pipeline_settings
from ._run_strategies import sink_behaviours as sink_behaviours
from ._run_strategies import stop_plans as stop_plans
from ._value_strategies import clocks as clocks
from ._value_strategies import durations as durations
from ._value_strategies import record_batches as record_batches
from ._value_strategies import records as records

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
