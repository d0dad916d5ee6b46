"""Replay: delivery, failures that stay, resuming an interrupted replay, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from rescue_helpers import entry, fill

from trio_sink import (
    ConfigError,
    DeliveryReport,
    Infra,
    Pipeline,
    Record,
    RescueReadStats,
    RescueStore,
    Route,
    Sink,
    replay,
)
from trio_sink.__main__ import main
from trio_sink._record import ReplayedRecord
from trio_sink._replay import BATCH_SIZE
from trio_sink.sinks import CollectSink


def checked(report: DeliveryReport) -> DeliveryReport:
    report.check()
    return report


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def seg_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.startswith("seg-"))


class FailingSink(Sink):
    def __init__(self, name: str) -> None:
        self.name = name
        self.writes = 0

    async def write(self, batch: Sequence[Record]) -> None:
        self.writes += 1
        raise OSError("still down")


class HangOnWrite(Sink):
    """Delivers until write number ``hang_at`` (from 1), which waits forever."""

    def __init__(self, name: str, hang_at: int) -> None:
        self.name = name
        self.hang_at = hang_at
        self.writes = 0
        self.raws: list[Any] = []
        self.closed = 0
        self.hung = trio.Event()

    async def write(self, batch: Sequence[Record]) -> None:
        self.writes += 1
        if self.writes == self.hang_at:
            self.hung.set()
            await trio.sleep_forever()
        self.raws.extend(r.raw for r in batch)

    async def aclose(self) -> None:
        self.closed += 1


# -- delivery ----------------------------------------------------------------------------


async def test_replay_delivers_everything_and_empties_the_store(tmp_path: Path) -> None:
    written = [entry(i, "a" if i % 3 else "b", rest="tail" if i == 4 else None) for i in range(300)]
    written[7] = entry(7, "a", raw=b"\x00bytes")
    fill(tmp_path, written, segment_max_records=100)
    a, b = CollectSink("a"), CollectSink("b")
    store = RescueStore(tmp_path)
    report = checked(await replay(store, [a, b]))
    assert report.ok
    assert report.received == 300
    assert report.delivered == {"a": 200, "b": 100}
    assert report.routed == {"a": 200, "b": 100}
    replayed = a.records + b.records
    assert sorted(r.id for r in replayed) == list(range(300))  # a replay's own numbering
    by_raw = {r.raw: r for r in replayed}
    for e in written:
        r = by_raw[e.raw]
        assert (r.payload, r.rest) == (e.payload, e.rest)
    assert (a.flushed, a.closed, b.flushed, b.closed) == (1, 1, 1, 1)
    assert store.pending() == 0
    assert seg_files(tmp_path) == []


async def test_replay_includes_what_this_store_object_wrote(tmp_path: Path) -> None:
    store = RescueStore(tmp_path)
    store.write([entry(0, "a"), entry(1, "a")])
    a = CollectSink("a")
    assert checked(await replay(store, [a])).delivered == {"a": 2}
    store.close()


async def test_a_failing_sink_keeps_its_entries_with_the_new_reason(tmp_path: Path) -> None:
    fill(tmp_path, [entry(i, "a") for i in range(10)])
    sink = FailingSink("a")
    store = RescueStore(tmp_path)
    report = checked(await replay(store, [sink], batch_size=4))
    assert not report.ok
    assert sink.writes == 3
    assert report.delivered == {"a": 0}
    assert Counter(u.reason for u in report.undelivered) == {"sink raised OSError: still down": 10}
    assert {u.sink for u in report.undelivered} == {"a"}
    assert all(isinstance(u.error, OSError) for u in report.undelivered)
    kept = list(store.entries())
    assert [(e.id, e.run) for e in kept] == [(i, "run-1") for i in range(10)]
    assert {(e.reason, e.error, e.stage) for e in kept} == {
        ("sink raised OSError: still down", "OSError: still down", "sink")
    }
    assert [e.raw for e in kept] == [f"raw a {i}" for i in range(10)]
    # A second replay with a working sink delivers them.
    a = CollectSink("a")
    assert checked(await replay(store, [a])).delivered == {"a": 10}
    assert store.pending() == 0


async def test_entries_for_no_given_sink_stay_and_are_reported(tmp_path: Path) -> None:
    fill(tmp_path, [entry(0, "a"), entry(1, "b"), entry(2, None), entry(3, "a")])
    a = CollectSink("a")
    store = RescueStore(tmp_path)
    report = checked(await replay(store, [a]))
    assert report.received == 4
    assert report.delivered == {"a": 2, "b": 0}
    assert sorted((u.sink or "", u.stage, u.reason) for u in report.undelivered) == [
        ("", "replay", "not routed (replay does not route)"),
        ("b", "replay", "no sink named 'b'"),
    ]
    assert [(e.id, e.sink) for e in store.entries()] == [(1, "b"), (2, None)]


async def test_the_sink_filter_replays_only_that_sinks_entries(tmp_path: Path) -> None:
    only_b = [entry(i, "b") for i in range(200)]
    fill(tmp_path, only_b)  # one segment without a single entry for "a"
    fill(tmp_path, [entry(i, "b" if i % 2 else "a") for i in range(200, 260)])
    # Two batches for "b" only, then one for "a" amid more for "b": the offset moves
    # past the first two only after they were copied.
    fill(tmp_path, [entry(i, "a" if i == 340 else "b") for i in range(300, 346)])
    untouched = seg_files(tmp_path)[0]
    before = (tmp_path / untouched).read_bytes()
    a = CollectSink("a")
    store = RescueStore(tmp_path)
    report = checked(await replay(store, [a, CollectSink("b")], sink_name="a", batch_size=16))
    assert report.received == 31
    assert report.delivered == {"a": 31, "b": 0}
    assert (tmp_path / untouched).read_bytes() == before
    left = list(store.entries())
    assert left[:200] == only_b
    assert [e.id for e in left[200:]] == [*range(201, 260, 2), *range(300, 340), *range(341, 346)]
    assert all(e.sink == "b" for e in left)
    assert {e.reason for e in left} == {"sink raised OSError: down"}


async def test_one_sink_and_a_sink_name_replays_to_another_target(tmp_path: Path) -> None:
    fill(tmp_path, [entry(0, "db"), entry(1, "other"), entry(2, "db")])
    target = CollectSink("backup")
    store = RescueStore(tmp_path)
    report = checked(await replay(store, [target], sink_name="db"))
    assert report.delivered == {"backup": 2}
    assert [r.raw for r in target.records] == ["raw db 0", "raw db 2"]
    assert [e.sink for e in store.entries()] == ["other"]


async def test_a_torn_tail_is_consumed_with_its_segment(tmp_path: Path) -> None:
    fill(tmp_path, [entry(i, "a") for i in range(3)])
    (name,) = seg_files(tmp_path)
    append(tmp_path / name, b'{"v":1,"run":"run-1","id":3,"ti')
    store = RescueStore(tmp_path)
    report = checked(await replay(store, [CollectSink("a")]))
    assert report.delivered == {"a": 3}
    assert store.torn_lines == 1
    assert seg_files(tmp_path) == []


async def test_flush_and_aclose_failures_are_in_sink_errors(tmp_path: Path) -> None:
    class Grumpy(Sink):
        name = "a"

        async def write(self, batch: Sequence[Record]) -> None:
            pass

        async def flush(self) -> None:
            raise RuntimeError("no flush")

        async def aclose(self) -> None:
            raise RuntimeError("no close")

    fill(tmp_path, [entry(0, "a")])
    report = checked(await replay(RescueStore(tmp_path), [Grumpy()]))
    assert report.delivered == {"a": 1}
    assert report.sink_errors == {
        "a": "flush raised RuntimeError: no flush; aclose raised RuntimeError: no close"
    }


async def test_invalid_arguments_are_config_errors(tmp_path: Path) -> None:
    store = RescueStore(tmp_path)
    cases: list[tuple[Any, dict[str, Any], str]] = [
        ([], {}, "at least one sink"),
        ("a", {}, "sequence of sinks"),
        ([CollectSink("a"), CollectSink("a")], {}, "twice"),
        ([CollectSink("a")], {"batch_size": 0}, "batch_size"),
        ([CollectSink("a")], {"sink_name": ""}, "sink_name"),
    ]
    for sinks, kwargs, message in cases:
        with pytest.raises(ConfigError, match=message):
            await replay(store, sinks, **kwargs)


# -- interruption and resume -------------------------------------------------------------


async def interrupted(call: Coroutine[Any, Any, object], hung: trio.Event) -> None:
    """Run ``call`` until ``hung`` is set, then cancel it.

    Not a timeout: under an autojump clock, a replay's file work in worker threads
    lets the clock jump to any deadline.
    """
    cancelled = False

    async def run() -> None:
        nonlocal cancelled
        try:
            await call
        except trio.Cancelled:
            cancelled = True
            raise

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await hung.wait()
        nursery.cancel_scope.cancel()
    assert cancelled


async def test_an_interrupted_replay_resumes_without_loss_or_duplicates(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    written = [entry(i, "a") for i in range(500)]
    fill(tmp_path, written, segment_max_records=200)  # a batch never spans two
    store = RescueStore(tmp_path)
    first = HangOnWrite("a", hang_at=3)
    await interrupted(replay(store, [first], batch_size=100), first.hung)
    assert first.closed == 1
    assert len(first.raws) == 200
    assert store.pending() == 300  # the batch in flight stayed
    second = CollectSink("a")
    report = checked(await replay(store, [second], batch_size=100))
    assert report.delivered == {"a": 300}
    delivered = first.raws + [r.raw for r in second.records]
    assert sorted(delivered) == sorted(e.raw for e in written)  # each exactly once
    assert store.pending() == 0


async def test_resuming_repeats_at_most_the_batch_in_flight(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # Entries for two sinks interleave: in the batch in flight, "b" (first in it)
    # delivered its part before "a" hung; the resumed replay delivers that part again.
    written = [entry(i, "a" if i % 2 else "b") for i in range(400)]
    fill(tmp_path, written, segment_max_records=90)
    store = RescueStore(tmp_path)
    a1, b1 = HangOnWrite("a", hang_at=2), HangOnWrite("b", hang_at=0)
    await interrupted(replay(store, [a1, b1], batch_size=32), a1.hung)
    a2, b2 = HangOnWrite("a", hang_at=0), HangOnWrite("b", hang_at=0)
    checked(await replay(store, [a2, b2], batch_size=32))
    delivered = Counter(a1.raws + b1.raws + a2.raws + b2.raws)
    assert set(delivered) == {e.raw for e in written}
    twice = [raw for raw, n in delivered.items() if n > 1]
    assert sorted(twice) == sorted(e.raw for e in written[32:64] if e.sink == "b")
    assert max(delivered.values()) == 2
    assert store.pending() == 0


async def test_a_second_replay_at_once_is_refused(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    fill(tmp_path, [entry(0, "a")])
    store = RescueStore(tmp_path)
    first = HangOnWrite("a", hang_at=1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(replay, store, [first])
        # Not wait_all_tasks_blocked(): a task waiting on a worker thread (the replay
        # taking its lock) counts as blocked, so the second replay could get there first.
        await first.hung.wait()
        with pytest.raises(trio.BusyResourceError, match="another replay"):
            await replay(RescueStore(tmp_path), [CollectSink("a")])
        nursery.cancel_scope.cancel()
    assert store.pending() == 1


# -- the command line --------------------------------------------------------------------


def test_cli_list_prints_counts_per_sink(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(tmp_path, [entry(0, "a"), entry(1, "b"), entry(2, "a"), entry(3, None)])
    assert main(["replay", str(tmp_path), "--list"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "(not routed): 1",
        "a: 2",
        "b: 1",
        "total: 4",
        "torn lines: 0",
        "bad lines: 0",
        "quarantined lines: 0",
    ]
    assert main(["replay", str(tmp_path), "--list", "--sink", "b"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == ["b: 1", "total: 1"]
    assert RescueStore(tmp_path).pending() == 4


def test_cli_replays_one_sink_into_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dir, out = tmp_path / "store", tmp_path / "out.jsonl"
    fill(store_dir, [entry(0, "a"), entry(1, "b"), entry(2, "a")])
    assert main(["replay", str(store_dir), "--sink", "a", "--to", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["raw"] for line in lines] == ["raw a 0", "raw a 2"]
    text = capsys.readouterr().out
    assert "received: 2" in text
    assert "delivered to out.jsonl: 2 of 2" in text
    assert "left in the store: 1" in text


def test_cli_with_sinks_from_a_module(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_sinks.py").write_text(
        "from trio_sink.sinks import CollectSink\n"
        "class Down:\n"
        "    name = 'b'\n"
        "    async def write(self, batch):\n"
        "        raise OSError('b is down')\n"
        "SINKS = [CollectSink('a'), Down()]\n"
        "def make():\n"
        "    return [CollectSink('a'), CollectSink('b')]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    store_dir = tmp_path / "store"
    fill(store_dir, [entry(0, "a"), entry(1, "b"), entry(2, "b")])
    assert main(["replay", str(store_dir), "--sinks", "my_sinks:SINKS"]) == 3
    out = capsys.readouterr().out
    assert "  2 for b: sink raised OSError: b is down" in out
    assert "left in the store: 2" in out
    assert main(["replay", str(store_dir), "--sinks", "my_sinks:make"]) == 0
    assert "delivered to b: 2 of 2" in capsys.readouterr().out
    assert RescueStore(store_dir).pending() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "required"),
        (["--sink", "a"], "give the sinks"),
        (["--to", "x.jsonl"], "--to needs --sink"),
        (["--sinks", "nocolon"], "MODULE:ATTR"),
        (["--sinks", "no_such_module_here:x"], "No module named"),
        (["--to", "x.jsonl", "--sinks", "m:a"], "not allowed with"),
    ],
)
def test_cli_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    argv = ["replay", str(tmp_path), *args] if args else ["replay"]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_a_missing_directory_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(tmp_path / "nope"), "--list"]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


def test_python_m_trio_sink_replay_list(tmp_path: Path) -> None:
    fill(tmp_path, [entry(0, "a"), entry(1, "a")])
    done = subprocess.run(
        [sys.executable, "-m", "trio_sink", "replay", str(tmp_path), "--list"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[:2] == ["a: 2", "total: 2"]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names fds through /proc")
async def test_what_stays_is_on_disk_before_its_old_lines_count_as_consumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(tmp_path, [entry(i, "a" if i % 2 else "b") for i in range(8)], fsync="never")
    events: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        events.append(Path(os.readlink(f"/proc/self/fd/{fd}")).name)
        real_fsync(fd)

    (original,) = seg_files(tmp_path)
    monkeypatch.setattr(os, "fsync", fsync)
    store = RescueStore(tmp_path, fsync="never")  # replay forces what it needs
    checked(await replay(store, [CollectSink("a"), FailingSink("b")], batch_size=4))
    first_done = events.index(original + ".done")
    # The copies of the entries whose write failed, then the directory, then the record
    # of consumption.
    assert events[first_done - 2].endswith(".jsonl.open")
    assert events[first_done - 1] == tmp_path.name
    assert [e.id for e in store.entries()] == [0, 2, 4, 6]


async def test_a_failed_fsync_of_what_stays_leaves_no_copy_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(tmp_path, [entry(i, "a") for i in range(4)])
    store = RescueStore(tmp_path)
    real = os.fsync

    def fsync(fd: int) -> None:
        # The fsync of the segment that takes what stays (the replay store's own).
        own = {p.stat().st_ino for p in tmp_path.glob("seg-*.jsonl.open")}
        if os.fstat(fd).st_ino in own:
            raise OSError(5, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="Input/output error"):
        await replay(store, [FailingSink("a")], batch_size=2)
    monkeypatch.undo()
    store.close()
    # The offset did not move, and the copies of the first batch were taken back.
    assert [e.id for e in RescueStore(tmp_path).entries()] == [0, 1, 2, 3]


async def test_replay_does_its_file_work_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(tmp_path, [entry(0, "a"), entry(1, "b")])
    loop_thread = threading.get_ident()
    on_loop: list[str] = []

    def watched(module: str) -> Any:
        def open_(file: Any, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == loop_thread:
                on_loop.append(Path(file).name)
            return open(file, *args, **kwargs)

        monkeypatch.setattr(f"{module}.open", open_, raising=False)

    modules = ("_rescue", "_segment_log", "_rescue_segments", "_replay")
    for module in (f"trio_sink.{name}" for name in modules):
        watched(module)
    real_os_open = os.open

    def os_open(file: Any, *args: Any, **kwargs: Any) -> int:
        if threading.get_ident() == loop_thread:
            on_loop.append(Path(file).name)
        return real_os_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    store = RescueStore(tmp_path)
    report = checked(await replay(store, [CollectSink("a"), FailingSink("b")]))
    assert report.delivered == {"a": 1, "b": 0}
    assert on_loop == []


async def test_a_read_during_a_replay_leaves_the_replays_stats_alone(tmp_path: Path) -> None:
    fill(tmp_path, [entry(i, "a") for i in range(10)])
    (name,) = seg_files(tmp_path)
    append(tmp_path / name, b'{"v":1,"run":"run-1","id":10,"ti')
    store = RescueStore(tmp_path)
    pending: list[int] = []

    class Peeking(Sink):
        name = "a"

        async def write(self, batch: Sequence[Record]) -> None:
            pending.append(store.pending())  # a read of the same store, mid-replay

    report = checked(await replay(store, [Peeking()], batch_size=4))
    assert report.delivered == {"a": 10}
    assert pending == [10, 6, 2]
    assert store.read_stats == RescueReadStats(
        segments=1, entries=10, torn_lines=1, bad_lines=0, quarantined=1
    )


# -- what a replayed record carries ------------------------------------------------------


class Opaque:
    """A payload JSON cannot hold: the store keeps its repr()."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"Opaque({self.n})"


