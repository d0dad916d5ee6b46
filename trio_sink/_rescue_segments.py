"""The files of a rescue store directory (the layout is in :mod:`trio_sink._rescue`).

Segment names, the ``flock`` that tells a live writer's segment from a dead one's, the
listing that skips what is not a regular file, the tidy-up after interrupted work, and
the scan of a segment's lines: it skips the lines replay has consumed (their ranges are
in :mod:`trio_sink._progress`), decodes the others, and counts and logs those it cannot
decode. The writer that uses them is :class:`~trio_sink._segment_log.SegmentLog`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Final, NamedTuple

from . import _progress
from ._progress import Consumed
from ._rescue_files import (
    NotRegularFile,
    fsync_dir,
    is_regular,
    lock,
    open_regular,
    try_lock,
    unlink_regular,
)
from ._rescue_format import RescueEntry, decode

log = logging.getLogger("trio_sink.rescue")

FINAL: Final = ".jsonl"
_OPEN: Final = ".jsonl.open"
_TMP: Final = ".tmp"
_CREATE_TRIES: Final = 8
"""Attempts at creating a segment, each removed by a tidy-up before it was locked."""
_BACK: Final = 4096
"""Bytes read at a time when looking back for the start of a line."""

_names = itertools.count()
_names_lock = threading.Lock()
_last_ns = 0


class Tally:
    """What a read went through; :class:`~trio_sink.RescueReadStats` is its snapshot."""

    __slots__ = ("bad", "entries", "held", "quarantined", "segments", "torn")

    def __init__(self) -> None:
        self.segments = 0
        self.entries = 0
        self.torn = 0
        self.bad = 0
        self.quarantined = 0
        self.held = 0

    def copy(self) -> Tally:
        """A tally with the same counts, that this one's later counts leave alone."""
        other = Tally()
        for name in Tally.__slots__:
            setattr(other, name, getattr(self, name))
        return other


class Item(NamedTuple):
    """One decoded line of a segment, with its byte range."""

    start: int
    end: int
    entry: RescueEntry


class Bad(NamedTuple):
    """One line of a segment that cannot be decoded, as it is on disk."""

    start: int
    end: int
    data: bytes
    torn: bool
    """The last line of its segment (a writer killed mid-write leaves one)."""


class Chunk(NamedTuple):
    """Up to ``n`` entries of a segment from an offset, as replay reads them, and the
    undecodable lines among them."""

    items: list[Item]
    bad: list[Bad]
    start: int
    """The byte offset the read started at: the start of a line."""
    end: int
    """Where the next read starts: after the last line read, or the segment's end."""
    size: int
    """The segment's size."""


class Segment(NamedTuple):
    """A segment to read: from the start of the line that holds byte ``start`` (the
    end of its consumed prefix), skipping the lines ``consumed`` covers."""

    path: Path
    start: int
    consumed: Consumed


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


