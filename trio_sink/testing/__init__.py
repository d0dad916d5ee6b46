"""Tools to prove pipelines lossless, as ``trio.testing`` does for Trio programs.

Imported explicitly (``import trio_sink.testing``), never by ``import trio_sink``.

- Fakes: :class:`ScriptedSource` (items, :class:`Pause`, :class:`Fail`, endless mode),
  :class:`AckingSource` (the same, keeping what the pipeline acknowledges),
  :class:`RecordingSink`, :class:`FlakySink` (failures by number, rule, chance, outage or
  for good), :class:`FailingProbe` (down until its probe succeeds), :class:`HangingSink`,
  and :class:`~trio_sink.sinks.SlowSink`.
- :func:`check_sink`: a conformance suite for a sink class.
- :func:`running`: a pipeline in daemon mode for the length of an ``async with`` block.
- :func:`quiet_library_logs`: mute trio_sink's logs for a block.
- :func:`run_scenario`: run a pipeline under a stop plan and check every promise of its
  report; :func:`run_plan` only runs it (a :class:`PlanRun` tells how it ended), for
  property tests that check their own way. Hypothesis strategies to drive them live in
  :mod:`trio_sink.testing.strategies` (imported explicitly too, so that Hypothesis is
  needed only there).
"""

from ..sinks import SlowSink as SlowSink
from ._acking import AckingSource as AckingSource
from ._conformance import RULES as SINK_RULES
from ._conformance import SinkConformanceError as SinkConformanceError
from ._conformance import check_sink as check_sink
from ._failing_probe import FailingProbe as FailingProbe
from ._flaky import FlakySink as FlakySink
from ._hanging import HangingSink as HangingSink
from ._logs import quiet_library_logs as quiet_library_logs
from ._plan_run import PlanRun as PlanRun
from ._plan_run import run_plan as run_plan
from ._recording import RecordingSink as RecordingSink
from ._recording import WriteCall as WriteCall
from ._running import running as running
from ._scenario import ScenarioError as ScenarioError
from ._scenario import run_scenario as run_scenario
from ._scripted import Fail as Fail
from ._scripted import Pause as Pause
from ._scripted import ScriptedSource as ScriptedSource

__all__ = [
    "SINK_RULES",
    "AckingSource",
    "Fail",
    "FailingProbe",
    "FlakySink",
    "HangingSink",
    "Pause",
    "PlanRun",
    "RecordingSink",
    "ScenarioError",
    "ScriptedSource",
    "SinkConformanceError",
    "SlowSink",
    "WriteCall",
    "check_sink",
    "quiet_library_logs",
    "run_plan",
    "run_scenario",
    "running",
]
