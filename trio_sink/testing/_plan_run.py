"""run_plan: run a pipeline under a stop plan, and tell how the run ended."""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import final

import attrs
import trio
import trio.testing

from .. import DeliveryReport, Pipeline, PipelineHandle, SourceError
from ._logs import quiet_library_logs
from ._plans import Stop, StopPlan
from ._running import running

__all__ = ["OVERRUN_GRACE", "PlanRun", "require_virtual_time", "run_plan"]

OVERRUN_GRACE = 1.0
"""How far past its drain deadline a run may go before :func:`run_plan` cancels it:
long enough that an overrun is measured, short enough not to hang."""


@final
@attrs.frozen
class PlanRun:
    """How a run under a stop plan ended, as :func:`run_plan` saw it; nothing checked."""

    report: DeliveryReport | None
    """The run's report; None only if ``run()`` raised before it had one (see ``crash``)."""
    source_error: SourceError | None
    """The :class:`~trio_sink.SourceError` that ``run()`` raised, or None."""
    crash: BaseException | None
    """Anything else that ``run()`` raised (in daemon mode, in an exception group), or
    None."""
    stops_made: tuple[Stop, ...]
    """The plan's stops that were made while the run was still going, in order."""
    overran: bool
    """Whether the run was still going :data:`OVERRUN_GRACE` seconds after its drain
    deadline, and was cancelled then."""
    started: float
    """Trio's clock when the run started."""
    ended: float
    """Trio's clock when it ended."""


def require_virtual_time(caller: str) -> None:
    """Raise :exc:`RuntimeError` unless the run's clock is a MockClock: a drain
    deadline in real time would really wait."""
    clock = trio.lowlevel.current_clock()
    if not isinstance(clock, trio.testing.MockClock):
        raise RuntimeError(
            f"{caller} runs in virtual time: run it under trio.testing.MockClock with"
            " autojump, e.g. draw clock=trio_sink.testing.strategies.clocks() in @given,"
            f" or trio.run(..., clock=MockClock(autojump_threshold=0)); got {clock!r}"
        )


async def run_plan(pipeline: Pipeline, plan: StopPlan, *, quiet: bool = True) -> PlanRun:
    """Run ``pipeline`` under ``plan`` and tell how the run ended, checking nothing.

    It is what :func:`~trio_sink.testing.run_scenario` runs before its checks, for
    property tests that check a run their own way. An empty plan is batch mode
    (``await pipeline.run()``). Otherwise the pipeline runs in daemon mode and each
    stop is made at its time, counted from the call of ``run_plan``, unless the run
    has ended by then. What ``run()`` raises (an :class:`Exception`) is kept in the
    result, not raised: a :class:`~trio_sink.SourceError` in ``source_error``, anything
    else in ``crash``. A run still going :data:`OVERRUN_GRACE` seconds after a finite
    drain deadline is cancelled (``overran``); with no drain deadline, a run that never
    ends hangs the test (wrap it in :func:`trio.fail_after`).

    Virtual time only, as for ``run_scenario``: a :exc:`RuntimeError` says so
    otherwise. A checkpoint. Cancelled from outside, the run is cancelled and the
    cancellation propagates. trio_sink's logs are muted during the run unless
    ``quiet=False``.
    """
    require_virtual_time("run_plan")
    started = trio.current_time()
    with quiet_library_logs() if quiet else nullcontext():
        if plan.batch_mode:
            report, error, crash, made, overran = await _run_batch(pipeline)
        else:
            report, error, crash, made, overran = await _run_daemon(pipeline, plan, started)
    return PlanRun(report, error, crash, tuple(made), overran, started, trio.current_time())


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


_Outcome = tuple[DeliveryReport | None, SourceError | None, BaseException | None, list[Stop], bool]


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
            async with running(pipeline) as handle:
                for stop in plan.stops:
                    with trio.move_on_at(start + stop.at):
                        await handle.wait()
                    if handle.report is not None:
                        break
                    made.append(stop)
                    handle.stop(immediate=stop.immediate)
        except* SourceError as group:
            (error,) = _leaves(group)
        except* Exception as group:
            crash = group
    report = None if handle is None else handle.report
    return report, error, crash, made, guard.cancelled_caught
