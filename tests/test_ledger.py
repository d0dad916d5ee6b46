"""The ledger: every move of a count, the identity it keeps, tickets, error ids."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from helpers import open_ticket

from trio_sink import AccountingError, Record
from trio_sink._ledger import ERROR_IDS_AT_LEAST, Ledger, SinkAccount, Ticket
from trio_sink._report import CANCELLED, DEADLINE, IMMEDIATE, Reason, Undelivered, sink_error


def _records(first: int, n: int) -> list[Record]:
    return [Record(i, i, i) for i in range(first, first + n)]


def _places(a: SinkAccount) -> tuple[int, ...]:
    return (a.routed, a.waiting, a.buffered, a.in_flight, a.delivered, a.undelivered)


class Dest:
    """A destination as the route stage hands it to the ledger."""

    def __init__(self, account: SinkAccount) -> None:
        self.account = account


def _taken(ledger: Ledger, account: SinkAccount, n: int) -> None:
    """Route ``n`` records to ``account``'s sink, send them, and take them."""
    ledger.route(account, n)
    ledger.send(account, n)
    ledger.take(account, n)


@pytest.fixture(autouse=True)
def strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("trio_sink._ledger.STRICT", True)


def test_ledger_has_an_account_per_sink_starting_at_zero() -> None:
    ledger = Ledger(["a", "b"])
    report = ledger.report(0.0)
    assert dict(report.routed) == {"a": 0, "b": 0}
    assert dict(report.delivered) == {"a": 0, "b": 0}
    assert report.received == 0
    assert report.undelivered == ()
    assert not report.timed_out
    report.check()


# -- the moves ------------------------------------------------------------------------------


def test_a_batch_moves_from_routed_to_delivered_one_place_at_a_time() -> None:
    ledger = Ledger(["a"])
    a = ledger.accounts["a"]
    assert ledger.receive(5) == 0
    assert ledger.receive(3) == 5
    ticket = Ticket(0, 5, 0)
    ledger.open_tickets[ticket.first_id] = ticket
    ledger.dispatch(ticket, [(Dest(a), (_records(0, 5), ticket))])
    assert _places(a) == (5, 5, 0, 0, 0, 0)
    assert (ledger.dispatched, ticket.pending) == (5, 1)
    ledger.send(a, 5)
    assert _places(a) == (5, 0, 5, 0, 0, 0)
    assert a.peak_buffered == 5
    ledger.take(a, 5)
    assert _places(a) == (5, 0, 0, 5, 0, 0)
    ledger.deliver(a, 5, ticket)
    assert _places(a) == (5, 0, 0, 0, 5, 0)
    assert ledger.open_tickets == {}
    assert a.pending == 0


def test_a_sub_batch_written_by_the_routing_task_goes_from_waiting_to_delivered() -> None:
    # Three sub-batches of one source batch: two written by the routing task itself
    # (deliver_waiting), one through its sink's channel. The ticket settles once, with
    # the last of them, whichever it is.
    settled: list[Ticket] = []
    ledger = Ledger(["a", "b"], on_settled=settled.append)
    a, b = ledger.accounts["a"], ledger.accounts["b"]
    ticket = Ticket(ledger.receive(4), 4, 0)
    whole, some = (_records(0, 4), ticket), (_records(1, 2), ticket)
    ledger.dispatch(ticket, [(Dest(a), whole), (Dest(b), whole), (Dest(a), some)])
    ledger.deliver_waiting(a, 4, ticket)
    assert _places(a) == (6, 2, 0, 0, 4, 0)
    assert (ticket.pending, settled, ledger.settled_batches) == (2, [], 0)
    assert ledger.open_tickets == {0: ticket}
    ledger.send(b, 4)
    ledger.take(b, 4)
    ledger.deliver(b, 4, ticket)
    assert (ticket.pending, settled) == (1, [])
    assert ledger.open_tickets == {0: ticket}
    ledger.deliver_waiting(a, 2, ticket)
    assert _places(a) == (6, 0, 0, 0, 6, 0)
    assert (ticket.pending, settled, ledger.settled_batches) == (0, [ticket], 1)
    assert ledger.open_tickets == {}
    ledger.report(0.0).check()