async def test_a_replayed_record_carries_its_origin_its_error_text_and_repr_only(
    tmp_path: Path,
) -> None:
    def parse(x: int) -> Opaque:
        if x % 2:
            raise ValueError(f"odd {x}")
        return Opaque(x)

    # Every write fails: the records for "db" and their copies for the error group
    # (and the records parse could not parse) all end in the store.
    store = RescueStore(tmp_path)
    pipeline = Pipeline(
        range(6),
        parse=parse,
        routes=[Route("r", FailingSink("db"))],
        infra=Infra(error=FailingSink("errors")),
        rescue=store,
    )
    first = checked(await pipeline.run())
    store.close()
    db, errors = CollectSink("db"), CollectSink("errors")
    report = checked(await replay(RescueStore(tmp_path), [db, errors]))
    assert report.ok
    to_db = [r for r in db.records if isinstance(r, ReplayedRecord)]
    to_errors = [r for r in errors.records if isinstance(r, ReplayedRecord)]
    replayed = [*to_db, *to_errors]
    assert len(replayed) == len(db.records) + len(errors.records)
    assert sorted(r.id for r in replayed) == list(range(report.received))  # its own ids
    assert {r.origin_run for r in replayed} == {store.run}
    assert sorted((r.origin_id, r.raw) for r in to_db) == [(0, 0), (2, 2), (4, 4)]
    for r in to_db:
        assert (r.payload, r.repr_only, r.error_text, r.error) == (
            f"Opaque({r.raw})",
            True,
            None,
            None,
        )
    failed_parse = {r.origin_id: r.error_text for r in to_errors if r.raw % 2}
    assert failed_parse == {1: "ValueError: odd 1", 3: "ValueError: odd 3", 5: "ValueError: odd 5"}
    assert {r.error_text for r in to_errors if not r.raw % 2} == {"OSError: still down"}
    # For one sink, the origin names one record: an idempotency key.
    for records in (to_db, to_errors):
        assert len({(r.origin_run, r.origin_id) for r in records}) == len(records)
    assert len(first.undelivered) == report.received


