"""The built-in sinks, and plain async functions as sinks."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from trio_sink import Infra, Pipeline, Record, Route, Sink
from trio_sink.sinks import CollectSink, JsonlFileSink, NullSink, SlowSink


def recs(first: int, n: int) -> list[Record]:
    return [Record(i, f"raw{i}", {"i": i}) for i in range(first, first + n)]


# -- NullSink ----------------------------------------------------------------------------


async def test_null_sink_counts_records_and_batches() -> None:
    sink = NullSink()
    assert sink.name == "null"
    assert (sink.count, sink.batches) == (0, 0)
    await sink.write(recs(0, 3))
    await sink.write(recs(3, 2))
    await sink.write([])
    assert (sink.count, sink.batches) == (5, 3)
    await sink.flush()
    await sink.aclose()


def test_null_sink_takes_a_name() -> None:
    assert NullSink("elsewhere").name == "elsewhere"


def test_built_in_sinks_are_sinks() -> None:
    assert isinstance(NullSink(), Sink)
    assert isinstance(CollectSink(), Sink)
    assert isinstance(SlowSink(NullSink()), Sink)


# -- CollectSink -------------------------------------------------------------------------


async def test_collect_sink_keeps_every_record_in_order() -> None:
    sink = CollectSink()
    assert sink.name == "collect"
    first, second = recs(0, 3), recs(3, 2)
    await sink.write(first)
    await sink.write(second)
    assert sink.records == first + second


async def test_collect_sink_copies_the_batch() -> None:
    sink = CollectSink()
    batch = recs(0, 2)
    await sink.write(batch)
    batch.clear()
    assert [r.id for r in sink.records] == [0, 1]


async def test_collect_sink_counts_flush_and_aclose() -> None:
    sink = CollectSink("c")
    assert (sink.flushed, sink.closed) == (0, 0)
    await sink.flush()
    await sink.flush()
    await sink.aclose()
    assert (sink.flushed, sink.closed) == (2, 1)
    assert sink.name == "c"


async def test_collect_sink_is_flushed_and_closed_once_per_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = CollectSink("c")
    report = await Pipeline(range(10), routes=[Route("all", sink)], batch_size=4).run()
    report.check()
    assert [r.id for r in sink.records] == list(range(10))
    assert (sink.flushed, sink.closed) == (1, 1)
    assert report.delivered["c"] == 10


# -- SlowSink ----------------------------------------------------------------------------


async def test_slow_sink_sleeps_per_batch_plus_per_record_on_trio_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    inner = CollectSink("inner")
    sink = SlowSink(inner, per_record=0.25, per_batch=1.5)
    start = trio.current_time()
    await sink.write(recs(0, 4))
    assert trio.current_time() - start == pytest.approx(1.5 + 0.25 * 4)
    assert [r.id for r in inner.records] == [0, 1, 2, 3]
    start = trio.current_time()
    await sink.write([])
    assert trio.current_time() - start == pytest.approx(1.5)


async def test_slow_sink_per_record_only(autojump_clock: trio.testing.MockClock) -> None:
    inner = NullSink("n")
    sink = SlowSink(inner, per_record=0.1)
    start = trio.current_time()
    await sink.write(recs(0, 30))
    assert trio.current_time() - start == pytest.approx(3.0)
    assert inner.count == 30


async def test_slow_sink_writes_to_inner_only_after_sleeping(
    autojump_clock: trio.testing.MockClock,
) -> None:
    inner = CollectSink("inner")
    sink = SlowSink(inner, per_batch=2.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sink.write, recs(0, 1))
        await trio.sleep(1.9)
        assert inner.records == []
        await trio.sleep(0.2)
        assert [r.id for r in inner.records] == [0]


async def test_slow_sink_cancelled_while_sleeping_writes_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    inner = CollectSink("inner")
    sink = SlowSink(inner, per_batch=5.0)
    with trio.move_on_after(1.0) as scope:
        await sink.write(recs(0, 3))
    assert scope.cancelled_caught
    assert inner.records == []


async def test_slow_sink_without_delays_does_not_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    inner = NullSink("n")
    start = trio.current_time()
    await SlowSink(inner).write(recs(0, 3))
    assert trio.current_time() == start
    assert inner.count == 3


async def test_slow_sink_delegates_flush_and_aclose() -> None:
    inner = CollectSink("inner")
    sink = SlowSink(inner, per_record=0.1)
    await sink.flush()
    await sink.aclose()
    assert (inner.flushed, inner.closed) == (1, 1)


async def test_slow_sink_over_an_inner_without_flush_or_aclose() -> None:
    class Bare:
        name = "bare"

        def __init__(self) -> None:
            self.got: list[Record] = []

        async def write(self, batch: Sequence[Record]) -> None:
            self.got.extend(batch)

    inner = Bare()
    sink = SlowSink(inner)
    assert sink.name == "bare"
    await sink.write(recs(0, 1))
    await sink.flush()
    await sink.aclose()
    assert [r.id for r in inner.got] == [0]


def test_slow_sink_name_is_the_inner_name() -> None:
    assert SlowSink(NullSink("slow_bkh"), per_record=0.1).name == "slow_bkh"


@pytest.mark.parametrize(
    ("per_record", "per_batch", "bad"),
    [
        (-0.1, 0.0, "per_record"),
        (0.0, -1.0, "per_batch"),
        (-1.0, -1.0, "per_record"),
        (-1e-9, 0.0, "per_record"),
        (math.nan, 0.0, "per_record"),
        (0.0, math.inf, "per_batch"),
    ],
)
def test_slow_sink_rejects_negative_or_non_finite_delays(
    per_record: float, per_batch: float, bad: str
) -> None:
    with pytest.raises(ValueError, match=f"{bad} must be a finite number of seconds >= 0"):
        SlowSink(NullSink(), per_record=per_record, per_batch=per_batch)


async def test_slow_sink_in_a_pipeline_takes_its_time_on_the_mock_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    inner = CollectSink("slow")
    start = trio.current_time()
    report = await Pipeline(
        range(10), routes=[Route("r", SlowSink(inner, per_record=0.5))], batch_size=5
    ).run()
    report.check()
    assert report.delivered["slow"] == 10
    assert trio.current_time() - start == pytest.approx(5.0)
    assert (inner.flushed, inner.closed) == (1, 1)


# -- JsonlFileSink -----------------------------------------------------------------------


def files_in(directory: Path) -> list[Path]:
    return list(directory.iterdir())


def read_lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


async def test_jsonl_writes_one_object_a_line(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonlFileSink(path)
    await sink.write([Record(0, "a b", {"k": [1, 2]}), Record(1, 7, None)])
    await sink.aclose()
    assert read_lines(path) == [
        {"id": 0, "raw": "a b", "payload": {"k": [1, 2]}},
        {"id": 1, "raw": 7, "payload": None},
    ]


async def test_jsonl_writes_rest_and_error_only_when_set(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonlFileSink(path)
    await sink.write(
        [
            Record(0, "r", "p"),
            Record(1, "r", "p", rest="tail"),
            Record(2, "r", "r", error=ValueError("bad value")),
            Record(3, "r", "p", rest=0),
        ]
    )
    await sink.aclose()
    lines = read_lines(path)
    assert lines[0] == {"id": 0, "raw": "r", "payload": "p"}
    assert lines[1] == {"id": 1, "raw": "r", "payload": "p", "rest": "tail"}
    assert set(lines[2]) == {"id", "raw", "payload", "error"}
    assert lines[2]["error"] == "ValueError: bad value"
    assert lines[3] == {"id": 3, "raw": "r", "payload": "p", "rest": 0}


class Opaque:
    def __repr__(self) -> str:
        return "Opaque(42)"


async def test_jsonl_writes_values_json_cannot_hold_as_repr(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonlFileSink(path)
    await sink.write(
        [
            Record(0, Opaque(), Opaque()),
            Record(1, "r", {"inner": [Opaque()]}),
            Record(2, "r", {"k": 1}, rest=Opaque()),
        ]
    )
    await sink.aclose()
    lines = read_lines(path)
    assert lines[0] == {"id": 0, "raw": "Opaque(42)", "payload": "Opaque(42)"}
    assert lines[1]["payload"] == {"inner": ["Opaque(42)"]}
    assert lines[2]["rest"] == "Opaque(42)"


async def test_jsonl_appends_across_writes(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonlFileSink(path)
    await sink.write(recs(0, 2))
    await sink.write(recs(2, 1))
    await sink.write([])
    await sink.write(recs(3, 2))
    await sink.aclose()
    assert [line["id"] for line in read_lines(path)] == [0, 1, 2, 3, 4]


async def test_jsonl_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": -1}\n', encoding="utf-8")
    first = JsonlFileSink(path)
    await first.write(recs(0, 1))
    await first.aclose()
    second = JsonlFileSink(path)
    await second.write(recs(1, 1))
    await second.aclose()
    assert [line["id"] for line in read_lines(path)] == [-1, 0, 1]


async def test_jsonl_line_is_on_disk_after_write_returns(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonlFileSink(path)
    await sink.write(recs(0, 2))
    # Not closed yet: the write itself must have reached the file.
    assert [line["id"] for line in read_lines(path)] == [0, 1]
    await sink.aclose()


def test_jsonl_name_defaults_to_the_file_name(tmp_path: Path) -> None:
    assert JsonlFileSink(tmp_path / "events.jsonl").name == "events.jsonl"
    assert JsonlFileSink(str(tmp_path / "x.log")).name == "x.log"
    assert JsonlFileSink(tmp_path / "events.jsonl", name="events").name == "events"


def test_jsonl_creates_nothing_before_the_first_write(tmp_path: Path) -> None:
    JsonlFileSink(tmp_path / "out.jsonl")
    assert files_in(tmp_path) == []


async def test_jsonl_flush_fsyncs_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    path = tmp_path / "out.jsonl"
    sink = JsonlFileSink(path)
    await sink.flush()  # nothing written yet: nothing to sync, and no error
    assert synced == []
    await sink.write(recs(0, 1))
    await sink.flush()
    assert len(synced) == 1
    await sink.aclose()
    assert [line["id"] for line in read_lines(path)] == [0]


async def test_jsonl_aclose_twice_is_safe(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonlFileSink(path)
    await sink.write(recs(0, 1))
    await sink.aclose()
    await sink.aclose()
    assert [line["id"] for line in read_lines(path)] == [0]


async def test_jsonl_aclose_without_a_write_is_safe(tmp_path: Path) -> None:
    sink = JsonlFileSink(tmp_path / "out.jsonl")
    await sink.flush()
    await sink.aclose()
    await sink.aclose()
    assert files_in(tmp_path) == []


async def test_jsonl_in_a_pipeline(tmp_path: Path) -> None:
    path = tmp_path / "kept.jsonl"
    err_path = tmp_path / "errors.jsonl"

    def parse(raw: str) -> Any:
        if raw == "bad":
            raise ValueError("cannot parse")
        return {"line": raw}

    report = await Pipeline(
        ["x", "bad", "y"],
        parse=parse,
        routes=[Route("all", JsonlFileSink(path))],
        infra=Infra(error=JsonlFileSink(err_path, name="errors")),
    ).run()
    report.check()
    assert dict(report.delivered) == {"kept.jsonl": 2, "errors": 1}
    assert read_lines(path) == [
        {"id": 0, "raw": "x", "payload": {"line": "x"}},
        {"id": 2, "raw": "y", "payload": {"line": "y"}},
    ]
    assert read_lines(err_path) == [
        {"id": 1, "raw": "bad", "payload": "bad", "error": "ValueError: cannot parse"}
    ]


# -- plain async functions ---------------------------------------------------------------


async def test_a_plain_async_function_is_a_sink_named_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[list[int]] = []

    async def archive(batch: Sequence[Record]) -> None:
        await trio.sleep(0.01)
        got.append([r.id for r in batch])

    report = await Pipeline(range(5), routes=[Route("r", archive)], batch_size=2).run()
    report.check()
    assert report.ok
    assert dict(report.routed) == {"archive": 5}
    assert dict(report.delivered) == {"archive": 5}
    assert got == [[0, 1], [2, 3], [4]]


async def test_a_plain_async_function_as_an_infra_sink(
    autojump_clock: trio.testing.MockClock,
) -> None:
    leftovers: list[int] = []

    async def left_over(batch: Sequence[Record]) -> None:
        leftovers.extend(r.id for r in batch)

    report = await Pipeline(
        range(6),
        routes=[Route("even", NullSink("even"), when=lambda p: p % 2 == 0)],
        infra=Infra(default=left_over),
    ).run()
    report.check()
    assert leftovers == [1, 3, 5]
    assert dict(report.delivered) == {"even": 3, "left_over": 3}


async def test_a_plain_async_function_that_raises_reports_its_batch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def flaky(batch: Sequence[Record]) -> None:
        if any(r.id == 3 for r in batch):
            raise OSError("disk full")

    report = await Pipeline(range(6), routes=[Route("r", flaky)], batch_size=2).run()
    report.check()
    assert not report.ok
    assert report.delivered["flaky"] == 4
    assert [(u.record.id, u.sink, u.stage) for u in report.undelivered] == [
        (2, "flaky", "sink"),
        (3, "flaky", "sink"),
    ]
    assert all(u.reason == "sink raised OSError: disk full" for u in report.undelivered)
    assert all(isinstance(u.error, OSError) for u in report.undelivered)
