"""FileSource: lines of a real file read off the event loop, acknowledged into an atomic
checkpoint; restarts resume there; following through appends, rotation, truncation.

The following tests run in real time (worker threads read the files) with a short
``poll_interval``; they wait for what they expect under a generous ``fail_after``, so a
busy machine makes them slower, never wrong.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import pytest
import trio
from helpers import messages

from trio_sink import ConfigError, Undecodable
from trio_sink._file_reader import FileReader
from trio_sink.sources import FileSource

PATIENCE = 30.0
"""Seconds a following test waits for what it expects before it fails."""
POLL = 0.005


def checkpoint_of(path: Path) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(path.read_bytes())
    return value


async def read_all(source: FileSource) -> list[Any]:
    return [item async for item in source]


async def take(items: AsyncIterator[Any], n: int) -> list[Any]:
    """The next ``n`` items; fails if they do not come within PATIENCE."""
    out: list[Any] = []
    with trio.fail_after(PATIENCE):
        while len(out) < n:
            out.append(await items.__anext__())
    return out


def generator(source: FileSource) -> AsyncGenerator[Any, None]:
    return cast(AsyncGenerator[Any, None], aiter(source))


@asynccontextmanager
async def following(
    path: Path, **kwargs: Any
) -> AsyncIterator[tuple[FileSource, AsyncGenerator[Any, None]]]:
    """A source that follows ``path``, and an iteration of it; both closed at the end."""
    source = FileSource(path, follow=True, **{"poll_interval": POLL, **kwargs})
    items = generator(source)
    try:
        yield source, items
    finally:
        await items.aclose()
        await source.aclose()


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def overwrite(path: Path, data: bytes, *, truncate: bool = False) -> None:
    """Write ``data`` at the start of the file at ``path`` (the same inode), truncated
    to nothing first if ``truncate``."""
    with open(path, "r+b") as f:
        if truncate:
            f.truncate(0)
        f.write(data)


# -- reading -----------------------------------------------------------------------------


async def test_lines_come_without_their_endings(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"a\nb\r\n\n\r\nlast \r")
    assert await read_all(FileSource(path)) == ["a", "b", "", "", "last "]


async def test_a_last_line_without_a_newline_ends_the_input(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"one\ntw")
    source = FileSource(path)
    assert await read_all(source) == ["one", "tw"]
    assert source.position == 6


async def test_an_empty_file_gives_nothing(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"")
    assert await read_all(FileSource(path)) == []


async def test_a_missing_file_is_an_error_when_not_following(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await read_all(FileSource(tmp_path / "nothing.log"))


@pytest.mark.parametrize(
    ("chunk_lines", "chunk_bytes", "count", "longest"),
    [(128, 400 * 1024, 20_000, 1_000_000), (3, 64, 3000, 1000), (1, 1, 50, 10)],
)
async def test_lines_span_chunk_borders(
    tmp_path: Path, chunk_lines: int, chunk_bytes: int, count: int, longest: int
) -> None:
    # Lines of many lengths, one longer than a chunk: a big file at the defaults.
    lines = [("x" * (i * 7919 % 97)) + f"{i}" for i in range(count)] + ["y" * longest, "z"]
    path = tmp_path / "big.log"
    path.write_bytes("".join(f"{line}\n" for line in lines).encode())
    source = FileSource(path, chunk_lines=chunk_lines, chunk_bytes=chunk_bytes)
    assert await read_all(source) == lines
    assert source.position == path.stat().st_size


def test_one_read_takes_at_most_a_chunk(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    path.write_bytes(b"".join(b"%d\n" % i for i in range(1000)) + b"w" * 50 + b"\n")
    reader = FileReader(
        str(path), follow=False, encoding="utf-8", chunk_lines=128, chunk_bytes=1000
    )
    reader.start(None)
    sizes: list[tuple[int, int]] = []
    begin = 0
    while (items := reader.step()) is not None:
        end = items[-1][2]
        sizes.append((len(items), end - begin))
        begin = end
    assert sum(n for n, _ in sizes) == 1001
    assert all(n <= 128 for n, _ in sizes)
    # A chunk ends at its byte budget or its line count, and at a line's end.
    assert all(size <= 1000 + 3 or n == 1 for n, size in sizes), sizes
    reader.close()


async def test_invalid_bytes_give_an_undecodable_in_place_of_the_line(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"ok\nbad \xff\xfe\r\nfine \xc3\xa9\ncut \xc3")
    items = await read_all(FileSource(path))
    assert items[0] == "ok"
    assert items[2] == "fine \u00e9"
    for item, data in ((items[1], b"bad \xff\xfe"), (items[3], b"cut \xc3")):
        assert isinstance(item, Undecodable)
        assert (item.data, item.encoding) == (data, "utf-8")
        assert "can't decode" in item.reason


async def test_other_encodings(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes("caf\u00e9\n\u00ff\n".encode("latin-1"))
    assert await read_all(FileSource(path, encoding="latin-1")) == ["caf\u00e9", "\u00ff"]
    path.write_bytes(b"\xef\xbb\xbfbom\nnone\n")
    assert await read_all(FileSource(path, encoding="utf-8-sig")) == ["bom", "none"]
    assert await read_all(FileSource(path)) == ["\ufeffbom", "none"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"encoding": "utf-16"}, "encoding must be the name of a text encoding"),
        ({"encoding": "no-such-codec"}, "encoding must be"),
        ({"encoding": "base64"}, "encoding must be"),
        ({"encoding": "rot13"}, "encoding must be"),
        ({"encoding": 8}, "encoding must be"),
        ({"chunk_lines": 0}, "chunk_lines must be an int >= 1"),
        ({"chunk_bytes": 0}, "chunk_bytes must be an int >= 1"),
        ({"poll_interval": 0}, "poll_interval must be a finite number of seconds > 0"),
        ({"name": ""}, "name must be a non-empty str"),
        ({"checkpoint": "no-such-folder/cp.json"}, "folder .* does not exist"),
        ({"checkpoint": b"cp"}, "checkpoint must be a str or os.PathLike path"),
    ],
)
def test_settings_are_checked_at_construction(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    kwargs = {
        k: (str(tmp_path / v) if k == "checkpoint" and isinstance(v, str) else v)
        for k, v in kwargs.items()
    }
    with pytest.raises(ConfigError, match=message):
        FileSource(tmp_path / "app.log", **kwargs)


def test_the_checkpoint_cannot_be_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must not be the path it keeps"):
        FileSource(tmp_path / "a", checkpoint=tmp_path / "a")


# -- acknowledgements and the checkpoint -------------------------------------------------


async def test_ack_writes_the_offset_after_the_last_acknowledged_line(tmp_path: Path) -> None:
    path, cp = tmp_path / "app.log", tmp_path / "state" / "cp.json"
    cp.parent.mkdir()
    path.write_bytes(b"one\ntwo\r\nthree\n")
    source = FileSource(path, checkpoint=cp)
    items = await read_all(source)
    assert not cp.exists()  # nothing is checkpointed without an ack
    await source.ack(items[:2])
    point = checkpoint_of(cp)
    st = path.stat()
    assert point["offset"] == len(b"one\ntwo\r\n") == source.acknowledged_offset
    assert (point["path"], point["device"], point["inode"]) == (str(path), st.st_dev, st.st_ino)
    assert point["head_size"] == 9
    await source.ack(items[2:])
    assert checkpoint_of(cp)["offset"] == path.stat().st_size
    assert os.listdir(cp.parent) == ["cp.json"]  # no temporary file left behind
    stats = source.statistics()
    assert (stats.yielded, stats.acknowledged, stats.unacknowledged) == (3, 3, 0)
    assert stats.checkpoints == 2
    await source.aclose()


async def test_an_ack_of_nothing_writes_nothing(tmp_path: Path) -> None:
    path, cp = tmp_path / "app.log", tmp_path / "cp.json"
    path.write_bytes(b"a\n")
    source = FileSource(path, checkpoint=cp)
    await read_all(source)
    await source.ack([])
    assert not cp.exists()


async def test_an_ack_of_more_than_was_yielded_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"a\nb\n")
    source = FileSource(path)
    items = await read_all(source)
    await source.ack(items[:1])
    with pytest.raises(ValueError, match="ack\\(\\) of 2 items, but only 1 were yielded"):
        await source.ack(items)


async def test_acks_in_many_small_runs_and_one_big_one(tmp_path: Path) -> None:
    # The queue of unacknowledged lines holds them in runs of 1,024.
    path, cp = tmp_path / "app.log", tmp_path / "cp.json"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(5000)))
    source = FileSource(path, checkpoint=cp)
    items = await read_all(source)
    ends = [len(b"".join(b"line %d\n" % i for i in range(n + 1))) for n in (0, 1, 2, 1500)]
    await source.ack(items[:1])
    assert source.acknowledged_offset == ends[0]
    await source.ack(items[1:2])
    await source.ack(items[2:3])
    assert source.acknowledged_offset == ends[2]
    await source.ack(items[3:1501])
    assert checkpoint_of(cp)["offset"] == ends[3]
    await source.ack(items[1501:])
    assert checkpoint_of(cp)["offset"] == path.stat().st_size
    assert source.statistics().unacknowledged == 0


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names fds through /proc")
async def test_the_checkpoint_is_replaced_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A temporary file in the same folder, written and fsynced, renamed over the
    # checkpoint, then the folder fsynced: in that order.
    path, cp = tmp_path / "app.log", tmp_path / "cp.json"
    path.write_bytes(b"a\nb\n")
    source = FileSource(path, checkpoint=cp)
    items = await read_all(source)
    await source.ack(items[:1])
    calls: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        calls.append(("replace", f"{Path(src).name} -> {Path(dst).name}"))
        assert checkpoint_of(Path(src))["offset"] == 4  # whole, before it replaces
        assert checkpoint_of(cp)["offset"] == 2  # the old one until then
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    await source.ack(items[1:])
    assert calls == [
        ("fsync", str(tmp_path / ".cp.json.tmp")),
        ("replace", ".cp.json.tmp -> cp.json"),
        ("fsync", str(tmp_path)),
    ]
    assert checkpoint_of(cp)["offset"] == 4


async def test_a_failed_checkpoint_write_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, cp = tmp_path / "app.log", tmp_path / "cp.json"
    path.write_bytes(b"a\nb\n")
    source = FileSource(path, checkpoint=cp)
    items = await read_all(source)
    await source.ack(items[:1])

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        await source.ack(items[1:])
    assert checkpoint_of(cp)["offset"] == 2
    assert sorted(os.listdir(tmp_path)) == ["app.log", "cp.json"]


async def test_a_restart_resumes_after_the_acknowledged_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "trio_sink.source")
    path, cp = tmp_path / "app.log", tmp_path / "cp.json"
    path.write_bytes(b"a\nb\nc\nd\n")
    first = FileSource(path, checkpoint=cp)
    items = await read_all(first)
    await first.ack(items[:2])
    # A crash: c and d were yielded, never acknowledged. The next run reads them again.
    await first.aclose()
    append(path, b"e\n")
    second = FileSource(path, checkpoint=cp)
    assert await read_all(second) == ["c", "d", "e"]
    assert messages(caplog, "file_source.resumed") == [f"file_source.resumed path={path} offset=4"]
    assert second.statistics().acknowledged_offset == 4


async def test_a_crash_before_any_ack_reads_everything_again(tmp_path: Path) -> None:
    path, cp = tmp_path / "app.log", tmp_path / "cp.json"
    path.write_bytes(b"a\nb\n")
    assert await read_all(FileSource(path, checkpoint=cp)) == ["a", "b"]
    assert await read_all(FileSource(path, checkpoint=cp)) == ["a", "b"]


async def test_a_checkpoint_at_the_end_of_a_last_line_without_newline(tmp_path: Path) -> None:
    # Yielded at the end of the input, the partial line counts as read: what is
    # appended after it is a line of its own.
    path, cp = tmp_path / "app.log", tmp_path / "cp.json"
    path.write_bytes(b"a\nb")
    source = FileSource(path, checkpoint=cp)
    await source.ack(await read_all(source))
    assert checkpoint_of(cp)["offset"] == 3
    append(path, b"c\n")
    assert await read_all(FileSource(path, checkpoint=cp)) == ["c"]


async def acked_run(path: Path, cp: Path, n: int) -> None:
    """A run over ``path`` that acknowledges its first ``n`` lines."""
    source = FileSource(path, checkpoint=cp)
    items = await read_all(source)
    await source.ack(items[:n])
    await source.aclose()


async def test_a_file_replaced_while_down_is_read_from_its_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, cp = tmp_path / "app.log", tmp_path / "cp.json"
    path.write_bytes(b"old 1\nold 2\nold 3\n")
    await acked_run(path, cp, 1)
    # Another file (made while the old one exists, so not reusing its inode) replaces it,
    # longer: the offset alone would fit.
    (tmp_path / "new").write_bytes(b"new 1\nnew 2\n" * 3)
    os.replace(tmp_path / "new", path)
    assert await read_all(FileSource(path, checkpoint=cp)) == ["new 1", "new 2"] * 3
    [warning] = messages(caplog, "file_source.lost")
    assert f"path={path}" in warning
    assert "offset=6" in warning


async def test_a_file_rotated_while_down_is_finished_before_the_new_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, cp = tmp_path / "app.log", tmp_path / "cp.json"
    path.write_bytes(b"old 1\nold 2\n")
    await acked_run(path, cp, 1)
    append(path, b"old 3")
    path.rename(tmp_path / "app.log.1")
    path.write_bytes(b"new 1\n")
    source = FileSource(path, checkpoint=cp)
    items = await read_all(source)
    assert items == ["old 2", "old 3", "new 1"]
    [warning] = messages(caplog, "file_source.rotated")
    assert f"found={tmp_path / 'app.log.1'}" in warning
    # The acknowledgements follow the files: the old one's lines, then the new one's.
    await source.ack(items[:2])
    point = checkpoint_of(cp)
    assert (point["inode"], point["offset"]) == ((tmp_path / "app.log.1").stat().st_ino, 17)
    await source.ack(items[2:])
    point = checkpoint_of(cp)
    assert (point["inode"], point["offset"]) == (path.stat().st_ino, 6)
    assert source.statistics().rotations == 1


async def test_a_file_truncated_while_down_is_read_from_its_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, cp = tmp_path / "app.log", tmp_path / "cp.json"
    path.write_bytes(b"one\ntwo\nthree\n")
    await acked_run(path, cp, 3)
    overwrite(path, b"x\n", truncate=True)  # the same file (inode), shorter
    source = FileSource(path, checkpoint=cp)
    assert await read_all(source) == ["x"]
    [warning] = messages(caplog, "file_source.truncated")
    assert "offset=14 size=2" in warning
    assert source.statistics().truncations == 1


async def test_a_file_rewritten_in_place_is_read_from_its_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, cp = tmp_path / "app.log", tmp_path / "cp.json"
    path.write_bytes(b"one\ntwo\n")
    await acked_run(path, cp, 1)
    overwrite(path, b"ONE\ntwo\nthree\n")  # the same inode, other first bytes, longer
    assert await read_all(FileSource(path, checkpoint=cp)) == ["ONE", "two", "three"]
    assert len(messages(caplog, "file_source.rewritten")) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is not valid JSON"),
        (b'{"offset": 3', "is not valid JSON"),
        (b"[1, 2]", "is not a FileSource checkpoint"),
        (b'{"offset": 3}', "is not a FileSource checkpoint"),
        (b"\xff\xfe", "is not valid JSON"),
    ],
)
def test_a_corrupt_checkpoint_is_a_config_error_naming_it(
    tmp_path: Path, content: bytes, message: str
) -> None:
    cp = tmp_path / "cp.json"
    cp.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as info:
        FileSource(tmp_path / "app.log", checkpoint=cp)
    assert repr(str(cp)) in str(info.value)


async def test_a_checkpoint_of_another_file_or_version_is_a_config_error(
    tmp_path: Path,
) -> None:
    path, cp = tmp_path / "app.log", tmp_path / "cp.json"
    path.write_bytes(b"a\n")
    await acked_run(path, cp, 1)
    with pytest.raises(ConfigError, match="belongs to a FileSource of"):
        FileSource(tmp_path / "other.log", checkpoint=cp)
    point = checkpoint_of(cp)
    cp.write_text(json.dumps({**point, "version": 2}))
    with pytest.raises(ConfigError, match="has version 2, expected 1"):
        FileSource(path, checkpoint=cp)
    cp.write_text(json.dumps({**point, "head_size": 99}))
    with pytest.raises(ConfigError, match="is inconsistent"):
        FileSource(path, checkpoint=cp)


# -- following ---------------------------------------------------------------------------


async def test_following_yields_appended_lines(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"a\n")
    async with following(path) as (source, items):
        assert await take(items, 1) == ["a"]
        append(path, b"b\nc")  # c has no newline yet: it is not a line yet
        assert await take(items, 1) == ["b"]
        append(path, b"\n")
        assert await take(items, 1) == ["c"]
        assert source.position == 6


async def test_following_waits_for_the_file_to_appear(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    async with following(path) as (_, items), trio.open_nursery() as nursery:

        async def create_later() -> None:
            await trio.sleep(0.05)
            path.write_bytes(b"hello\n")

        nursery.start_soon(create_later)
        assert await take(items, 1) == ["hello"]


async def test_following_through_a_rotation(tmp_path: Path) -> None:
    # The old file's last lines first (also one it got after the rename), then the
    # new file's; the acknowledgements follow the files.
    path, cp = tmp_path / "app.log", tmp_path / "cp.json"
    path.write_bytes(b"old 1\n")
    async with following(path, checkpoint=cp) as (source, items):
        first = await take(items, 1)
        path.rename(tmp_path / "app.log.1")
        append(tmp_path / "app.log.1", b"old 2\nold 3")
        path.write_bytes(b"new 1\n")
        rest = await take(items, 3)
        assert first + rest == ["old 1", "old 2", "old 3", "new 1"]
        await source.ack(first + rest[:2])
        point = checkpoint_of(cp)
        assert (point["inode"], point["offset"]) == ((tmp_path / "app.log.1").stat().st_ino, 17)
        await source.ack(rest[2:])
        point = checkpoint_of(cp)
        assert (point["inode"], point["offset"]) == (path.stat().st_ino, 6)
        assert source.statistics().rotations == 1


def test_a_rotated_file_gets_one_more_poll_for_its_last_lines(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"old 1\n")
    reader = FileReader(str(path), follow=True, encoding="utf-8", chunk_lines=8, chunk_bytes=64)
    reader.start(None)
    assert [item for item, _, _ in reader.step() or []] == ["old 1"]
    path.rename(tmp_path / "app.log.1")
    path.write_bytes(b"new 1\n")
    assert reader.step() == []  # the rotation seen: wait one poll
    append(tmp_path / "app.log.1", b"old 2\n")  # the writer had not reopened yet
    assert [item for item, _, _ in reader.step() or []] == ["old 2"]
    assert [item for item, _, _ in reader.step() or []] == ["new 1"]
    assert reader.step() == []
    reader.close()


async def test_following_through_a_truncation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"one\ntwo\n")
    async with following(path) as (source, items):
        assert await take(items, 2) == ["one", "two"]
        overwrite(path, b"x\n", truncate=True)  # copytruncate
        assert await take(items, 1) == ["x"]
        assert source.position == 2
        assert source.statistics().truncations == 1
    [warning] = messages(caplog, "file_source.truncated")
    assert "offset=8 size=2" in warning


async def test_a_cancelled_wait_loses_nothing(tmp_path: Path) -> None:
    path, cp = tmp_path / "app.log", tmp_path / "cp.json"
    path.write_bytes(b"a\nb\n")
    source = FileSource(path, checkpoint=cp, follow=True, poll_interval=60.0)
    items = generator(source)
    got = await take(items, 2)
    await source.ack(got[:1])
    with trio.move_on_after(0.05) as scope:
        await items.__anext__()  # waits for a poll a minute away: cancelled promptly
    assert scope.cancelled_caught
    await items.aclose()
    # What was acknowledged stays so; what was not is read again by the next run.
    assert checkpoint_of(cp)["offset"] == 2
    await source.ack(got[1:])  # a late ack after the Stop still counts
    assert checkpoint_of(cp)["offset"] == 4
    await source.aclose()
    append(path, b"c\n")
    again = FileSource(path, checkpoint=cp)
    assert await read_all(again) == ["c"]


async def test_lines_read_when_the_pull_is_cancelled_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Stop cancels the pull while a worker thread reads: the read is finished, the
    # pull gets its first line (the Cancelled comes at the next checkpoint), and the
    # rest are kept by the source (the next iteration yields them), not dropped.
    path, cp = tmp_path / "app.log", tmp_path / "cp.json"
    path.write_bytes(b"a\n")
    source = FileSource(path, checkpoint=cp, follow=True, poll_interval=POLL)
    items = generator(source)
    got = await take(items, 1)
    reading, release = threading.Event(), threading.Event()
    step: Callable[[], Any] = source._reader.step

    def slow_step() -> Any:
        reading.set()
        release.wait(PATIENCE)
        return step()

    monkeypatch.setattr(source._reader, "step", slow_step)
    append(path, b"b\nc\nd\n")
    async with trio.open_nursery() as nursery:

        async def pull() -> None:
            got.append(await items.__anext__())

        nursery.start_soon(pull)
        await trio.to_thread.run_sync(reading.wait, PATIENCE)
        nursery.cancel_scope.cancel()  # the Stop, while the thread reads
        release.set()
    await items.aclose()
    monkeypatch.undo()
    assert got == ["a", "b"]
    stats = source.statistics()
    assert (stats.yielded, stats.position) == (2, 4)
    again = generator(source)
    assert await take(again, 2) == ["c", "d"]  # kept
    await again.aclose()
    await source.ack(got)
    assert checkpoint_of(cp)["offset"] == 4
    await source.aclose()


async def test_one_iteration_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"a\nb\n")
    source = FileSource(path)
    items = generator(source)
    assert await take(items, 1) == ["a"]
    with pytest.raises(trio.BusyResourceError):
        await aiter(source).__anext__()
    await items.aclose()
    assert await read_all(source) == ["b"]
    await source.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await read_all(source)