def test_dispatch_counts_each_destination_of_a_batch() -> None:
    ledger = Ledger(["a", "b"])
    a, b = ledger.accounts["a"], ledger.accounts["b"]
    ticket = Ticket(ledger.receive(3), 3, 0)
    everything, some = (_records(0, 3), ticket), (_records(1, 1), ticket)
    ledger.dispatch(ticket, [(Dest(a), everything), (Dest(b), everything), (Dest(b), some)])
    assert (_places(a), _places(b)) == ((3, 3, 0, 0, 0, 0), (4, 4, 0, 0, 0, 0))
    assert (ledger.dispatched, ticket.pending) == (3, 3)


def test_a_cancelled_send_waits_again() -> None:
    ledger = Ledger(["a"])
    a = ledger.accounts["a"]
    ledger.route(a, 4)
    ledger.send(a, 4)
    ledger.unsend(a, 4)
    assert _places(a) == (4, 4, 0, 0, 0, 0)
    assert a.peak_buffered == 4


def test_a_batch_of_discarded_records_settles_at_once() -> None:
    settled: list[Ticket] = []
    ledger = Ledger(["a"], on_settled=settled.append)
    ticket = Ticket(ledger.receive(3), 3, 0)
    ledger.open_tickets[ticket.first_id] = ticket
    ledger.discard("default", 3)
    ledger.dispatch(ticket, [])
    assert settled == [ticket]
    assert ledger.discarded == {"default": 3}
    ledger.report(0.0).check()


def test_admit_counts_a_side_feed_straight_into_the_channel() -> None:
    ledger = Ledger(["error"])
    a = ledger.accounts["error"]
    ledger.admit(a, 3)
    ledger.admit(a, 2)
    assert _places(a) == (5, 0, 5, 0, 0, 0)
    assert a.peak_buffered == 5


@pytest.mark.parametrize("place", ["waiting", "buffered", "in_flight"])
def test_abandon_moves_records_from_their_place_to_undelivered(place: str) -> None:
    ledger = Ledger(["a"])
    a = ledger.accounts["a"]
    ledger.route(a, 3)
    if place != "waiting":
        ledger.send(a, 3)
    if place == "in_flight":
        ledger.take(a, 3)
    assert ledger.abandon(a, place, "sink", DEADLINE, _records(0, 3)) == 3  # type: ignore[arg-type]
    assert _places(a) == (3, 0, 0, 0, 0, 3)
    assert a.by_reason == {"drain deadline": 3}


def test_abandon_before_routing_names_no_sink() -> None:
    ledger = Ledger(["a"])
    ledger.receive(2)
    assert ledger.abandon(None, None, "source", IMMEDIATE, iter(_records(0, 2))) == 2
    assert ledger.accounts["a"].undelivered == 0
    report = ledger.report(0.0)
    assert [u.sink for u in report.undelivered] == [None, None]
    assert [(u.reason, u.kind) for u in report.undelivered] == [("immediate stop", "immediate")] * 2
    report.check()


def test_abandon_keeps_the_sink_exception_and_the_kind() -> None:
    ledger = Ledger(["a"])
    a = ledger.accounts["a"]
    _taken(ledger, a, 1)
    exc = OSError("disk full")
    ledger.abandon(a, "in_flight", "sink", sink_error(exc), _records(0, 1), exc)
    (u,) = ledger.report(0.0).undelivered
    assert (u.error, u.reason, u.kind) == (exc, "sink raised OSError: disk full", "sink_error")
    assert a.by_reason == {"sink error": 1}


@pytest.mark.parametrize("reason", [DEADLINE, IMMEDIATE])
def test_abandon_counts_deadline_reasons(reason: Reason) -> None:
    ledger = Ledger(["a"])
    _taken(ledger, ledger.accounts["a"], 3)
    ledger.abandon(ledger.accounts["a"], "in_flight", "sink", reason, _records(0, 3))
    ledger.abandon(None, None, "source", reason, _records(3, 2))
    assert ledger.deadline_abandoned == 5
    assert ledger.report(0.0).timed_out


