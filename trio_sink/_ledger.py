"""The ledger: who was given what, and what became of it. The only code that counts.

Every record routed to a sink is, at any moment, in exactly one of five places::

    routed == waiting + buffered + in_flight + delivered + undelivered

``waiting``: routed, held by the source stage until the sink's channel has room;
``buffered``: in the sink's channel; ``in_flight``: in the sink's hands (being
written, retried or set aside); then ``delivered`` or ``undelivered`` for good. Each
method of :class:`Ledger` is one move between these places, made once per batch (never
once per record), so the identity holds between any two calls. With ``strict`` on (as
the tests turn it on, through ``TRIO_SINK_STRICT_LEDGER``), the ledger checks it after
every move and raises :class:`AccountingError` at the first one that breaks it.

Only records that end up undelivered are materialised one by one, and only then.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized

import attrs

from ._exceptions import AccountingError
from ._ledger_accounts import (
    ERROR_IDS_AT_LEAST,
    NO_ID,
    STRICT,
    ErrorIds,
    Place,
    Routed,
    SinkAccount,
    Ticket,
)
from ._record import Record
from ._report import DEADLINE, IMMEDIATE, STAT_KEYS, DeliveryReport, Reason, Undelivered
from ._undelivered_view import UndeliveredView

__all__ = ["ERROR_IDS_AT_LEAST", "NO_ID", "STRICT", "Ledger", "Place", "SinkAccount", "Ticket"]

KEEP_STORED = 1024
"""Stored undelivered records a run with a rescue store keeps in memory; past them, the
ledger only counts what it stores, and the report reads those back from the store."""


class Ledger:
    """The counts of one run, and every move they make; :meth:`report` freezes them.
    ``strict``: check the accounts after every move (for tests; default :data:`STRICT`).
    """

    def __init__(
        self,
        sinks: Iterable[str],
        on_settled: Callable[[Ticket], None] | None = None,
        *,
        strict: bool | None = None,
    ) -> None:
        # An attribute of the instance, not of the class: read on every move, and
        # CPython reads an instance's own attribute fastest.
        self.strict = STRICT if strict is None else strict
        self.received = 0
        self.dispatched = 0
        self.accounts = {name: SinkAccount(name) for name in sinks}
        self.discarded: Counter[str] = Counter()
        self.undelivered: list[Undelivered] = []
        # Per sink name, by record id: undelivered records set aside in the rescue
        # store that the sink's task may still deliver (see replayed).
        self.parked: dict[str, dict[int, Undelivered]] = {}
        self.deadline_abandoned = 0
        self.unrouted = 0  # undelivered before routing (sink None)
        self.generated = 0  # monitor records made (ids -1, -2, ...)
        self.settled_batches = 0
        self.sink_errors: dict[str, str] = {}
        self.on_settled = on_settled  # with each source batch settled
        # The lowest id of a data record undelivered and not stored (no item from it on
        # is safe to acknowledge); NO_ID while there is none.
        self.unsafe_from = NO_ID
        # Source batches routed and not settled yet, by their first id.
        self.open_tickets: dict[int, Ticket] = {}
        # Ids of records sent to the error group that could still fail at a sink (and
        # must not be sent there twice); see sent_to_errors.
        self._error_ids = ErrorIds()
        self.read_back: Callable[[], Iterator[Undelivered]] | None = None
        """Reads this run's entries back from its rescue store; set when there is one.
        Until it is, every undelivered record is kept in memory."""
        self.kept_stored = 0
        self.spilled = 0  # stored undelivered records counted, not kept (see read_back)
        self.parked_spilled: dict[str, Counter[str]] = {}  # the same, parked: by stat key

    def account(self, name: str) -> SinkAccount:
        """The account of sink ``name``, opened if it has none yet (a replay meets sink
        names as it reads them)."""
        account = self.accounts.get(name)
        if account is None:
            account = self.accounts[name] = SinkAccount(name)
        return account

    def _checked(self, account: SinkAccount) -> None:
        problem = account.problem()
        if problem is not None:
            raise AccountingError(problem)

    # -- the source and the route stage ------------------------------------------------

    def receive(self, n: int) -> int:
        """``n`` items came from the source: the first id of the ids they get."""
        first = self.received
        self.received = first + n
        return first

    def route(self, account: SinkAccount, n: int) -> None:
        """``n`` records were routed to ``account``'s sink: they wait to be sent."""
        account.routed += n
        account.waiting += n
        if self.strict:
            self._checked(account)

    def discard(self, group: str, n: int) -> None:
        """``n`` records went to infra group ``group``, which has no sink (or no room)."""
        self.discarded[group] += n

    def dispatch(self, ticket: Ticket, out: Sequence[tuple[Routed, tuple[Sized, object]]]) -> None:
        """``ticket``'s records left the route stage as the sub-batches of ``out`` (one a
        destination, each waiting): open until each is settled; with none, settled now."""
        self.open_tickets[ticket.first_id] = ticket  # until each sub-batch is settled
        strict = self.strict
        for dest, (batch, _) in out:
            account = dest.account
            n = len(batch)
            account.routed += n
            account.waiting += n
            if strict:
                self._checked(account)
        self.dispatched += ticket.count
        if out:
            ticket.pending = len(out)
        else:
            ticket.pending = 1
            self.settle(ticket)

    def send(self, account: SinkAccount, n: int) -> None:
        """``n`` waiting records went into the sink's channel (or wait for room there)."""
        account.waiting -= n
        buffered = account.buffered + n
        account.buffered = buffered
        if buffered > account.peak_buffered:
            account.peak_buffered = buffered
        if self.strict:
            self._checked(account)

    def unsend(self, account: SinkAccount, n: int) -> None:
        """A send of ``n`` records was cancelled: they wait again."""
        account.buffered -= n
        account.waiting += n
        if self.strict:
            self._checked(account)

    def admit(self, account: SinkAccount, n: int) -> None:
        """``n`` records went straight into the sink's channel (a side feed, a replay)."""
        self.route(account, n)
        self.send(account, n)

    def generate(self) -> int:
        """The id of a new statistics record: -1, -2, ..."""
        self.generated += 1
        return -self.generated

    # -- a sink's task -----------------------------------------------------------------

    def take(self, account: SinkAccount, n: int) -> None:
        """The sink's task took ``n`` records from its channel."""
        account.buffered -= n
        account.in_flight += n
        if self.strict:
            self._checked(account)

    def deliver(self, account: SinkAccount, n: int, ticket: Ticket | None = None) -> None:
        """``n`` records in the task's hands were delivered: a sub-batch of ``ticket``,
        which it settles, when given."""
        account.in_flight -= n
        account.delivered += n
        if self.strict:
            self._checked(account)
        if ticket is not None:
            self.settle(ticket)

    def deliver_waiting(self, account: SinkAccount, n: int, ticket: Ticket) -> None:
        """``n`` waiting records of ``ticket``, written by the routing task, delivered."""
        account.waiting -= n
        account.delivered += n
        if self.strict:
            self._checked(account)
        if ticket.pending > 1:  # settle(ticket), written out: it runs per sink and batch
            ticket.pending -= 1
        else:
            self.settle(ticket)

    def retried(self, account: SinkAccount) -> None:
        """A write to the sink is tried again after a failure."""
        account.retries += 1

    def abandon(
        self,
        account: SinkAccount | None,
        place: Place | None,
        stage: str,
        reason: Reason,
        records: Iterable[Record],
        error: BaseException | None = None,
        *,
        stored: bool = False,
        parked: bool = False,
    ) -> int:
        """Report ``records`` undelivered to ``account``'s sink, from ``place``; with
        ``account`` None (and ``place`` None), records given up before routing.
        Returns how many.

        ``stored``: they are in the rescue store already. ``parked``: stored, and kept
        by record id until the end of the run, so that :meth:`replayed` can take them
        back when the sink's task delivers them after all.
        """
        text = reason.text
        kind = reason.kind
        if account is None:
            before = len(self.undelivered)
            self.undelivered.extend(
                Undelivered(r, None, stage, text, error, stored, kind=kind) for r in records
            )
            n = len(self.undelivered) - before
            self.unrouted += n
            if not stored:
                self._unsafe(before)
        else:
            name = account.name
            if (parked or stored) and self._spill(records):
                n = len(records)  # type: ignore[arg-type]
                self.spilled += n
                if parked:
                    self.parked_spilled.setdefault(name, Counter())[STAT_KEYS[kind]] += n
                stored = True
            elif parked:
                box = self.parked.setdefault(name, {})
                before = len(box)
                for r in records:
                    box[r.id] = Undelivered(r, name, stage, text, error, True, kind=kind)
                n = len(box) - before
                stored = True
                self.kept_stored += n
            else:
                before = len(self.undelivered)
                self.undelivered.extend(
                    Undelivered(r, name, stage, text, error, stored, kind=kind) for r in records
                )
                n = len(self.undelivered) - before
                if stored:
                    self.kept_stored += n
                else:
                    self._unsafe(before)
            if n:
                assert place is not None
                setattr(account, place, getattr(account, place) - n)
                account.undelivered += n
                account.by_reason[STAT_KEYS[kind]] += n
                if stored:
                    account.stored += n
            if self.strict:
                self._checked(account)
        if reason is DEADLINE or reason is IMMEDIATE:
            self.deadline_abandoned += n
        return n

    def drop(self, account: SinkAccount, place: Place, group: str, n: int) -> None:
        """The sink of infra group ``group`` gives up ``n`` records that are not data (a
        monitor's): counted as discarded, not undelivered, and taken from ``routed``."""
        setattr(account, place, getattr(account, place) - n)
        account.routed -= n
        self.discarded[group] += n
        if self.strict:
            self._checked(account)

    def replayed(self, account: SinkAccount, ids: Iterable[int]) -> int:
        """The parked records of ``account`` with these ids (those that are parked) were
        delivered by the sink's task after all: undelivered no longer. Returns how many."""
        n = self._unpark(account, ids)[1]
        account.delivered += n
        account.replayed += n
        if self.strict:
            self._checked(account)
        return n

    def repark(
        self,
        account: SinkAccount,
        ids: Iterable[int],
        reason: Reason,
        error: BaseException | None,
    ) -> int:
        """The parked records of ``account`` with these ids failed for good and were
        stored again, with ``reason``: they stay undelivered, no longer parked."""
        back, n = self._unpark(account, ids)
        name, text, kind = account.name, reason.text, reason.kind
        self.undelivered.extend(
            Undelivered(u.record, name, "sink", text, error, True, kind=kind) for u in back
        )
        self.spilled += n - len(back)  # stored again, still only counted
        account.undelivered += n
        account.stored += n
        if n:
            account.by_reason[STAT_KEYS[kind]] += n
        if self.strict:
            self._checked(account)
        return n

    def _spill(self, records: Iterable[Record]) -> bool:
        """Whether stored ``records`` are only counted, not kept (see :data:`KEEP_STORED`)."""
        return (
            self.read_back is not None
            and self.kept_stored >= KEEP_STORED
            and isinstance(records, Sized)
        )

    def _unpark(self, account: SinkAccount, ids: Iterable[int]) -> tuple[list[Undelivered], int]:
        """Take the parked records of these ids back from undelivered: those kept (the
        list), and as many of the counted ones as the ids that were not kept; with them,
        how many in all."""
        box = self.parked.get(account.name, {})
        ids = list(ids)
        out = [box.pop(i) for i in ids if i in box]
        keys = [STAT_KEYS[u.kind] for u in out]
        counted = self.parked_spilled.get(account.name)
        if counted and len(out) < len(ids):
            more = min(len(ids) - len(out), sum(counted.values()))
            for key in list(counted):
                take = min(more, counted[key])
                keys += [key] * take
                counted[key] -= take
                more -= take
            self.spilled -= len(keys) - len(out)
            counted += Counter()  # drops the keys at 0
        n = len(keys)
        if n:
            account.undelivered -= n
            account.stored -= n
            by_reason = account.by_reason
            for key in keys:
                by_reason[key] -= 1
                if by_reason[key] <= 0:
                    del by_reason[key]
        return out, n

    def _unsafe(self, start: int) -> None:  # lower unsafe_from to the unstored from start
        ids = [u.record.id for u in self.undelivered[start:] if not u.stored and u.record.id >= 0]
        self.unsafe_from = min(self.unsafe_from, *ids, NO_ID)

    def ack_frontier(self) -> int:
        """The first id not safe to acknowledge. Batches are routed (or given up) in id
        order, so the oldest open ticket is the first, and no id is past the routed."""
        routed = self.dispatched + self.unrouted
        return min(next(iter(self.open_tickets), routed), self.unsafe_from)

    def settle(self, ticket: Ticket) -> None:
        """One sub-batch of ``ticket`` reached its final outcome."""
        ticket.pending -= 1
        if ticket.pending == 0:
            self.settled_batches += 1
            open_tickets = self.open_tickets
            if open_tickets.get(ticket.first_id) is ticket:
                del open_tickets[ticket.first_id]
            if self.on_settled is not None:
                self.on_settled(ticket)

    def note_error(self, key: str, text: str) -> None:
        """Keep an error that is not a record's (a ``flush()``, an ``aclose()``, the
        rescue store) in the report's ``sink_errors`` under ``key``; once per text."""
        errors = self.sink_errors
        old = errors.get(key)
        if old is None:
            errors[key] = text
        elif text not in old.split("; "):
            errors[key] = f"{old}; {text}"

    # -- the error group's copies ------------------------------------------------------

    def sent_to_errors(self, records: Iterable[Record]) -> list[Record]:
        """The records of ``records`` not sent to the error group yet, now marked sent
        (see :class:`~trio_sink._ledger_accounts.ErrorIds`)."""
        return self._error_ids.fresh(records, self.open_tickets, self.parked, self.received)

    @property
    def error_ids_kept(self) -> int:
        """How many ids of records sent to the error group are remembered now."""
        return len(self._error_ids.ids)

    # -- the end -----------------------------------------------------------------------

    def unstored(self) -> list[int]:
        """Where, in :attr:`undelivered`, the data records not stored yet are (the
        monitor's statistics records, with negative ids, are not data)."""
        return [k for k, u in enumerate(self.undelivered) if not u.stored and u.record.id >= 0]

    def mark_stored(self, places: Sequence[int]) -> None:
        """The undelivered records at ``places`` (from :meth:`unstored`) were stored."""
        undelivered = self.undelivered
        accounts = self.accounts
        for k in places:
            u = undelivered[k] = attrs.evolve(undelivered[k], stored=True)
            if u.sink is not None and u.sink in accounts:
                accounts[u.sink].stored += 1
        self.unsafe_from = NO_ID
        self._unsafe(0)

    def _undelivered(self) -> Sequence[Undelivered]:
        """The report's undelivered records: every one, or a view that reads those only
        counted back from the store."""
        kept = self.all_undelivered()
        if not self.spilled or self.read_back is None:
            return kept
        return UndeliveredView(kept, self.spilled, self.read_back)

    def all_undelivered(self) -> list[Undelivered]:
        """Every undelivered record: the list, then the parked ones sink by sink."""
        out = list(self.undelivered)
        for box in self.parked.values():
            out.extend(box.values())
        return out

    def report(self, drain_seconds: float) -> DeliveryReport:
        """The report of the run so far. In strict mode, at the end of a run (nothing
        pending), it first checks that every account adds up and every source batch
        was settled."""
        accounts = self.accounts.values()
        if self.strict and not any(a.pending for a in accounts):
            problems = [p for p in map(SinkAccount.problem, accounts) if p is not None]
            if self.open_tickets:
                problems.append(f"source batches never settled: {sorted(self.open_tickets)}")
            if problems:
                raise AccountingError("; ".join(problems))
        return DeliveryReport(
            received=self.received,
            routed={a.name: a.routed for a in accounts},
            delivered={a.name: a.delivered for a in accounts},
            undelivered=self._undelivered(),
            discarded=self.discarded,
            timed_out=self.deadline_abandoned > 0,
            drain_seconds=drain_seconds,
            dispatched=self.dispatched,
            sink_errors=self.sink_errors,
            generated=self.generated,
        )
