"""JsonlFileSink's rotation by size, on real files: the boundaries, keep, gzip, and a crash
at every step of a rotation."""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import trio
import trio.testing
from sink_helpers import as_records, ids_of, read_all, recs, rotated

import trio_sink._file_rotation as rotation
from trio_sink import ConfigError, Pipeline, Record, Route
from trio_sink._json_lines import JsonLines
from trio_sink.sinks import JsonlFileSink
from trio_sink.testing import check_sink


def size(batch: list[Record]) -> int:
    """The bytes ``batch`` takes in the file."""
    return len(JsonLines().lines(batch))


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def ids_in(path: Path) -> list[int]:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return [int(line.split(b",")[0].removeprefix(b'{"id":')) for line in data.splitlines()]


# -- boundaries ---------------------------------------------------------------------------


async def test_a_file_exactly_at_the_limit_is_not_rotated(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    a, b = recs(0, 2), recs(2, 2)
    sink = JsonlFileSink(path, rotate_bytes=size(a) + size(b))
    await sink.write(a)
    await sink.write(b)
    assert names(tmp_path) == ["out.jsonl"]
    assert path.stat().st_size == size(a) + size(b)
    await sink.aclose()


async def test_a_batch_that_would_pass_the_limit_goes_to_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    a, b, c = recs(0, 2), recs(2, 2), recs(4, 1)
    sink = JsonlFileSink(path, rotate_bytes=size(a) + size(b))
    for batch in (a, b, c):
        await sink.write(batch)
    assert names(tmp_path) == ["out.jsonl", "out.jsonl.1"]
    assert ids_in(tmp_path / "out.jsonl.1") == [0, 1, 2, 3]
    assert ids_in(path) == [4]
    await sink.aclose()


async def test_a_batch_larger_than_the_limit_is_never_split(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonlFileSink(path, rotate_bytes=10)
    for first in (0, 3, 6):
        await sink.write(recs(first, 3))  # each batch alone is over 10 bytes
    await sink.aclose()
    assert names(tmp_path) == ["out.jsonl", "out.jsonl.1", "out.jsonl.2"]
    assert [ids_in(p) for p in [*rotated(path), path]] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


async def test_an_empty_batch_never_rotates(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonlFileSink(path, rotate_bytes=10)
    await sink.write(recs(0, 3))
    await sink.write([])
    await sink.aclose()
    assert names(tmp_path) == ["out.jsonl"]


async def test_an_existing_file_over_the_limit_is_rotated_at_the_first_write(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(JsonLines().lines(recs(0, 5)))
    sink = JsonlFileSink(path, rotate_bytes=size(recs(0, 5)))
    await sink.write(recs(5, 1))
    await sink.aclose()
    assert ids_in(tmp_path / "out.jsonl.1") == [0, 1, 2, 3, 4]
    assert ids_in(path) == [5]


async def test_rotated_files_move_one_number_up(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "out.jsonl"
    sink = JsonlFileSink(path, rotate_bytes=1)
    for first in range(0, 8, 2):
        await sink.write(recs(first, 2))
    await sink.aclose()
    assert names(path.parent) == ["out.jsonl", *(f"out.jsonl.{n}" for n in (1, 2, 3))]
    assert [ids_in(path.parent / f"out.jsonl.{n}") for n in (3, 2, 1)] == [[0, 1], [2, 3], [4, 5]]
    assert ids_of(read_all(path)) == list(range(8))


async def test_keep_removes_the_oldest_rotated_files(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonlFileSink(path, rotate_bytes=1, keep=2)
    for first in range(6):
        await sink.write(recs(first, 1))
    await sink.aclose()
    assert names(tmp_path) == ["out.jsonl", "out.jsonl.1", "out.jsonl.2"]
    assert ids_of(read_all(path)) == [3, 4, 5]


async def test_gzip_compresses_each_rotated_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonlFileSink(path, rotate_bytes=1, gzip=True)
    for first in range(0, 6, 2):
        await sink.write(recs(first, 2))
    await sink.aclose()
    assert names(tmp_path) == ["out.jsonl", "out.jsonl.1.gz", "out.jsonl.2.gz"]
    with gzip.open(tmp_path / "out.jsonl.2.gz") as f:
        assert f.read() == JsonLines().lines(recs(0, 2))
    with gzip.open(tmp_path / "out.jsonl.1.gz") as f:
        assert f.read() == JsonLines().lines(recs(2, 2))
    assert ids_in(path) == [4, 5]


async def test_gzip_with_keep(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonlFileSink(path, rotate_bytes=1, keep=1, gzip=True)
    for first in range(4):
        await sink.write(recs(first, 1))
    await sink.aclose()
    assert names(tmp_path) == ["out.jsonl", "out.jsonl.1.gz"]
    assert ids_of(read_all(path)) == [2, 3]


async def test_rotation_in_a_pipeline_keeps_every_record_in_order(tmp_path: Path) -> None:
    # Real time: under an autojump clock, a wait for the worker thread counts as idle.
    path = tmp_path / "out.jsonl"
    limit = size(recs(0, 10)) + 5
    sink = JsonlFileSink(path, rotate_bytes=limit, gzip=True)
    report = await Pipeline(range(200), routes=[Route("all", sink)], batch_size=7).run()
    report.check()
    assert report.delivered[sink.name] == 200
    assert ids_of(read_all(path)) == list(range(200))
    files = [*rotated(path), path]
    assert len(files) > 5
    assert all(len(gzip.decompress(f.read_bytes())) <= limit for f in files[:-1])
    assert all(len(ids_in(f)) % 7 == 0 for f in files[:-1])  # whole batches only


async def test_a_rotating_sink_conforms(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    made: list[JsonlFileSink] = []

    def make() -> JsonlFileSink:
        path = tmp_path / f"run{len(made)}" / "out.jsonl"
        made.append(JsonlFileSink(path, name="jsonl", rotate_bytes=1, keep=50, gzip=True))
        return made[-1]

    await check_sink(make, delivered=lambda s: as_records(read_all(s.path)))
    # Every write after the first rotated: the rules' writes went to files of their own.
    assert [p.name for p in rotated(made[0].path)] == ["out.jsonl.1.gz"]
    assert [p.name for p in rotated(made[4].path)] == ["out.jsonl.2.gz", "out.jsonl.1.gz"]


# -- a crash at any step of a rotation ----------------------------------------------------


class Crash(BaseException):
    """The process dies here: nothing after this runs (a BaseException, so that no
    ``except Exception`` of the sink takes it for a failed step)."""


class FileSystem:
    """What ``_file_rotation`` sees as ``os``: the real one, but for the calls that change
    or sync the files, which it counts and, at call number ``crash_at``, does not make:
    the process dies instead."""

    STEPS = ("replace", "remove", "fsync")

    def __init__(self, crash_at: int | None = None, error: BaseException | None = None) -> None:
        self.crash_at = crash_at
        self.error: BaseException = error if error is not None else Crash()
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        real = getattr(os, name)
        if name not in self.STEPS:
            return real

        def step(*args: Any) -> Any:
            if len(self.calls) == self.crash_at:
                self.crash_at = None  # once: after an error, the next steps are made
                raise self.error
            shown = (os.path.basename(a) if not isinstance(a, int) else "fd" for a in args)
            self.calls.append(" ".join([name, *shown]))
            return real(*args)

        return step


async def written_before_the_crash(path: Path, fs: FileSystem) -> list[Record]:
    """Two rotations of ``path`` (gzip on): the second one through ``fs``. The batches
    that were written."""
    sink = JsonlFileSink(path, rotate_bytes=1, gzip=True)
    await sink.write(recs(0, 2))
    await sink.write(recs(2, 2))  # the first rotation: out.jsonl.1.gz
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rotation, "os", fs)
        try:
            await sink.write(recs(4, 2))  # the second rotation, then the batch
        except Crash:
            return recs(0, 4)
        finally:
            await sink.aclose()
    return recs(0, 6)


async def test_the_steps_of_a_rotation(tmp_path: Path) -> None:
    fs = FileSystem()
    assert await written_before_the_crash(tmp_path / "out.jsonl", fs) == recs(0, 6)
    assert fs.calls == [
        "replace out.jsonl.1.gz out.jsonl.2.gz",
        "replace out.jsonl out.jsonl.1",
        "fsync fd",  # the folder
        "fsync fd",  # out.jsonl.1.gz.tmp, written
        "replace out.jsonl.1.gz.tmp out.jsonl.1.gz",
        "fsync fd",  # the folder
        "remove out.jsonl.1",
    ]


@pytest.mark.parametrize("crash_at", range(7))
async def test_a_crash_at_any_step_of_a_rotation_loses_nothing(
    tmp_path: Path, crash_at: int
) -> None:
    path = tmp_path / "out.jsonl"
    written = await written_before_the_crash(path, FileSystem(crash_at))
    assert written == recs(0, 4)
    # After the crash, as a restarted process finds them, the lines are all readable
    # (a .gz is taken over a plain file of its number), once each, in order.
    assert as_records(read_all(path)) == written
    # The restarted sink goes on; its next rotation settles what the crash left.
    sink = JsonlFileSink(path, rotate_bytes=1, gzip=True)
    for first in (4, 6):
        await sink.write(recs(first, 2))
    await sink.aclose()
    assert as_records(read_all(path)) == recs(0, 8)
    left = names(tmp_path)
    assert not [n for n in left if n.endswith(".tmp")]
    assert all(n.endswith(".gz") for n in left if n != "out.jsonl")
    assert sum(len(ids_in(tmp_path / n)) for n in left) == 8  # no line twice


async def test_a_failed_compression_keeps_the_plain_file_and_the_batch_is_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "out.jsonl"
    fs = FileSystem(crash_at=3, error=OSError(28, "No space left on device"))
    with caplog.at_level(logging.WARNING, logger="trio_sink.sink"):
        written = await written_before_the_crash(path, fs)
    assert written == recs(0, 6)
    assert names(tmp_path) == ["out.jsonl", "out.jsonl.1", "out.jsonl.2.gz"]
    assert as_records(read_all(path)) == recs(0, 6)
    [message] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert message.startswith(f"sink.compress_failed sink=out.jsonl path={tmp_path}")
    assert 'error="OSError: [Errno 28] No space left on device"' in message


# -- settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: JsonlFileSink(p, rotate_bytes=0), "rotate_bytes must be an int >= 1, got 0"),
        (
            lambda p: JsonlFileSink(p, rotate_bytes=cast(Any, 1.5)),
            "rotate_bytes must be an int >= 1",
        ),
        (lambda p: JsonlFileSink(p, rotate_bytes=9, keep=0), "keep must be an int >= 1, got 0"),
        (
            lambda p: JsonlFileSink(p, rotate_bytes=9, gzip=cast(Any, 1)),
            "gzip must be a bool, got 1",
        ),
        (lambda p: JsonlFileSink(p, keep=3), "keep applies to rotated files"),
        (lambda p: JsonlFileSink(p, gzip=True), "gzip applies to rotated files"),
    ],
)
def test_settings_are_checked_at_construction(
    tmp_path: Path, make: Callable[[Path], object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        make(tmp_path / "out.jsonl")


def test_settings_are_kept(tmp_path: Path) -> None:
    sink = JsonlFileSink(tmp_path / "x.jsonl", rotate_bytes=100, keep=3, gzip=True)
    assert (sink.rotate_bytes, sink.keep, sink.gzip) == (100, 3, True)
    plain = JsonlFileSink(tmp_path / "x.jsonl")
    assert (plain.rotate_bytes, plain.keep, plain.gzip) == (None, None, False)
