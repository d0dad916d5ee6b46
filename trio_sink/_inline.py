"""Writes made by the routing task itself, for sinks that never block.

A sink that declares ``never_blocks`` has its batches written by the task that routes
them: no channel, no task switch. The accounting is the same as through the sink's own
task, except that the batch is ``waiting`` (not ``in_flight``) while it is written, so
that a write cut short is reported with the sub-batches the routing task has not sent.

The sink's own task takes over, for good, when a write raises (the batch reaches it as
a failed first attempt, for its retry policy), awaits after all (logged), or runs past
the write timeout (its watchdog cancels the routing task's guard; see
``Fanout.resume``). It also takes the batches whenever it has some of its own, or the
sink is paused, so that the order of the writes never changes.
"""

from __future__ import annotations

import logging
from time import perf_counter
from typing import TYPE_CHECKING

import trio

from ._retry import WriteTimeout, timed_out
from ._watchdog import BLOCKING, Watchdog

if TYPE_CHECKING:
    from ._feeds import SinkBatch
    from ._sink import SinkSlot
    from ._writer import SinkWriter

__all__ = ["InlineWrites", "can_write_inline"]

log = logging.getLogger("trio_sink.sink")


def can_write_inline(writer: SinkWriter, error_slot: SinkSlot | None) -> bool:
    """Whether the routing task may write ``writer``'s sink: it never blocks, has no
    circuit breaker, and takes data from the routing task alone (not the ``monitor``
    group's sink, nor the ``error`` group's, which also takes the copies of failed
    records from the other sinks' tasks)."""
    slot = writer.slot
    return slot.never_blocks and writer.data and writer.recovery is None and slot is not error_slot


class InlineWrites:
    """The writes of one sink made by the routing task (see the module's text)."""

    __slots__ = ("active", "watchdog", "writer")

    def __init__(self, writer: SinkWriter) -> None:
        self.writer = writer
        self.active = True
        """False for good once the sink's own task took over."""
        self.watchdog = Watchdog(writer.name, writer.write_timeout)
        """Times these writes; its guard is the routing task's."""

    async def write(self, msg: SinkBatch) -> bool:
        """Write ``msg``'s batch; True when it was delivered, False when the sink's
        own task must take it (it has batches of its own, is paused, or the write
        raised: then as a failed first attempt)."""
        w = self.writer
        account = w.account
        if account.buffered or account.in_flight or w.pause.resumed is not None:
            return False  # the sink's own task has batches to write first, or is paused
        if not self.active:
            return False
        batch, ticket = msg
        task = trio.lowlevel.current_task()
        points = task._schedule_points
        watchdog = self.watchdog
        if watchdog.write_timeout is not None:
            watchdog.begin(trio.current_time())
        began = perf_counter()
        try:
            await w.slot.write(batch)
        except Exception as exc:
            self.failed(msg, exc)
            return False
        finally:
            watchdog.began = None
            took = perf_counter() - began
            w.busy_seconds += took
            if task._schedule_points != points:
                self._awaited()
            elif took >= BLOCKING:
                w.watchdog.blocked(took)
        w.ledger.deliver_waiting(account, len(batch), ticket)
        return True

    def failed(self, msg: SinkBatch, exc: Exception) -> None:
        """The write of ``msg`` raised ``exc``: the sink's task takes it as a failed
        first attempt, and every later batch."""
        self.active = False
        self.writer.inline_failure = (msg, exc)

    def timed_out(self, msg: SinkBatch) -> None:
        """The write of ``msg`` ran past the write timeout, and the watchdog cancelled
        it (see :meth:`failed`)."""
        watchdog = self.watchdog
        watchdog.timed_out = False
        watchdog.began = None
        timeout = watchdog.write_timeout
        assert timeout is not None
        log.warning(
            "sink.inline_timeout sink=%s seconds=%g: the sink says it never blocks, but its"
            " write ran past its write_timeout; it is written from its own task from now on",
            self.writer.name,
            timeout,
        )
        self.failed(msg, WriteTimeout(timed_out(timeout)))

    def _awaited(self) -> None:
        if self.active:
            self.active = False
            log.warning(
                "sink.awaited sink=%s: the sink says it never blocks, but its write"
                " awaited; it is written from its own task from now on",
                self.writer.name,
            )
