"""StdoutSink, on real pipes, files and in-memory streams."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from sink_helpers import as_records, parse_lines, recs

from trio_sink import ConfigError, PermanentError, Pipeline, Record, Route
from trio_sink._json_lines import JsonLines
from trio_sink.sinks import JsonlFileSink, StdoutSink
from trio_sink.testing import check_sink

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes")


def lines(batch: list[Record]) -> bytes:
    return JsonLines().lines(batch)


class Pipe:
    """A real pipe: the sink writes to ``writer`` (blocking, as a standard output is);
    the test reads the other end without blocking."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        self.writer = open(self.w, "wb", buffering=0, closefd=False)  # noqa: SIM115
        self.got = b""

    def drain(self) -> bytes:
        """What the pipe holds now (also kept in :attr:`got`)."""
        chunks = []
        while True:
            try:
                chunk = os.read(self.r, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        self.got += b"".join(chunks)
        return b"".join(chunks)

    def records(self) -> list[Record]:
        self.drain()
        return as_records(parse_lines(self.got))

    def fill(self) -> bytes:
        """Fill the pipe to the last byte; what was written."""
        os.set_blocking(self.w, False)
        filler = b""
        try:
            for size in (1 << 16, 1):
                while True:
                    try:
                        filler += b"x" * os.write(self.w, b"x" * size)
                    except BlockingIOError:
                        break
        finally:
            os.set_blocking(self.w, True)
        return filler

    def close_reader(self) -> None:
        os.close(self.r)
        self.r = -1

    def close(self) -> None:
        self.writer.close()
        for fd in (self.r, self.w):
            if fd >= 0:
                os.close(fd)


@pytest.fixture
def pipe() -> Iterator[Pipe]:
    p = Pipe()
    yield p
    p.close()


@pytest.fixture
def out_file(tmp_path: Path) -> Iterator[io.BufferedWriter]:
    """``tmp_path / "out"``, open for appending."""
    with open(tmp_path / "out", "ab") as f:
        yield f


@pytest.fixture
def dev_null() -> Iterator[io.BufferedWriter]:
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    with open("/dev/null", "wb") as f:
        yield f


async def read_until_closed(fd: int, into: bytearray) -> None:
    """Read the pipe as a slow reader would, a small piece a time, until it is closed."""
    while True:
        await trio.lowlevel.wait_readable(fd)
        try:
            chunk = os.read(fd, 1000)
        except BlockingIOError:
            continue
        if not chunk:
            return
        into += chunk


# -- pipes --------------------------------------------------------------------------------


async def test_writes_the_lines_jsonl_file_sink_writes(pipe: Pipe, tmp_path: Path) -> None:
    batch = [Record(0, "a b", {"k": [1, 2]}), Record(1, b"\xff", None, rest="tail")]
    sink = StdoutSink(stream=pipe.writer)
    await sink.write(batch)
    await sink.flush()
    await sink.aclose()
    file_sink = JsonlFileSink(tmp_path / "x.jsonl")
    await file_sink.write(batch)
    await file_sink.aclose()
    assert pipe.drain() == (tmp_path / "x.jsonl").read_bytes()
    assert not pipe.writer.closed  # the stream is not the sink's to close


async def test_a_closed_pipe_raises_permanent_error(pipe: Pipe) -> None:
    pipe.close_reader()
    sink = StdoutSink(name="out", stream=pipe.writer)
    for _ in range(2):
        with pytest.raises(PermanentError, match=r"^out: the output is closed \(broken pipe") as e:
            await sink.write(recs(0, 2))
        assert isinstance(e.value.__cause__, BrokenPipeError)


async def test_a_closed_pipe_in_a_pipeline_reports_every_record_and_retries_none(
    pipe: Pipe, caplog: pytest.LogCaptureFixture
) -> None:
    pipe.close_reader()
    sink = StdoutSink(stream=pipe.writer)
    report = await Pipeline(range(5), routes=[Route("all", sink)], batch_size=2).run()
    report.check()
    assert report.delivered["stdout"] == 0
    assert [u.record.id for u in report.undelivered] == [0, 1, 2, 3, 4]
    assert all(u.reason.startswith("sink raised PermanentError: ") for u in report.undelivered)
    assert not [r for r in caplog.records if r.getMessage().startswith("sink.retry")]


async def test_a_full_pipe_holds_the_write_not_the_event_loop(pipe: Pipe) -> None:
    filler = pipe.fill()
    sink = StdoutSink(stream=pipe.writer)
    done = trio.Event()

    async def write() -> None:
        await sink.write(recs(0, 3))
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write)
        await trio.testing.wait_all_tasks_blocked()  # the loop runs: this task does
        assert not done.is_set()
        assert pipe.drain() == filler  # room again: the write goes on
        await done.wait()
    assert pipe.drain() == lines(recs(0, 3))


