"""``trio-sink top``: its table, and the command against ``trio-sink run --stat-addr``
run as real processes (the port read from the run's log line)."""

from __future__ import annotations

import contextlib
import io
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import msgspec
import pytest
import trio
from stat_helpers import snapshot

from trio_sink._stat_address import StatAddress
from trio_sink._stat_server import CLIENT_SECONDS, open_stat_server, statistics_document
from trio_sink._stats import DrainStatistics
from trio_sink._top import header_line, plain_table, sink_rows, top

ROOT = Path(__file__).resolve().parent.parent
WAIT = 60.0
"""The longest a test waits for a process to say something or to end."""


def doc(t: float = 5.0, delivered: int = 10, **more: Any) -> dict[str, Any]:
    stats = snapshot(t, delivered, **more)
    decoded: dict[str, Any] = msgspec.json.decode(
        msgspec.json.encode(statistics_document(stats, t))
    )
    return decoded


def test_the_table_has_a_row_a_sink_and_rates_from_two_readings() -> None:
    first, second = doc(5.0, 10), doc(7.0, 410)
    assert sink_rows(first, None) == [
        ["out", "3", "2", "10", "", "", "", "0", "healthy"],
        ["slow", "0", "0", "5", "", "", "", "1", "unhealthy"],
    ]
    rows = sink_rows(second, first)
    assert [r[4] for r in rows] == ["200", "100"]
    assert [r[4] for r in sink_rows(doc(7.0, 12), first)] == ["1.0", "0.5"]
    # Another run (its clock went back): no rate.
    assert [r[4] for r in sink_rows(doc(1.0, 410), first)] == ["", ""]
    text = plain_table(second, first)
    assert text.splitlines() == [
        "running  received 410  undelivered 1  discarded 4",
        "sink  buffered  in flight  delivered  rate/s  busy  blocking  undelivered  health",
        "out          3          2        410     200    0%        0%            0  healthy",
        "slow         0          0        205     100    0%        0%            1  unhealthy",
    ]


def test_busy_and_blocking_are_shares_of_the_wall_clock_time_between_readings() -> None:
    first, second = doc(5.0, 10), doc(7.0, 410)  # 2 s apart
    first["sinks"]["out"].update(busy_seconds=1.0, blocked_seconds=0.0)
    second["sinks"]["out"].update(busy_seconds=2.5, blocked_seconds=0.5)
    row = sink_rows(second, first)[0]
    assert (row[5], row[6]) == ("75%", "25%")


def test_the_header_tells_the_drain_and_the_acknowledged() -> None:
    draining = doc(
        state="draining",
        drain=DrainStatistics(
            kind="signal",
            started_at=4.0,
            elapsed=1.0,
            pending_left=6,
            deadline=64.0,
            time_left=59.04,
        ),
    )
    draining["source"]["acknowledged"] = 7
    assert header_line(draining) == (
        "draining  received 10  acknowledged 7  undelivered 1  discarded 4\n"
        "draining (signal): 6 pending left, 59.0 s left"
    )
    draining["drain"]["time_left"] = None
    assert header_line(draining).endswith("6 pending left, no deadline")


async def test_top_once_prints_one_table_against_a_server() -> None:
    readings = iter([snapshot(1.0, 10), snapshot(2.0, 30)])
    out, err = io.StringIO(), io.StringIO()
    async with (
        open_stat_server(StatAddress("127.0.0.1", 0)) as server,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(server.serve, lambda: next(readings))
        address = server.addresses[0]
        status = await top(str(address.port), once=True, interval=0.01, out=out, err=err)
        nursery.cancel_scope.cancel()
    assert status == 0, err.getvalue()
    row = out.getvalue().splitlines()[2].split()
    assert row == ["out", "3", "2", "30", "20", "0%", "0%", "0", "healthy"]


async def test_top_says_what_is_wrong_with_an_address_or_an_endpoint() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert await top("nowhere", once=True, interval=1.0, out=out, err=err) == 2
    assert "no port" in err.getvalue()
    assert await top("run.toml", once=True, interval=1.0, out=out, err=err) == 2
    assert "--stat-addr HOST:PORT" in err.getvalue()
    assert await top("1", once=True, interval=0.0, out=out, err=err) == 2
    port = free_port()
    assert await top(f":{port}", once=True, interval=1.0, out=out, err=err) == 1
    assert f"cannot connect to 127.0.0.1:{port}" in err.getvalue()
    assert out.getvalue() == ""


def free_port() -> int:
    """A port where nothing listens (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# The command, as real processes.

CONFIG = """
[pipeline]
batch_timeout = 0.05

[source]
type = "sample"
count = 10000000
rate = 500

[parse]
type = "regex"
pattern = '^(?P<time>\\S+) (?P<level>[A-Z]+) (?P<service>\\w+): (?P<msg>.*)$'

[[routes]]
name = "errors"
when = 'level == "ERROR"'
sinks = ["errors"]

[[routes]]
name = "all"
sinks = ["all"]

[sinks.errors]
type = "jsonl"
path = "errors.jsonl"

[sinks.all]
type = "null"
"""


class Lines:
    """The lines of a process's stream, read by a thread, waited for with a deadline."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + WAIT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self._queue.put(None)
                break
            self.seen.append(line)
            if found := re.search(pattern, line):
                return found
        raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(self.seen)}")

    def rest(self) -> str:
        """Every line up to the end of the stream (call once the process has ended)."""
        while (line := self._queue.get(timeout=WAIT)) is not None:
            self.seen.append(line)
        self._queue.put(None)
        return "".join(self.seen)


