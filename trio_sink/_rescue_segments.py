"""The files of a rescue store directory (the layout is in :mod:`trio_sink._rescue`).

Segment names, the ``flock`` that tells a live writer's segment from a dead one's, the
``.done`` files that record how far replay has consumed a segment, the scan of a
segment's lines that skips torn and bad lines, counts them and logs them, and the copy
of lines that a commit keeps. The writer that uses them is
:class:`~trio_sink._segment_log.SegmentLog`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import IO, Final, NamedTuple

from ._rescue_format import RescueEntry, decode

log = logging.getLogger("trio_sink.rescue")

FINAL: Final = ".jsonl"
_OPEN: Final = ".jsonl.open"
_DONE: Final = ".done"
_TMP: Final = ".tmp"
REPLAY_LOCK: Final = ".replay.lock"
_CREATE_TRIES: Final = 8
"""Attempts at creating a segment, each removed by a tidy-up before it was locked."""

_names = itertools.count()
_names_lock = threading.Lock()
_last_ns = 0


class Tally:
    """What a read went through; :class:`~trio_sink.RescueReadStats` is its snapshot."""

    __slots__ = ("bad", "entries", "segments", "torn")

    def __init__(self) -> None:
        self.segments = 0
        self.entries = 0
        self.torn = 0
        self.bad = 0

    def copy(self) -> Tally:
        """A tally with the same counts, that this one's later counts leave alone."""
        other = Tally()
        other.segments, other.entries = self.segments, self.entries
        other.torn, other.bad = self.torn, self.bad
        return other


class Item(NamedTuple):
    """One decoded line of a segment, with its byte range."""

    start: int
    end: int
    line: bytes
    entry: RescueEntry


class Chunk(NamedTuple):
    """Up to ``n`` entries of a segment from an offset, as replay reads them."""

    items: list[Item]
    start: int
    """The byte offset the read started at."""
    end: int
    """Where the next read starts: after the last item, or the segment's end."""
    size: int
    """The segment's size."""


class Segment(NamedTuple):
    """A segment to read, from byte ``start`` (what replay has not consumed yet)."""

    path: Path
    start: int


if sys.platform == "win32":  # pragma: no cover - no flock: one writer per directory

    def try_lock(fd: int) -> bool:
        return True

    def _lock(fd: int) -> None:
        pass

else:
    import fcntl

    def try_lock(fd: int) -> bool:
        """Take the lock on ``fd`` if it is free (a probe); False when someone holds it."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _lock(fd: int) -> None:
        """Take the lock on ``fd``, waiting while someone holds it: on a new segment,
        only a reader's probe can, and only for a moment."""
        fcntl.flock(fd, fcntl.LOCK_EX)


def fsync_dir(path: Path) -> None:
    if sys.platform == "win32":  # pragma: no cover - directories cannot be opened
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_existing(path: Path) -> IO[bytes] | None:
    """``path`` opened for reading; None when it is gone (consumed, or adopted, since
    it was listed)."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None


# -- names -------------------------------------------------------------------------


def _segment_base() -> str:
    """A new segment name without suffix; later calls in this process sort later."""
    global _last_ns
    with _names_lock:
        ns = max(time.time_ns(), _last_ns + 1)
        _last_ns = ns
        n = next(_names)
    return f"seg-{ns:020d}-{os.getpid()}-{n:06d}"


def final_path(path: Path) -> Path:
    """The final name of the segment ``path``, which is under its ``.open`` name."""
    return path.with_name(path.name.removesuffix(".open"))


def _done_path(path: Path) -> Path:
    """The progress file of the segment ``path``."""
    return path.with_name(path.name + _DONE)


# -- writers -----------------------------------------------------------------------


def create_segment(directory: Path) -> tuple[IO[bytes], Path]:
    """A new segment in ``directory``, open for writing (unbuffered) and locked, under
    its ``.open`` name.

    The file is created under a hidden name that readers ignore, locked, and only then
    renamed: no reader ever sees a live writer's ``.open`` segment unlocked. The lock
    waits while a reader's probe holds it. A replay's tidy-up that probed the hidden
    file before it was locked takes it for a dead writer's and removes it; then the
    rename fails, and a new file is made.
    """
    for _ in range(_CREATE_TRIES):
        base = _segment_base()
        path = directory / (base + _OPEN)
        tmp = directory / f".{base}{_TMP}"
        # Unbuffered: after a failed write, no buffer holds bytes to write later.
        f = open(tmp, "xb", buffering=0)  # noqa: SIM115 - closed when the segment is sealed
        try:
            _lock(f.fileno())
            os.replace(tmp, path)
        except FileNotFoundError:
            f.close()
            log.info("rescue.segment_removed file=%s; making a new one", tmp.name)
            continue
        except BaseException:
            f.close()
            tmp.unlink(missing_ok=True)
            raise
        return f, path
    raise OSError(f"no segment could be created in {directory}: each was removed at once")


def writer_gone(path: Path) -> bool:
    """True when no live writer holds segment ``path`` (its writer died)."""
    f = _open_existing(path)
    if f is None:
        return False
    with f:
        return try_lock(f.fileno())


# -- listing -----------------------------------------------------------------------


def list_segments(directory: Path, own: Path | None) -> list[Segment]:
    """The segments to read, in write order: the sealed ones, from their consumed
    offset, and those of writers that died, except ``own`` (a live writer's)."""
    found: list[tuple[str, Path, bool]] = []  # (sort key, path, sealed)
    with os.scandir(directory) as it:
        for d in it:
            name = d.name
            if not name.startswith("seg-"):
                continue
            if name.endswith(FINAL):
                found.append((name, Path(d.path), True))
            elif name.endswith(_OPEN):
                found.append((final_path(Path(d.path)).name, Path(d.path), False))
    found.sort()
    segments: list[Segment] = []
    for _, path, sealed in found:
        if sealed:
            segments.append(Segment(path, _read_offset(path)))
        elif path != own and writer_gone(path):
            segments.append(Segment(path, 0))
    return segments


def tidy(directory: Path) -> None:
    """Adopt the segments of writers that died (rename them to their final name) and
    drop what interrupted work left: empty segments never named, temporary progress
    files, progress files of deleted segments. Only while holding the replay lock."""
    with os.scandir(directory) as it:
        names = sorted(d.name for d in it if d.name.startswith(("seg-", ".seg-")))
    for name in names:
        path = directory / name
        if name.startswith(".seg-"):
            # A writer died between creating its segment and naming it: empty.
            if writer_gone(path):
                path.unlink(missing_ok=True)
        elif name.endswith(_OPEN) and writer_gone(path):
            final = final_path(path)
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, final)
                log.info("rescue.adopted segment=%s", final.name)
        elif name.endswith(_DONE + _TMP):
            path.unlink(missing_ok=True)
    for name in names:
        if name.endswith(_DONE) and not (directory / name.removesuffix(_DONE)).exists():
            (directory / name).unlink(missing_ok=True)
    fsync_dir(directory)


