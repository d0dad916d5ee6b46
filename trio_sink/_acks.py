"""Source acknowledgements: tell the source which of its items are safe, in order.

An item is safe once every record made from it was delivered to every sink it was
routed to, stored in the rescue store, or discarded by configuration: the ledger's
:meth:`~trio_sink._ledger.Ledger.ack_frontier` is the first id that is not. The
source stage hands each batch of items to :meth:`Acks.hold` as it gives them ids;
a task of their own (:meth:`Acks.run`) wakes when a source batch settles and
acknowledges the items below the frontier in one call, so at most one call is in
flight and the data path never waits for one; calls are at least the source's
``ack_interval`` apart. The last call is made by
:meth:`Acks.final`, once the run's tasks are done and the rest was stored.

Acknowledgements end for good (the items are no longer held) when a call raises or
is cancelled, or when a record is undelivered and unstored while the source still
runs: nothing after it could be acknowledged in this run.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from ._control import StopControl
from ._exceptions import describe
from ._ki import protected, unprotect
from ._ledger import NO_ID, Ledger, Ticket

__all__ = ["FINAL_ACK_GRACE", "Acks"]

log = logging.getLogger("trio_sink.source")
drain_log = logging.getLogger("trio_sink.drain")

FINAL_ACK_GRACE = 2.0
"""Seconds the last acknowledgement may take when the run is past its drain deadline
or cancelled: the records the end of the run stored are then acknowledged too."""


class Acks:
    """The acknowledgements of one run."""

    def __init__(
        self,
        ack: Callable[[Sequence[Any]], Awaitable[None]],
        ledger: Ledger,
        interval: float = 0.0,
    ) -> None:
        unprotect(ack)
        self._ack = ack
        self.ledger = ledger
        self.control: StopControl | None = None
        # Items with ids and not acknowledged yet: (first id, items, when received).
        self.held: deque[tuple[int, list[Any], float]] = deque()
        self.acknowledged = 0
        """Items whose acknowledgement returned."""
        self.ended = False
        """No more calls in this run."""
        self.calls = 0
        self._wake = trio.Event()
        self._finishing = False
        self._finished = trio.Event()
        self.interval = interval
        ledger.on_settled = self.poke

    # -- fed by the run ------------------------------------------------------------

    def hold(self, first_id: int, items: list[Any]) -> None:
        """Items ``first_id``, ``first_id + 1``, ... got their ids: keep them until
        they are acknowledged."""
        if not self.ended:
            self.held.append((first_id, items, trio.current_time()))

    def poke(self, _ticket: Ticket | None = None) -> None:
        """A source batch settled (or the run's stages ended): look again."""
        self._wake.set()

    def finishing(self) -> None:
        """Every stage has ended: :meth:`run` makes its last call and returns."""
        self._finishing = True
        self._wake.set()
        self._finished.set()

    # -- what the statistics show --------------------------------------------------

    @property
    def unacknowledged(self) -> int:
        """Items given ids and not acknowledged."""
        return self.ledger.received - self.acknowledged

    def oldest_age(self) -> float | None:
        """Seconds the oldest item held has waited; None when none is held."""
        if not self.held:
            return None
        return trio.current_time() - self.held[0][2]

    # -- the calls -----------------------------------------------------------------

    @protected
    async def run(self) -> None:
        """Acknowledge as batches settle, until :meth:`finishing` (or the end of
        acknowledgements)."""
        while not self.ended:
            await self._wake.wait()
            self._wake = trio.Event()
            began = trio.current_time()
            if await self.send():
                # Paced: what becomes safe meanwhile goes in the next call.
                with trio.move_on_at(began + self.interval):
                    await self._finished.wait()
            if self._finishing:
                return
            if self._stuck():
                self._end(
                    f"record {self.ledger.unsafe_from} was neither delivered nor stored;"
                    " the items from it on are seen again after a restart"
                )

    def _stuck(self) -> bool:
        """Whether nothing more can be acknowledged while the source runs: every item
        before a record that is neither delivered nor stored was acknowledged."""
        unsafe = self.ledger.unsafe_from
        return (
            unsafe != NO_ID
            and self.control is not None
            and not self.control.stopping
            # Every item held before it is acknowledged (an item is held until it is).
            and not (self.held and self.held[0][0] < unsafe)
        )

    async def final(self, control: StopControl) -> None:
        """The last call, at the end of the run (the rest was stored): within the
        drain deadline; past it, or when the run was cancelled, within
        :data:`FINAL_ACK_GRACE`, shielded."""
        if not self.ended:
            now = trio.current_time()
            deadline = control.deadline
            cancelled = trio.current_effective_deadline() == -math.inf
            if cancelled or (deadline is not None and deadline <= now):
                deadline = now + FINAL_ACK_GRACE
            with trio.CancelScope(
                shield=cancelled, deadline=math.inf if deadline is None else deadline
            ):
                await self.send()
        left = self.unacknowledged
        if left:
            drain_log.warning(
                "drain.unacknowledged items=%d acknowledged=%d: the source sees them again"
                " after a restart",
                left,
                self.acknowledged,
            )
        else:
            drain_log.info("drain.acknowledged items=%d", self.acknowledged)

    async def send(self) -> bool:
        """Acknowledge the items held below the frontier, in one call; whether there
        was one."""
        frontier = self.ledger.ack_frontier()
        held = self.held
        items: list[Any] = []
        while held and held[0][0] < frontier:
            first, batch, at = held[0]
            if first + len(batch) <= frontier:
                items += batch
                held.popleft()
            else:
                cut = frontier - first
                items += batch[:cut]
                held[0] = (frontier, batch[cut:], at)
                break
        if not items:
            return False
        self.calls += 1
        done = False
        try:
            await self._ack(items)
            done = True
        except Exception as exc:
            self._end(f"the source's ack raised {describe(exc)}", exc)
        finally:
            if done:
                self.acknowledged += len(items)
            elif not self.ended:
                self._end("an acknowledgement was cancelled")
        return True

    def _end(self, why: str, exc: BaseException | None = None) -> None:
        self.ended = True
        self.held.clear()
        log.warning(
            "source.acks_ended acknowledged=%d: %s; no more acknowledgements in this run",
            self.acknowledged,
            why,
            exc_info=exc,
        )