@pytest.mark.parametrize(
    "reason", [CANCELLED, sink_error(ValueError("x")), Reason("pipeline_failed", "pipeline failed")]
)
def test_abandon_for_other_reasons_is_not_a_timeout(reason: Reason) -> None:
    ledger = Ledger(["a"])
    _taken(ledger, ledger.accounts["a"], 3)
    ledger.abandon(ledger.accounts["a"], "in_flight", "sink", reason, _records(0, 3))
    assert ledger.deadline_abandoned == 0
    report = ledger.report(0.0)
    assert not report.timed_out
    assert len(report.undelivered) == 3


def test_abandon_of_nothing_counts_nothing() -> None:
    ledger = Ledger(["a"])
    assert ledger.abandon(ledger.accounts["a"], "in_flight", "sink", DEADLINE, []) == 0
    assert ledger.deadline_abandoned == 0
    assert not ledger.report(0.0).timed_out


def test_drop_takes_statistics_records_back_from_routed_into_discarded() -> None:
    ledger = Ledger(["mon"])
    mon = ledger.accounts["mon"]
    ledger.admit(mon, 3)
    ledger.take(mon, 1)
    ledger.drop(mon, "in_flight", "monitor", 1)
    ledger.drop(mon, "buffered", "monitor", 2)
    assert _places(mon) == (0, 0, 0, 0, 0, 0)
    assert ledger.discarded == {"monitor": 3}


def test_parked_records_delivered_by_replay_leave_undelivered() -> None:
    ledger = Ledger(["db"])
    db = ledger.accounts["db"]
    _taken(ledger, db, 4)
    unhealthy = Reason("unhealthy", "sink unhealthy: OSError: x")
    ledger.abandon(db, "in_flight", "sink", unhealthy, _records(0, 3), parked=True)
    ledger.abandon(db, "in_flight", "sink", DEADLINE, _records(3, 1), stored=True)
    assert (db.undelivered, db.stored) == (4, 4)
    assert ledger.replayed(db, [2, 0, 9]) == 2
    assert (db.delivered, db.replayed, db.undelivered, db.stored) == (2, 2, 2, 2)
    assert db.by_reason == {"sink error": 1, "drain deadline": 1}
    assert ledger.replayed(db, [2]) == 0


def test_repark_reports_parked_records_again_with_their_new_reason() -> None:
    ledger = Ledger(["db"])
    db = ledger.accounts["db"]
    _taken(ledger, db, 2)
    unhealthy = Reason("unhealthy", "sink unhealthy: OSError: x")
    ledger.abandon(db, "in_flight", "sink", unhealthy, _records(0, 2), parked=True)
    exc = ValueError("rejected")
    assert ledger.repark(db, [1], sink_error(exc), exc) == 1
    assert (db.undelivered, db.stored) == (2, 2)
    report = ledger.report(0.0)
    assert sorted((u.record.id, u.kind, u.stored) for u in report.undelivered) == [
        (0, "unhealthy", True),
        (1, "sink_error", True),
    ]


def test_stored_marks_count_only_data_records() -> None:
    ledger = Ledger(["a", "mon"])
    a, mon = ledger.accounts["a"], ledger.accounts["mon"]
    _taken(ledger, a, 2)
    ledger.admit(mon, 1)
    ledger.take(mon, 1)
    ledger.abandon(a, "in_flight", "sink", DEADLINE, _records(0, 2))
    ledger.abandon(mon, "in_flight", "sink", DEADLINE, [Record(-1, "s", "s")])
    places = ledger.unstored()
    assert places == [0, 1]  # not the statistics record
    ledger.mark_stored(places)
    assert (a.stored, mon.stored) == (2, 0)
    assert [u.stored for u in ledger.undelivered] == [True, True, False]


def test_note_error_keeps_each_text_once() -> None:
    ledger = Ledger(["a"])
    ledger.note_error("rescue", "rescue store raised OSError: x")
    ledger.note_error("rescue", "rescue store raised OSError: x")
    ledger.note_error("rescue", "rescue store raised OSError: y")
    assert ledger.sink_errors == {
        "rescue": "rescue store raised OSError: x; rescue store raised OSError: y"
    }


