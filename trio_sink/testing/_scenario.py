"""run_scenario: run a pipeline under a stop plan, and check what the report promises.

It needs no Hypothesis: a :class:`~trio_sink.testing.strategies.StopPlan` is plain data
that a test can also write by hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import nullcontext

import trio
import trio.testing

from .. import DeliveryReport, Pipeline, PipelineHandle, SourceError
from .._exceptions import AccountingError
from ._logs import quiet_library_logs
from ._plans import Stop, StopPlan

__all__ = ["ScenarioError", "run_scenario"]

EPS = 1e-9
"""Virtual time is exact; this only absorbs float rounding in ``t + drain_timeout``."""

OVERRUN_GRACE = 1.0
"""How far past its drain deadline a run may go before :func:`run_scenario` cancels it
(and fails): long enough that an overrun is measured, short enough not to hang."""


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


class _KeepHandle:
    """A ``task_status`` for ``await pipeline.run()``: it only keeps the handle, so that
    a run that raises something unexpected still shows its report."""

    def __init__(self) -> None:
        self.handle: PipelineHandle | None = None

    def started(self, value: PipelineHandle | None = None) -> None:
        self.handle = value


def _leaves(group: BaseExceptionGroup[SourceError]) -> list[SourceError]:
    out: list[SourceError] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            out.extend(_leaves(exc))
        else:
            out.append(exc)
    return out


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
    clock = trio.lowlevel.current_clock()
    if not isinstance(clock, trio.testing.MockClock):
        raise RuntimeError(
            "run_scenario runs in virtual time: run it under trio.testing.MockClock with"
            " autojump, e.g. draw clock=trio_sink.testing.strategies.clocks() in @given,"
            f" or trio.run(..., clock=MockClock(autojump_threshold=0)); got {clock!r}"
        )
    pipeline = pipeline_factory()
    if not isinstance(pipeline, Pipeline):
        raise TypeError(f"pipeline_factory must return a Pipeline, got {pipeline!r}")
    start = trio.current_time()
    with quiet_library_logs() if quiet else nullcontext():
        if plan.batch_mode:
            report, error, crash, made, overran = await _run_batch(pipeline)
        else:
            report, error, crash, made, overran = await _run_daemon(pipeline, plan, start)
    end = trio.current_time()
    _check(pipeline, plan, report, crash, made, overran, start, end)
    assert report is not None
    if error is not None and raise_source_error:
        raise error
    return report


_Outcome = tuple[
    DeliveryReport | None, SourceError | None, BaseException | None, list["Stop"], bool
]


async def _run_batch(pipeline: Pipeline) -> _Outcome:
    status = _KeepHandle()
    try:
        return await pipeline.run(task_status=status), None, None, [], False
    except SourceError as exc:
        return exc.report, exc, None, [], False
    except Exception as exc:
        report = None if status.handle is None else status.handle.report
        return report, None, exc, [], False


async def _run_daemon(pipeline: Pipeline, plan: StopPlan, start: float) -> _Outcome:
    made: list[Stop] = []
    error: SourceError | None = None
    crash: BaseException | None = None
    handle: PipelineHandle | None = None
    drain_timeout = pipeline.drain_timeout
    bound = math.inf
    if drain_timeout is not None:
        bound = start + plan.stops[0].at + drain_timeout + OVERRUN_GRACE
    with trio.move_on_at(bound) as guard:
        try:
            async with trio.open_nursery() as nursery:
                handle = await nursery.start(pipeline.run)
                for stop in plan.stops:
                    with trio.move_on_at(start + stop.at):
                        await handle.wait()
                    if handle.report is not None:
                        break
                    made.append(stop)
                    handle.stop(immediate=stop.immediate)
                await handle.wait()
        except* SourceError as group:
            (error,) = _leaves(group)
        except* Exception as group:
            crash = group
    report = None if handle is None else handle.report
    return report, error, crash, made, guard.cancelled_caught


def _check(
    pipeline: Pipeline,
    plan: StopPlan,
    report: DeliveryReport | None,
    crash: BaseException | None,
    made: Sequence[Stop],
    overran: bool,
    start: float,
    end: float,
) -> None:
    def fail(invariant: str, detail: str) -> ScenarioError:
        return ScenarioError(invariant, detail, report, plan)

    drain_timeout = pipeline.drain_timeout
    if overran:
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