async def test_cancelled_while_the_pipe_is_full_it_writes_nothing(pipe: Pipe) -> None:
    filler = pipe.fill()
    sink = StdoutSink(stream=pipe.writer)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sink.write, recs(0, 3))
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert pipe.drain() == filler
    await sink.write(recs(3, 1))
    assert pipe.drain() == lines(recs(3, 1))  # no newline first: nothing was cut


async def test_a_line_cut_by_a_cancellation_stands_alone(pipe: Pipe) -> None:
    # Lines of an odd length: the pipe's capacity, a power of two, ends inside one.
    batch = [Record(i, "y" * 1001, {"i": i}) for i in range(100, 300)]
    data = lines(batch)
    assert len({len(line) for line in data.splitlines(keepends=True)}) == 1
    assert len(data.splitlines(keepends=True)[0]) % 2 == 1
    sink = StdoutSink(stream=pipe.writer)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sink.write, batch)
        await trio.testing.wait_all_tasks_blocked()  # the pipe is full
        nursery.cancel_scope.cancel()
    first = pipe.drain()
    assert 0 < len(first) < len(data)
    assert data.startswith(first)
    assert not first.endswith(b"\n")
    await sink.write(recs(0, 2))
    assert pipe.drain() == b"\n" + lines(recs(0, 2))
    await sink.write(recs(2, 1))
    assert pipe.drain() == lines(recs(2, 1))
    # What a reader sees: whole lines, the cut one alone on its line, whole lines.
    *whole, cut, after0, after1, after2, end = pipe.got.split(b"\n")
    assert [json.loads(line)["id"] for line in whole] == list(range(100, 100 + len(whole)))
    assert data.splitlines()[len(whole)].startswith(cut)
    assert [json.loads(line)["id"] for line in (after0, after1, after2)] == [0, 1, 2]
    assert end == b""


async def test_a_batch_larger_than_the_pipe_reaches_a_slow_reader(pipe: Pipe) -> None:
    batch = [Record(i, "z" * 500, {"i": i}) for i in range(1000)]  # about 0.5 MB
    got = bytearray()
    sink = StdoutSink(stream=pipe.writer)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_until_closed, pipe.r, got)
        await sink.write(batch)
        await sink.write(recs(1000, 1))
        pipe.writer.close()
        os.close(pipe.w)
        pipe.w = -1
    assert bytes(got) == lines(batch) + lines(recs(1000, 1))


async def test_sinks_sharing_a_pipe_write_one_batch_at_a_time(pipe: Pipe) -> None:
    got = bytearray()
    sinks = [StdoutSink(name=f"out{i}", stream=pipe.writer) for i in range(3)]
    batches = [[Record(i * 100 + j, "w" * 3000, {"i": i}) for j in range(40)] for i in range(3)]
    async with trio.open_nursery() as reading:
        reading.start_soon(read_until_closed, pipe.r, got)
        async with trio.open_nursery() as writing:
            for sink, batch in zip(sinks, batches, strict=True):
                writing.start_soon(sink.write, batch)
        os.close(pipe.w)
        pipe.w = -1
    ids = [obj["id"] for obj in parse_lines(bytes(got))]
    runs = [ids[k : k + 40] for k in range(0, 120, 40)]
    assert sorted(runs) == [[r.id for r in batch] for batch in batches]


