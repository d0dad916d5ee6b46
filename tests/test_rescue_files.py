"""What else a store directory may hold: directories, FIFOs and symlinks named like the
store's files are skipped (with one warning a name), never followed, never waited on."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest
from rescue_helpers import cli, entry, fill, seg_files

from trio_sink import RescueStore, replay
from trio_sink.sinks import CollectSink

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs, symlinks, flock")

SEALED = "seg-00000000000000000001-1-000000.jsonl"
OPEN = "seg-00000000000000000002-1-000000.jsonl.open"


def skipped(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("rescue.skipped")]


async def test_directories_named_like_segments_are_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fill(tmp_path, [entry(0), entry(1)])
    for name in (SEALED, OPEN, f"{SEALED}.done"):
        (tmp_path / name).mkdir()
    store = RescueStore(tmp_path)
    with caplog.at_level(logging.WARNING, logger="trio_sink.rescue"):
        assert [e.id for e in store.entries()] == [0, 1]
        assert store.pending() == 2
        sink = CollectSink("db")
        (await replay(store, [sink])).check()
    assert [r.raw for r in sink.records] == ["raw db 0", "raw db 1"]
    assert all((tmp_path / name).is_dir() for name in (SEALED, OPEN, f"{SEALED}.done"))
    # One warning a name, however many reads met it.
    messages = skipped(caplog)
    assert len(messages) == 3
    assert all("kind=directory" in m for m in messages)
    listed = cli("replay", str(tmp_path), "--list")
    assert (listed.returncode, listed.stdout.splitlines()[0]) == (0, "total: 0")


def test_a_fifo_named_like_a_segment_never_blocks_a_reader(tmp_path: Path) -> None:
    fill(tmp_path, [entry(0)])
    for name in (SEALED, OPEN):
        os.mkfifo(tmp_path / name)
    # In subprocesses, with a time limit: a reader that opened the FIFO would wait for
    # a writer forever.
    listed = cli("replay", str(tmp_path), "--list", timeout=30)
    assert (listed.returncode, listed.stdout.splitlines()[0]) == (0, "db: 1")
    assert "kind=fifo" in listed.stderr
    out = tmp_path / "out.jsonl"
    done = cli("replay", str(tmp_path), "--sink", "db", "--to", str(out), timeout=30)
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) == 1
    assert sorted(seg_files(tmp_path)) == [SEALED, OPEN]  # the FIFOs stay


async def test_a_directory_at_the_old_replay_lock_name_blocks_nothing(tmp_path: Path) -> None:
    fill(tmp_path, [entry(0)])
    (tmp_path / ".replay.lock").mkdir()
    sink = CollectSink("db")
    (await replay(RescueStore(tmp_path), [sink])).check()
    assert len(sink.records) == 1


async def test_a_replay_lock_symlink_is_not_followed(tmp_path: Path) -> None:
    store_dir, outside = tmp_path / "store", tmp_path / "outside"
    outside.mkdir()
    fill(store_dir, [entry(0)])
    (store_dir / ".replay.lock").symlink_to(outside / "created")
    sink = CollectSink("db")
    (await replay(RescueStore(store_dir), [sink])).check()
    assert len(sink.records) == 1
    assert list(outside.iterdir()) == []


async def test_a_symlink_named_like_a_segment_is_not_followed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store_dir, elsewhere = tmp_path / "store", tmp_path / "elsewhere"
    fill(elsewhere, [entry(7)])
    (target,) = seg_files(elsewhere)
    fill(store_dir, [entry(0)])
    (store_dir / SEALED).symlink_to(elsewhere / target)
    store = RescueStore(store_dir)
    with caplog.at_level(logging.WARNING, logger="trio_sink.rescue"):
        assert [e.id for e in store.entries()] == [0]
        sink = CollectSink("db")
        (await replay(store, [sink])).check()
    assert [r.raw for r in sink.records] == ["raw db 0"]
    assert (store_dir / SEALED).is_symlink()
    assert [e.id for e in RescueStore(elsewhere).entries()] == [7]  # untouched
    assert any("kind=symlink" in m for m in skipped(caplog))
