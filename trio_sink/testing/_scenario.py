"""run_scenario: run a pipeline under a stop plan, and check what the report promises.

It needs no Hypothesis: a :class:`~trio_sink.testing.strategies.StopPlan` is plain data
that a test can also write by hand.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import DeliveryReport, Pipeline
from .._exceptions import AccountingError
from ._plan_run import OVERRUN_GRACE, PlanRun, require_virtual_time, run_plan
from ._plans import StopPlan

__all__ = ["ScenarioError", "run_scenario"]

EPS = 1e-9
"""Virtual time is exact; this only absorbs float rounding in ``t + drain_timeout``."""


class ScenarioError(AssertionError):
    """A run broke a promise of trio_sink that :func:`run_scenario` checks.

    An ``AssertionError``, so test runners show it as a failed test. ``invariant``
    names what broke, ``report`` is the run's report (None if there was none) and
    ``plan`` the stop plan. Unless the pipeline's own sinks or source misbehave
    outside their contract (a sink that blocks ``aclose`` under cancellation, say), it
    means a bug in trio_sink: please report it with the shrunk example.
    """

    def __init__(
        self,
        invariant: str,
        detail: str,
        report: DeliveryReport | None,
        plan: StopPlan,
    ) -> None:
        super().__init__(f"{invariant}: {detail}\n  plan: {plan!r}\n  report: {report!r}")
        self.invariant = invariant
        self.report = report
        self.plan = plan


async def run_scenario(
    pipeline_factory: Callable[[], Pipeline],
    plan: StopPlan,
    *,
    raise_source_error: bool = False,
    quiet: bool = True,
) -> DeliveryReport:
    """Run a new pipeline from ``pipeline_factory()`` under ``plan``; check the report
    and how the run ended; return the report.

    An empty plan is batch mode (``await pipeline.run()``). Otherwise the pipeline runs
    in daemon mode (``await nursery.start(pipeline.run)``) and each stop is made at
    its time, counted from the call of ``run_scenario``, unless the run has ended by
    then. A :class:`~trio_sink.SourceError` ends the run as any other end: its report
    is checked and returned (``raise_source_error=True``: raised after the checks).

    Checked, each failure raising :class:`ScenarioError` naming it:

    - ``run ended with its report``: ``run()`` returned it or raised SourceError;
    - ``accounting``: ``report.check()`` passes, and every sink has its entry;
    - ``drain deadline``: the run ended no later than ``drain_timeout`` after its
      first stop (or the source's end);
    - ``immediate stop``: an immediate stop ended the run at its very time;
    - ``timed_out``: ``timed_out`` is set exactly when a record was given up at a
      deadline, and those reasons match the plan and the settings.

    Time: meant for virtual time, a :class:`trio.testing.MockClock` with autojump
    (draw ``clock=clocks()`` in ``@given``); a :exc:`RuntimeError` says so otherwise.
    A run that overruns a finite drain deadline is cancelled a moment later and
    fails; with no drain deadline, a run that never ends hangs the test (wrap it
    in :func:`trio.fail_after`).

    A checkpoint. Cancelled from outside, the run is cancelled and the cancellation
    propagates unchecked. trio_sink's logs are muted during the run unless
    ``quiet=False``.
    """
    require_virtual_time("run_scenario")
    pipeline = pipeline_factory()
    if not isinstance(pipeline, Pipeline):
        raise TypeError(f"pipeline_factory must return a Pipeline, got {pipeline!r}")
    run = await run_plan(pipeline, plan, quiet=quiet)
    _check(pipeline, plan, run)
    assert run.report is not None
    if run.source_error is not None and raise_source_error:
        raise run.source_error
    return run.report


def _check(pipeline: Pipeline, plan: StopPlan, run: PlanRun) -> None:
    report, crash, made = run.report, run.crash, run.stops_made
    start, end = run.started, run.ended

    def fail(invariant: str, detail: str) -> ScenarioError:
        return ScenarioError(invariant, detail, report, plan)

    drain_timeout = pipeline.drain_timeout
    if run.overran:
        raise fail(
            "drain deadline",
            f"the run was still going {OVERRUN_GRACE}s after its drain deadline"
            f" ({plan.stops[0].at} + drain_timeout {drain_timeout}); it was cancelled",
        )
    if report is None:
        raise fail("run ended with its report", "the run ended without a report") from crash
    if crash is not None:
        raise fail("run ended with its report", f"run() raised {crash!r}") from crash
    try:
        report.check()
    except AccountingError as exc:
        raise fail("accounting", str(exc)) from exc
    names = set(pipeline.sink_names)
    if set(report.delivered) != names or set(report.routed) != names:
        raise fail(
            "accounting",
            f"report names sinks {sorted(report.delivered)} (delivered) and"
            f" {sorted(report.routed)} (routed), the pipeline has {sorted(names)}",
        )

    stopped_at = end - report.drain_seconds
    if report.drain_seconds < 0:
        raise fail("drain deadline", f"drain_seconds {report.drain_seconds} < 0")
    if drain_timeout is not None:
        if report.drain_seconds > drain_timeout + EPS:
            raise fail(
                "drain deadline",
                f"drained for {report.drain_seconds}s, drain_timeout is {drain_timeout}s",
            )
        if made and end - start > made[0].at + drain_timeout + EPS:
            raise fail(
                "drain deadline",
                f"the run ended at {end - start}s, its first stop was at {made[0].at}s"
                f" and drain_timeout is {drain_timeout}s",
            )
    if made and stopped_at - start > made[0].at + EPS:
        raise fail(
            "drain deadline",
            f"the drain began at {stopped_at - start}s, after the first stop at {made[0].at}s",
        )

    immediate = next((s.at for s in made if s.immediate), None)
    if immediate is not None and abs(end - start - immediate) > EPS:
        raise fail(
            "immediate stop",
            f"the run ended at {end - start}s, the immediate stop was at {immediate}s",
        )

    reasons = {u.reason for u in report.undelivered}
    kinds = {u.kind for u in report.undelivered}
    given_up = kinds & {"deadline", "immediate"}
    if report.timed_out != bool(given_up):
        raise fail(
            "timed_out",
            f"timed_out is {report.timed_out}, undelivered reasons are {sorted(reasons)}",
        )
    if "deadline" in kinds and drain_timeout is None:
        raise fail("timed_out", "records given up at a drain deadline, but there is none")
    if "immediate" in kinds and immediate is None:
        raise fail("timed_out", "records given up at an immediate stop, but none was made")
    if (
        immediate is not None
        and "deadline" in kinds
        and (drain_timeout is None or stopped_at + drain_timeout > start + immediate + EPS)
    ):
        raise fail(
            "timed_out",
            f"records given up at a drain deadline, but the immediate stop at {immediate}s"
            f" came before it",
        )