# -- segments a live writer holds --------------------------------------------------------


async def test_a_replay_that_skips_a_live_writers_segment_is_not_ok_and_says_why(
    tmp_path: Path,
) -> None:
    fill(tmp_path, [entry(0, "a")])
    live = RescueStore(tmp_path)  # a writer of this process that has not sealed
    live.write([entry(1, "a"), entry(2, None), entry(3, "b")])
    store = RescueStore(tmp_path)
    a = CollectSink("a")
    report = checked(await replay(store, [a]))
    assert not report.ok
    assert report.received == 4
    assert [r.raw for r in a.records] == ["raw a 0"]
    (open_name,) = [n for n in seg_files(tmp_path) if n.endswith(".open")]
    why = f"held by a live writer: {open_name} is still being written; replay once it is sealed"
    assert sorted((u.sink or "", u.reason) for u in report.undelivered) == [
        ("", why),
        ("a", why),
        ("b", why),
    ]
    assert store.read_stats.held == 3
    # Sealed, the store object stays usable, and its entries are replayed.
    live.seal()
    live.write([entry(4, "a")])
    live.seal()
    a2 = CollectSink("a")
    again = checked(await replay(store, [a2, CollectSink("b")]))
    assert store.read_stats.held == 0
    assert [r.raw for r in a2.records] == ["raw a 1", "raw a 4"]
    assert [u.reason for u in again.undelivered] == ["not routed (replay does not route)"]
    live.close()