def test_ledger_report_is_a_snapshot() -> None:
    ledger = Ledger(["a"])
    a = ledger.accounts["a"]
    ticket = Ticket(ledger.receive(2), 2, 0)
    ledger.dispatch(ticket, [(Dest(a), (_records(0, 2), ticket))])
    ledger.send(a, 2)
    ledger.take(a, 2)
    ledger.deliver(a, 1)
    ledger.abandon(a, "in_flight", "sink", DEADLINE, _records(1, 1))
    ledger.settle(ticket)
    ledger.discard("default", 4)
    ledger.note_error("a", "flush raised OSError: x")
    report = ledger.report(0.5)
    ledger.discard("default", 1)
    ledger.sink_errors.clear()
    ledger.receive(100)
    assert report.received == 2
    assert dict(report.delivered) == {"a": 1}
    assert dict(report.discarded) == {"default": 4}
    assert len(report.undelivered) == 1
    assert dict(report.sink_errors) == {"a": "flush raised OSError: x"}
    report.check()


# -- strict: the identity after every move ----------------------------------------------------


def test_strict_ledger_refuses_a_move_that_breaks_the_identity() -> None:
    ledger = Ledger(["a"])
    a = ledger.accounts["a"]
    ledger.route(a, 2)
    with pytest.raises(AccountingError, match="sink 'a': a negative count"):
        ledger.take(a, 1)  # nothing was sent


def test_strict_ledger_refuses_delivering_more_than_in_hand() -> None:
    ledger = Ledger(["a"])
    a = ledger.accounts["a"]
    _taken(ledger, a, 1)
    with pytest.raises(AccountingError, match="in_flight=-1"):
        ledger.deliver(a, 2)


def test_strict_ledger_refuses_a_count_changed_by_hand() -> None:
    ledger = Ledger(["a"])
    a = ledger.accounts["a"]
    a.routed += 1  # what no module but the ledger may do
    with pytest.raises(AccountingError, match="routed != the sum of its places"):
        ledger.route(a, 1)


def test_the_suite_runs_with_a_strict_ledger() -> None:
    import os

    assert os.environ.get("TRIO_SINK_STRICT_LEDGER") == "1"


def test_no_module_but_the_ledger_writes_a_count() -> None:
    """A count is changed by a ledger method, never by hand elsewhere in the package."""
    import re
    from pathlib import Path

    import trio_sink

    counters = "|".join((*SinkAccount.__slots__, "received", "dispatched", "generated"))
    write = re.compile(rf"\.({counters})\s*(\+=|-=|=(?!=))")
    found = [
        f"{path.name}:{n}: {line.strip()}"
        for path in Path(trio_sink.__file__).parent.rglob("*.py")
        if path.name != "_ledger.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if write.search(line) and not re.match(r"\s*self\.\w+\s*[-+]?=", line)
    ]
    assert found == []


# -- Tickets ------------------------------------------------------------------------------


def test_settle_calls_on_settled_once_when_pending_reaches_zero() -> None:
    settled: list[Ticket] = []
    ledger = Ledger(["a"], on_settled=settled.append)
    ticket = Ticket(first_id=10, count=4, pending=3)
    ledger.settle(ticket)
    ledger.settle(ticket)
    assert settled == []
    assert ledger.settled_batches == 0
    ledger.settle(ticket)
    assert settled == [ticket]
    assert ledger.settled_batches == 1
    assert (ticket.first_id, ticket.count, ticket.pending) == (10, 4, 0)


def test_settle_counts_tickets_independently() -> None:
    settled: list[int] = []
    ledger = Ledger([], on_settled=lambda t: settled.append(t.first_id))
    t1 = Ticket(0, 2, 2)
    t2 = Ticket(2, 3, 1)
    ledger.settle(t1)
    ledger.settle(t2)
    ledger.settle(t1)
    assert settled == [2, 0]
    assert ledger.settled_batches == 2


def test_settle_without_a_hook_still_counts() -> None:
    ledger = Ledger(["a"])
    ledger.settle(Ticket(0, 1, 1))
    assert ledger.settled_batches == 1


# -- the error group's copies -------------------------------------------------------------


def records(ids: range) -> list[Record]:
    return [Record(i, i, i) for i in ids]


