"""Stop and the drain deadline: the state every stage consults when it ends.

One cancel scope bounds the whole stage nursery. Before Stop its deadline is
infinite; Stop sets it (``min`` with any earlier one), so every stage is cancelled at
the same instant when it passes. Each stage then reports, synchronously, what it holds
and what waits in its input, and closes. A second, small scope wraps only the pull
from an async source, so that a graceful Stop interrupts a source that waits for input
without touching any ``send``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import TypeVar

import trio

from ._exceptions import describe
from ._ledger import Ledger
from ._report import CANCELLED, DEADLINE, IMMEDIATE

__all__ = ["DrainControl", "describe", "take_buffered"]

drain_log = logging.getLogger("trio_sink.drain")
pipeline_log = logging.getLogger("trio_sink.pipeline")

T = TypeVar("T")


def take_buffered(recv: trio.MemoryReceiveChannel[T]) -> Iterator[T]:
    """Yield what waits in ``recv``'s buffer, without a checkpoint, then close it.

    Closing first would make Trio drop the buffer silently; so the buffer is emptied
    with ``receive_nowait`` until it would block or the channel has ended.
    """
    try:
        while True:
            try:
                yield recv.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return
    finally:
        recv.close()


class DrainControl:
    """Stop flags, the two scopes and the reasons, shared by the stages of one run;
    also the source's pause switch and the run's activity marks."""

    def __init__(self, drain_timeout: float | None, ledger: Ledger) -> None:
        self.drain_timeout = drain_timeout
        self.ledger = ledger
        self.scope = trio.CancelScope()
        self.pull_scope = trio.CancelScope()
        self.stopping = False
        self.stop_kind: str | None = None
        self.stop_time: float | None = None
        self.end_time: float | None = None
        self.deadline_reason = DEADLINE.text
        self.finished = False
        self.source_error: BaseException | None = None
        # The source's pause switch: an event that exists while paused, set on resume
        # (and on Stop, so that a paused source sees the Stop at once).
        self.source_resumed: trio.Event | None = None
        # When the source last produced an item, or was last held by a sink's full
        # buffer (for stop_when_idle); and whether it is held now.
        self.last_activity = trio.current_time()
        self.shipping = False
        self.idle_deferred = False  # the supervisor wants a wake-up when shipping ends
        # Set, and replaced, whenever the supervisor should look again.
        self.wakeup = trio.Event()
        # Stages that feed the sinks or are sinks, the monitor's excepted: when they have
        # all ended, the monitor gets its final record.
        self.open_stages = 0

    @property
    def source_paused(self) -> bool:
        return self.source_resumed is not None

    def pause_source(self) -> None:
        if not self.finished and self.source_resumed is None:
            self.source_resumed = trio.Event()
            pipeline_log.info("pipeline.source_paused received=%d", self.ledger.received)

    def resume_source(self) -> None:
        resumed, self.source_resumed = self.source_resumed, None
        if resumed is not None:
            resumed.set()
            self.last_activity = trio.current_time()  # idle time counts from here
            self.wake()
            if not self.finished:
                pipeline_log.info("pipeline.source_resumed received=%d", self.ledger.received)

    async def wait_source_resumed(self) -> None:
        """Wait while the source is paused; return at once on Stop."""
        resumed = self.source_resumed
        if resumed is not None and not self.stopping:
            await resumed.wait()

    def wake(self) -> None:
        self.wakeup.set()

    def stage_ended(self) -> None:
        self.open_stages -= 1
        if self.open_stages == 0:
            self.wake()

    @property
    def deadline(self) -> float | None:
        """The drain deadline on Trio's clock; None before Stop or with no limit."""
        deadline = self.scope.deadline
        return None if not self.stopping or deadline == math.inf else deadline

    def stop(self, kind: str, *, immediate: bool = False) -> None:
        """Begin a graceful Stop (or bring its deadline forward). Sync, not a checkpoint."""
        if self.finished:
            return
        now = trio.current_time()
        if not self.stopping:
            self.stopping = True
            self.stop_kind = kind
            self.stop_time = now
            self.pull_scope.cancel()
            if self.source_resumed is not None:
                self.source_resumed.set()  # a paused sync source sees the Stop
            self.wake()
            self._log_started(kind)
        if immediate:
            deadline = now
        elif self.drain_timeout is None:
            deadline = math.inf
        else:
            assert self.stop_time is not None
            deadline = self.stop_time + self.drain_timeout
        if deadline < self.scope.deadline:
            self.scope.deadline = deadline
            self.deadline_reason = IMMEDIATE.text if immediate else DEADLINE.text

    def _log_started(self, kind: str) -> None:
        ledger = self.ledger
        pipeline_log.info(
            "pipeline.stop kind=%s received=%d drain_timeout=%s",
            kind,
            ledger.received,
            self.drain_timeout,
        )
        if drain_log.isEnabledFor(logging.INFO):
            for account in ledger.accounts.values():
                drain_log.info(
                    "drain.started sink=%s pending=%d",
                    account.name,
                    account.routed - account.delivered - account.undelivered,
                )

    def reason_for(self, exc: BaseException) -> str:
        """Why a stage that is ending with ``exc`` gives up what it holds."""
        if self.scope.cancel_called:
            return self.deadline_reason
        if isinstance(exc, trio.Cancelled) or (
            isinstance(exc, BaseExceptionGroup) and exc.split(trio.Cancelled)[1] is None
        ):
            return CANCELLED.text
        return f"pipeline failed: {describe(exc)}"

    def seconds_since_stop(self) -> float:
        if self.stop_time is None:
            return 0.0
        end = self.end_time if self.end_time is not None else trio.current_time()
        return end - self.stop_time
