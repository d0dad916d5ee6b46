"""The quarantine of a rescue store: the lines no reader can decode, kept as they were.

A replay never deletes a line it cannot read. It moves it, byte for byte, to a file of
its own in the store's ``quarantine/`` directory, named after the segment and the byte
offset it held there (``quarantine/seg-...jsonl.00000000000000004096.bad``), and only
once that file is on disk does the segment count the line as consumed. Readers of the
store never look in ``quarantine/``: what is there waits for a person (or a tool of
theirs) to repair it and write it back.

Moving a line again (after a replay was interrupted between the copy and the record of
its consumption) writes the same file with the same bytes: a line is never quarantined
twice.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from ._rescue_files import NotRegularFile, fsync_dir, is_regular, open_regular, write_all

__all__ = ["QUARANTINE", "quarantine", "quarantined_files"]

log = logging.getLogger("trio_sink.rescue")

QUARANTINE: Final = "quarantine"
_BAD: Final = ".bad"
_TMP: Final = ".tmp"


def _directory(store: Path, *, create: bool) -> tuple[Path, bool]:
    """The quarantine directory of ``store``, and whether this call made it. Raises
    :class:`NotRegularFile` when the name is taken by something else than a directory
    (a symlink included: it is never followed)."""
    path = store / QUARANTINE
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        if not create:
            return path, False
        try:
            os.mkdir(path)
        except FileExistsError:
            return _directory(store, create=False)
        return path, True
    if not stat.S_ISDIR(mode):
        raise NotRegularFile(0, "not a directory: quarantine/ cannot be used", str(path))
    return path, False


def quarantine(store: Path, segment: Path, lines: Sequence[tuple[int, bytes]]) -> None:
    """Copy each ``(offset, line)`` of ``segment``, byte for byte, to a file of the
    quarantine. Durable when this returns (each file fsynced, then the directory).
    Blocks."""
    if not lines:
        return
    directory, made = _directory(store, create=True)
    for offset, data in lines:
        name = f"{segment.name}.{offset:020d}{_BAD}"
        tmp = directory / f".{name}{_TMP}"
        fd = open_regular(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        assert fd is not None
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, directory / name)
        log.warning(
            "rescue.quarantined segment=%s offset=%d bytes=%d file=%s/%s",
            segment.name,
            offset,
            len(data),
            QUARANTINE,
            name,
        )
    fsync_dir(directory)
    if made:
        fsync_dir(store)


def quarantined_files(store: Path) -> int:
    """How many lines the quarantine of ``store`` holds. Blocks (a listing)."""
    try:
        directory, _ = _directory(store, create=False)
        with os.scandir(directory) as it:
            return sum(1 for d in it if d.name.endswith(_BAD) and is_regular(d))
    except (FileNotFoundError, NotADirectoryError, NotRegularFile):
        return 0


def tidy_quarantine(store: Path) -> None:
    """Remove the temporary files an interrupted move left in the quarantine."""
    try:
        directory, _ = _directory(store, create=False)
        with os.scandir(directory) as it:
            names = [d.name for d in it if d.name.endswith(_TMP) and is_regular(d)]
    except (FileNotFoundError, NotADirectoryError, NotRegularFile):
        return
    for name in names:
        (directory / name).unlink(missing_ok=True)
