"""The rescue store: format, durability policies, torn and bad lines, segments."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_sink import (
    ConfigError,
    Record,
    RescueEntry,
    RescueFormatError,
    RescueReadStats,
    RescueStore,
    Undelivered,
    replay,
)
from trio_sink._rescue_format import SCHEMA_VERSION, decode
from trio_sink._rescue_segments import tidy, writer_gone
from trio_sink.sinks import CollectSink

DOC = Path(__file__).parent.parent / "docs" / "rescue.md"


def entry(i: int, sink: str | None = "db", **fields: Any) -> RescueEntry:
    values: dict[str, Any] = {
        "id": i,
        "raw": f"line {i}",
        "payload": {"n": i, "text": f"é{i}"},
        "sink": sink,
        "stage": "sink",
        "reason": "sink raised OSError: disk full",
        "error": "OSError: disk full",
        "time": 1_700_000_000.0 + i,
        "run": "run-1",
    }
    values.update(fields)
    return RescueEntry(**values)


def segments(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.startswith("seg-"))


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


class Unencodable:
    def __repr__(self) -> str:
        return "Unencodable()"


# -- round trip ------------------------------------------------------------------------


def test_entries_come_back_with_every_field(tmp_path: Path) -> None:
    written = [
        entry(0),
        entry(1, raw="ünïcödé ✓ 雪 🚀", payload=["a", 1, 2.5, None, True, {"k": [1, 2]}]),
        entry(2, sink=None, stage="source", reason="immediate stop", error=None),
        entry(3, rest={"unparsed": "tail"}, record_error="ValueError: bad field"),
        entry(4, raw=b"\x00\xffbinary", payload=b"p", rest=b"r"),
        entry(5, repr_only=True, raw="Thing()", payload="Thing()"),
    ]
    with RescueStore(tmp_path) as store:
        assert store.write(written) == len(written)
    got = list(RescueStore(tmp_path).entries())
    assert got == written
    assert isinstance(got[4].raw, bytes)


def test_from_record_and_from_undelivered_fill_every_field(tmp_path: Path) -> None:
    record = Record(7, "raw", {"p": 1}, rest="tail", error=KeyError("k"))
    u = Undelivered(record, "db", "sink", "sink raised OSError: full", OSError("full"))
    e = RescueEntry.from_undelivered(u, run="r", time=5.0)
    assert e == RescueEntry(
        id=7,
        raw="raw",
        payload={"p": 1},
        sink="db",
        stage="sink",
        reason="sink raised OSError: full",
        error="OSError: full",
        time=5.0,
        run="r",
        rest="tail",
        record_error="KeyError: 'k'",
    )
    before = RescueEntry.from_record(Record(1, "x", "x"), sink=None, reason="r", run="r")
    assert before.stage == "sink"
    assert before.error is None
    assert before.time > 1e9


async def test_rescue_stamps_the_run_and_writes_in_a_thread(tmp_path: Path) -> None:
    lost = [Undelivered(Record(i, i, i), "db", "sink", "drain deadline") for i in range(3)]
    store = RescueStore(tmp_path, run="run-42")
    assert await store.arescue(lost) == 3
    assert store.rescue(lost[:1]) == 1
    assert await store.awrite([entry(9)]) == 1
    await store.aclose()
    got = list(store.entries())
    assert [(e.id, e.run, e.reason) for e in got[:4]] == [
        (0, "run-42", "drain deadline"),
        (1, "run-42", "drain deadline"),
        (2, "run-42", "drain deadline"),
        (0, "run-42", "drain deadline"),
    ]
    assert got[4] == entry(9)
    assert store.statistics().written == 5


def test_a_new_store_has_a_unique_run(tmp_path: Path) -> None:
    a, b = RescueStore(tmp_path), RescueStore(tmp_path)
    assert a.run != b.run


def test_memoryview_and_bytearray_come_back_as_bytes(tmp_path: Path) -> None:
    with RescueStore(tmp_path) as store:
        store.write([entry(0, raw=memoryview(b"mv"), payload=bytearray(b"ba"))])
    (got,) = RescueStore(tmp_path).entries()
    assert (got.raw, got.payload) == (b"mv", b"ba")


def test_nested_values_come_back_in_their_json_form(tmp_path: Path) -> None:
    payload = {"t": (1, 2), "b": b"hi", "nan": float("nan")}
    with RescueStore(tmp_path) as store:
        store.write([entry(0, payload=payload)])
    (got,) = RescueStore(tmp_path).entries()
    assert got.payload == {"t": [1, 2], "b": "aGk=", "nan": None}
    assert not got.repr_only


# -- values that JSON cannot hold --------------------------------------------------------


def test_an_unencodable_payload_is_stored_as_its_repr_with_the_flag(tmp_path: Path) -> None:
    with RescueStore(tmp_path) as store:
        store.write([entry(0, payload=Unencodable()), entry(1)])
    got = list(RescueStore(tmp_path).entries())
    assert got[0].repr_only
    assert got[0].payload == "Unencodable()"
    assert got[0].raw == "line 0"  # what could be encoded is kept as it was
    assert got[1] == entry(1)


def test_an_unencodable_nested_value_becomes_a_repr_in_place(tmp_path: Path) -> None:
    with RescueStore(tmp_path) as store:
        store.write([entry(0, payload={"ok": 1, "obj": Unencodable(), "err": ValueError("v")})])
    (got,) = RescueStore(tmp_path).entries()
    assert got.repr_only
    assert got.payload == {"ok": 1, "obj": "Unencodable()", "err": "ValueError: v"}


def test_text_that_utf8_cannot_encode_is_stored_as_reprs(tmp_path: Path) -> None:
    class BadRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    with RescueStore(tmp_path) as store:
        store.write([entry(0, raw="lone \ud800", payload=BadRepr(), reason="why \udcff")])
    (got,) = RescueStore(tmp_path).entries()
    assert got.repr_only
    assert got.raw == "'lone \\ud800'"
    assert got.payload == "<BadRepr object: repr() raised>"
    assert got.reason == "why \\udcff"


# -- segments ----------------------------------------------------------------------------


def test_segments_roll_over_between_writes_never_inside_one(tmp_path: Path) -> None:
    store = RescueStore(tmp_path, segment_max_records=3)
    store.write([entry(i) for i in range(2)])
    store.write([entry(i) for i in range(2, 4)])  # would not fit: a new segment first
    names = segments(tmp_path)
    assert [n.endswith(".jsonl") for n in names] == [True, False]
    store.write([entry(i) for i in range(4, 11)])  # larger than a segment: one all the same
    store.write([entry(11)])
    store.close()
    names = segments(tmp_path)
    assert all(n.endswith(".jsonl") for n in names)
    assert [len(lines_of(tmp_path / n)) for n in names] == [2, 2, 7, 1]
    assert [e.id for e in store.entries()] == list(range(12))
    assert store.read_stats.segments == 4
    assert store.statistics().segments_sealed == 4


def test_a_full_segment_is_sealed_after_the_write_that_filled_it(tmp_path: Path) -> None:
    store = RescueStore(tmp_path, segment_max_records=3)
    store.write([entry(0)])
    store.write([entry(1), entry(2)])
    (name,) = segments(tmp_path)
    assert name.endswith(".jsonl")
    assert [e.id for e in RescueStore(tmp_path).entries()] == [0, 1, 2]
    store.close()


def test_close_leaves_no_open_segment_and_later_writes_raise(tmp_path: Path) -> None:
    store = RescueStore(tmp_path)
    store.write([entry(0)])
    (name,) = segments(tmp_path)
    assert re.fullmatch(r"seg-\d{20}-\d+-\d{6}\.jsonl\.open", name)
    store.close()
    store.close()  # idempotent
    assert segments(tmp_path) == [name.removesuffix(".open")]
    with pytest.raises(trio.ClosedResourceError):
        store.write([entry(1)])


def test_a_live_writers_segment_is_not_read_until_sealed(tmp_path: Path) -> None:
    writer = RescueStore(tmp_path)
    reader = RescueStore(tmp_path)
    writer.write([entry(0)])
    assert list(writer.entries()) == []
    assert list(reader.entries()) == []
    writer.seal()
    writer.write([entry(1)])
    assert [e.id for e in reader.entries()] == [0]
    writer.close()
    assert [e.id for e in reader.entries()] == [0, 1]


def test_counts_and_pending(tmp_path: Path) -> None:
    with RescueStore(tmp_path) as store:
        store.write([entry(0, "a"), entry(1, "b"), entry(2, "a"), entry(3, None)])
    assert store.counts() == {"a": 2, "b": 1, None: 1}
    assert store.pending() == 4
    assert store.pending(sink="a") == 2
    assert [e.id for e in store.entries(sink="b")] == [1]


def test_invalid_arguments_are_config_errors(tmp_path: Path) -> None:
    bad: list[dict[str, Any]] = [
        {"fsync": "sometimes"},
        {"fsync_interval": -1.0},
        {"fsync_interval": float("inf")},
        {"segment_max_records": 0},
        {"segment_max_records": True},
        {"run": ""},
    ]
    for kwargs in bad:
        with pytest.raises(ConfigError, match=next(iter(kwargs))):
            RescueStore(tmp_path, **kwargs)


async def test_writes_of_anything_but_entries_are_config_errors(tmp_path: Path) -> None:
    store = RescueStore(tmp_path)
    lost = Undelivered(Record(0, 0, 0), "db", "sink", "drain deadline")
    calls: list[tuple[Any, Any, str]] = [
        (store.write, [entry(0), lost], "entries must hold only RescueEntry objects, got Undel"),
        (store.write, None, "entries must be an iterable of RescueEntry, got None"),
        (store.rescue, [lost, entry(0)], "undelivered must hold only Undelivered objects"),
    ]
    for call, argument, message in calls:
        with pytest.raises(ConfigError, match=re.escape(message)):
            call(argument)
    with pytest.raises(ConfigError, match="entries must be an iterable of RescueEntry, got 'ab'"):
        await store.awrite("ab")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="undelivered must be an iterable of Undelivered, got 7"):
        await store.arescue(7)  # type: ignore[arg-type]
    store.close()
    assert segments(tmp_path) == []  # nothing was written


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"id": "7"}, "entries[1].id must be an int, got '7'"),
        ({"id": True}, "entries[1].id must be an int, got True"),
        ({"reason": None}, "entries[1].reason must be a str, got None"),
        ({"run": b"r"}, "entries[1].run must be a str, got b'r'"),
        ({"stage": 3}, "entries[1].stage must be a str, got 3"),
        ({"sink": 3}, "entries[1].sink must be a str or None, got 3"),
        ({"error": ValueError("x")}, "entries[1].error must be a str or None, got ValueError"),
        ({"record_error": 1}, "entries[1].record_error must be a str or None, got 1"),
        ({"time": float("nan")}, "entries[1].time must be a finite float, got nan"),
        ({"time": "now"}, "entries[1].time must be a finite float, got 'now'"),
        ({"time": 10**400}, "entries[1].time must be a finite float, got 1000"),
        ({"repr_only": 1}, "entries[1].repr_only must be a bool, got 1"),
    ],
)
async def test_an_entry_that_would_not_read_back_is_a_config_error(
    tmp_path: Path, fields: dict[str, Any], message: str
) -> None:
    # msgspec does not check types when a struct is built: the store does, before
    # writing, so that every entry it writes reads back.
    bad = [entry(0), entry(1, **fields)]
    store = RescueStore(tmp_path)
    with pytest.raises(ConfigError, match=re.escape(message)):
        store.write(bad)
    with pytest.raises(ConfigError, match=re.escape(message)):
        await store.awrite(bad)
    store.close()
    assert segments(tmp_path) == []  # nothing was written


def test_entries_of_subclassed_scalars_read_back_as_plain_values(tmp_path: Path) -> None:
    class Id(int):
        pass

    class Text(str):
        pass

    class When(float):
        pass

    odd = entry(0, id=Id(5), reason=Text("why"), sink=Text("db"), time=When(2.5))
    with RescueStore(tmp_path) as store:
        store.write([odd, entry(1, time=3)])
    got = list(RescueStore(tmp_path).entries())
    assert [(e.id, e.reason, e.sink, e.time, e.repr_only) for e in got] == [
        (5, "why", "db", 2.5, False),
        (1, "sink raised OSError: disk full", "db", 3.0, False),
    ]
    assert [type(e.id) for e in got] == [int, int]


def test_rescue_names_the_undelivered_field(tmp_path: Path) -> None:
    lost = Undelivered(Record(0, 0, 0), "db", "sink", None)  # type: ignore[arg-type]
    store = RescueStore(tmp_path)
    with pytest.raises(ConfigError, match=re.escape("undelivered[0].reason must be a str")):
        store.rescue([lost])
    store.close()
    assert segments(tmp_path) == []


def test_the_directory_is_created(tmp_path: Path) -> None:
    RescueStore(tmp_path / "a" / "b").close()
    assert (tmp_path / "a" / "b").is_dir()


# -- fsync policies ----------------------------------------------------------------------


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every os.fsync call, as "file" or "dir"."""
    calls: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        calls.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def test_fsync_batch_syncs_after_every_write(tmp_path: Path, fsyncs: list[str]) -> None:
    store = RescueStore(tmp_path, fsync="batch")
    for i in range(3):
        store.write([entry(i), entry(i)])
    # One directory fsync when the segment is created, one file fsync per write.
    assert fsyncs == ["dir", "file", "file", "file"]
    store.close()
    assert fsyncs[4:] == ["file", "dir"]  # sealed: the file, then the rename


