"""Rotation of a file by number, and compression of the rotated files: the blocking steps
that :class:`~trio_sink.sinks.JsonlFileSink` runs in its worker thread.

``path`` is renamed ``path.1``; the older ``path.N`` (or ``path.N.gz``) become
``path.N+1``, and those past ``keep`` are removed. A rotated file is compressed to
``path.N.gz`` by writing ``path.N.gz.tmp``, syncing it to disk, renaming it, and only
then removing ``path.N``; so at every moment each line is in a complete file:

- killed before the rename of ``path``: nothing moved;
- killed while compressing: ``path.N`` is whole, ``path.N.gz.tmp`` a leftover;
- killed after the ``.gz`` took its name: ``path.N`` and ``path.N.gz`` hold the same
  lines, both complete.

The next rotation settles what a kill left: it removes ``.gz.tmp`` leftovers and a plain
file whose ``.gz`` is in place, and compresses a plain rotated file that has none.
"""

from __future__ import annotations

import contextlib
import gzip as gzip_module
import logging
import os
import re
import shutil
from pathlib import Path

from ._exceptions import describe

__all__ = ["compress", "generations", "numbered", "rotate", "sync_folder"]

log = logging.getLogger("trio_sink.sink")

GZ = ".gz"
TMP = ".gz.tmp"


def numbered(path: Path, number: int, *, gz: bool = False) -> Path:
    """``path.N``, or ``path.N.gz``."""
    return path.with_name(f"{path.name}.{number}{GZ if gz else ''}")


def generations(path: Path) -> dict[int, list[Path]]:
    """The rotated files of ``path`` by number (``path.N`` and ``path.N.gz``), and
    under -1 the leftovers of a compression cut short (``path.N.gz.tmp``)."""
    pattern = re.compile(re.escape(path.name) + r"\.([0-9]+)(\.gz|\.gz\.tmp)?")
    found: dict[int, list[Path]] = {}
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return found
    for name in sorted(names):
        match = pattern.fullmatch(name)
        if match is not None:
            number = -1 if match.group(2) == TMP else int(match.group(1))
            found.setdefault(number, []).append(path.with_name(name))
    return found


def sync_folder(folder: Path) -> None:
    """Put the folder's entries (a rename, a new file) on disk, where the system can."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; it has no need to
        return
    try:
        with contextlib.suppress(OSError):  # some file systems cannot sync a folder
            os.fsync(fd)
    finally:
        os.close(fd)


def compress(plain: Path) -> Path:
    """Compress ``plain`` to ``plain.gz`` (see the module documentation for the order of
    the steps), and remove ``plain``; the ``.gz`` path. A failure leaves ``plain`` whole
    and removes the temporary file."""
    done = plain.with_name(plain.name + GZ)
    tmp = plain.with_name(plain.name + TMP)
    try:
        with open(plain, "rb") as src, open(tmp, "wb") as raw:
            with gzip_module.GzipFile(
                filename=plain.name, mode="wb", fileobj=raw, compresslevel=6
            ) as out:
                shutil.copyfileobj(src, out, 1024 * 1024)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, done)
    except Exception:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    sync_folder(plain.parent)  # the .gz is in place for good before the lines leave plain
    os.remove(plain)
    return done


def _settle(found: dict[int, list[Path]]) -> None:
    """Remove what a compression cut short left: ``.gz.tmp`` files, and a plain file
    whose ``.gz`` took its name."""
    for leftover in found.pop(-1, []):
        os.remove(leftover)
    for number, paths in found.items():
        plain = [p for p in paths if not p.name.endswith(GZ)]
        if plain and len(paths) == 2:
            os.remove(plain[0])
            found[number] = [p for p in paths if p.name.endswith(GZ)]


def rotate(path: Path, *, keep: int | None, gzip: bool, sink: str) -> None:
    """Rename ``path`` to ``path.1`` after moving each older file one number up (and
    removing those that would pass ``keep``); with ``gzip``, compress every rotated file
    that is not yet (a failed compression is logged, and tried again at the next
    rotation). ``path`` must be closed; ``sink`` names the sink in the log."""
    found = generations(path)
    _settle(found)
    for number in sorted(found, reverse=True):
        for old in found[number]:
            if keep is not None and number + 1 > keep:
                os.remove(old)
            else:
                os.replace(old, numbered(path, number + 1, gz=old.name.endswith(GZ)))
    with contextlib.suppress(FileNotFoundError):  # removed by someone while it was open
        os.replace(path, numbered(path, 1))
    sync_folder(path.parent)
    log.info("sink.rotated sink=%s path=%s", sink, path)
    if not gzip:
        return
    for number, paths in sorted(generations(path).items()):
        for plain in paths:
            if number < 0 or plain.name.endswith(GZ):
                continue
            try:
                compress(plain)
            except Exception as exc:
                log.warning(
                    'sink.compress_failed sink=%s path=%s error="%s"', sink, plain, describe(exc)
                )
