"""Opening the files of a rescue store safely, and the locks on them.

A store directory is shared with people and other programs: a name that looks like a
segment may be a directory, a FIFO or a symlink. Nothing here follows a symlink
(``O_NOFOLLOW``), waits on a FIFO (``O_NONBLOCK``), or takes anything but a regular
file for one: such a name is skipped, with one warning per name and process.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import sys
import threading
from pathlib import Path
from typing import IO, Final

log = logging.getLogger("trio_sink.rescue")

_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK: Final = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_BINARY: Final = getattr(os, "O_BINARY", 0)
_SAFE: Final = _NOFOLLOW | _NONBLOCK | _CLOEXEC | _BINARY

# errno values of an open that met something else than a regular file: a symlink
# (ELOOP; EMLINK on FreeBSD), a directory opened for writing, a FIFO or socket with
# no reader (ENXIO), a device.
_NOT_REGULAR: Final = frozenset({errno.ELOOP, errno.EMLINK, errno.EISDIR, errno.ENXIO})

_warned: set[str] = set()
_warned_lock = threading.Lock()


class NotRegularFile(OSError):
    """A name of the store is something else than a regular file (a directory, a FIFO,
    a symlink, ...): it is left alone."""


def kind_of(mode: int) -> str:
    """What a file of ``mode`` is, in a word."""
    for test, name in (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "device"),
        (stat.S_ISBLK, "device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def warn_once(path: Path, what: str) -> None:
    """Log ``rescue.skipped`` for ``path`` (once per path and process)."""
    key = str(path)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning("rescue.skipped file=%r kind=%s; not a regular file, left alone", key, what)


def is_regular(entry: os.DirEntry[str]) -> bool:
    """True when the directory entry is a regular file (a symlink is not); else warns
    once, for names the store would use."""
    try:
        if entry.is_file(follow_symlinks=False):
            return True
        mode = entry.stat(follow_symlinks=False).st_mode
    except FileNotFoundError:
        return False
    warn_once(Path(entry.path), kind_of(mode))
    return False


def open_regular(path: Path, flags: int = os.O_RDONLY, mode: int = 0o666) -> int | None:
    """A file descriptor of ``path`` opened with ``flags``: never through a symlink,
    never blocking on a FIFO. None when there is no such file (and ``flags`` does not
    create one). Raises :class:`NotRegularFile` when it is something else than a
    regular file, and other OSErrors as :func:`os.open` does."""
    try:
        fd = os.open(path, flags | _SAFE, mode)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in _NOT_REGULAR:
            try:
                what = kind_of(os.lstat(path).st_mode)
            except OSError:
                what = "not a regular file"
            raise NotRegularFile(exc.errno, f"{what}: {exc.strerror}", str(path)) from None
        raise
    try:
        st_mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(st_mode):
            raise NotRegularFile(errno.EINVAL, kind_of(st_mode), str(path))
        if _NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def unlink_regular(path: Path) -> None:
    """Remove ``path`` when it is a regular file; anything else of that name stays
    (with a warning), and a missing one is fine."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        warn_once(path, kind_of(mode))
        return
    path.unlink(missing_ok=True)


def fsync_dir(path: Path) -> None:
    """fsync the directory ``path``, so that the names made or removed in it last."""
    if sys.platform == "win32":  # pragma: no cover - directories cannot be opened
        return
    fd = os.open(path, os.O_RDONLY | _CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(f: IO[bytes], data: bytes | bytearray) -> None:
    """Write all of ``data`` to the unbuffered file ``f``."""
    view = memoryview(data)
    while view:
        view = view[f.write(view) :]


def write_all(fd: int, data: bytes | bytearray) -> None:
    """Write all of ``data`` to ``fd``."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


if sys.platform == "win32":  # pragma: no cover - no flock: one writer per directory

    def try_lock(fd: int) -> bool:
        return True

    def lock(fd: int) -> None:
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

    def lock(fd: int) -> None:
        """Take the lock on ``fd``, waiting while someone holds it: on a new segment,
        only a reader's probe can, and only for a moment."""
        fcntl.flock(fd, fcntl.LOCK_EX)


class DirectoryLock:
    """The lock of one replay on a store directory: an ``flock`` on the directory
    itself, which no file in it can shadow. :meth:`close` lets it go."""

    def __init__(self, path: Path) -> None:
        self._fd: int | None = None
        if sys.platform == "win32":  # pragma: no cover - directories cannot be opened
            return
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
        try:
            taken = try_lock(fd)
        except BaseException:
            os.close(fd)
            raise
        if not taken:
            os.close(fd)
            raise BlockingIOError(errno.EWOULDBLOCK, "held by another replay", str(path))
        self._fd = fd

    def close(self) -> None:
        """Let the lock go. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
