"""The progress file of a segment: consumed byte ranges, appended a line at a time;
torn and garbled lines only ever make an entry be delivered again."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from rescue_helpers import entry, fill, seg_files

from trio_sink import RescueStore, replay
from trio_sink._progress import Consumed, append, compact, done_path, load, needs_compacting
from trio_sink.sinks import CollectSink


def test_consumed_ranges_merge_and_cover_whole_lines_only() -> None:
    consumed = Consumed([(10, 20), (0, 10), (30, 40), (35, 50), (60, 60)])
    assert consumed.ranges == [(0, 20), (30, 50)]
    assert consumed.prefix == 20
    assert consumed.covers(0, 20)
    assert consumed.covers(30, 50)
    assert not consumed.covers(15, 25)  # a line partly consumed is not consumed
    assert not consumed.covers(20, 30)
    assert Consumed([(5, 9)]).prefix == 0
    assert not Consumed()


def test_appends_are_read_back_and_a_torn_line_is_ignored(tmp_path: Path) -> None:
    segment = tmp_path / "seg-1.jsonl"
    append(segment, [(0, 10), (20, 30)])
    append(segment, [(10, 20)])
    assert load(segment).ranges == [(0, 30)]
    # A crash in the middle of an append leaves a line without its ";" (and newline).
    with open(done_path(segment), "ab") as f:
        f.write(b"30-4")
    assert load(segment).ranges == [(0, 30)]
    # The next append ends the torn line first: it stays ignored, not glued to the new one.
    append(segment, [(50, 60)])
    assert done_path(segment).read_bytes() == b"v2\n0-10 20-30;\n10-20;\n30-4\n50-60;\n"
    assert load(segment).ranges == [(0, 30), (50, 60)]


def test_the_one_number_format_reads_as_a_prefix_and_takes_appends(tmp_path: Path) -> None:
    segment = tmp_path / "seg-1.jsonl"
    done_path(segment).write_text("128\n")
    assert load(segment).ranges == [(0, 128)]
    append(segment, [(200, 300)])
    assert load(segment).ranges == [(0, 128), (200, 300)]


def test_garbled_lines_are_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    segment = tmp_path / "seg-1.jsonl"
    done_path(segment).write_bytes(b"v2\n0-10;\nzz-10;\n40-30;\n10-20\n20-30;\n")
    with caplog.at_level(logging.WARNING, logger="trio_sink.rescue"):
        assert load(segment).ranges == [(0, 10), (20, 30)]
    assert [r.getMessage().split()[0] for r in caplog.records] == ["rescue.bad_progress"]


def test_compaction_keeps_the_ranges_in_one_line(tmp_path: Path) -> None:
    segment = tmp_path / "seg-1.jsonl"
    for k in range(500):
        append(segment, [(k * 100, k * 100 + 50)])
    assert needs_compacting(load(segment))
    compact(segment, load(segment))
    assert not needs_compacting(load(segment))
    assert load(segment).ranges == [(k * 100, k * 100 + 50) for k in range(500)]
    assert done_path(segment).read_bytes().count(b"\n") == 2


async def test_a_symlink_at_a_progress_file_is_not_followed(tmp_path: Path) -> None:
    store_dir, outside = tmp_path / "store", tmp_path / "outside.done"
    outside.write_text("0-100000;\n")
    fill(store_dir, [entry(i, "a" if i % 2 else "b") for i in range(4)])
    (name,) = seg_files(store_dir)
    (store_dir / f"{name}.done").symlink_to(outside)
    store = RescueStore(store_dir)
    assert [e.id for e in store.entries()] == [0, 1, 2, 3]  # the link is ignored
    a = CollectSink("a")
    report = await replay(store, [a], sink_name="a")
    report.check()
    assert [r.raw for r in a.records] == ["raw a 1", "raw a 3"]
    assert outside.read_text() == "0-100000;\n"  # untouched
    assert not (store_dir / f"{name}.done").is_symlink()
    assert [e.id for e in store.entries()] == [0, 2]