async def test_a_store_sealed_after_a_run_takes_the_next_runs_entries(tmp_path: Path) -> None:
    store = RescueStore(tmp_path)
    for items in (range(3), range(3, 5)):
        pipeline = Pipeline(items, routes=[Route("r", FailingSink("db"))], rescue=store)
        checked(await pipeline.run())
        store.seal()  # what the end of a run does
    db = CollectSink("db")
    report = checked(await replay(RescueStore(tmp_path), [db]))
    assert report.ok
    assert sorted(r.raw for r in db.records) == list(range(5))
    store.close()


# -- cost --------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [None, 128])
async def test_replay_costs_at_most_one_fsync_a_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_size: int | None
) -> None:
    fill(tmp_path, [entry(i, "a") for i in range(5000)])
    fsyncs = 0
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        nonlocal fsyncs
        fsyncs += 1
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store, sinks = RescueStore(tmp_path), [CollectSink("a")]
    if batch_size is None:
        report = checked(await replay(store, sinks))
    else:
        report = checked(await replay(store, sinks, batch_size=batch_size))
    assert report.delivered == {"a": 5000}
    batches = -(-5000 // (batch_size or BATCH_SIZE))
    # One a batch, and the directory's at the tidy-up, the progress file's creation
    # and the segment's deletion.
    assert fsyncs <= batches + 3
