"""A writer killed (SIGKILL) in the middle of a line: everything written before is read
back, the torn line is skipped and counted, and replay takes the dead writer's segment."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import trio_sink
from trio_sink import RescueStore, replay
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
