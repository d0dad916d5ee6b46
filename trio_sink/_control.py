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
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import trio

from ._ki import protected
from ._ledger import Ledger
from ._report import CANCELLED, DEADLINE, IMMEDIATE, Reason, pipeline_failed

__all__ = ["Pause", "StopControl", "in_scope", "take_buffered"]

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


class Pause:
    """A pause switch: written by the handle's control calls, read by one task."""

    __slots__ = ("resumed",)

    def __init__(self) -> None:
        # Set on resume (or on Stop, for the source); exists while paused.
        self.resumed: trio.Event | None = None

    @property
    def paused(self) -> bool:
        return self.resumed is not None

    def pause(self) -> bool:
        """Pause; False when it was paused already."""
        if self.resumed is not None:
            return False
        self.resumed = trio.Event()
        return True

    def resume(self) -> bool:
        """Resume; False when it was not paused."""
        resumed, self.resumed = self.resumed, None
        if resumed is None:
            return False
        resumed.set()
        return True

    def release(self) -> None:
        """Wake whoever waits, still paused (at a Stop: a paused source must see it)."""
        if self.resumed is not None:
            self.resumed.set()

    async def wait(self) -> None:
        """Return once not paused (at once if not). A pause that comes back before the
        waiting task runs again is waited for too."""
        while self.resumed is not None:
            await self.resumed.wait()


class StopControl:
    """Stop, and the drain deadline: the state every stage consults when it ends.

    Written by :meth:`stop` (the handle, the source's end, the supervisor) and by the
    run itself when it ends (``finished``, ``end_time``); the ledger is read only, for
    the log lines of a Stop.
    """

    def __init__(self, drain_timeout: float | None, ledger: Ledger) -> None:
        self.drain_timeout = drain_timeout
        self.ledger = ledger
        self.scope = trio.CancelScope()
        self.pull_scope = trio.CancelScope()
        self.stopping = False
        self.stop_kind: str | None = None
        self.stop_time: float | None = None
        self.end_time: float | None = None
        self.deadline_reason = DEADLINE
        self.finished = False
        self.on_stop: list[Callable[[], object]] = []
        """Called once, at the first Stop (a paused source must see it, the supervisor
        must look again)."""

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
            for hook in self.on_stop:
                hook()
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
            self.deadline_reason = IMMEDIATE if immediate else DEADLINE

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
                    account.pending,
                )

    def reason_for(self, exc: BaseException) -> Reason:
        """Why a stage that is ending with ``exc`` gives up what it holds."""
        if self.scope.cancel_called:
            return self.deadline_reason
        if isinstance(exc, trio.Cancelled) or (
            isinstance(exc, BaseExceptionGroup) and exc.split(trio.Cancelled)[1] is None
        ):
            return CANCELLED
        return pipeline_failed(exc)

    def seconds_since_stop(self) -> float:
        if self.stop_time is None:
            return 0.0
        end = self.end_time if self.end_time is not None else trio.current_time()
        return end - self.stop_time


@protected
async def in_scope(
    scope: trio.CancelScope | None, fn: Callable[..., Awaitable[None]], *args: Any, **kw: Any
) -> None:
    """``await fn(*args, **kw)``, inside ``scope`` when there is one."""
    if scope is None:
        await fn(*args, **kw)
    else:
        with scope:
            await fn(*args, **kw)
