"""A writer killed (SIGKILL) in the middle of a line: everything written before is read
back, the torn line is skipped, counted and kept in the quarantine, and replay takes the
dead writer's segment. A replay killed at any point: no entry lost, none stored twice
but those of the batch in flight."""

from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import trio

import trio_sink
from trio_sink import Record, RescueEntry, RescueStore, replay
from trio_sink.sinks import CollectSink

CHILD = Path(__file__).parent / "rescue_crash_child.py"
# The child imports the trio_sink that this test imported, not whichever one is
# installed: its script's directory comes first on its path, not the project's.
PROJECT = str(Path(trio_sink.__file__).parent.parent)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and flock are POSIX")


def seg_names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(("seg-", ".seg-")))


def kill_mid_line(directory: Path, batches: int, size: int) -> int:
    """Run the child until it has written ``batches`` and half a line; SIGKILL it.
    Return how many entries it reported written."""
    pythonpath = os.environ.get("PYTHONPATH")
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(directory), str(batches), str(size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [PROJECT, pythonpath]))},
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    written = 0
    try:
        for line in proc.stdout:
            if line.startswith("wrote "):
                written = int(line.split()[1])
            elif line == "torn\n":
                break
        else:
            raise AssertionError(f"the child ended early with {proc.wait()}")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.stdin.close()
        proc.stdout.close()
        returncode = proc.wait()
    assert returncode == -signal.SIGKILL
    return written


async def test_a_writer_killed_mid_line_loses_only_that_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    written = kill_mid_line(tmp_path, batches=6, size=7)  # 42 entries: 25 + 17 + torn
    assert written == 42
    names = seg_names(tmp_path)
    assert [n.rsplit(".", 1)[-1] for n in names] == ["jsonl", "open"]

    store = RescueStore(tmp_path)
    with caplog.at_level(logging.WARNING, logger="trio_sink.rescue"):
        got = list(store.entries())
    assert [e.id for e in got] == list(range(42))
    assert {(e.run, e.sink) for e in got} == {("child", "db")}
    assert store.torn_lines == 1
    assert store.read_stats.bad_lines == 0
    assert [r.getMessage().split()[0] for r in caplog.records] == ["rescue.torn_line"]

    sink = CollectSink("db")
    report = await replay(store, [sink])
    report.check()
    assert report.delivered == {"db": 42}
    assert [r.raw for r in sink.records] == [f"raw {i}" for i in range(42)]
    assert seg_names(tmp_path) == []
    (kept,) = (tmp_path / "quarantine").iterdir()
    assert kept.read_bytes() == b'{"v":1,"run":"child","id":42,"time":17'
    assert store.read_stats.quarantined == 1


def kill_replay_at(directory: Path, stop_at: int, *, fail: bool) -> tuple[str, list[str]]:
    """Run a replay of ``directory``'s "db" entries in the child, and SIGKILL it at its
    ``stop_at``-th fsync after the sink was written to. Return ``"killed"`` or
    ``"done"`` (it ended first), and the raws it delivered."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), "replay", str(directory), str(stop_at), "1" if fail else "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [PROJECT, os.environ.get("PYTHONPATH")])),
        },
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    delivered: list[str] = []
    outcome = "done"
    try:
        for line in proc.stdout:
            if line.startswith("delivered "):
                delivered.append(line.split(" ", 1)[1].strip())  # one record a batch here
            elif line.startswith("fsync "):
                outcome = "killed"
                proc.send_signal(signal.SIGKILL)
                break
            elif line == "done\n":
                break
        else:
            raise AssertionError(f"the child ended early with {proc.wait()}")
    finally:
        proc.stdin.close()
        proc.stdout.close()
        returncode = proc.wait()
    assert returncode == (-signal.SIGKILL if outcome == "killed" else 0)
    return outcome, delivered


@pytest.mark.parametrize("fail", [False, True], ids=["delivered", "failed_again"])
def test_a_replay_killed_at_any_point_stores_no_entry_twice_but_the_batch_in_flight(
    tmp_path: Path, fail: bool
) -> None:
    # 1,000 entries for "web" and one for "db"; the replay takes "db" only. Killed at
    # each fsync after its write (every step of its commit), the store holds every
    # "web" entry once, and the "db" entry once, or twice (its copy with the new
    # reason, and its line) when it failed again: the batch in flight, no more.
    written = [
        *(
            RescueEntry.from_record(Record(i, f"web {i}", i), sink="web", reason="r", run="x")
            for i in range(1000)
        ),
        RescueEntry.from_record(Record(1000, "db 1000", 1000), sink="db", reason="r", run="x"),
    ]
    stop_at = 0
    outcome = "killed"
    while outcome == "killed":
        stop_at += 1
        directory = tmp_path / f"kill-{stop_at}"
        with RescueStore(directory) as store:
            store.write(written)
        outcome, delivered = kill_replay_at(directory, stop_at, fail=fail)
        assert delivered == ["db 1000"]
        left = Counter(e.sink for e in RescueStore(directory).entries())
        assert left["web"] == 1000, (stop_at, left)
        assert left["db"] in ((1, 2) if fail else (0, 1)), (stop_at, left)
        # Whatever the point, a later replay of "web" delivers each of its entries once.
        web = CollectSink("web")
        report = trio.run(functools.partial(replay, RescueStore(directory), [web], sink_name="web"))
        report.check()
        assert sorted(r.payload for r in web.records) == list(range(1000))
    assert stop_at > 1  # it was killed at least once
