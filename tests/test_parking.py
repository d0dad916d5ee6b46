"""Parking: a sink's batches set aside in the rescue store while its breaker is open,
and read back in the same run; store failures on the way, and a nearly full disk."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import trio
import trio.testing
from rescue_helpers import quarantine_files

import trio_sink._rescue_files
import trio_sink._rescue_segments
from trio_sink import CircuitBreaker, Pipeline, Record, RescueStore, Route, Undelivered
from trio_sink._parking import PARK_CHUNK, Parking
from trio_sink._rescue import PartlyStoredError
from trio_sink.testing import FlakySink, Pause, ScriptedSource

real_write_all = trio_sink._rescue_files.write_file


class DiskFull:
    """``_write_all`` of a disk with ``free`` bytes left: a write that does not fit
    writes what fits, then fails with ENOSPC, as a full disk does."""

    def __init__(self, free: int) -> None:
        self.free = free

    def __call__(self, f: IO[bytes], data: bytes | bytearray) -> None:
        if len(data) > self.free:
            real_write_all(f, bytes(data[: self.free]))
            self.free = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.free -= len(data)
        real_write_all(f, data)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RescueStore]:
    with RescueStore(tmp_path / "rescue", fsync="never") as store:
        yield store


def undelivered(n: int, sink: str = "db") -> list[Undelivered]:
    return [
        Undelivered(
            Record(i, f"raw {i} " + "x" * 200, {"i": i}), sink, "sink", "sink raised OSError: down"
        )
        for i in range(n)
    ]


# -- a store failure while parked batches are read back --------------------------------


async def test_a_store_io_error_while_replaying_parked_batches_is_noted_and_the_run_goes_on(
    autojump_clock: trio.testing.MockClock,
    inline_threads: None,
    store: RescueStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken_read(*args: object) -> object:
        raise OSError(errno.EIO, "Input/output error")

    # The file layer under the segment log fails every read.
    monkeypatch.setattr("trio_sink._segment_log.read_chunk", broken_read)
    sink = FlakySink(name="db", outages=[(0, 12)], has_probe=True)
    source = ScriptedSource([x for i in range(40) for x in (Pause(1.0), i)])
    pipeline = Pipeline(
        source,
        routes=[Route("r", sink)],
        batch_size=1,
        breaker=CircuitBreaker(failures=2, probe_interval=5.0),
        rescue=store,
        drain_timeout=None,
    )
    report = await pipeline.run()
    report.check()
    assert report.received == 40  # the source was not cut short
    assert (
        report.sink_errors["rescue"] == "rescue store raised OSError: [Errno 5] Input/output error"
    )
    monkeypatch.undo()
    store.seal()
    delivered = {r.id for r in sink.records}
    kept = {e.id for e in store.entries(sink="db") if e.run == store.run}
    assert delivered | kept == set(range(40))  # nothing lost
    assert kept  # some stayed parked: the replay in this run could not read them
    assert {u.record.id for u in report.undelivered} == kept
    assert all(u.stored for u in report.undelivered)


async def test_a_parked_segment_that_cannot_be_read_stops_the_replay_until_more_is_parked(
    store: RescueStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    parking = Parking(store)
    await parking.park(undelivered(3))
    reads = 0

    def flaky_read(*args: Any) -> Any:
        nonlocal reads
        reads += 1
        if reads == 1:
            raise OSError(errno.EIO, "Input/output error")
        return real_read(*args)

    real_read = trio_sink._rescue_segments.read_chunk
    monkeypatch.setattr("trio_sink._segment_log.read_chunk", flaky_read)
    assert await parking.next_chunk() is None
    assert parking.pending == 0  # nothing more to replay in this run, for now
    await parking.park(undelivered(1))
    chunk = await parking.next_chunk()  # read again once more is parked
    assert chunk is not None
    assert [i.entry.id for i in chunk.items] == [0]
    with pytest.raises(OSError, match="Input/output error"):
        await parking.aclose()  # the failure is raised once, when the log is closed
    parking.close()


# -- a nearly full disk ----------------------------------------------------------------


async def test_parking_on_a_nearly_full_disk_stores_what_fits(
    store: RescueStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("trio_sink._segment_log._write_all", DiskFull(1_000_000))
    parking = Parking(store)
    with pytest.raises(PartlyStoredError) as caught:
        await parking.park(undelivered(3000))
    stored = caught.value.stored
    assert stored % PARK_CHUNK == 0
    assert 1_000_000 / 400 < stored < 3000  # most of the megabyte is used
    assert caught.value.total == 3000
    assert isinstance(caught.value.__cause__, OSError)
    assert caught.value.__cause__.errno == errno.ENOSPC
    assert parking.pending == stored
    monkeypatch.undo()
    parking.chunk_size = 4096
    chunk = await parking.next_chunk()
    assert chunk is not None
    assert [i.entry.id for i in chunk.items] == list(range(stored))


async def test_parking_on_a_full_disk_raises_as_before(
    store: RescueStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("trio_sink._segment_log._write_all", DiskFull(100))
    parking = Parking(store)
    with pytest.raises(OSError, match="No space left") as caught:
        await parking.park(undelivered(10))
    assert not isinstance(caught.value, PartlyStoredError)
    assert parking.pending == 0


def test_rescue_some_on_a_nearly_full_disk_stores_the_first_chunks_that_fit(
    store: RescueStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("trio_sink._segment_log._write_all", DiskFull(1_000_000))
    with pytest.raises(PartlyStoredError) as caught:
        store.rescue_some(undelivered(3000), chunk_size=100)
    stored = caught.value.stored
    assert stored % 100 == 0
    assert 1_000_000 / 400 < stored < 3000
    assert str(caught.value).startswith(
        f"stored {stored} of 3000 entries, then: OSError: [Errno 28]"
    )
    monkeypatch.undo()
    store.seal()
    assert [e.id for e in store.entries()] == list(range(stored))
    # What fits, all of it: the same call returns the count.
    assert store.rescue_some(undelivered(250), chunk_size=100) == 250


async def test_arescue_some_writes_in_a_worker_thread_and_raises_when_nothing_fits(
    store: RescueStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await store.arescue_some(undelivered(5), chunk_size=2) == 5
    monkeypatch.setattr("trio_sink._segment_log._write_all", DiskFull(10))
    with pytest.raises(OSError, match="No space left") as caught:
        await store.arescue_some(undelivered(5), chunk_size=2)
    assert not isinstance(caught.value, PartlyStoredError)
    monkeypatch.undo()
    store.seal()
    assert store.pending() == 5


# -- unreadable parked lines -----------------------------------------------------------


async def test_an_unreadable_parked_line_goes_to_the_quarantine(store: RescueStore) -> None:
    parking = Parking(store)
    await parking.park(undelivered(3))
    assert parking.log is not None
    await trio.to_thread.run_sync(parking.log.seal)
    (seg,) = parking.segments
    lines = seg.path.read_bytes().splitlines(keepends=True)
    seg.path.write_bytes(lines[0] + b"not json\n" + lines[2])
    parking.chunk_size = 10
    chunk = await parking.next_chunk()
    assert chunk is not None
    assert [i.entry.id for i in chunk.items] == [0, 2]
    await parking.consume(chunk)
    assert quarantine_files(store.path) == {
        f"{seg.path.name}.{len(lines[0]):020d}.bad": b"not json\n"
    }
    assert not seg.path.exists()
    await parking.aclose()
