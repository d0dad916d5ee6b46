"""examples/daemon.py, run as a program: TCP clients and stdin, stopped by a signal or by
the end of its input. Real processes and sockets, so real time: every wait is for a line
of output, bounded by a deadline, never a sleep."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_sink import ExitStatus, Miss

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

EXAMPLE = Path(__file__).parent.parent / "examples" / "daemon.py"
DEADLINE = 60.0  # seconds of real time for a whole case: generous, for loaded machines

INFO = "2026-11-28 12:00:00 INFO user=42 msg=hello"
ERROR = "2026-11-28 12:00:01 ERROR user=7 msg=boom"
LAST = "2026-11-28 12:00:02 INFO user=1 msg=bye"


class Output:
    """The lines a process writes to one pipe, gathered as they come."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self.ended = False
        self._changed = trio.Event()

    async def pump(self, stream: trio.abc.ReceiveStream) -> None:
        partial = b""
        async for chunk in stream:
            *lines, partial = (partial + chunk).split(b"\n")
            self._add([line.decode() for line in lines])
        self.ended = True
        self._add([partial.decode()] if partial else [])

    def _add(self, lines: list[str]) -> None:
        self.lines += lines
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, text: str) -> str:
        """The first line that contains ``text``, once it has been written."""
        while True:
            for line in self.lines:
                if text in line:
                    return line
            if self.ended:
                raise AssertionError(f"{text!r} never came on {self.name}: {self.lines}")
            await self._changed.wait()

    async def all(self) -> list[str]:
        while not self.ended:
            await self._changed.wait()
        return self.lines


class Daemon:
    """examples/daemon.py running, with its stdout and stderr gathered."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.stdout = Output("stdout")
        self.stderr = Output("stderr")

    async def exit_status(self) -> int:
        status = await self.process.wait()
        await self.stdout.all()
        await self.stderr.all()
        return status


async def start_daemon(
    nursery: trio.Nursery, tmp_path: Path, *args: str, stdin: Any = subprocess.DEVNULL
) -> Daemon:
    process = await trio.lowlevel.open_process(
        [sys.executable, str(EXAMPLE), "--out", str(tmp_path / "all.jsonl"), *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    daemon = Daemon(process)
    assert process.stdout is not None
    assert process.stderr is not None
    nursery.start_soon(daemon.stdout.pump, process.stdout)
    nursery.start_soon(daemon.stderr.pump, process.stderr)
    return daemon


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("daemon_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def summary_value(daemon: Daemon, label: str) -> str:
    [line] = [line for line in daemon.stdout.lines if line.startswith(label)]
    return line[len(label) :].strip()


# -- its parts ---------------------------------------------------------------------------


def test_the_line_splitter_keeps_partial_lines_across_reads() -> None:
    splitter = load_example().LineSplitter()
    assert splitter.feed(b"first li") == []
    assert splitter.feed(b"ne\r\nsecond\n\nthi") == ["first line", "second", ""]
    assert splitter.feed(b"rd \xff") == []
    assert splitter.end() == ["third \ufffd"]
    assert splitter.end() == []
    assert splitter.feed(b"a\n") == ["a"]


def test_parse_reads_log_lines_and_misses_the_rest() -> None:
    parse = load_example().parse
    assert parse(ERROR) == {
        "time": "2026-11-28 12:00:01",
        "level": "ERROR",
        "user": "7",
        "msg": "boom",
    }
    assert parse("2026-11-28 12:00:01 WARN") == {"time": "2026-11-28 12:00:01", "level": "WARN"}
    for bad in ("", "not a log line", f"{INFO} trailing", f" {INFO}", "2026-11-28 INFO x=1"):
        with pytest.raises(Miss):
            parse(bad)


# -- the program -------------------------------------------------------------------------


async def test_tcp_clients_then_sigint_drains_and_exits_0(tmp_path: Path) -> None:
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, tmp_path, "--tcp", "0")
            try:
                listening = await daemon.stdout.wait_for("listening on 127.0.0.1:")
                port = int(listening.rsplit(":", 1)[1])
                client = await trio.open_tcp_stream("127.0.0.1", port)
                # A line cut in two sends (they may arrive in one read: the splitter's
                # own test covers the cut), a bad line, and a last line with no newline.
                await client.send_all(f"{INFO[:20]}".encode())
                await client.send_all(f"{INFO[20:]}\nnot a log line\n{ERROR}\n".encode())
                await client.send_all(LAST.encode())
                await client.aclose()
                # Each line the client handler logs has been taken by the pipeline.
                closed = await daemon.stderr.wait_for("client.closed peer=127.0.0.1:")
                assert closed.endswith(" lines=4")
                daemon.process.send_signal(signal.SIGINT)
                status = await daemon.exit_status()
            finally:
                daemon.process.kill()  # a no-op once it has exited

    assert status == ExitStatus.OK
    assert "serve.signal signal=SIGINT action=stop" in "\n".join(daemon.stderr.lines)
    assert summary_value(daemon, "received") == "4"
    assert "delivered    3  (all)" in daemon.stdout.lines
    assert "delivered    1  (errors)" in daemon.stdout.lines
    assert summary_value(daemon, "undelivered") == "0"
    assert summary_value(daemon, "not parsed") == "1"
    assert summary_value(daemon, "drain").endswith(" s")
    everything = jsonl(tmp_path / "all.jsonl")
    assert [r["raw"] for r in everything] == [INFO, ERROR, LAST]
    assert [r["id"] for r in everything] == [0, 2, 3]  # id 1 was the bad line
    assert everything[0]["payload"] == {
        "time": "2026-11-28 12:00:00",
        "level": "INFO",
        "user": "42",
        "msg": "hello",
    }
    assert [r["raw"] for r in jsonl(tmp_path / "all.errors.jsonl")] == [ERROR]


async def test_stdin_ends_the_run_with_its_end(tmp_path: Path) -> None:
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(
                nursery,
                tmp_path,
                "--errors-out",
                str(tmp_path / "errors.jsonl"),
                stdin=subprocess.PIPE,
            )
            try:
                stdin = daemon.process.stdin
                assert stdin is not None
                await stdin.send_all(f"{INFO}\r\n{ERROR}\ngarbage\n{LAST}\n".encode())
                await stdin.aclose()
                status = await daemon.exit_status()
            finally:
                daemon.process.kill()

    assert status == 0
    assert "pipeline.stop kind=source exhausted" in "\n".join(daemon.stderr.lines)
    assert "serve.signal" not in "\n".join(daemon.stderr.lines)
    assert summary_value(daemon, "received") == "4"
    assert summary_value(daemon, "not parsed") == "1"
    assert [r["raw"] for r in jsonl(tmp_path / "all.jsonl")] == [INFO, ERROR, LAST]
    assert [r["raw"] for r in jsonl(tmp_path / "errors.jsonl")] == [ERROR]


async def test_sigterm_while_stdin_waits_exits_at_once(tmp_path: Path) -> None:
    # The read that waits on stdin is abandoned at Stop; the process still exits.
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, tmp_path, stdin=subprocess.PIPE)
            try:
                await daemon.stderr.wait_for("pipeline.start")  # serve is listening
                daemon.process.send_signal(signal.SIGTERM)
                status = await daemon.exit_status()
            finally:
                daemon.process.kill()
                assert daemon.process.stdin is not None
                await daemon.process.stdin.aclose()

    assert status == 0
    assert "serve.signal signal=SIGTERM action=stop" in "\n".join(daemon.stderr.lines)
    assert summary_value(daemon, "received") == "0"