async def test_a_pipeline_to_a_pipe(pipe: Pipe) -> None:
    got = bytearray()
    sink = StdoutSink(stream=pipe.writer)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_until_closed, pipe.r, got)
        report = await Pipeline(range(300), routes=[Route("all", sink)], batch_size=16).run()
        os.close(pipe.w)
        pipe.w = -1
    report.check()
    assert report.delivered["stdout"] == 300
    assert [obj["payload"] for obj in parse_lines(bytes(got))] == list(range(300))


async def test_a_text_stream_is_flushed_before_the_first_write(pipe: Pipe) -> None:
    text = io.TextIOWrapper(io.FileIO(pipe.w, "w", closefd=False), encoding="utf-8")
    try:
        text.write("printed before\n")  # still in the stream's buffer
        sink = StdoutSink(stream=text)
        await sink.write(recs(0, 1))
        assert pipe.drain() == b"printed before\n" + lines(recs(0, 1))
    finally:
        text.close()


async def test_a_pipe_conforms(autojump_clock: trio.testing.MockClock, pipe: Pipe) -> None:
    await check_sink(lambda: StdoutSink(stream=pipe.writer), delivered=lambda s: pipe.records())


async def test_a_terminal() -> None:
    controller, terminal = os.openpty()
    try:
        with io.FileIO(terminal, "w", closefd=False) as stream:
            sink = StdoutSink(stream=stream)
            await sink.write(recs(0, 2))
        expected = lines(recs(0, 2)).replace(b"\n", b"\r\n")  # as the terminal shows it
        got = b""
        with trio.fail_after(30):
            while len(got) < len(expected):
                await trio.lowlevel.wait_readable(controller)
                got += os.read(controller, 65536)
        assert got == expected
    finally:
        os.close(terminal)
        os.close(controller)


# -- files, devices, memory ---------------------------------------------------------------


async def test_a_regular_file(out_file: io.BufferedWriter, tmp_path: Path) -> None:
    sink = StdoutSink(stream=out_file)
    await sink.write(recs(0, 2))
    await sink.write(recs(2, 1))
    await sink.aclose()
    assert (tmp_path / "out").read_bytes() == lines(recs(0, 3))


async def test_a_regular_file_conforms(
    autojump_clock: trio.testing.MockClock, out_file: io.BufferedWriter, tmp_path: Path
) -> None:
    await check_sink(
        lambda: StdoutSink(stream=out_file),
        delivered=lambda s: as_records(parse_lines((tmp_path / "out").read_bytes())),
    )


async def test_dev_null_takes_everything(dev_null: io.BufferedWriter) -> None:
    sink = StdoutSink(stream=dev_null)
    await sink.write(recs(0, 1000))


@pytest.mark.parametrize("stream_type", [io.BytesIO, io.StringIO])
async def test_an_in_memory_stream(stream_type: type[io.BytesIO | io.StringIO]) -> None:
    stream: Any = stream_type()
    sink = StdoutSink(stream=stream)
    await sink.write(recs(0, 2))
    value = stream.getvalue()
    assert (value if isinstance(value, bytes) else value.encode()) == lines(recs(0, 2))


async def test_an_in_memory_stream_conforms(autojump_clock: trio.testing.MockClock) -> None:
    stream = io.StringIO()
    await check_sink(
        lambda: StdoutSink(stream=stream),
        delivered=lambda s: as_records(parse_lines(stream.getvalue().encode())),
    )


async def test_the_standard_output_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    sink = StdoutSink()
    assert (sink.name, sink.stream) == ("stdout", out)
    await sink.write(recs(0, 1))
    assert out.getvalue().encode() == lines(recs(0, 1))


def test_no_standard_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", None)
    with pytest.raises(ConfigError, match=r"no standard output \(sys.stdout is None\)"):
        StdoutSink()


def test_the_stream_must_be_a_file_object() -> None:
    with pytest.raises(ConfigError, match="stream must be a file object, got 42"):
        StdoutSink(stream=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="name must be a non-empty str"):
        StdoutSink(name="", stream=io.BytesIO())


async def test_output_is_logged_nowhere(pipe: Pipe, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        await StdoutSink(stream=pipe.writer).write(recs(0, 1))
    assert caplog.records == []


async def test_an_empty_batch_writes_nothing(pipe: Pipe) -> None:
    sink = StdoutSink(stream=pipe.writer)
    await sink.write([])
    assert pipe.drain() == b""
