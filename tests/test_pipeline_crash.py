"""A pipeline killed (SIGKILL) while its sink's task stores failed batches: every entry
the child reported stored is read back, a torn last line (if the kill landed mid-write)
is skipped and counted, and a replay delivers them."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from trio_sink import RescueStore, replay
from trio_sink.sinks import CollectSink

CHILD = Path(__file__).parent / "pipeline_crash_child.py"
SINK = "always_fails"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and flock are POSIX")


def kill_after(directory: Path, batch_size: int, at_least: int) -> int:
    """Run the child until it reports at least ``at_least`` entries stored; SIGKILL it.
    Return the last count it reported."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(directory), str(batch_size)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    stored = 0
    try:
        for line in proc.stdout:
            assert line.startswith("stored "), line
            stored = int(line.split()[1])
            if stored >= at_least:
                break
        else:
            raise AssertionError(f"the child ended early with {proc.wait()}")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.stdout.close()
        returncode = proc.wait()
    assert returncode == -signal.SIGKILL
    return stored


async def test_a_pipeline_killed_while_storing_keeps_every_stored_batch(
    tmp_path: Path,
) -> None:
    reported = kill_after(tmp_path, batch_size=3, at_least=60)
    store = RescueStore(tmp_path)
    entries = list(store.entries())
    stats = store.read_stats
    # Whatever was written after the last line printed is there too, but for a torn
    # last line at most.
    assert len(entries) >= reported
    assert stats.torn_lines <= 1
    assert stats.bad_lines == 0
    assert stats.entries == len(entries)
    # Records the child produced, each once, in order, as the sink's task stored them.
    ids = [e.id for e in entries]
    assert ids == list(range(len(entries)))
    assert {(e.run, e.sink, e.stage, e.reason) for e in entries} == {
        ("child", SINK, "sink", "sink raised OSError: sink down")
    }
    assert all(e.raw == e.payload == f"item {e.id}" for e in entries)

    target = CollectSink(SINK)
    report = await replay(store, [target])
    report.check()
    assert report.delivered == {SINK: len(entries)}
    assert [r.raw for r in target.records] == [f"item {i}" for i in ids]
    assert store.pending() == 0


def test_what_a_sigkill_loses_is_bounded_by_the_buffers(tmp_path: Path) -> None:
    # What the README says a SIGKILL takes: the records in memory, up to capacity x
    # batch_size a sink (its buffer), plus those in its hands and the batch the source
    # holds; nothing that was given up before (there is nothing here: the sink hangs).
    child = Path(__file__).parent / "sigkill_child.py"
    with subprocess.Popen(
        [sys.executable, str(child), str(tmp_path)], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        guard = threading.Timer(60.0, proc.kill)  # a child that never says "held" fails
        guard.start()
        try:
            line = proc.stdout.readline()
        finally:
            guard.cancel()
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    assert line.startswith("held "), line
    received = int(line.split()[1])
    capacity, batch = 4, 8
    # The buffer full, a batch in the sink's hands, one waiting in the source's send.
    assert capacity * batch < received <= (capacity + 2) * batch
    with RescueStore(tmp_path) as store:
        assert list(store.entries()) == []  # lost, unreported: what acknowledgements fix
