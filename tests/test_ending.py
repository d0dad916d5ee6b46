"""The end of a run (``_ending.py``): what is left undelivered goes to the rescue store,
marked stored as far as the store took it, and the run's segment is sealed; the records
a report only counted are read back from the store; the deadline's losses are logged
per sink. Store writes run inline (``inline_threads``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import trio

from trio_sink import Record, RescueStore
from trio_sink._control import Pause
from trio_sink._ending import log_deadline, read_back, store_the_rest
from trio_sink._ledger import Ledger, SinkAccount, Ticket
from trio_sink._report import DEADLINE, IMMEDIATE, Undelivered, sink_error
from trio_sink._rescue_format import PartlyStoredError

FAILED = sink_error(OSError("down"))


@pytest.fixture
def store(tmp_path: Path, inline_threads: None) -> Iterator[RescueStore]:
    with RescueStore(tmp_path / "rescue", fsync="never") as store:
        yield store


class _Dest:
    def __init__(self, account: SinkAccount) -> None:
        self.account = account


def _given_up(ledger: Ledger, account: SinkAccount, ids: range, *, stored: bool = False) -> None:
    """Records ``ids`` received, routed to ``account``'s sink, taken, and given up."""
    n = len(ids)
    ticket = Ticket(ledger.receive(n), n, 0)
    assert ticket.first_id == ids.start
    records = tuple(Record(i, f"raw {i}", i) for i in ids)
    ledger.dispatch(ticket, [(_Dest(account), (records, ticket))])
    ledger.send(account, n)
    ledger.take(account, n)
    ledger.abandon(account, "in_flight", "sink", FAILED, records, stored=stored)
    ledger.settle(ticket)


def _sealed_entries(store: RescueStore) -> list[tuple[str | None, int]]:
    """What another reader of the directory sees now: sealed segments only."""
    with RescueStore(store.path) as reader:
        return sorted((e.sink, e.id) for e in reader.entries() if e.run == store.run)


def _rescue_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("rescue.failed")]


async def test_the_rest_is_stored_marked_and_its_segment_sealed(store: RescueStore) -> None:
    ledger = Ledger(["db"])
    db = ledger.accounts["db"]
    _given_up(ledger, db, range(3))
    await store_the_rest(ledger, store)
    assert [(u.record.id, u.stored) for u in ledger.undelivered] == [
        (0, True),
        (1, True),
        (2, True),
    ]
    assert (db.undelivered, db.stored) == (3, 3)
    # Readable at once by a replay: sealed, not left in a segment being written.
    assert _sealed_entries(store) == [("db", 0), ("db", 1), ("db", 2)]
    ledger.report(0.0).check()


async def test_what_the_run_stored_itself_is_sealed_at_its_end(store: RescueStore) -> None:
    # Nothing left to store (the sink's task stored its failed batch at once): the end
    # of the run still seals the segment that holds it.
    ledger = Ledger(["db"])
    db = ledger.accounts["db"]
    _given_up(ledger, db, range(2), stored=True)
    store.rescue(ledger.undelivered)
    assert _sealed_entries(store) == []
    await store_the_rest(ledger, store)
    assert _sealed_entries(store) == [("db", 0), ("db", 1)]
    assert (db.undelivered, db.stored) == (2, 2)