def test_sent_to_errors_passes_each_id_once() -> None:
    ledger = Ledger(["a"])
    open_ticket(ledger, Ticket(0, 10, 1))
    assert [r.id for r in ledger.sent_to_errors(records(range(0, 6)))] == list(range(6))
    assert [r.id for r in ledger.sent_to_errors(records(range(4, 10)))] == [6, 7, 8, 9]
    assert ledger.sent_to_errors(records(range(10))) == []
    assert ledger.error_ids_kept == 10


def test_ids_of_settled_batches_are_forgotten_and_open_or_parked_ones_kept() -> None:
    n = ERROR_IDS_AT_LEAST
    ledger = Ledger(["a"])
    settled, still_open = Ticket(0, n, 1), Ticket(n, 8, 1)
    open_ticket(ledger, settled)
    open_ticket(ledger, still_open)
    ledger.receive(n + 8)
    a = ledger.accounts["a"]
    _taken(ledger, a, 5)
    ledger.abandon(a, "in_flight", "sink", sink_error(OSError("x")), records(range(5)), parked=True)
    ledger.sent_to_errors(records(range(n - 4)))
    ledger.settle(settled)
    assert ledger.open_tickets == {n: still_open}
    ledger.sent_to_errors(records(range(n - 4, n + 8)))  # reaches the limit: forgets
    assert ledger.error_ids_kept == 5 + 8  # the parked ones, and the open batch's
    # Forgotten means: no longer in need of it. A parked or open id is still refused.
    assert ledger.sent_to_errors(records(range(5))) == []
    assert ledger.sent_to_errors(records(range(n, n + 8))) == []


def test_a_ticket_with_the_first_id_of_an_open_one_does_not_close_it() -> None:
    ledger = Ledger(["a"])
    source = Ticket(0, 4, 2)
    open_ticket(ledger, source)
    ledger.settle(Ticket(0, 2, 1))  # the error group's copies, starting at the same id
    assert ledger.open_tickets == {0: source}


# -- the checks themselves ------------------------------------------------------------------


def test_problem_names_more_stored_than_undelivered() -> None:
    a = SinkAccount("a")
    assert a.problem() is None
    a.stored = 1  # stored, with nothing undelivered
    problem = a.problem()
    assert problem is not None
    assert "stored > undelivered" in problem


def test_problem_names_undelivered_not_split_by_reason() -> None:
    ledger = Ledger(["a"])
    a = ledger.accounts["a"]
    _taken(ledger, a, 2)
    ledger.abandon(a, "in_flight", "sink", DEADLINE, _records(0, 2))
    assert a.problem() is None
    a.by_reason["drain deadline"] -= 1  # 2 undelivered, 1 by reason
    problem = a.problem()
    assert problem is not None
    assert "by reason" in problem


@pytest.mark.parametrize(
    ("value", "strict"), [("", False), ("0", False), ("1", True), ("yes", True)]
)
def test_the_strict_ledger_is_turned_on_by_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, strict: bool
) -> None:
    from trio_sink._ledger_accounts import strict_from_environment

    monkeypatch.setenv("TRIO_SINK_STRICT_LEDGER", value)
    assert strict_from_environment() is strict


def test_the_strict_ledger_is_off_without_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trio_sink._ledger_accounts import strict_from_environment

    monkeypatch.delenv("TRIO_SINK_STRICT_LEDGER", raising=False)
    assert strict_from_environment() is False


def test_report_at_the_end_refuses_a_source_batch_never_settled() -> None:
    ledger = Ledger(["a"])
    a = ledger.accounts["a"]
    ticket = Ticket(ledger.receive(2), 2, 0)
    ledger.dispatch(ticket, [(Dest(a), (_records(0, 2), ticket))])
    ledger.send(a, 2)
    ledger.take(a, 2)
    ledger.deliver(a, 2)  # delivered, and the sub-batch never settled
    with pytest.raises(AccountingError, match=r"source batches never settled: \[0\]"):
        ledger.report(0.0)
    ledger.settle(ticket)
    ledger.report(0.0).check()


def test_report_while_records_are_pending_does_not_check_tickets() -> None:
    ledger = Ledger(["a"])
    a = ledger.accounts["a"]
    ticket = Ticket(ledger.receive(2), 2, 0)
    ledger.dispatch(ticket, [(Dest(a), (_records(0, 2), ticket))])
    report = ledger.report(0.0)  # mid-run: the batch waits, its ticket is open
    assert dict(report.routed) == {"a": 2}


