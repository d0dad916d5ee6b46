"""``python -m trio_sink replay`` as operators run it: real subprocesses, real pipes,
real signals."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from rescue_helpers import child_env, cli, entry, fill

from trio_sink import RescueStore

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pipes")


def test_help_is_plain_text_with_the_exit_statuses() -> None:
    top = cli("--help")
    sub = cli("replay", "--help")
    assert (top.returncode, sub.returncode) == (0, 0)
    for text in (top.stdout, sub.stdout):
        assert "``" not in text
        assert ":data:" not in text
        assert ":class:" not in text
    assert "Command-line tools of trio_sink." in top.stdout
    assert "exit status:" in sub.stdout
    assert "  4    lines no reader can decode" in sub.stdout


@posix_only
def test_list_into_a_pipe_closed_early_exits_quietly(tmp_path: Path) -> None:
    # Far more output than a pipe holds: the command is still writing when the reader
    # goes away, as with ``| head``.
    fill(tmp_path, [entry(i, f"sink-{i:05d}") for i in range(20_000)])
    proc = subprocess.Popen(
        [sys.executable, "-m", "trio_sink", "replay", str(tmp_path), "--list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    assert proc.stdout.readline() == b"sink-00000: 1\n"
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert (proc.wait(timeout=60), err) == (141, b"")


@posix_only
def test_ctrl_c_during_a_replay_says_the_store_is_consistent_and_exits_130(
    tmp_path: Path,
) -> None:
    (tmp_path / "stuck_sinks.py").write_text(
        "import sys, trio\n"
        "class Stuck:\n"
        "    name = 'db'\n"
        "    async def write(self, batch):\n"
        "        print('writing', flush=True, file=sys.stderr)\n"
        "        await trio.sleep_forever()\n"
        "SINKS = [Stuck()]\n"
    )
    store_dir = tmp_path / "store"
    fill(store_dir, [entry(i) for i in range(10)])
    env = child_env()
    env["PYTHONPATH"] = f"{env['PYTHONPATH']}:{tmp_path}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trio_sink",
            "replay",
            str(store_dir),
            "--sinks",
            "stuck_sinks:SINKS",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    try:
        assert proc.stderr.readline() == "writing\n"  # the replay has started
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out) == (130, "")
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        "interrupted: the store is consistent (what was not delivered is still in it);"
        " replay again to resume"
    ]
    assert RescueStore(store_dir).pending() == 10


def test_list_escapes_control_characters_of_sink_names(tmp_path: Path) -> None:
    fill(tmp_path, [entry(0, "a\x1b[2Jb"), entry(1, "line\nbreak"), entry(2, "plain")])
    done = cli("replay", str(tmp_path), "--list")
    assert done.returncode == 0
    assert done.stdout.splitlines()[:4] == [
        "a\\x1b[2Jb: 1",
        "line\\nbreak: 1",
        "plain: 1",
        "total: 3",
    ]
    assert "\x1b" not in done.stdout


def test_a_replay_that_leaves_entries_held_by_a_live_writer_says_so_and_exits_3(
    tmp_path: Path,
) -> None:
    store_dir, out = tmp_path / "store", tmp_path / "out.jsonl"
    fill(store_dir, [entry(0)])
    with RescueStore(store_dir) as live:  # a writer of this process, still writing
        live.write([entry(1), entry(2)])
        done = cli("replay", str(store_dir), "--sink", "db", "--to", str(out))
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    assert "delivered to out.jsonl: 1 of 3" in lines
    assert "held by live writers: 2" in lines
    assert any(line.startswith("  2 for out.jsonl: held by a live writer: seg-") for line in lines)
    assert len(out.read_text().splitlines()) == 1
    # Sealed, they are replayed.
    again = cli("replay", str(store_dir), "--sink", "db", "--to", str(out))
    assert again.returncode == 0
    assert "held by live writers: 0" in again.stdout.splitlines()
    assert len(out.read_text().splitlines()) == 3
