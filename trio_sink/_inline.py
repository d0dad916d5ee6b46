"""Writes made by the routing task itself, for sinks that never block.

A sink that declares ``never_blocks`` has its batches written by the task that routes
them: no channel, no task switch. The accounting is the same as through the sink's own
task, except that the batch is ``waiting`` (not ``in_flight``) while it is written, so
that a write cut short is reported with the sub-batches the routing task has not sent.

The sink's own task takes over, for good, when a write raises (the batch reaches it as
a failed first attempt, for its retry policy), awaits after all (logged), or runs past
the write timeout (the routing task's watchdog cancels its guard; see
``Fanout.resume``: one watchdog for every sink it writes, which all have the same
write timeout). It also takes the batches whenever it has some of its own, or the
sink is paused, so that the order of the writes never changes.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Protocol

from ._retry import WriteTimeout, timed_out
from ._watchdog import Watchdog

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from ._feeds import SinkBatch
    from ._sink import SinkSlot
    from ._writer import SinkWriter

__all__ = ["InlineWrites", "can_write_inline", "wire_inline"]

log = logging.getLogger("trio_sink.sink")


def can_write_inline(writer: SinkWriter, error_slot: SinkSlot | None) -> bool:
    """Whether the routing task may write ``writer``'s sink: it never blocks, has no
    circuit breaker, and takes data from the routing task alone (not the ``monitor``
    group's sink, nor the ``error`` group's, which also takes the copies of failed
    records from the other sinks' tasks)."""
    slot = writer.slot
    return slot.never_blocks and writer.data and writer.recovery is None and slot is not error_slot


class _Dest(Protocol):
    inline: InlineWrites | None


def wire_inline(
    writers: Iterable[SinkWriter], dests: Mapping[str, _Dest], error_slot: SinkSlot | None
) -> Watchdog | None:
    """Let the routing task write each sink that can be (:func:`can_write_inline`) and
    has the write timeout most of them have (one watchdog times all these writes; a
    sink with another timeout is written by its own task); that watchdog, or None
    when their timeout is None."""
    able = [w for w in writers if can_write_inline(w, error_slot)]
    if not able:
        return None
    timeout = Counter(w.write_timeout for w in able).most_common(1)[0][0]
    for writer in able:
        if writer.write_timeout == timeout:
            dests[writer.name].inline = InlineWrites(writer)
    return None if timeout is None else Watchdog("(written by the routing task)", timeout)


class InlineWrites:
    """One sink's writes made by the routing task (see the module's text). The routing
    task awaits the sink's ``write`` itself (``Fanout``), with this object's sync
    bookkeeping around it: a coroutine of its own per write would cost more than the
    write of a sink that never blocks."""

    __slots__ = ("account", "active", "ledger", "pause", "write", "writer")

    def __init__(self, writer: SinkWriter) -> None:
        self.writer = writer
        self.account = writer.account
        self.ledger = writer.ledger
        self.pause = writer.pause
        self.write = writer.slot.write
        self.active = True
        """False for good once the sink's own task took over."""

    def wrote_slowly(self, took: float, awaited: bool) -> None:
        """A write returned after ``took`` seconds, holding the event loop past
        :data:`BLOCKING`, or it reached a checkpoint (``awaited``), which a sink that
        never blocks does not: logged, and the latter ends these writes."""
        if awaited:
            self._awaited()
        else:
            self.writer.watchdog.blocked(took)

    def failed(self, msg: SinkBatch, exc: Exception) -> None:
        """The write of ``msg`` raised ``exc``: the sink's task takes it as a failed
        first attempt, and every later batch."""
        self.active = False
        self.writer.inline_failure = (msg, exc)

    def timed_out(self, msg: SinkBatch, timeout: float) -> None:
        """The write of ``msg`` ran past ``timeout`` seconds, and the watchdog cancelled
        it (see :meth:`failed`)."""
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