def test_report_at_the_end_refuses_an_account_that_does_not_add_up() -> None:
    ledger = Ledger(["a"])
    a = ledger.accounts["a"]
    _taken(ledger, a, 1)
    ledger.deliver(a, 1)
    a.by_reason["drain deadline"] += 1  # what no move does
    with pytest.raises(AccountingError, match="by reason"):
        ledger.report(0.0)


def _unsend_too_much(ledger: Ledger, a: SinkAccount) -> None:
    ledger.route(a, 1)
    ledger.unsend(a, 1)  # nothing was sent


def _abandon_more_than_in_hand(ledger: Ledger, a: SinkAccount) -> None:
    _taken(ledger, a, 1)
    ledger.abandon(a, "in_flight", "sink", DEADLINE, _records(0, 2))


def _abandon_from_the_wrong_place(ledger: Ledger, a: SinkAccount) -> None:
    _taken(ledger, a, 2)
    ledger.abandon(a, "buffered", "sink", DEADLINE, _records(0, 2))


def _drop_more_than_buffered(ledger: Ledger, a: SinkAccount) -> None:
    ledger.admit(a, 1)
    ledger.drop(a, "buffered", "monitor", 2)


def _drop_from_the_wrong_place(ledger: Ledger, a: SinkAccount) -> None:
    ledger.admit(a, 1)
    ledger.drop(a, "in_flight", "monitor", 1)


def _send_more_than_waiting(ledger: Ledger, a: SinkAccount) -> None:
    ledger.route(a, 1)
    ledger.send(a, 2)


@pytest.mark.parametrize(
    "bad_move",
    [
        _unsend_too_much,
        _abandon_more_than_in_hand,
        _abandon_from_the_wrong_place,
        _drop_more_than_buffered,
        _drop_from_the_wrong_place,
        _send_more_than_waiting,
    ],
)
def test_strict_ledger_refuses_each_bad_move_at_the_move_itself(
    bad_move: Callable[[Ledger, SinkAccount], None],
) -> None:
    ledger = Ledger(["a"])
    with pytest.raises(AccountingError, match="sink 'a'"):
        bad_move(ledger, ledger.accounts["a"])


def test_a_reason_whose_parked_records_were_all_replayed_leaves_by_reason() -> None:
    # by_reason is what statistics show as undelivered_by_reason: no key with 0 left.
    ledger = Ledger(["db"])
    db = ledger.accounts["db"]
    _taken(ledger, db, 3)
    unhealthy = Reason("unhealthy", "sink unhealthy: OSError: x")
    ledger.abandon(db, "in_flight", "sink", unhealthy, _records(0, 2), parked=True)
    ledger.abandon(db, "in_flight", "sink", DEADLINE, _records(2, 1))
    assert ledger.replayed(db, [0, 1]) == 2
    assert dict(db.by_reason) == {"drain deadline": 1}


# -- stored records past the sample: counted, not kept ------------------------------------


def _read_back() -> Iterator[Undelivered]:
    """A store to read back from (the tests of this section never iterate the report)."""
    raise AssertionError("the store was read back")