@contextlib.contextmanager
def started(*args: str, cwd: Path) -> Iterator[tuple[subprocess.Popen[str], Lines, Lines]]:
    """``trio-sink ARGS`` as a process, its standard output and error read line by line;
    killed if it still runs at the end."""
    with subprocess.Popen(
        [sys.executable, "-m", "trio_sink._cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ) as process:
        out, err = Lines(process.stdout), Lines(process.stderr)
        try:
            yield process, out, err
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(WAIT)
            out.thread.join(WAIT)
            err.thread.join(WAIT)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Lines, str]]:
    """``trio-sink run --stat-addr 127.0.0.1:0`` on a sample source that would go on for
    hours: the process, its log lines, and the address it logged."""
    (tmp_path / "p.toml").write_text(CONFIG)
    with started("run", "p.toml", "--stat-addr", "127.0.0.1:0", cwd=tmp_path) as (process, _, log):
        address = log.wait_for(r"stat\.listening addr=(127\.0\.0\.1:\d+)")[1]
        yield process, log, address


def test_top_once_against_a_real_run(running: tuple[subprocess.Popen[str], Lines, str]) -> None:
    process, log, address = running
    done = subprocess.run(
        [sys.executable, "-m", "trio_sink._cli", "top", address, "--once", "--interval", "0.3"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"running  received \d+  undelivered 0( {2}discarded \d+)?", lines[0])
    assert lines[1].split() == [
        "sink", "buffered", "in", "flight", "delivered", "rate/s", "busy", "blocking",
        "undelivered", "health",
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert list(rows) == ["errors", "all"]
    assert rows["all"][-1] == "healthy"
    assert int(rows["all"][3]) > 0  # the sample source gives 500 lines a second
    assert float(rows["all"][4]) > 0
    process.send_signal(signal.SIGTERM)
    assert process.wait(WAIT) == 0
    assert "exit status 0" in log.rest()


def test_top_follows_a_run_until_it_ends_and_exits_0(
    running: tuple[subprocess.Popen[str], Lines, str], tmp_path: Path
) -> None:
    process, log, address = running
    host, port = address.split(":")
    args = ("top", f"http://{address}", "--interval", "0.2")
    with started(*args, cwd=tmp_path) as (watcher, tables, said):
        tables.wait_for(r"^running  received")
        tables.wait_for(r"^all .* healthy$")
        # A client that connects and says nothing holds neither the endpoint nor the run.
        with socket.create_connection((host, int(port)), timeout=WAIT):
            tables.wait_for(r"^running  received")  # the next reading came
            began = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert process.wait(WAIT) == 0
            assert time.monotonic() - began < CLIENT_SECONDS  # not waiting for the client
        assert watcher.wait(WAIT) == 0
        assert re.search(
            rf"http://{address}/stats went away: the run has ended \(last seen: ", said.rest()
        )
    assert "serve.signal signal=SIGTERM action=stop" in log.rest()


def test_run_refuses_a_bad_stat_addr_or_one_in_use(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(CONFIG)
    with started("run", "p.toml", "--stat-addr", "127.0.0.1:http", cwd=tmp_path) as (bad, _, err):
        assert bad.wait(WAIT) == 2
        assert "--stat-addr: '127.0.0.1:http': the port must be a number" in err.rest()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with started("run", "p.toml", "--stat-addr", f":{port}", cwd=tmp_path) as (busy, _, err):
            assert busy.wait(WAIT) == 2
            said = err.rest()
    assert f"--stat-addr: cannot listen on 127.0.0.1:{port} for statistics: " in said
    assert "pipeline.start" not in said  # nothing started


def test_the_example_to_watch_is_valid() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trio_sink._cli", "validate", str(ROOT / "examples/watch.toml")],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert "ok: a sample source, 1 parse rule, 3 routes, 4 sinks" in done.stdout
