"""The fan-out: each source batch routed, and its sub-batches handed to the sinks.

Runs in the source stage's task. A sub-batch goes to its sink's channel (a send that
would block waits: backpressure from that sink alone), or, for a sink that never
blocks, is written by this task itself (``_inline.py``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any

import trio

from ._dest import Dest
from ._feeds import SinkBatch
from ._inline import wire_inline
from ._report import Reason
from ._route import Router, unrouted
from ._watchdog import BLOCKING, Watchdog

if TYPE_CHECKING:
    from ._sink import SinkSlot
    from ._writer import SinkWriter

__all__ = ["SWITCH_EVERY", "Fanout"]


SWITCH_EVERY = 256
"""Records the source stage ships between two task switches when no send waits (16
times as many when every sub-batch was written by the routing task itself).

Fewer switches save instructions, but the records shipped meanwhile (and their
payloads) stay alive until the sinks run: past ~256 of the benchmark's records they
spill out of a 1 MiB L2 cache (callgrind's cache model: 128 -> 0.813x of the plain
loop, 256 -> 0.841x, 512 -> 0.831x; 2,048 measured ~0.55x in CPU time)."""


class Fanout:
    """Route each source batch and hand its sub-batches to the sinks' channels.

    Runs in the source stage's task: routing is synchronous and costs no hop of its
    own, so a batch goes from the source to a sink's buffer with no channel between.
    A send that would block waits (backpressure from that sink alone); the others
    are non-blocking. At any exception, :meth:`abandon` reports the batch being
    routed (before routing: ``sink`` None) and the sub-batches not yet sent.
    """

    def __init__(self, router: Router, dests: Sequence[Dest]) -> None:
        self.router = router
        self.ledger = router.ledger
        self.dests = dests
        self.hand: tuple[int, list[Any]] | None = None
        self.out: list[tuple[Dest, SinkBatch]] = []
        self.sent = 0
        self.unswitched = 0  # records shipped since this task last switched
        self.writing = -1
        """The index in :attr:`out` of the sink this task is writing, or -1."""
        self.record_bound: int | None = None
        """The most records a sink's buffer holds (beyond one batch), when batches
        grow; None: the channel's bound in batches alone."""
        self.watchdog: Watchdog | None = None
        """Times the writes this task makes itself (sinks that never block, which all
        have this write timeout); None when it is None."""

    def connect(
        self, writers: Sequence[SinkWriter], error_slot: SinkSlot | None, bound: int | None
    ) -> None:
        """Let this task write the sinks that never block (see :mod:`trio_sink._inline`);
        with a ``bound``, hold at most that many records in any sink's buffer (beyond
        one batch): batches grow, and a bound in batches no longer bounds memory."""
        by_name = {dest.account.name: dest for dest in self.dests}
        self.watchdog = wire_inline(writers, by_name, error_slot)
        if bound is not None:
            self.record_bound = bound
            for writer in writers:
                if writer.name in by_name:
                    by_name[writer.name].writer = writer

    async def ship(self, first_id: int, raws: list[Any]) -> None:
        """Route one source batch and send every sub-batch.

        A checkpoint when a send had to wait, and otherwise once per
        :data:`SWITCH_EVERY` records shipped (at least once per batch of that size or
        more): the sinks then take a few batches at a time from their buffers. Records
        are not tracked by the garbage collector, so the records kept alive meanwhile
        cost nothing at a collection.
        """
        self.hand = (first_id, raws)
        self.out = self.router.route(first_id, raws)
        self.hand = None
        self.sent = 0
        await self._send_out(len(raws))

    async def _send_out(self, size: int) -> None:
        """Send the sub-batches of :attr:`out` from :attr:`sent` on (see :meth:`ship`);
        write those of the sinks that never block (see :mod:`trio_sink._inline`)."""
        waited = channelled = False
        ledger = self.ledger
        out = self.out
        watchdog = self.watchdog
        task = trio.lowlevel.current_task()
        for k in range(self.sent, len(out)):
            dest, msg = out[k]
            n = msg[0]._size  # (read before any user code runs)
            inline = dest.inline
            if inline is not None:
                # Written now unless its own task has batches to write first (the order)
                # or the sink is paused; tested here, per sink and batch, not in a call.
                account = inline.account
                if (
                    inline.active
                    and not account.buffered
                    and not account.in_flight
                    and inline.pause.resumed is None
                ):
                    if watchdog is not None and watchdog.began is None:
                        watchdog.begin(trio.current_time())
                    points = task._schedule_points
                    began = perf_counter()
                    self.writing = k
                    try:
                        await inline.write(msg[0])
                    except Exception as exc:
                        self.writing = -1
                        inline.failed(msg, exc)
                    else:
                        self.writing = -1
                        took = perf_counter() - began
                        if took >= BLOCKING or task._schedule_points != points:
                            inline.wrote_slowly(took, task._schedule_points != points)
                            if not inline.active:
                                dest.inline = None
                            if watchdog is not None:
                                watchdog.began = None  # the next write's time starts anew
                        inline.writer.busy_seconds += took
                        ledger.deliver_waiting(account, n, msg[1])
                        self.sent += 1
                        continue
                if not inline.active:
                    dest.inline = None
            if watchdog is not None:
                watchdog.began = None  # a wait for room is no write
            channelled = True
            bound = self.record_bound
            if bound is not None:
                buffered = dest.account.buffered
                if buffered and buffered + n > bound:
                    await self._wait_room(dest, n, bound)
                    waited = True
            try:
                try:
                    dest.send.send_nowait(msg)
                except trio.WouldBlock:
                    await self._send_waiting(dest, msg)
                    waited = True
                else:
                    ledger.send(dest.account, n)
            except trio.BrokenResourceError:
                # The sink's task ended first. Either the stages were cancelled (this
                # task too, though it has not reached a checkpoint since: an item that
                # arrived with the Stop), and the Cancelled raised here has abandon()
                # report the unsent sub-batches; or the sink's task crashed.
                await trio.lowlevel.checkpoint_if_cancelled()
                raise
            self.sent += 1
        if watchdog is not None:
            watchdog.began = None
        self.out = []
        if waited:
            self.unswitched = 0
            return
        # A batch the sinks' own tasks never see weighs 1/16 here: nothing waits in
        # their buffers, only the rest of the run (the supervisor, a Stop).
        self.unswitched += size if channelled else (size + 15) // 16
        if self.unswitched >= SWITCH_EVERY:
            self.unswitched = 0
            await trio.lowlevel.checkpoint()

    def guard(self) -> trio.CancelScope:
        """A new scope for the routing task's loop, which the watchdog of the writes it
        makes itself cancels when one runs past the write timeout."""
        guard = trio.CancelScope()
        if self.watchdog is not None:
            self.watchdog.guard = guard
        return guard

    async def resume(self) -> None:
        """Go on with a batch whose shipping the guard cut short: the write that ran
        past its timeout goes to its sink's own task as a failed attempt."""
        watchdog = self.watchdog
        assert watchdog is not None
        # Only the write the guard's cancellation cut short is to blame: a write that
        # shields itself, or turns Cancelled into an error, lets it land elsewhere.
        if watchdog.timed_out and self.writing == self.sent < len(self.out):
            dest, msg = self.out[self.sent]
            inline = dest.inline
            if inline is not None:
                assert watchdog.write_timeout is not None
                inline.timed_out(msg, watchdog.write_timeout)
                dest.inline = None
        watchdog.timed_out = False
        watchdog.began = None
        self.writing = -1
        if self.sent < len(self.out):
            await self._send_out(0)

    async def _wait_room(self, dest: Dest, size: int, bound: int) -> None:
        """Wait until ``size`` more records fit in ``dest``'s buffer (or it is empty):
        backpressure from that sink, in records. Cancelled, nothing changed."""
        account = dest.account
        writer = dest.writer
        assert writer is not None
        began = time.perf_counter()
        try:
            while account.buffered and account.buffered + size > bound:
                room = writer.room = trio.Event()
                await room.wait()
        finally:
            dest.blocked_seconds += time.perf_counter() - began

    async def _send_waiting(self, dest: Dest, msg: SinkBatch) -> None:
        """Send ``msg`` to a full buffer: wait for room (backpressure from that sink)."""
        account = dest.account
        size = len(msg[0])
        # Counted as buffered while it waits for room: once there, the sink's task may
        # take it before this task runs again.
        self.ledger.send(account, size)
        began = time.perf_counter()
        try:
            await dest.send.send(msg)
        except BaseException:
            self.ledger.unsend(account, size)
            raise
        finally:
            dest.blocked_seconds += time.perf_counter() - began

    def abandon(self, reason: Reason) -> None:
        """Report the batch being routed (before routing: ``sink`` None) and the
        sub-batches not yet sent."""
        ledger = self.ledger
        if self.hand is not None:
            ledger.abandon(None, None, "route", reason, unrouted(*self.hand))
            self.hand = None
        for dest, (sub, ticket) in self.out[self.sent :]:
            ledger.abandon(dest.account, "waiting", "route", reason, sub)
            ledger.settle(ticket)
        self.out = []

    def close(self) -> None:
        """Close every sink channel: the sinks see the end of their input."""
        for dest in self.dests:
            dest.send.close()
        if self.watchdog is not None:
            self.watchdog.scope.cancel()
