"""The files of a rescue store directory (the layout is in :mod:`trio_sink._rescue`).

Segment names, the ``flock`` that tells a live writer's segment from a dead one's, the
``.done`` files that record how far replay has consumed a segment, and the scan of a
segment's lines that skips torn and bad lines, counts them and logs them.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Final, NamedTuple

from ._rescue_format import RescueEntry, _decode

log = logging.getLogger("trio_sink.rescue")

_FINAL: Final = ".jsonl"
_OPEN: Final = ".jsonl.open"
_DONE: Final = ".done"
_TMP: Final = ".tmp"
_REPLAY_LOCK: Final = ".replay.lock"

_names = itertools.count()
_names_lock = threading.Lock()
_last_ns = 0


class _Tally:
    __slots__ = ("bad", "entries", "segments", "torn")

    def __init__(self) -> None:
        self.segments = 0
        self.entries = 0
        self.torn = 0
        self.bad = 0


class _Item(NamedTuple):
    """One decoded line of a segment, with its byte range."""

    start: int
    end: int
    line: bytes
    entry: RescueEntry


class _Chunk(NamedTuple):
    """Up to ``n`` entries of a segment from an offset, as replay reads them."""

    items: list[_Item]
    start: int
    end: int
    size: int
    skipped: int


class _Segment(NamedTuple):
    path: Path
    start: int


if sys.platform == "win32":  # pragma: no cover - no flock: one writer per directory

    def _try_lock(fd: int) -> bool:
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def _fsync_dir(path: Path) -> None:
    if sys.platform == "win32":  # pragma: no cover - directories cannot be opened
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _segment_base() -> str:
    """A new segment name without suffix; later calls in this process sort later."""
    global _last_ns
    with _names_lock:
        ns = max(time.time_ns(), _last_ns + 1)
        _last_ns = ns
        n = next(_names)
    return f"seg-{ns:020d}-{os.getpid()}-{n:06d}"


def _read_offset(path: Path) -> int:
    done = path.with_name(path.name + _DONE)
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


def _writer_gone(path: Path) -> bool:
    """True when no live writer holds segment ``path`` (its writer died)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return False
    with f:
        return _try_lock(f.fileno())


def _commit(path: Path, offset: int, size: int) -> None:
    if offset >= size:
        path.unlink(missing_ok=True)
        path.with_name(path.name + _DONE).unlink(missing_ok=True)
        log.debug("rescue.consumed segment=%s", path.name)
    else:
        done = path.with_name(path.name + _DONE)
        tmp = done.with_name(done.name + _TMP)
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{offset}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, done)
    _fsync_dir(path.parent)


def _scan(path: Path, start: int, tally: _Tally) -> Iterator[_Item]:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:  # consumed, or adopted, since it was listed
        return
    with f:
        size = os.fstat(f.fileno()).st_size
        yield from _scan_open(f, path, start, size, tally)


def _scan_open(
    f: IO[bytes], path: Path, start: int, size: int, tally: _Tally, *, quiet: bool = False
) -> Iterator[_Item]:
    """The decodable lines of ``f`` from ``start``; the rest are counted and logged.

    A last line without its newline is kept when it decodes: a JSON object decodes
    only when whole.
    """
    f.seek(start)
    pos = start
    for data in f:
        end = pos + len(data)
        entry = _decode(data, f"{path.name} at byte {pos}")
        if entry is None:
            if quiet:
                pass
            elif end >= size:
                tally.torn += 1
                log.warning(
                    "rescue.torn_line segment=%s offset=%d bytes=%d", path.name, pos, len(data)
                )
            else:
                tally.bad += 1
                log.warning(
                    "rescue.bad_line segment=%s offset=%d bytes=%d", path.name, pos, len(data)
                )
        else:
            tally.entries += 1
            yield _Item(pos, end, data, entry)
        pos = end
