"""What replay has consumed of a segment: byte ranges, in the ``.done`` file beside it.

A segment is never rewritten: consuming an entry records its line's byte range as
consumed, and a segment is deleted once every line of it is. Ranges may leave holes:
an entry a replay leaves behind (meant for another sink, or filtered out) stays where
it is, and a later replay takes it.

The ``.done`` file is appended to, one line a commit, and fsynced::

    v2
    0-4096 4210-8192;
    8192-12288;

The first line says the format. Each later line is a list of ranges ``start-end`` (end
excluded) and ends with ``;``, so that a line torn by a crash (a prefix of it) is never
taken for a whole one: it is ignored, which at most makes a replay deliver that batch
again. A file that holds one bare number (the format of trio_sink before ranges) means
the prefix up to that offset. A line that is not whole and valid is skipped with a
warning: a fact of consumption lost only makes an entry be delivered again, never lost.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from ._rescue_files import NotRegularFile, fsync_dir, open_regular, warn_once, write_all

__all__ = ["Consumed", "append", "compact", "done_path", "load", "needs_compacting"]

log = logging.getLogger("trio_sink.rescue")

DONE: Final = ".done"
TMP: Final = ".tmp"
_HEADER: Final = b"v2\n"
_LINE: Final = re.compile(rb"\d+-\d+(?: \d+-\d+)*;")
_OLD: Final = re.compile(rb"\d+")
_MANY_LINES: Final = 16

Range = tuple[int, int]


def merge(ranges: Iterable[Range]) -> list[Range]:
    """``ranges`` sorted, empty ones dropped, overlapping and adjacent ones joined."""
    out: list[Range] = []
    for start, end in sorted(r for r in ranges if r[0] < r[1]):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


class Consumed:
    """The consumed byte ranges of one segment: sorted, disjoint, not adjacent."""

    __slots__ = ("_ends", "_starts", "lines")

    def __init__(self, ranges: Iterable[Range] = (), lines: int = 0) -> None:
        merged = merge(ranges)
        self._starts = [a for a, _ in merged]
        self._ends = [b for _, b in merged]
        self.lines = lines
        """Lines of ranges in the progress file they were read from."""

    @property
    def ranges(self) -> list[Range]:
        return list(zip(self._starts, self._ends, strict=True))

    @property
    def prefix(self) -> int:
        """Where the consumed prefix ends: 0 when the first byte is not consumed."""
        return self._ends[0] if self._starts and self._starts[0] == 0 else 0

    def covers(self, start: int, end: int) -> bool:
        """True when every byte of ``start .. end`` is consumed."""
        i = bisect.bisect_right(self._starts, start) - 1
        return i >= 0 and self._ends[i] >= end

    def __bool__(self) -> bool:
        return bool(self._starts)


def done_path(segment: Path) -> Path:
    """The progress file of ``segment``."""
    return segment.with_name(segment.name + DONE)


def load(segment: Path) -> Consumed:
    """The consumed ranges of ``segment``; none when it has no progress file, or one
    that cannot be read (then the segment is read from its start: entries may be
    delivered again, none is lost)."""
    done = done_path(segment)
    try:
        fd = open_regular(done)
    except NotRegularFile as exc:
        warn_once(done, exc.strerror or "not a regular file")
        return Consumed()
    except OSError as exc:
        log.warning("rescue.bad_progress file=%r error=%r; reading from the start", done.name, exc)
        return Consumed()
    if fd is None:
        return Consumed()
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    ranges, lines = _parse(data, done)
    return Consumed(ranges, lines)


def _parse(data: bytes, done: Path) -> tuple[list[Range], int]:
    lines = data.split(b"\n")
    lines.pop()  # what follows the last newline: empty, or a torn line
    ranges: list[Range] = []
    bad = 0
    good = 0
    for k, line in enumerate(lines):
        if k == 0 and _OLD.fullmatch(line):
            ranges.append((0, int(line)))
            good += 1
        elif _LINE.fullmatch(line):
            good += 1
            for part in line[:-1].split(b" "):
                a, _, b = part.partition(b"-")
                if int(a) < int(b):
                    ranges.append((int(a), int(b)))
        elif k > 0 or line != _HEADER[:-1]:
            bad += 1
    if bad:
        log.warning("rescue.bad_progress file=%r lines=%d; those lines ignored", done.name, bad)
    return ranges, good + bad


def _text(ranges: Sequence[Range]) -> bytes:
    return " ".join(f"{a}-{b}" for a, b in ranges).encode("ascii") + b";\n"


def append(segment: Path, ranges: Iterable[Range]) -> None:
    """Record ``ranges`` of ``segment`` as consumed: appended to its progress file and
    fsynced (and the directory, when the file is new). Durable when this returns."""
    merged = merge(ranges)
    if not merged:
        return
    done = done_path(segment)
    try:
        fd = open_regular(done, os.O_RDWR | os.O_APPEND)
    except NotRegularFile:
        if not os.path.islink(done):
            raise
        # A symlink at this name, which reads ignore: replaced by a file of our own
        # (removing the link leaves what it points to alone).
        warn_once(done, "symlink")
        done.unlink()
        fd = None
    created = fd is None
    if fd is None:
        fd = open_regular(done, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        assert fd is not None
    try:
        size = os.fstat(fd).st_size
        text = _text(merged)
        if size == 0:
            text = _HEADER + text
        elif _last_byte(fd, size) != b"\n":
            text = b"\n" + text  # after a torn line, which stays ignored
        write_all(fd, text)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(segment.parent)


def _last_byte(fd: int, size: int) -> bytes:
    os.lseek(fd, size - 1, os.SEEK_SET)  # appends go to the end all the same
    return os.read(fd, 1)


def compact(segment: Path, consumed: Consumed) -> None:
    """Replace the progress file of ``segment`` with one line of ``consumed``'s ranges
    (written to a temporary file, fsynced, renamed, directory fsynced). Only under the
    replay lock: an append at the same time could be lost (and its batch delivered
    again)."""
    done = done_path(segment)
    tmp = done.with_name(done.name + TMP)
    fd = open_regular(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    assert fd is not None
    try:
        write_all(fd, _HEADER + _text(consumed.ranges))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, done)
    fsync_dir(segment.parent)


def needs_compacting(consumed: Consumed) -> bool:
    """True when the progress file ``consumed`` was read from has many lines, each
    parsed at every listing: a replay rewrites it as one."""
    return consumed.lines > _MANY_LINES
