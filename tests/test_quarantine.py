"""Lines a replay cannot read are never deleted: moved, byte for byte, to the store's
quarantine, counted, and printed by the command line, which exits with status 4."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from rescue_helpers import cli, entry, fill, quarantine_files, seg_files

from trio_sink import RescueStore, replay
from trio_sink._quarantine import quarantine
from trio_sink.sinks import CollectSink


def lines_of(path: Path) -> list[bytes]:
    (name,) = seg_files(path)
    return (path / name).read_bytes().splitlines(keepends=True)


def rewrite(path: Path, lines: list[bytes]) -> str:
    (name,) = seg_files(path)
    (path / name).write_bytes(b"".join(lines))
    return name


def test_a_flipped_bit_moves_the_line_to_the_quarantine_and_exits_4(tmp_path: Path) -> None:
    store_dir, out = tmp_path / "store", tmp_path / "out.jsonl"
    fill(store_dir, [entry(i) for i in range(5)])
    lines = lines_of(store_dir)
    lines[2] = bytes([lines[2][0] ^ 0x01]) + lines[2][1:]  # "{" becomes "z"
    name = rewrite(store_dir, lines)

    done = cli("replay", str(store_dir), "--sink", "db", "--to", str(out))
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr
    text = done.stdout.splitlines()
    assert "received: 4" in text
    assert f"quarantined lines: 1 (moved, as they were, to {store_dir / 'quarantine'}/)" in text
    assert [json.loads(line)["raw"] for line in out.read_text().splitlines()] == [
        f"raw db {i}" for i in (0, 1, 3, 4)
    ]
    offset = sum(map(len, lines[:2]))
    assert quarantine_files(store_dir) == {f"{name}.{offset:020d}.bad": lines[2]}
    assert seg_files(store_dir) == []  # every line delivered or quarantined
    # Nothing is left to replay, and the quarantine stays.
    again = cli("replay", str(store_dir), "--sink", "db", "--to", str(out))
    assert again.returncode == 0
    assert "quarantined lines: 0" in again.stdout.splitlines()
    assert len(quarantine_files(store_dir)) == 1
    listed = cli("replay", str(store_dir), "--list")
    assert "quarantined lines: 1" in listed.stdout.splitlines()


async def test_a_newline_turned_into_a_space_keeps_both_records_in_the_quarantine(
    tmp_path: Path,
) -> None:
    fill(tmp_path, [entry(i) for i in range(4)])
    lines = lines_of(tmp_path)
    glued = lines[1][:-1] + b" " + lines[2]
    name = rewrite(tmp_path, [lines[0], glued, lines[3]])
    store = RescueStore(tmp_path)
    sink = CollectSink("db")
    report = await replay(store, [sink])
    report.check()
    assert [r.raw for r in sink.records] == ["raw db 0", "raw db 3"]
    assert store.read_stats.quarantined == 1
    assert quarantine_files(tmp_path) == {f"{name}.{len(lines[0]):020d}.bad": glued}
    assert seg_files(tmp_path) == []


async def test_invalid_utf8_in_a_line_moves_it_to_the_quarantine(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fill(tmp_path, [entry(i) for i in range(3)])
    lines = lines_of(tmp_path)
    lines[1] = lines[1].replace(b"raw db 1", b"raw \xff\xfe 1")
    name = rewrite(tmp_path, lines)
    store = RescueStore(tmp_path)
    sink = CollectSink("db")
    with caplog.at_level(logging.WARNING, logger="trio_sink.rescue"):
        (await replay(store, [sink])).check()
    assert [r.raw for r in sink.records] == ["raw db 0", "raw db 2"]
    assert quarantine_files(tmp_path) == {f"{name}.{len(lines[0]):020d}.bad": lines[1]}
    assert (store.read_stats.bad_lines, store.read_stats.quarantined) == (1, 1)
    assert "rescue.quarantined" in [r.getMessage().split()[0] for r in caplog.records]


async def test_a_done_offset_inside_a_line_resumes_at_the_start_of_that_line(
    tmp_path: Path,
) -> None:
    fill(tmp_path, [entry(i) for i in range(3)])
    lines = lines_of(tmp_path)
    (name,) = seg_files(tmp_path)
    # The format of the progress file before byte ranges: one offset, here in line 1.
    (tmp_path / f"{name}.done").write_text(f"{len(lines[0]) + 7}\n")
    store = RescueStore(tmp_path)
    assert [e.id for e in store.entries()] == [1, 2]
    sink = CollectSink("db")
    (await replay(store, [sink])).check()
    assert [r.raw for r in sink.records] == ["raw db 1", "raw db 2"]
    assert store.read_stats.quarantined == 0
    assert quarantine_files(tmp_path) == {}
    assert seg_files(tmp_path) == []


async def test_a_torn_last_line_is_kept_in_the_quarantine(tmp_path: Path) -> None:
    fill(tmp_path, [entry(i) for i in range(3)])
    (name,) = seg_files(tmp_path)
    torn = b'{"v":1,"run":"run-1","id":3,"ti'
    offset = (tmp_path / name).stat().st_size
    (tmp_path / name).write_bytes((tmp_path / name).read_bytes() + torn)
    store = RescueStore(tmp_path)
    report = await replay(store, [CollectSink("db")])
    assert report.delivered == {"db": 3}
    assert (store.torn_lines, store.read_stats.quarantined) == (1, 1)
    assert quarantine_files(tmp_path) == {f"{name}.{offset:020d}.bad": torn}
    assert seg_files(tmp_path) == []


async def test_a_line_quarantined_twice_is_one_file(tmp_path: Path) -> None:
    # A replay interrupted between the move and the record of consumption moves the
    # line again: the same file, with the same bytes.
    fill(tmp_path, [entry(i) for i in range(2)])
    lines = lines_of(tmp_path)
    lines[0] = b"garbage\n"
    name = rewrite(tmp_path, lines)
    quarantine(tmp_path, tmp_path / name, [(0, b"garbage\n")])
    (await replay(RescueStore(tmp_path), [CollectSink("db")])).check()
    assert quarantine_files(tmp_path) == {f"{name}.{0:020d}.bad": b"garbage\n"}
