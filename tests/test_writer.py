"""The sink writer (``_writer.py``): what it reports, stores and settles on each ending
of a write, in the corners the pipeline tests do not reach by themselves. In virtual
time; every report is checked, and the ledger is strict (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing
from helpers import CancelledIntoAnError, checked

from trio_sink import CircuitBreaker, Pipeline, RescueStore, Route
from trio_sink.testing import FlakySink, Pause, ScriptedSource


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RescueStore]:
    with RescueStore(tmp_path / "rescue", fsync="never") as store:
        yield store


def entry_ids(store: RescueStore) -> list[tuple[str | None, int]]:
    """The (sink, id) of every entry this store object wrote, once sealed."""
    store.seal()
    return sorted((e.sink, e.id) for e in store.entries() if e.run == store.run)


async def test_a_failed_write_whose_store_write_is_cancelled_is_reported_once_unstored(
    autojump_clock: trio.testing.MockClock, store: RescueStore
) -> None:
    # At the drain deadline the write fails; the store write that follows is cancelled
    # before it begins (nothing stored). The batch is reported with the write's error,
    # its source batch settled, and the end of the run stores it, once.
    sink = CancelledIntoAnError()
    pipeline = Pipeline([10, 11, 12], routes=[Route("r", sink)], drain_timeout=1.0, rescue=store)
    report = checked(await pipeline.run())
    assert sink.writes == 1
    assert [(u.record.id, u.reason, u.stored) for u in report.undelivered] == [
        (i, "sink raised OSError: connection reset", True) for i in range(3)
    ]
    assert entry_ids(store) == [("db", 0), ("db", 1), ("db", 2)]


async def test_a_permanent_error_goes_to_the_store_and_is_never_replayed(
    autojump_clock: trio.testing.MockClock, store: RescueStore, inline_threads: None
) -> None:
    # With a breaker and a store, a failed batch is parked for replay, except after a
    # PermanentError: that one is stored for good, and the sink never sees it again.
    sink = FlakySink(name="db", permanent={0})
    pipeline = Pipeline(
        ScriptedSource([x for i in range(4) for x in (Pause(1.0), i)]),
        routes=[Route("r", sink)],
        batch_size=1,
        breaker=CircuitBreaker(failures=1, probe_interval=1.0),
        rescue=store,
    )
    report = checked(await pipeline.run())
    assert sink.writes == 4
    assert [r.id for r in sink.records] == [1, 2, 3]
    assert [(u.record.id, u.reason, u.stored) for u in report.undelivered] == [
        (0, "sink raised PermanentError: flaky write", True)
    ]
    assert entry_ids(store) == [("db", 0)]
