"""The report's undelivered records when the run kept most of them in the rescue store
(``_undelivered_view.py``): its length, the records kept in memory, then those read back
from the store, each once, and no more than were counted."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from trio_sink import Record
from trio_sink._report import Undelivered
from trio_sink._undelivered_view import UndeliveredView


def _u(i: int, *, stored: bool = True, sink: str | None = "db") -> Undelivered:
    return Undelivered(Record(i, i, i), sink, "sink", "sink raised OSError: x", stored=stored)


def _store(
    *ids: int, sink: str | None = "db"
) -> tuple[list[int], Callable[[], Iterator[Undelivered]]]:
    """A read-back of entries with these ids; the list says how many times it was read."""
    reads: list[int] = []

    def read_back() -> Iterator[Undelivered]:
        reads.append(1)
        for i in ids:
            yield _u(i, sink=sink)

    return reads, read_back


def _ids(view: UndeliveredView) -> list[int]:
    return [u.record.id for u in view]


def test_the_length_counts_the_kept_records_and_those_only_counted() -> None:
    reads, read_back = _store(2, 3, 4)
    view = UndeliveredView([_u(0), _u(1)], 3, read_back)
    assert len(view) == 5
    assert reads == []  # the length reads nothing back


def test_the_kept_records_come_first_then_the_store_without_the_kept_ones() -> None:
    # The store holds every stored record of the run, those kept in memory too: they are
    # yielded once, from memory.
    reads, read_back = _store(0, 2, 3, 4)
    view = UndeliveredView([_u(0), _u(1, stored=False)], 3, read_back)
    assert _ids(view) == [0, 1, 2, 3, 4]
    assert reads == [1]


def test_a_kept_record_of_another_sink_does_not_hide_an_entry_with_its_id() -> None:
    _, read_back = _store(0, 1, sink="other")
    view = UndeliveredView([_u(0)], 2, read_back)
    assert [(u.sink, u.record.id) for u in view] == [("db", 0), ("other", 0), ("other", 1)]


def test_reading_back_stops_once_the_counted_records_are_yielded() -> None:
    # The store's reader may go on past them (entries written after the report was
    # made): the view yields as many as were counted, no more.
    _, read_back = _store(1, 2, 3, 4, 5)
    view = UndeliveredView([_u(0)], 2, read_back)
    assert _ids(view) == [0, 1, 2]


def test_a_view_with_nothing_counted_never_reads_the_store() -> None:
    def read_back() -> Iterator[Undelivered]:
        raise AssertionError("the store was read")

    view = UndeliveredView([_u(0), _u(1)], 0, read_back)
    assert _ids(view) == [0, 1]
    assert len(view) == 2


def test_a_record_no_longer_in_the_store_is_not_yielded() -> None:
    # Replayed since the report was made: the view yields fewer than its length says.
    _, read_back = _store(1)
    view = UndeliveredView([_u(0)], 2, read_back)
    assert _ids(view) == [0, 1]
    assert len(view) == 3
    with pytest.raises(IndexError, match="no longer in the store"):
        view[2]


def test_an_index_reads_from_memory_then_from_the_store() -> None:
    _, read_back = _store(2, 3, 4)
    view = UndeliveredView([_u(0), _u(1)], 3, read_back)
    assert [view[k].record.id for k in range(5)] == [0, 1, 2, 3, 4]
    assert [view[k].record.id for k in range(-5, 0)] == [0, 1, 2, 3, 4]
    for k in (5, -6):
        with pytest.raises(IndexError, match="out of range"):
            view[k]


def test_a_slice_takes_its_start_stop_and_step() -> None:
    _, read_back = _store(2, 3, 4)
    view = UndeliveredView([_u(0), _u(1)], 3, read_back)
    assert [u.record.id for u in view[::2]] == [0, 2, 4]
    assert [u.record.id for u in view[1:4]] == [1, 2, 3]
    assert [u.record.id for u in view[-2:]] == [3, 4]


def test_the_repr_says_how_many_are_where() -> None:
    _, read_back = _store(1, 2)
    view = UndeliveredView([_u(0)], 2, read_back)
    assert repr(view) == "UndeliveredView(kept=1, in the store=2)"


def test_an_entry_for_a_record_kept_unstored_does_not_take_a_counted_ones_place() -> None:
    # A store write that failed and could not be rolled back leaves entries of records
    # the report keeps as not stored: they come from memory, once, and the counted ones
    # from the store after them.
    _, read_back = _store(1, 2, 3)
    view = UndeliveredView([_u(1, stored=False)], 2, read_back)
    assert _ids(view) == [1, 2, 3]
