"""PipelineHandle: the control calls, statistics and report of a running pipeline."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import final

from trio_util import AsyncValue

from ._control import Pause, StopControl
from ._exceptions import UnknownSinkError
from ._ledger import Ledger
from ._report import DeliveryReport
from ._source import SourceStage
from ._stats import PipelineStatistics

__all__ = ["PipelineHandle"]

log = logging.getLogger("trio_sink.pipeline")


@final
class PipelineHandle:
    """Controls a running pipeline; returned by ``await nursery.start(pipeline.run)``.

    Every control method is sync and not a checkpoint, so it can be called from any
    task of the run (or from a signal handler task); called after the run has ended,
    it does nothing. A sink is named by its name; an unknown name raises
    :class:`UnknownSinkError`, also after the run.
    """

    def __init__(
        self,
        control: StopControl,
        ledger: Ledger,
        source: SourceStage,
        pauses: dict[str, Pause],
        take_snapshot: Callable[[], PipelineStatistics],
        monitor_sink: str | None,
    ) -> None:
        self._control = control
        self._accounts = ledger.accounts  # read, for the log
        self._source = source
        self._pauses = pauses
        self._snapshot = take_snapshot
        self._monitor_sink = monitor_sink
        self._report: DeliveryReport | None = None
        self._final: PipelineStatistics | None = None
        self._state = AsyncValue("running")

    def stop(self, *, immediate: bool = False) -> None:
        """Stop the run: stop pulling from the source and drain.

        Sync, not a checkpoint. Graceful: the deadline is ``drain_timeout`` after the
        first Stop. ``immediate=True``: the deadline is now, and every record not yet
        delivered is reported. A second call can only bring the deadline forward; a
        call after the run has ended does nothing.
        """
        self._control.stop("immediate stop" if immediate else "stop", immediate=immediate)

    def pause(self, sink: str) -> None:
        """Pause ``sink``: it writes nothing until resumed.

        Its backlog waits in its buffer; once that is full, the source waits too
        (backpressure), so nothing is dropped. A paused sink stays paused through a
        graceful Stop: resume it to let it drain, or its backlog is reported at the
        drain deadline. Pausing a paused sink does nothing.
        """
        pause = self._pause(sink)
        if not self._control.finished and pause.pause():
            log.info("sink.paused sink=%s buffered=%d", sink, self._accounts[sink].buffered)

    def resume(self, sink: str) -> None:
        """Resume ``sink`` after :meth:`pause` or :meth:`isolate`; its backlog goes on
        where it stopped. Resuming a sink that is not paused does nothing."""
        if self._pause(sink).resume() and not self._control.finished:
            log.info("sink.resumed sink=%s buffered=%d", sink, self._accounts[sink].buffered)

    def resume_all(self) -> None:
        """Resume every paused sink."""
        for name in self._pauses:
            self.resume(name)

    def isolate(self, sink: str) -> None:
        """Let ``sink`` alone write: resume it and pause every other sink, business and
        infra alike, except the ``monitor`` group's (statistics keep flowing).
        :meth:`resume_all` ends it."""
        self._pause(sink)
        for name in self._pauses:
            if name == sink:
                self.resume(name)
            elif name != self._monitor_sink:
                self.pause(name)

    def pause_source(self) -> None:
        """Stop pulling from the source, without stopping the run.

        Records already pulled still go through; the sinks keep writing. A Stop while
        the source is paused ends the pull at once. ``stop_when_idle`` does not count
        the time the source is paused.
        """
        if not self._control.finished:
            self._source.pause_source()

    def resume_source(self) -> None:
        """Pull from the source again after :meth:`pause_source`."""
        self._source.resume_source(log_it=not self._control.finished)

    def statistics(self) -> PipelineStatistics:
        """A frozen snapshot of the run's figures. Sync, not a checkpoint, cheap.

        After the run has ended, it is the final snapshot, whose counts are the
        report's.
        """
        if self._final is not None:
            return self._final
        return self._snapshot()

    async def wait(self) -> DeliveryReport:
        """Wait until the run has ended, and return its report.

        A checkpoint. Cancelling it leaves the run untouched.
        """
        await self._state.wait_value("stopped")
        assert self._report is not None
        return self._report

    @property
    def report(self) -> DeliveryReport | None:
        """The report once the run has ended; None before."""
        return self._report

    def _pause(self, sink: str) -> Pause:
        pauses = self._pauses
        try:
            return pauses[sink]
        except (KeyError, TypeError):
            raise UnknownSinkError(sink, tuple(pauses)) from None

    def _finish(self, report: DeliveryReport) -> None:
        self._final = self._snapshot()
        self._report = report
        self._state.value = "stopped"