async def test_a_nearly_full_disk_marks_stored_what_the_store_took(
    store: RescueStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The store takes the first chunk and fails at the next: the first records are
    # stored (and say so), the others stay unstored, and the failure is noted.
    async def two_then_full(undelivered: Iterable[Undelivered], *, chunk_size: int = 256) -> int:
        given = list(undelivered)
        store.rescue(given[:2])
        raise PartlyStoredError(2, len(given), OSError(28, "No space left on device"))

    monkeypatch.setattr(store, "arescue_some", two_then_full)
    ledger = Ledger(["db"])
    db = ledger.accounts["db"]
    _given_up(ledger, db, range(5))
    with caplog.at_level(logging.ERROR, logger="trio_sink.rescue"):
        await store_the_rest(ledger, store)
    assert [(u.record.id, u.stored) for u in ledger.undelivered] == [
        (0, True),
        (1, True),
        (2, False),
        (3, False),
        (4, False),
    ]
    assert (db.undelivered, db.stored) == (5, 2)
    assert _sealed_entries(store) == [("db", 0), ("db", 1)]
    assert ledger.sink_errors["rescue"].startswith(
        "rescue store raised PartlyStoredError: stored 2 of 5 entries"
    )
    (failed,) = _rescue_errors(caplog)
    assert failed.startswith("rescue.failed records=3 ")


async def test_a_store_that_takes_nothing_leaves_every_record_unstored(
    store: RescueStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def full(undelivered: Iterable[Undelivered], *, chunk_size: int = 256) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "arescue_some", full)
    ledger = Ledger(["db"])
    db = ledger.accounts["db"]
    _given_up(ledger, db, range(3))
    with caplog.at_level(logging.ERROR, logger="trio_sink.rescue"):
        await store_the_rest(ledger, store)
    assert [u.stored for u in ledger.undelivered] == [False, False, False]
    assert db.stored == 0
    assert "rescue store raised OSError" in ledger.sink_errors["rescue"]
    (failed,) = _rescue_errors(caplog)
    assert failed.startswith("rescue.failed records=3 ")


async def test_a_seal_that_fails_is_noted_and_the_records_stay_stored(
    store: RescueStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def seal() -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(store, "seal", seal)
    ledger = Ledger(["db"])
    db = ledger.accounts["db"]
    _given_up(ledger, db, range(2))
    with caplog.at_level(logging.ERROR, logger="trio_sink.rescue"):
        await store_the_rest(ledger, store)
    assert [u.stored for u in ledger.undelivered] == [True, True]
    assert db.stored == 2
    assert dict(ledger.sink_errors) == {
        "rescue": "rescue store raised OSError: [Errno 5] Input/output error"
    }
    (failed,) = _rescue_errors(caplog)
    assert failed.startswith("rescue.failed records=0 ")


async def test_the_rest_is_stored_when_the_run_was_cancelled(store: RescueStore) -> None:
    # The end of a run cancelled from outside: the store write is shielded.
    ledger = Ledger(["db"])
    db = ledger.accounts["db"]
    _given_up(ledger, db, range(3))
    with trio.CancelScope() as scope:
        scope.cancel()
        await store_the_rest(ledger, store)
    assert [u.stored for u in ledger.undelivered] == [True, True, True]
    assert db.stored == 3
    assert _sealed_entries(store) == [("db", 0), ("db", 1), ("db", 2)]


async def test_read_back_yields_the_entries_of_the_run_as_stored_records(
    tmp_path: Path,
) -> None:
    # Another run writes to the same directory at the same time: its entries are not
    # this report's.
    with (
        RescueStore(tmp_path, fsync="never") as mine,
        RescueStore(tmp_path, fsync="never") as other,
    ):
        records = [Record(i, f"raw {i}", {"n": i}) for i in range(3)]
        mine.rescue(Undelivered(r, "db", "sink", FAILED.text, stored=True) for r in records[:2])
        other.rescue([Undelivered(records[2], "db", "sink", DEADLINE.text, stored=True)])
        mine.seal()
        other.seal()
        back = list(read_back(mine))
    assert [(u.sink, u.record.id, u.record.raw, u.record.payload) for u in back] == [
        ("db", 0, "raw 0", {"n": 0}),
        ("db", 1, "raw 1", {"n": 1}),
    ]
    assert {(u.stage, u.reason, u.kind, u.stored, u.error) for u in back} == {
        ("sink", "sink raised OSError: down", "sink_error", True, None)
    }


async def test_the_deadline_is_logged_for_each_sink_that_lost_records_to_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ledger = Ledger(["a", "b", "c"])
    a, b = ledger.accounts["a"], ledger.accounts["b"]
    ledger.route(a, 2)
    ledger.abandon(a, "waiting", "route", DEADLINE, [Record(0, 0, 0), Record(1, 1, 1)])
    ledger.route(b, 1)
    ledger.abandon(b, "waiting", "route", IMMEDIATE, [Record(2, 2, 2)])
    ledger.abandon(None, None, "source", DEADLINE, [Record(3, 3, 3)])
    ledger.route(ledger.accounts["c"], 1)
    ledger.abandon(ledger.accounts["c"], "waiting", "route", FAILED, [Record(4, 4, 4)])
    pauses = {name: Pause() for name in ledger.accounts}
    pauses["b"].pause()
    with caplog.at_level(logging.WARNING, logger="trio_sink.drain"):
        log_deadline(ledger, pauses)
    assert sorted(r.getMessage() for r in caplog.records) == [
        'drain.deadline sink=- undelivered=1 reason="drain deadline" paused=False',
        'drain.deadline sink=a undelivered=2 reason="drain deadline" paused=False',
        'drain.deadline sink=b undelivered=1 reason="immediate stop" paused=True',
    ]