# -- progress ----------------------------------------------------------------------


def _read_offset(path: Path) -> int:
    """How far replay has consumed the segment ``path``: a byte offset, 0 when its
    progress file is missing or unreadable."""
    done = _done_path(path)
    try:
        text = done.read_text("ascii")
    except FileNotFoundError:
        return 0
    except (OSError, UnicodeDecodeError):
        text = ""
    try:
        offset = int(text.strip())
    except ValueError:
        offset = -1
    if offset < 0:
        log.warning('rescue.bad_progress file=%s text="%s"; reading from the start', done, text)
        return 0
    return offset


def mark_consumed(path: Path, offset: int, size: int) -> None:
    """Record that the segment ``path`` (of ``size`` bytes) is consumed up to
    ``offset``: in its progress file, replaced atomically, or, at its end, by deleting
    it and then its progress file. Durable when this returns."""
    done = _done_path(path)
    if offset >= size:
        path.unlink(missing_ok=True)
        done.unlink(missing_ok=True)
        log.debug("rescue.consumed segment=%s", path.name)
    else:
        tmp = done.with_name(done.name + _TMP)
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{offset}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, done)
    fsync_dir(path.parent)


# -- reading -----------------------------------------------------------------------


def scan(path: Path, start: int, tally: Tally) -> Iterator[Item]:
    """The decodable lines of segment ``path`` from byte ``start``."""
    f = _open_existing(path)
    if f is None:
        return
    with f:
        size = os.fstat(f.fileno()).st_size
        yield from scan_open(f, path, start, size, tally)


def read_chunk(path: Path, start: int, n: int, tally: Tally) -> Chunk:
    """Up to ``n`` entries of segment ``path`` from byte ``start``."""
    items: list[Item] = []
    f = _open_existing(path)
    if f is None:
        return Chunk(items, start, start, start)
    with f:
        size = os.fstat(f.fileno()).st_size
        end = start
        for item in scan_open(f, path, start, size, tally):
            items.append(item)
            end = item.end
            if len(items) >= n:
                break
        else:
            end = size
    return Chunk(items, start, end, size)


def scan_open(
    f: IO[bytes], path: Path, start: int, size: int, tally: Tally | None
) -> Iterator[Item]:
    """The decodable lines of ``f`` (segment ``path``, ``size`` bytes) from ``start``;
    the rest are counted in ``tally`` and logged, unless ``tally`` is None (lines
    that a read has counted already). An undecodable line is torn when it ends at
    ``size``, else bad.

    A last line without its newline is kept when it decodes: a JSON object decodes
    only when whole.
    """
    f.seek(start)
    pos = start
    for data in f:
        end = pos + len(data)
        entry = decode(data, f"{path.name} at byte {pos}")
        if entry is None:
            if tally is not None:
                _skip(tally, path, pos, len(data), torn=end >= size)
        else:
            if tally is not None:
                tally.entries += 1
            yield Item(pos, end, data, entry)
        pos = end


def _skip(tally: Tally, path: Path, pos: int, length: int, *, torn: bool) -> None:
    """Count and log an undecodable line: torn when it ends the segment, else bad."""
    if torn:
        tally.torn += 1
        log.warning("rescue.torn_line segment=%s offset=%d bytes=%d", path.name, pos, length)
    else:
        tally.bad += 1
        log.warning("rescue.bad_line segment=%s offset=%d bytes=%d", path.name, pos, length)


def lines_between(
    path: Path, span: tuple[int, int] | None
) -> Generator[tuple[bytes, int], None, None]:
    """The decodable lines of segment ``path`` in byte range ``span`` (none when it is
    None), as they are, a piece of up to 1024 lines at a time (whole lines, and how
    many). Lines skipped are not counted: the read that passed them counted them."""
    if span is None:
        return
    start, stop = span
    pending: list[bytes] = []
    with open(path, "rb") as f:
        for item in scan_open(f, path, start, stop, None):
            if item.end > stop:
                break
            pending.append(item.line)
            if len(pending) >= 1024:
                yield joined(pending), len(pending)
                pending = []
    if pending:
        yield joined(pending), len(pending)


def joined(lines: Iterable[bytes]) -> bytes:
    """``lines`` as one buffer, each ending with its newline."""
    return b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines)