def _open_existing(path: Path) -> IO[bytes] | None:
    """``path`` opened for reading; None when it is gone (consumed, or adopted, since
    it was listed). Raises :class:`NotRegularFile` for anything but a regular file."""
    fd = open_regular(path)
    return None if fd is None else os.fdopen(fd, "rb")


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
        fd = open_regular(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        assert fd is not None
        # Unbuffered: after a failed write, no buffer holds bytes to write later.
        f = os.fdopen(fd, "wb", buffering=0)
        try:
            lock(f.fileno())
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
    """True when no live writer holds segment ``path`` (its writer died). False when
    it is gone, or not a regular file."""
    try:
        f = _open_existing(path)
    except NotRegularFile:
        return False
    if f is None:
        return False
    with f:
        return try_lock(f.fileno())


# -- listing -----------------------------------------------------------------------


def _found(directory: Path) -> list[tuple[str, Path, bool]]:
    """The regular files named as segments, in write order: (sort key, path, sealed)."""
    found: list[tuple[str, Path, bool]] = []
    with os.scandir(directory) as it:
        for d in it:
            name = d.name
            if not name.startswith("seg-"):
                continue
            sealed = name.endswith(FINAL)
            if not (sealed or name.endswith(_OPEN)) or not is_regular(d):
                continue
            path = Path(d.path)
            found.append((final_path(path).name, path, sealed))
    found.sort()
    return found


def list_segments(directory: Path, own: Path | None) -> list[Segment]:
    """The segments to read, in write order: the sealed ones, with what replay has
    consumed of them, and those of writers that died, except ``own`` (a live
    writer's)."""
    segments: list[Segment] = []
    for _, path, sealed in _found(directory):
        if sealed:
            consumed = _progress.load(path)
            segments.append(Segment(path, consumed.prefix, consumed))
        elif path != own and writer_gone(path):
            segments.append(Segment(path, 0, Consumed()))
    return segments


def held_segments(directory: Path, own: Path | None) -> list[Path]:
    """The ``.open`` segments that a live writer other than ``own`` holds, in write
    order."""
    return [
        path
        for _, path, sealed in _found(directory)
        if not sealed and path != own and not writer_gone(path) and path.exists()
    ]


def tidy(directory: Path) -> None:
    """Adopt the segments of writers that died (rename them to their final name) and
    drop what interrupted work left: empty segments never named, temporary progress
    files, progress files of deleted segments. Only while holding the replay lock.
    Names that are not regular files are left alone."""
    with os.scandir(directory) as it:
        names = sorted(d.name for d in it if d.name.startswith(("seg-", ".seg-")) and is_regular(d))
    done = _progress.DONE
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
        elif name.endswith(done + _TMP):
            path.unlink(missing_ok=True)
    for name in names:
        if name.endswith(done) and not (directory / name.removesuffix(done)).exists():
            (directory / name).unlink(missing_ok=True)
    fsync_dir(directory)


def delete(path: Path) -> None:
    """Delete the consumed segment ``path``, then its progress file; durable when this
    returns."""
    unlink_regular(path)
    unlink_regular(_progress.done_path(path))
    fsync_dir(path.parent)
    log.debug("rescue.consumed segment=%s", path.name)


# -- reading -----------------------------------------------------------------------


def line_start(f: IO[bytes], pos: int) -> int:
    """The start of the line that holds byte ``pos``: ``pos`` itself when a line ends
    just before it. A read never starts inside a line."""
    if pos <= 0:
        return 0
    f.seek(pos - 1)
    if f.read(1) == b"\n":
        return pos
    end = pos - 1
    while end > 0:
        begin = max(0, end - _BACK)
        f.seek(begin)
        i = f.read(end - begin).rfind(b"\n")
        if i >= 0:
            return begin + i + 1
        end = begin
    return 0


def scan(path: Path, start: int, consumed: Consumed, tally: Tally | None) -> Iterator[Item | Bad]:
    """The lines of segment ``path`` that ``consumed`` does not cover, from the line
    that holds byte ``start``."""
    try:
        f = _open_existing(path)
    except NotRegularFile:
        return
    if f is None:
        return
    with f:
        size = os.fstat(f.fileno()).st_size
        yield from scan_open(f, path, line_start(f, min(start, size)), size, consumed, tally)


def read_chunk(path: Path, start: int, n: int, consumed: Consumed, tally: Tally) -> Chunk:
    """Up to ``n`` lines (entries and undecodable lines) of segment ``path`` from the
    line that holds byte ``start``, skipping those ``consumed`` covers."""
    items: list[Item] = []
    bad: list[Bad] = []
    try:
        f = _open_existing(path)
    except NotRegularFile:
        f = None
    if f is None:
        return Chunk(items, bad, start, start, start)
    with f:
        size = os.fstat(f.fileno()).st_size
        first = line_start(f, min(start, size))
        end = size
        for line in scan_open(f, path, first, size, consumed, tally):
            if isinstance(line, Item):
                items.append(line)
            else:
                bad.append(line)
            if len(items) + len(bad) >= n:
                end = line.end
                break
    return Chunk(items, bad, first, end, size)


def scan_open(
    f: IO[bytes], path: Path, start: int, size: int, consumed: Consumed, tally: Tally | None
) -> Iterator[Item | Bad]:
    """The lines of ``f`` (segment ``path``, ``size`` bytes) from ``start`` (the start
    of a line) to ``size``, but those ``consumed`` covers; counted in ``tally`` (and
    undecodable ones logged) unless it is None. An undecodable line is torn when it
    ends the segment, else bad.

    A last line without its newline is an entry when it decodes: a JSON object
    decodes only when whole.
    """
    f.seek(start)
    pos = start
    covers = consumed.covers if consumed else None
    for data in f:
        end = pos + len(data)
        if covers is not None and covers(pos, end):
            pos = end
            continue
        entry = decode(data, f"{path.name} at byte {pos}")
        if entry is None:
            torn = end >= size
            if tally is not None:
                _skip(tally, path, pos, len(data), torn=torn)
            yield Bad(pos, end, data, torn)
        else:
            if tally is not None:
                tally.entries += 1
            yield Item(pos, end, entry)
        pos = end
        if pos >= size:
            return


def _skip(tally: Tally, path: Path, pos: int, length: int, *, torn: bool) -> None:
    """Count and log an undecodable line: torn when it ends the segment, else bad."""
    if torn:
        tally.torn += 1
        log.warning("rescue.torn_line segment=%s offset=%d bytes=%d", path.name, pos, length)
    else:
        tally.bad += 1
        log.warning("rescue.bad_line segment=%s offset=%d bytes=%d", path.name, pos, length)
