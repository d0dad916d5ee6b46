"""JsonlFileSink: JSON lines appended to a file, rotated by size."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import final

import trio

from ._checks import check_int
from ._exceptions import ConfigError
from ._file_rotation import rotate
from ._json_lines import JsonLines
from ._record import Record
from ._sink import Sink

__all__ = ["JsonlFileSink"]


@final
class JsonlFileSink(Sink):
    """Appends one JSON object a line to ``path``: ``id``, ``raw``, ``payload``, and
    ``rest`` / ``error`` when set. Values are encoded by msgspec (so bytes become
    base64 and NaN or infinity ``null``); objects it cannot encode are written as their
    repr, exceptions as ``"TypeName: message"``.

    A write encodes the whole batch, then appends it in one call in a worker thread; a
    cancellation waits for that call, so a batch is either written whole (delivered)
    or not at all. ``flush()`` asks the OS to put the file on disk (fsync). The file's
    folder is made, with its parents, if it does not exist.

    Rotation: with ``rotate_bytes``, a batch that would take the file past that size
    first closes it and renames it ``path.1`` (the older rotated files move one number
    up: ``path.2``, ``path.3``...; past ``keep`` of them, if given, the oldest are
    removed), then goes to a new ``path``. A batch is never split across two files, so
    a batch larger than ``rotate_bytes`` makes a file of its own that is larger. With
    ``gzip=True`` a rotated file is compressed to ``path.1.gz`` in the same worker
    thread call; a kill at any step leaves every line in a complete file (see
    docs/sinks.md). One sink a file: two sinks (or processes) rotating the same path
    would rename each other's files.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        rotate_bytes: int | None = None,
        keep: int | None = None,
        gzip: bool = False,
    ) -> None:
        self.path = Path(path)
        self.name = name if name is not None else self.path.name
        if rotate_bytes is not None:
            check_int("rotate_bytes", rotate_bytes, 1)
        if keep is not None:
            check_int("keep", keep, 1)
        if not isinstance(gzip, bool):
            raise ConfigError(f"gzip must be a bool, got {gzip!r}")
        if rotate_bytes is None and (keep is not None or gzip):
            given = "keep" if keep is not None else "gzip"
            raise ConfigError(
                f"{given} applies to rotated files, and there are none without"
                f" rotate_bytes; got {given}={keep if keep is not None else gzip!r}"
                " and rotate_bytes=None"
            )
        self.rotate_bytes = rotate_bytes
        """The size in bytes a file may not pass (but by a batch larger than it alone),
        or None: never rotated."""
        self.keep = keep
        """The most rotated files kept, or None: all of them."""
        self.gzip = gzip
        """Whether rotated files are compressed (``path.N.gz``)."""
        self._lines = JsonLines()
        self._file: io.FileIO | None = None

    def _open(self) -> io.FileIO:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return open(self.path, "ab", buffering=0)  # closed in aclose(), or at rotation

    def _rotate(self, f: io.FileIO) -> io.FileIO:
        self._file = None
        try:
            os.fsync(f.fileno())  # the lines are on disk before the file changes name
        finally:
            f.close()
        rotate(self.path, keep=self.keep, gzip=self.gzip, sink=self.name)
        self._file = self._open()
        return self._file

    def _append(self, data: bytes) -> None:
        f = self._file
        if f is None:
            f = self._file = self._open()
        if not data:
            return
        size = os.fstat(f.fileno()).st_size
        limit = self.rotate_bytes
        if limit is not None and size > 0 and size + len(data) > limit:
            f = self._rotate(f)
            size = os.fstat(f.fileno()).st_size
        view = memoryview(data)
        try:
            while view:
                view = view[f.write(view) or 0 :]
        except BaseException:
            # Nothing of a batch that failed stays behind (a full disk, a quota).
            with contextlib.suppress(OSError):
                os.ftruncate(f.fileno(), size)
            raise

    async def write(self, batch: Sequence[Record]) -> None:
        data = self._lines.lines(batch)
        await trio.to_thread.run_sync(self._append, data)

    async def flush(self) -> None:
        f = self._file
        if f is not None:
            await trio.to_thread.run_sync(os.fsync, f.fileno())

    async def aclose(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            f.close()
        await trio.lowlevel.checkpoint()