def test_fsync_interval_syncs_at_most_every_interval(
    tmp_path: Path, fsyncs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    monkeypatch.setattr("trio_sink._segment_log._monotonic", lambda: now[0])
    store = RescueStore(tmp_path, fsync="interval", fsync_interval=1.0)
    synced = []
    for t in (100.0, 100.5, 101.0, 101.2, 101.9, 102.1):
        now[0] = t
        store.write([entry(0)])
        synced.append(fsyncs.count("file"))
    assert synced == [0, 0, 1, 1, 1, 2]
    store.close()
    assert fsyncs.count("file") == 3
    assert store.statistics().fsyncs == 3


def fail_file_fsyncs(monkeypatch: pytest.MonkeyPatch, *, times: int | None) -> None:
    """Make the next ``times`` fsyncs of files (not directories) fail with EIO; every
    one when ``times`` is None."""
    real = os.fsync
    left = [times]

    def fsync(fd: int) -> None:
        if left[0] != 0 and stat.S_ISREG(os.fstat(fd).st_mode):
            if left[0] is not None:
                left[0] -= 1
            raise OSError(5, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_sync_forces_what_the_interval_policy_has_not_synced(
    tmp_path: Path, fsyncs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    monkeypatch.setattr("trio_sink._segment_log._monotonic", lambda: now[0])
    store = RescueStore(tmp_path, fsync="interval", fsync_interval=10.0)
    store.sync()  # nothing written yet: nothing to sync
    store.write([entry(0)])
    assert fsyncs.count("file") == 0  # no timer: without a write, nothing else syncs
    now[0] = 103.0
    store.sync()
    assert fsyncs.count("file") == 1
    store.sync()  # nothing new
    assert fsyncs.count("file") == 1
    now[0] = 112.0
    store.write([entry(1)])  # the interval counts from the last fsync
    assert fsyncs.count("file") == 1
    now[0] = 113.0
    store.write([entry(2)])
    assert fsyncs.count("file") == 2
    store.close()
    with pytest.raises(trio.ClosedResourceError):
        store.sync()


def test_a_failed_sync_raises_and_starts_a_new_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RescueStore(tmp_path, fsync="never")
    store.write([entry(0)])
    fail_file_fsyncs(monkeypatch, times=1)
    with pytest.raises(OSError, match="Input/output error"):
        store.sync()
    (first,) = segments(tmp_path)
    assert first.endswith(".jsonl")  # sealed: suspect, nothing more goes to it
    store.write([entry(1)])
    store.close()
    assert len(segments(tmp_path)) == 2
    assert [e.id for e in RescueStore(tmp_path).entries()] == [0, 1]


def test_fsync_never_syncs_only_when_sealing(tmp_path: Path, fsyncs: list[str]) -> None:
    store = RescueStore(tmp_path, fsync="never", segment_max_records=4)
    for i in range(3):
        store.write([entry(i)])
    assert fsyncs == []
    store.write([entry(3), entry(4)])  # fills the first segment: sealed
    assert fsyncs == ["file", "dir"]
    store.close()
    assert fsyncs == ["file", "dir", "file", "dir"]


# -- torn and bad lines ------------------------------------------------------------------


def crashed_segment(tmp_path: Path, lines: list[bytes]) -> Path:
    """A segment as a writer that died leaves it: still under its .open name."""
    path = tmp_path / "seg-00000000000000000001-1-000000.jsonl.open"
    path.write_bytes(b"".join(lines))
    return path


@pytest.fixture
def line_encoder() -> Any:
    from trio_sink._rescue_format import Encoder

    def encode(*entries: RescueEntry) -> list[bytes]:
        return Encoder().lines(entries)

    return encode


def test_a_torn_last_line_is_skipped_counted_and_logged(
    tmp_path: Path, line_encoder: Any, caplog: pytest.LogCaptureFixture
) -> None:
    good = line_encoder(entry(0), entry(1), entry(2))
    crashed_segment(tmp_path, [good[0], good[1], good[2][: len(good[2]) // 2]])
    store = RescueStore(tmp_path)
    with caplog.at_level(logging.WARNING, logger="trio_sink.rescue"):
        got = list(store.entries())
    assert [e.id for e in got] == [0, 1]
    assert store.torn_lines == 1
    assert store.read_stats.bad_lines == 0
    (rec,) = caplog.records
    assert rec.name == "trio_sink.rescue"
    assert rec.levelno == logging.WARNING
    assert rec.getMessage().startswith("rescue.torn_line segment=seg-")


def test_a_complete_last_line_without_its_newline_is_kept(
    tmp_path: Path, line_encoder: Any
) -> None:
    good = line_encoder(entry(0), entry(1))
    crashed_segment(tmp_path, [good[0], good[1].rstrip(b"\n")])
    store = RescueStore(tmp_path)
    assert [e.id for e in store.entries()] == [0, 1]
    assert store.torn_lines == 0


def test_a_bad_line_in_the_middle_is_skipped_and_nothing_else(
    tmp_path: Path, line_encoder: Any, caplog: pytest.LogCaptureFixture
) -> None:
    good = line_encoder(entry(0), entry(1), entry(2))
    garbage = [b"{not json\n", b'{"v":1,"id":"not an int"}\n', b"\n"]
    crashed_segment(tmp_path, [good[0], *garbage, good[1], good[2]])
    store = RescueStore(tmp_path)
    with caplog.at_level(logging.WARNING, logger="trio_sink.rescue"):
        assert [e.id for e in store.entries()] == [0, 1, 2]
    assert store.read_stats.bad_lines == 3
    assert store.torn_lines == 0
    assert [r.getMessage().split()[0] for r in caplog.records] == ["rescue.bad_line"] * 3


def test_each_read_has_its_own_stats(tmp_path: Path, line_encoder: Any) -> None:
    good = line_encoder(entry(0), entry(1))
    crashed_segment(tmp_path, [good[0], good[1][:10]])  # one entry, then a torn line
    store = RescueStore(tmp_path)
    first = store.entries()
    assert next(first).id == 0  # the segments to read are listed: only the crashed one
    with RescueStore(tmp_path) as writer:
        writer.write([entry(2), entry(3)])
    second = store.entries(sink="db")
    assert [e.id for e in second] == [0, 2, 3]
    assert second.stats == RescueReadStats(segments=2, entries=3, torn_lines=1, bad_lines=0)
    assert store.read_stats == second.stats  # the read that ended last
    assert first.stats == RescueReadStats(segments=1, entries=1, torn_lines=0, bad_lines=0)
    assert list(first) == []
    assert first.stats == RescueReadStats(segments=1, entries=1, torn_lines=1, bad_lines=0)
    assert store.read_stats == first.stats
    assert second.stats.segments == 2  # untouched by the other read


def test_a_read_closed_early_ends_with_what_it_passed(tmp_path: Path) -> None:
    with RescueStore(tmp_path) as writer:
        writer.write([entry(i) for i in range(5)])
    store = RescueStore(tmp_path)
    assert store.read_stats == RescueReadStats(segments=0, entries=0, torn_lines=0, bad_lines=0)
    with store.entries() as read:
        assert next(read).id == 0
        assert next(read).id == 1
    assert store.read_stats == RescueReadStats(segments=1, entries=2, torn_lines=0, bad_lines=0)
    read.close()  # idempotent
    assert list(read) == []


def test_a_newer_schema_version_is_refused(tmp_path: Path, line_encoder: Any) -> None:
    (good,) = line_encoder(entry(0))
    future = good.replace(b'{"v":1,', b'{"v":2,', 1)
    path = crashed_segment(tmp_path, [good, future, good])
    store = RescueStore(tmp_path)
    read = store.entries()
    assert next(read).id == 0
    with pytest.raises(RescueFormatError, match=r"schema version 2 is newer .* \(1\)"):
        next(read)
    with pytest.raises(RescueFormatError, match=path.name):
        store.counts()
    assert SCHEMA_VERSION == 1


def test_a_failed_os_write_takes_back_its_bytes_and_seals_the_segment(tmp_path: Path) -> None:
    store = RescueStore(tmp_path)
    store.write([entry(0)])
    real = store.segment_log._file
    assert real is not None

    class Full:
        def write(self, data: Any) -> int:
            real.write(bytes(data)[:10])  # type: ignore[union-attr]
            raise OSError(28, "No space left on device")

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    store.segment_log._file = Full()  # type: ignore[assignment]
    with pytest.raises(OSError, match="No space"):
        store.write([entry(1)])
    (first,) = segments(tmp_path)
    assert first.endswith(".jsonl")  # sealed: no later write goes to it
    assert lines_of(tmp_path / first) == line_encoder_lines(entry(0))  # no torn tail
    store.write([entry(2)])
    store.close()
    reader = RescueStore(tmp_path)
    assert [e.id for e in reader.entries()] == [0, 2]
    assert reader.torn_lines == 0


def line_encoder_lines(*entries: RescueEntry) -> list[bytes]:
    from trio_sink._rescue_format import Encoder

    return Encoder().lines(entries)


def test_a_write_that_would_roll_over_to_a_segment_that_fails_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RescueStore(tmp_path, segment_max_records=3)
    store.write([entry(0), entry(1)])

    def fail(directory: Path) -> Any:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr("trio_sink._segment_log.create_segment", fail)
    with pytest.raises(OSError, match="Too many open files"):
        store.write([entry(2), entry(3)])
    monkeypatch.undo()
    store.write([entry(4)])
    store.close()
    assert [e.id for e in RescueStore(tmp_path).entries()] == [0, 1, 4]
    assert store.statistics().written == 3


@pytest.mark.parametrize("policy", ["batch", "interval"])
def test_a_failed_fsync_takes_back_the_write_and_starts_a_new_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, policy: Any
) -> None:
    store = RescueStore(tmp_path, fsync=policy, fsync_interval=0.0)
    store.write([entry(0)])
    (first,) = segments(tmp_path)
    fail_file_fsyncs(monkeypatch, times=1)
    with (
        caplog.at_level(logging.WARNING, logger="trio_sink.rescue"),
        pytest.raises(OSError, match="Input/output error"),
    ):
        store.write([entry(1)])
    # The segment is suspect (a later fsync may report success falsely): sealed as
    # it was before the write, and the next write starts a new one.
    assert segments(tmp_path) == [first.removesuffix(".open")]
    assert lines_of(tmp_path / first.removesuffix(".open")) == line_encoder_lines(entry(0))
    assert "rescue.segment_abandoned" in caplog.text
    store.write([entry(2)])
    store.close()
    assert [e.id for e in RescueStore(tmp_path).entries()] == [0, 2]
    assert store.statistics().written == 2


def test_a_write_that_cannot_be_taken_back_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = RescueStore(tmp_path)
    store.write([entry(0)])
    fail_file_fsyncs(monkeypatch, times=None)

    def ftruncate(fd: int, length: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "ftruncate", ftruncate)
    with (
        caplog.at_level(logging.ERROR, logger="trio_sink.rescue"),
        pytest.raises(OSError, match="Input/output error") as raised,
    ):
        store.write([entry(1)])
    assert any("may be in the rescue store" in note for note in raised.value.__notes__)
    assert "rescue.rollback_failed" in caplog.text
    monkeypatch.undo()
    store.close()
    assert [e.id for e in RescueStore(tmp_path).entries()] == [0, 1]


def test_the_sample_line_in_the_docs_decodes() -> None:
    (sample,) = re.findall(r"```json\n(.*?)\n```", DOC.read_text(encoding="utf-8"), re.S)
    got = decode(sample.encode(), "docs")
    assert got is not None
    assert got.sink == "db"
    assert got.repr_only is False


# -- a segment's lock ------------------------------------------------------------------


def race_at_segment_lock(
    monkeypatch: pytest.MonkeyPatch, directory: Path, race: Callable[[int], None]
) -> list[int]:
    """Patch flock: at the first lock call on a new segment (under its hidden name),
    ``race(operation)`` runs first, as another process acting at that moment would.
    Return the list of file descriptors raced at: one at the most."""
    real = fcntl.flock
    raced: list[int] = []

    def flock(fd: int, operation: int) -> None:
        if not raced:
            hidden = {p.stat().st_ino for p in directory.iterdir() if p.name.startswith(".seg-")}
            if os.fstat(fd).st_ino in hidden:
                raced.append(fd)
                race(operation)
        real(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    return raced


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
async def test_a_probe_at_segment_creation_does_not_unlock_the_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reader probes the new file at the moment its writer locks it: the writer's
    # attempt meets the probe's lock. A later replay must still see a live writer.
    def probe(operation: int) -> None:
        if operation & fcntl.LOCK_NB:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        # A blocking attempt waits until the probe lets go: then it succeeds.

    raced = race_at_segment_lock(monkeypatch, tmp_path, probe)
    writer = RescueStore(tmp_path)
    writer.write([entry(0)])
    monkeypatch.undo()
    assert raced
    (name,) = segments(tmp_path)
    assert not writer_gone(tmp_path / name)

    first = CollectSink("db")
    report = await replay(RescueStore(tmp_path), [first])
    # The live writer's segment is left alone: its entry is reported held, not replayed.
    assert (report.delivered, [u.reason[:20] for u in report.undelivered]) == (
        {"db": 0},
        ["held by a live write"],
    )
    assert first.records == []
    assert segments(tmp_path) == [name]
    writer.write([entry(1)])
    writer.close()
    second = CollectSink("db")
    await replay(RescueStore(tmp_path), [second])
    assert [r.raw for r in first.records + second.records] == ["line 0", "line 1"]


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
def test_a_segment_removed_by_a_tidy_up_before_its_lock_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A replay's tidy-up probes the hidden file before its writer locks it, takes it
    # for a dead writer's and removes it: the writer makes a new one.
    raced = race_at_segment_lock(monkeypatch, tmp_path, lambda operation: tidy(tmp_path))
    writer = RescueStore(tmp_path)
    writer.write([entry(0)])
    monkeypatch.undo()
    assert raced
    (name,) = segments(tmp_path)
    assert name.endswith(".jsonl.open")
    assert not writer_gone(tmp_path / name)
    writer.close()
    assert [e.id for e in RescueStore(tmp_path).entries()] == [0]
