"""trio_sink.sources: lines of pipes and files read off the event loop; a file object
given as a source is read so too."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import trio

from trio_sink import ConfigError, Pipeline, Route
from trio_sink.sinks import CollectSink
from trio_sink.sources import LinesSource, StdinSource

CHILD = Path(__file__).with_name("stdin_child.py")
PROJECT = Path(__file__).parent.parent


def _run(source: Any, **kwargs: Any) -> list[Any]:
    sink = CollectSink()
    report = trio.run(Pipeline(source, routes=[Route("r", sink)], **kwargs).run)
    report.check()
    assert report.ok
    return [r.raw for r in sink.records]


def test_lines_of_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_bytes(b"a\nb\r\nc\xff\nlast")
    with open(path) as f:
        assert _run(LinesSource(f)) == ["a", "b", "c\udcff", "last"]
    with open(path, "rb") as f:
        assert _run(LinesSource(f)) == [b"a", b"b", b"c\xff", b"last"]
    with open(path, "rb") as f:
        assert _run(LinesSource(f, keepends=True)) == [b"a\n", b"b\r\n", b"c\xff\n", b"last"]


def test_a_file_given_as_the_source_gives_what_iterating_it_gives(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_text("one\ntwo\r\nthree")
    with open(path) as f:
        expected = list(f)
    with open(path) as f:
        assert _run(f) == expected == ["one\n", "two\n", "three"]


def test_an_in_memory_file_stays_a_plain_iterable() -> None:
    assert _run(io.StringIO("x\ny\n")) == ["x\n", "y\n"]


def test_a_stream_without_a_file_descriptor_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="file descriptor"):
        LinesSource(io.StringIO("x"))


def test_stdin_source_needs_a_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(ConfigError, match="no standard input"):
        StdinSource()


def _feed(w: IO[bytes], lines: list[bytes], delivered: list[threading.Event]) -> None:
    """Write each whole line, then wait until the pipeline has delivered it before the
    next; then the last, partial line (delivered at the end of the input), and close."""
    try:
        for line, done in zip(lines[:-1], delivered, strict=False):
            w.write(line)
            w.flush()
            if not done.wait(30.0):
                return  # not delivered while the pipe stayed open: the test fails below
        w.write(lines[-1])
    finally:
        w.close()


def test_lines_of_a_slow_pipe_are_delivered_while_the_pipe_stays_open() -> None:
    # A real pipe whose writer sends the next line only once the last one was delivered:
    # with a sync iterable over the pipe, nothing would move until the pipe closed. The
    # batch_timeout (0.05 s) sends each line on alone.
    r, w = os.pipe()
    lines = [b"a\n", b"b\n", b"c"]
    delivered = [threading.Event() for _ in lines]
    got: list[bytes] = []
    feeder = threading.Thread(target=_feed, args=(os.fdopen(w, "wb"), lines, delivered))

    async def sink(batch: Any) -> None:
        for r in batch:
            delivered[len(got)].set()
            got.append(r.raw)

    with os.fdopen(r, "rb") as stream:
        feeder.start()
        pipeline = Pipeline(LinesSource(stream), routes=[Route("r", sink)], batch_timeout=0.05)
        report = trio.run(pipeline.run)
    feeder.join()
    assert report.ok
    assert got == [b"a", b"b", b"c"]
    assert all(done.is_set() for done in delivered)


def _slow_lines() -> Iterator[str]:
    yield "a"
    time.sleep(0.15)  # a blocking pull: the event loop waits with it
    yield "b"


def test_a_sync_source_that_holds_the_event_loop_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_sink")
    assert _run(_slow_lines(), batch_size=1) == ["a", "b"]
    blocking = [r.getMessage() for r in caplog.records if "source.blocking" in r.getMessage()]
    assert len(blocking) == 1
    assert "LinesSource" in blocking[0]


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The child's next line, waiting at most ``timeout`` seconds."""
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    assert out, f"no line from the child within {timeout} s"
    return out[0].rstrip("\n")


def test_a_pipeline_on_a_slow_stdin_delivers_as_it_reads_and_stops_on_sigterm() -> None:
    # Real processes, a real pipe, a real signal: the child runs a pipeline over its
    # stdin under serve(); this test writes a line every 0.2 s, checks that each is
    # delivered before the next is written, then sends SIGTERM without closing stdin.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")])),
    }
    with subprocess.Popen(
        [sys.executable, str(CHILD)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdin is not None
        try:
            assert _read_line(proc, 30.0) == "ready"
            written = []
            for i in range(5):
                line = f"line {i}"
                proc.stdin.write(line + "\n")
                proc.stdin.flush()
                written.append(line)
                assert _read_line(proc, 10.0) == f"delivered {line}"
                time.sleep(0.2)
            proc.stdin.write("line 5\n")  # written before the signal, maybe not read yet
            proc.stdin.flush()
            written.append("line 5")
            began = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            lines = [f"delivered {line}" for line in written[:5]]
            while not (line := _read_line(proc, 10.0)).startswith("report "):
                lines.append(line)
            status = proc.wait(10.0)
            assert time.monotonic() - began < 8.0  # the drain deadline is 2 s
            report = json.loads(line.removeprefix("report "))
        finally:
            proc.kill()
    delivered = [line.removeprefix("delivered ") for line in lines]
    # Every line written before the signal was delivered, reported, or not read at all
    # (still in the pipe: never received); none was taken and lost.
    assert report["received"] in (5, 6)
    assert sorted(delivered + report["lost"]) == written[: report["received"]]
    assert status == (0 if not report["lost"] else 3)