@pytest.fixture
def sample_of_4(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("trio_sink._ledger.KEEP_STORED", 4)


UNHEALTHY = Reason("unhealthy", "sink unhealthy: OSError: x")


def _with_store(sinks: list[str]) -> Ledger:
    ledger = Ledger(sinks)
    ledger.read_back = _read_back
    return ledger


def test_stored_records_past_the_sample_are_counted_not_kept(sample_of_4: None) -> None:
    ledger = _with_store(["db"])
    db = ledger.accounts["db"]
    _taken(ledger, db, 7)
    for first in (0, 2):  # 4 records: the sample
        ledger.abandon(db, "in_flight", "sink", DEADLINE, _records(first, 2), stored=True)
    assert (ledger.kept_stored, ledger.spilled) == (4, 0)
    ledger.abandon(db, "in_flight", "sink", DEADLINE, _records(4, 3), stored=True)
    assert (ledger.kept_stored, ledger.spilled) == (4, 3)
    assert [u.record.id for u in ledger.undelivered] == [0, 1, 2, 3]
    assert (db.undelivered, db.stored, dict(db.by_reason)) == (7, 7, {"drain deadline": 7})
    report = ledger.report(0.0)
    assert type(report.undelivered).__name__ == "UndeliveredView"
    assert len(report.undelivered) == 7


def test_without_a_store_to_read_back_every_stored_record_is_kept(sample_of_4: None) -> None:
    ledger = Ledger(["db"])  # no read_back: nothing could be read back for the report
    db = ledger.accounts["db"]
    _taken(ledger, db, 10)
    for first in range(0, 10, 2):
        ledger.abandon(db, "in_flight", "sink", DEADLINE, _records(first, 2), stored=True)
    assert (ledger.kept_stored, ledger.spilled) == (10, 0)
    assert [u.record.id for u in ledger.report(0.0).undelivered] == list(range(10))


def test_records_not_stored_do_not_count_toward_the_sample(sample_of_4: None) -> None:
    # They are kept whatever their number (the end of the run stores them from memory);
    # only the stored ones fill the sample.
    ledger = _with_store(["db"])
    db = ledger.accounts["db"]
    _taken(ledger, db, 9)
    ledger.abandon(db, "in_flight", "sink", DEADLINE, _records(0, 5))
    ledger.abandon(db, "in_flight", "sink", DEADLINE, _records(5, 4), stored=True)
    assert (ledger.kept_stored, ledger.spilled) == (4, 0)
    assert len(ledger.undelivered) == 9


def test_stored_records_given_as_an_iterator_are_kept_past_the_sample(
    sample_of_4: None,
) -> None:
    # An iterator has no length to count it by: its records are kept.
    ledger = _with_store(["db"])
    db = ledger.accounts["db"]
    _taken(ledger, db, 6)
    ledger.abandon(db, "in_flight", "sink", DEADLINE, _records(0, 4), stored=True)
    n = ledger.abandon(db, "in_flight", "sink", DEADLINE, iter(_records(4, 2)), stored=True)
    assert n == 2
    assert (ledger.kept_stored, ledger.spilled) == (6, 0)
    assert [u.record.id for u in ledger.undelivered] == list(range(6))


def _parked_past_the_sample(ledger: Ledger, db: SinkAccount) -> None:
    """Park ids 0-3 (the sample), then 4-6 (counted) as unhealthy (a sink error), and
    7-8 (counted) as cancelled: the ledger counts parked records by whatever reason
    they carry."""
    _taken(ledger, db, 9)
    ledger.abandon(db, "in_flight", "sink", UNHEALTHY, _records(0, 4), parked=True)
    ledger.abandon(db, "in_flight", "sink", UNHEALTHY, _records(4, 3), parked=True)
    ledger.abandon(db, "in_flight", "sink", CANCELLED, _records(7, 2), parked=True)


def test_parked_records_fill_the_sample_and_past_it_are_counted_by_reason(
    sample_of_4: None,
) -> None:
    ledger = _with_store(["db"])
    db = ledger.accounts["db"]
    _parked_past_the_sample(ledger, db)
    assert (ledger.kept_stored, ledger.spilled) == (4, 5)
    assert sorted(ledger.parked["db"]) == [0, 1, 2, 3]
    assert ledger.parked_spilled == {"db": {"sink error": 3, "cancelled": 2}}
    assert (db.undelivered, db.stored) == (9, 9)
    assert dict(db.by_reason) == {"sink error": 7, "cancelled": 2}


def test_counted_parked_records_replayed_leave_every_count(sample_of_4: None) -> None:
    ledger = _with_store(["db"])
    db = ledger.accounts["db"]
    _parked_past_the_sample(ledger, db)
    # Two kept ones and four counted ones: the counted are taken by reason, in order.
    assert ledger.replayed(db, [0, 1, 4, 5, 6, 7]) == 6
    assert sorted(ledger.parked["db"]) == [2, 3]
    assert ledger.parked_spilled == {"db": {"cancelled": 1}}
    assert ledger.spilled == 1
    assert (db.delivered, db.replayed, db.undelivered, db.stored) == (6, 6, 3, 3)
    assert dict(db.by_reason) == {"sink error": 2, "cancelled": 1}
    # Taken once: the last counted one, and nothing more.
    assert ledger.replayed(db, [8, 100, 101]) == 1
    assert ledger.replayed(db, [102]) == 0
    assert ledger.parked_spilled == {"db": {}}
    assert (ledger.spilled, db.undelivered, db.stored) == (0, 2, 2)
    assert len(ledger.report(0.0).undelivered) == 2


def test_counted_parked_records_are_taken_across_reasons_no_more_than_asked(
    sample_of_4: None,
) -> None:
    ledger = _with_store(["db"])
    db = ledger.accounts["db"]
    _parked_past_the_sample(ledger, db)
    assert ledger.replayed(db, [4, 5, 6, 7]) == 4  # 3 sink errors, then 1 cancelled
    assert ledger.parked_spilled == {"db": {"cancelled": 1}}
    assert (ledger.spilled, db.undelivered) == (1, 5)


def test_reparked_records_stay_counted_or_kept_as_they_were(sample_of_4: None) -> None:
    ledger = _with_store(["db"])
    db = ledger.accounts["db"]
    _parked_past_the_sample(ledger, db)
    exc = ValueError("rejected")
    # One kept (0) and two counted ones fail for good: stored again with the new reason.
    assert ledger.repark(db, [0, 4, 5], sink_error(exc), exc) == 3
    assert ledger.spilled == 5  # the counted ones still only counted
    assert [(u.record.id, u.reason, u.stored) for u in ledger.undelivered] == [
        (0, "sink raised ValueError: rejected", True)
    ]
    assert sorted(ledger.parked["db"]) == [1, 2, 3]
    assert (db.undelivered, db.stored) == (9, 9)
    assert dict(db.by_reason) == {"sink error": 7, "cancelled": 2}
    report = ledger.report(0.0)
    assert len(report.undelivered) == 9


def test_the_ack_frontier_is_the_oldest_open_batch_or_the_first_unsafe_record() -> None:
    ledger = Ledger(["a"])
    a = ledger.accounts["a"]
    assert ledger.ack_frontier() == 0
    tickets = []
    for _ in range(3):
        ticket = Ticket(ledger.receive(4), 4, 0)
        ledger.dispatch(ticket, [(Dest(a), (_records(ticket.first_id, 4), ticket))])
        ledger.send(a, 4)
        ledger.take(a, 4)
        tickets.append(ticket)
    assert ledger.ack_frontier() == 0
    ledger.deliver(a, 4, tickets[1])  # out of order: the first is still open
    assert ledger.ack_frontier() == 0
    ledger.deliver(a, 4, tickets[0])
    assert ledger.ack_frontier() == 8
    ledger.abandon(a, "in_flight", "sink", DEADLINE, _records(9, 3))
    ledger.abandon(a, "in_flight", "sink", DEADLINE, _records(8, 1), stored=True)
    ledger.settle(tickets[2])
    assert ledger.ack_frontier() == 9  # 8 is stored: safe; 9 is neither
    ledger.receive(2)  # items given ids, not routed yet
    assert ledger.ack_frontier() == 9
    ledger.mark_stored(ledger.unstored())
    assert ledger.ack_frontier() == 12


def test_records_given_up_before_routing_are_unsafe_until_stored() -> None:
    ledger = Ledger(["a"])
    first = ledger.receive(5)
    ledger.abandon(None, None, "source", DEADLINE, _records(first + 2, 3))
    ledger.dispatch(Ticket(first, 2, 0), [])  # the first two were discarded
    assert ledger.ack_frontier() == 2
    ledger.mark_stored(ledger.unstored())
    assert ledger.ack_frontier() == 5


def test_a_statistics_record_never_holds_the_ack_frontier_back() -> None:
    ledger = Ledger(["mon"])
    mon = ledger.accounts["mon"]
    ledger.admit(mon, 1)
    ledger.take(mon, 1)
    ledger.abandon(mon, "in_flight", "sink", DEADLINE, [Record(-1, "s", "s")])
    ledger.dispatch(Ticket(ledger.receive(3), 3, 0), [])  # discarded: safe
    assert ledger.ack_frontier() == 3
