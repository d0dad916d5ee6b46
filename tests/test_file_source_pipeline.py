"""FileSource end to end, through ``Pipeline(...).run()``: the pipeline acknowledges what
was delivered or stored, the checkpoint follows, and a restart reads again exactly what
was not safe. Real files, real worker threads, real time (short)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from trio_sink import (
    NO_RETRY,
    Infra,
    PermanentError,
    Pipeline,
    Record,
    RescueStore,
    Route,
    Undecodable,
)
from trio_sink.sinks import CollectSink
from trio_sink.sources import FileSource
from trio_sink.testing import running

PATIENCE = 30.0


class Refusing:
    """Delivers every record but those whose line is in ``bad``: a batch holding one
    raises :class:`PermanentError` (no retry)."""

    def __init__(self, name: str, bad: set[str]) -> None:
        self.name = name
        self.bad = bad
        self.records: list[Record] = []

    async def write(self, batch: Sequence[Record]) -> None:
        if any(r.raw in self.bad for r in batch):
            raise PermanentError("refused")
        self.records.extend(batch)


def offset(cp: Path) -> int:
    value: int = json.loads(cp.read_bytes())["offset"]
    return value


def lines_file(path: Path, n: int) -> list[str]:
    lines = [f"line {i}" for i in range(n)]
    path.write_text("".join(f"{line}\n" for line in lines))
    return lines


def end_of(lines: list[str], n: int) -> int:
    """The offset just after the first ``n`` of ``lines``."""
    return sum(len(line) + 1 for line in lines[:n])


async def test_a_run_checkpoints_every_delivered_line_and_a_rerun_reads_nothing(
    tmp_path: Path,
) -> None:
    path, cp = tmp_path / "app.log", tmp_path / "cp.json"
    lines = lines_file(path, 1000)
    a, b = CollectSink("a"), CollectSink("b")
    source = FileSource(path, checkpoint=cp)
    report = await Pipeline(source, routes=[Route("all", [a, b])], batch_size=64).run()
    report.check()
    assert report.ok
    assert report.acknowledged == 1000
    assert [r.raw for r in a.records] == [r.raw for r in b.records] == lines
    assert offset(cp) == path.stat().st_size
    assert source.statistics().unacknowledged == 0
    again = CollectSink("a")
    report = await Pipeline(FileSource(path, checkpoint=cp), routes=[Route("all", again)]).run()
    assert (report.received, again.records) == (0, [])


async def test_without_a_store_the_checkpoint_stops_before_the_first_undelivered_line(
    tmp_path: Path,
) -> None:
    path, cp = tmp_path / "app.log", tmp_path / "cp.json"
    lines = lines_file(path, 200)
    good, refusing = CollectSink("good"), Refusing("refusing", {"line 77"})
    report = await Pipeline(
        FileSource(path, checkpoint=cp),
        routes=[Route("all", [good, refusing])],
        batch_size=10,
        retry=NO_RETRY,
    ).run()
    report.check()
    assert [u.record.raw for u in report.undelivered] == lines[70:80]  # its batch
    assert len(good.records) == 200
    assert report.acknowledged == 70
    assert offset(cp) == end_of(lines, 70)
    # The next run reads again from the first line that was not safe.
    again = CollectSink("again")
    report = await Pipeline(FileSource(path, checkpoint=cp), routes=[Route("all", again)]).run()
    assert [r.raw for r in again.records] == lines[70:]
    assert offset(cp) == path.stat().st_size


async def test_with_a_store_the_checkpoint_reaches_the_end(tmp_path: Path) -> None:
    path, cp = tmp_path / "app.log", tmp_path / "cp.json"
    lines = lines_file(path, 200)
    refusing = Refusing("refusing", {"line 5", "line 77", "line 199"})
    with RescueStore(tmp_path / "rescue") as store:
        report = await Pipeline(
            FileSource(path, checkpoint=cp),
            routes=[Route("all", refusing)],
            batch_size=10,
            retry=NO_RETRY,
            rescue=store,
        ).run()
        report.check()
        assert len(report.undelivered) == 30
        assert all(u.stored for u in report.undelivered)
        stored = sorted(int(e.raw.split()[1]) for e in store.entries())
    assert report.acknowledged == 200
    assert offset(cp) == path.stat().st_size
    delivered = [int(r.raw.split()[1]) for r in refusing.records]
    assert sorted(delivered + stored) == list(range(len(lines)))


async def test_an_undecodable_line_goes_to_miss_and_is_acknowledged(tmp_path: Path) -> None:
    path, cp = tmp_path / "app.log", tmp_path / "cp.json"
    path.write_bytes(b"a\n\xff\xfe\nb\n")
    kept, misses = CollectSink("kept"), CollectSink("misses")
    report = await Pipeline(
        FileSource(path, checkpoint=cp),
        parse=str.upper,
        routes=[Route("all", kept)],
        infra=Infra(miss=misses),
    ).run()
    report.check()
    assert [r.payload for r in kept.records] == ["A", "B"]
    [miss] = misses.records
    assert isinstance(miss.raw, Undecodable)
    assert miss.raw.data == b"\xff\xfe"
    assert report.acknowledged == 3
    assert offset(cp) == path.stat().st_size


async def wait_for(condition: Any) -> None:
    with trio.fail_after(PATIENCE):
        while not condition():  # noqa: ASYNC110 - a file and a sink: nothing to wait on
            await trio.sleep(0.005)


async def test_following_a_file_until_a_stop_loses_nothing(tmp_path: Path) -> None:
    path, cp = tmp_path / "app.log", tmp_path / "cp.json"
    lines = lines_file(path, 50)
    sink = CollectSink("all")
    source = FileSource(path, checkpoint=cp, follow=True, poll_interval=0.005)
    pipeline = Pipeline(source, routes=[Route("all", sink)], batch_size=16, batch_timeout=0.01)
    async with running(pipeline) as handle:
        await wait_for(lambda: len(sink.records) == 50)
        with path.open("a") as f:
            f.write("line 50\nline 51\nrotated soon")
        path.rename(tmp_path / "app.log.1")
        with (tmp_path / "app.log.1").open("a") as f:
            f.write("\n")
        path.write_text("new 0\n")
        await wait_for(lambda: len(sink.records) == 54)
        handle.stop()  # the source waits for more: its wait is cancelled at once
    report = await handle.wait()
    report.check()
    assert report.ok
    assert [r.raw for r in sink.records] == [*lines, "line 50", "line 51", "rotated soon", "new 0"]
    assert report.acknowledged == 54
    # The checkpoint names the new file, past its one line.
    point = json.loads(cp.read_bytes())
    assert (point["inode"], point["offset"]) == (path.stat().st_ino, 6)
    with path.open("a") as f:
        f.write("new 1\n")
    again = CollectSink("again")
    await Pipeline(FileSource(path, checkpoint=cp), routes=[Route("all", again)]).run()
    assert [r.raw for r in again.records] == ["new 1"]
