"""The ledger: who was given what, and what became of it.

Counts move once per batch, never once per record; only records that end up
undelivered are materialised one by one, and only when that happens.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import attrs
from trio import CancelScope, Event

from ._exceptions import describe
from ._record import Record
from ._report import (
    DEADLINE,
    IMMEDIATE,
    STAT_KEYS,
    DeliveryReport,
    Undelivered,
    kind_of,
)

if TYPE_CHECKING:
    from ._rescue import RescueStore
    from ._retry import BreakerState

log = logging.getLogger("trio_sink.rescue")


__all__ = ["DeliveryReport", "Ledger", "Ticket", "Undelivered"]

ERROR_IDS_AT_LEAST = 4096
"""The size from which the ledger forgets the ids of settled error records."""


class Ticket:
    """One source batch, owing one outcome per destination sub-batch.

    When every sub-batch has reached delivered or undelivered, the source batch is
    settled: the hook for source acknowledgements.
    """

    __slots__ = ("count", "first_id", "pending")

    def __init__(self, first_id: int, count: int, pending: int) -> None:
        self.first_id = first_id
        self.count = count
        self.pending = pending


class SinkAccount:
    """The counts and controls of one sink; its task and the source stage update them
    per batch."""

    __slots__ = (
        "breaker",
        "buffered",
        "by_reason",
        "delivered",
        "in_flight",
        "name",
        "paused",
        "peak_buffered",
        "replayed",
        "resumed",
        "retries",
        "routed",
        "stored",
        "undelivered",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.routed = 0
        self.delivered = 0
        self.undelivered = 0
        self.buffered = 0  # records in its channel
        self.peak_buffered = 0
        self.in_flight = 0  # records of the write being made
        self.by_reason: Counter[str] = Counter()
        self.paused = False
        self.resumed: Event | None = None  # set on resume; exists while paused
        self.retries = 0  # writes retried after a failure
        self.stored = 0  # undelivered records kept in the rescue store
        self.replayed = 0  # records delivered from the rescue store during the run
        self.breaker: BreakerState | None = None  # its circuit breaker, if it has one

    def add_buffered(self, n: int) -> None:
        """``n`` more records in its channel (or waiting for room there)."""
        buffered = self.buffered + n
        self.buffered = buffered
        if buffered > self.peak_buffered:
            self.peak_buffered = buffered

    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.resumed = Event()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            assert self.resumed is not None
            self.resumed.set()
            self.resumed = None

    async def wait_resumed(self) -> None:
        """Return once the sink is not paused (at once if it is not). A pause that
        comes back before the waiting task runs again is waited for too."""
        while self.resumed is not None:
            await self.resumed.wait()


class Ledger:
    """The mutable counts of one run; :meth:`report` freezes them."""

    def __init__(
        self,
        sinks: Iterable[str],
        on_settled: Callable[[Ticket], None] | None = None,
    ) -> None:
        self.received = 0
        self.dispatched = 0
        self.accounts = {name: SinkAccount(name) for name in sinks}
        self.discarded: Counter[str] = Counter()
        self.undelivered: list[Undelivered] = []
        # Per sink name, by record id: undelivered records set aside in the rescue
        # store that the sink's task may still deliver (see unpark).
        self.parked: dict[str, dict[int, Undelivered]] = {}
        self.deadline_abandoned = 0
        self.unrouted = 0  # undelivered before routing (sink None)
        self.generated = 0  # monitor records made (ids -1, -2, ...)
        self.settled_batches = 0
        self.sink_errors: dict[str, str] = {}
        self._on_settled = on_settled
        # Source batches routed and not settled yet, by their first id.
        self.open_tickets: dict[int, Ticket] = {}
        # Ids of records sent to the error group that could still fail at a sink (and
        # must not be sent there twice); see sent_to_errors.
        self._error_ids: set[int] = set()
        self._error_ids_limit = ERROR_IDS_AT_LEAST

    def open(self, ticket: Ticket) -> None:
        """``ticket``'s source batch was routed: its sub-batches are on their way."""
        self.open_tickets[ticket.first_id] = ticket

    def settle(self, ticket: Ticket) -> None:
        """One sub-batch of ``ticket`` reached its final outcome."""
        ticket.pending -= 1
        if ticket.pending == 0:
            self.settled_batches += 1
            open_tickets = self.open_tickets
            if open_tickets.get(ticket.first_id) is ticket:
                del open_tickets[ticket.first_id]
            if self._on_settled is not None:
                self._on_settled(ticket)

    # -- the error group's copies ------------------------------------------------------

    def sent_to_errors(self, records: Iterable[Record]) -> list[Record]:
        """The records of ``records`` not sent to the error group yet, now marked sent.

        A record that failed at several sinks (or again, when replayed) goes there
        once: the error sink must not get one id twice. An id is remembered only while
        the record can still fail somewhere: its source batch is not settled, or it is
        parked for replay. The rest are forgotten from time to time, so a long run with
        steady failures keeps a bounded set.
        """
        ids = self._error_ids
        fresh = [r for r in records if r.id not in ids]
        ids.update(r.id for r in fresh)
        if len(ids) >= self._error_ids_limit:
            self._forget_settled_errors()
        return fresh

    def _forget_settled_errors(self) -> None:
        # Amortised: the limit doubles with what is kept, so each id is looked at a
        # bounded number of times.
        floor = min(self.open_tickets, default=self.received)
        parked = set().union(*self.parked.values())
        kept = {i for i in self._error_ids if i >= floor or i in parked}
        self._error_ids = kept
        self._error_ids_limit = max(ERROR_IDS_AT_LEAST, 2 * len(kept))

    @property
    def error_ids_kept(self) -> int:
        """How many ids of records sent to the error group are remembered now."""
        return len(self._error_ids)

    def abandon(
        self,
        account: SinkAccount | None,
        stage: str,
        reason: str,
        records: Iterable[Record],
        error: BaseException | None = None,
        *,
        stored: bool = False,
        parked: bool = False,
    ) -> int:
        """Report ``records`` as undelivered to ``account`` (None: before routing).

        ``stored``: they are in the rescue store already. ``parked``: stored, and kept
        by record id until the end of the run, so that :meth:`unpark` can take them
        back when the sink's task delivers them after all.
        """
        sink = None if account is None else account.name
        if parked:
            assert account is not None
            assert sink is not None
            box = self.parked.setdefault(sink, {})
            before = len(box)
            for r in records:
                box[r.id] = Undelivered(r, sink, stage, reason, error, True)
            n = len(box) - before
            stored = True
        else:
            before = len(self.undelivered)
            self.undelivered.extend(
                Undelivered(r, sink, stage, reason, error, stored) for r in records
            )
            n = len(self.undelivered) - before
        if account is None:
            self.unrouted += n
        elif n:
            account.undelivered += n
            account.by_reason[STAT_KEYS[kind_of(reason)]] += n
            if stored:
                account.stored += n
        if reason in (DEADLINE.text, IMMEDIATE.text):
            self.deadline_abandoned += n
        return n

    def unpark(self, account: SinkAccount, ids: Iterable[int]) -> list[Undelivered]:
        """Take back the parked records of ``account`` with these ids (those that are
        parked): they are no longer undelivered. The caller counts what became of
        them (delivered, or reported again with :meth:`abandon`)."""
        box = self.parked.get(account.name)
        if not box:
            return []
        out = [box.pop(i) for i in ids if i in box]
        n = len(out)
        if n:
            account.undelivered -= n
            account.stored -= n
            by_reason = account.by_reason
            for u in out:
                kind = STAT_KEYS[u.kind]
                by_reason[kind] -= 1
                if by_reason[kind] <= 0:
                    del by_reason[kind]
        return out

    def all_undelivered(self) -> list[Undelivered]:
        """Every undelivered record: the list, then the parked ones sink by sink."""
        out = list(self.undelivered)
        for box in self.parked.values():
            out.extend(box.values())
        return out

    async def rescue_rest(self, store: RescueStore) -> None:
        """Write every undelivered record not stored yet to ``store``, and mark them
        stored. At the end of a run, once its tasks are done: the write runs in a worker
        thread (a large backlog does not hold up the other tasks of the program),
        shielded from cancellation (what is undelivered is kept, also when the run was
        cancelled). The monitor's statistics records are not data, and are not stored.
        If the store fails, the records stay unstored and the failure is kept in
        ``sink_errors`` under ``"rescue"``."""
        todo = [k for k, u in enumerate(self.undelivered) if not u.stored and u.record.id >= 0]
        if not todo:
            return
        undelivered = self.undelivered
        try:
            with CancelScope(shield=True):
                await store.arescue([undelivered[k] for k in todo])
        except Exception as exc:
            log.error('rescue.failed records=%d error="%s"', len(todo), describe(exc), exc_info=exc)
            text = f"rescue store raised {describe(exc)}"
            errors = self.sink_errors
            errors["rescue"] = f"{errors['rescue']}; {text}" if "rescue" in errors else text
            return
        accounts = self.accounts
        for k in todo:
            u = undelivered[k] = attrs.evolve(undelivered[k], stored=True)
            if u.sink is not None and u.sink in accounts:
                accounts[u.sink].stored += 1

    def report(self, drain_seconds: float) -> DeliveryReport:
        accounts = self.accounts.values()
        return DeliveryReport(
            received=self.received,
            routed={a.name: a.routed for a in accounts},
            delivered={a.name: a.delivered for a in accounts},
            undelivered=self.all_undelivered(),
            discarded=self.discarded,
            timed_out=self.deadline_abandoned > 0,
            drain_seconds=drain_seconds,
            dispatched=self.dispatched,
            sink_errors=self.sink_errors,
            generated=self.generated,
        )
