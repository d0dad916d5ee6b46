"""FileSource: the lines of a file, read off the event loop, acknowledged into a
checkpoint so that a restart resumes where delivery stopped (see docs/sources.md)."""

from __future__ import annotations

import codecs
import os
from array import array
from collections import deque
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, final

import attrs
import trio

from ._checkpoint import Checkpoint, load_checkpoint, make_checkpoint, write_checkpoint
from ._checks import check_int, check_seconds, check_text
from ._exceptions import ConfigError
from ._file_reader import FileReader, OpenFile, ReadItem
from ._source import Source

__all__ = ["FileSource", "FileSourceStatistics"]

RUN = 1024
"""The most line ends one entry of the queue of unacknowledged lines holds."""


@final
@attrs.frozen
class FileSourceStatistics:
    """A snapshot of a :class:`FileSource` (see :meth:`FileSource.statistics`)."""

    path: str
    """The absolute path the source reads."""
    position: int
    """The offset just after the last line yielded, in the file it came from."""
    acknowledged_offset: int
    """The offset just after the last line acknowledged (where a restart would resume),
    in the file it came from; where reading began until the first acknowledgement."""
    yielded: int
    """Lines (and :class:`~trio_sink.Undecodable` items) yielded."""
    acknowledged: int
    """Lines acknowledged."""
    unacknowledged: int
    """Lines yielded and not acknowledged: what a crash now would have read again."""
    checkpoints: int
    """Checkpoints written."""
    rotations: int
    """Times a new file was found at the path (while running, or since the checkpoint)."""
    truncations: int
    """Times the file was found shorter than where reading was."""


class _Run:
    __slots__ = ("ends", "file", "first")

    def __init__(self, file: OpenFile, end: int) -> None:
        self.file = file
        self.ends = array("q", [end])
        self.first = 0


class _Unacknowledged:
    """The end offsets (and files) of the lines yielded and not yet acknowledged, in
    order: about 8 bytes a line, however long acknowledgements take."""

    def __init__(self) -> None:
        self.runs: deque[_Run] = deque()
        self.count = 0

    def push(self, file: OpenFile, end: int) -> None:
        runs = self.runs
        if runs and runs[-1].file is file and len(runs[-1].ends) < RUN:
            runs[-1].ends.append(end)
        else:
            runs.append(_Run(file, end))
        self.count += 1

    def pop(self, n: int) -> tuple[OpenFile, int]:
        """Forget the first ``n`` (> 0); the file and end offset of the last of them."""
        if n > self.count:
            raise ValueError(
                f"ack() of {n} items, but only {self.count} were yielded and not acknowledged"
            )
        self.count -= n
        while True:
            run = self.runs[0]
            left = len(run.ends) - run.first
            if n < left:
                run.first += n
                return run.file, run.ends[run.first - 1]
            self.runs.popleft()
            n -= left
            if n == 0:
                return run.file, run.ends[-1]


def _check_encoding(encoding: object) -> str:
    expected = "the name of a text encoding in which b'\\n' is a newline, such as 'utf-8'"
    if not isinstance(encoding, str):
        raise ConfigError(f"encoding must be {expected}, got {encoding!r}")
    try:
        # After the first character (a BOM may come first: utf-8-sig is fine).
        encoder = codecs.getincrementalencoder(encoding)()
        encoder.encode("a")
        ok = encoder.encode("\r\n") == b"\r\n" and b"a\r\n".decode(encoding) == "a\r\n"
    except (LookupError, UnicodeError, TypeError):
        ok = False
    if not ok:
        raise ConfigError(f"encoding must be {expected}, got {encoding!r}")
    return encoding


def _check_path(name: str, value: object) -> str:
    if not isinstance(value, (str, os.PathLike)) or not isinstance(os.fspath(value), str):
        raise ConfigError(f"{name} must be a str or os.PathLike path, got {value!r}")
    path = os.fspath(value)
    if not path:
        raise ConfigError(f"{name} must not be empty")
    return os.path.abspath(path)


@final
class FileSource(Source[Any]):
    """The lines of the file at ``path``, as ``str`` without their line ending (``\\n``,
    or ``\\r\\n``), read in a worker thread in chunks of up to ``chunk_lines`` lines or
    ``chunk_bytes`` bytes. A line that is not valid in ``encoding`` is yielded as an
    :class:`~trio_sink.Undecodable` holding its bytes (the pipeline sends it to the
    ``miss`` group). A last line without a newline is yielded at the end of the input
    (never, while following: its newline may still come).

    With ``checkpoint``, the path of a small JSON file: each :meth:`ack` replaces it,
    atomically, with the offset just after the last acknowledged line and the identity
    of its file. A run that starts with it resumes there, so what was yielded and not
    acknowledged when a run crashed is read again (at least once: the duplicates are
    at most what was in flight). The file is the checkpoint's when its device, inode
    and first bytes (up to 4 KiB) match. When they do not, nothing is skipped, and a
    WARNING says what was found: a file shorter than the offset (truncated) or whose
    first bytes differ (rewritten in place) is read from its start; when another file
    is at the path (rotated), the old one is looked for in the same folder by its
    inode, its rest read first, then the new file from its start; if the old one is
    gone, the new file is read from its start and whatever the old one held after the
    offset is lost. A checkpoint file that cannot be read, is not a checkpoint, or
    belongs to another path is a :class:`~trio_sink.ConfigError` naming it, at
    construction: starting over from the start silently could deliver a whole file
    twice, and a checkpoint is never torn (it is replaced atomically), so such a file
    calls for a person (delete it to read from the start).

    With ``follow``, the source does not end at the end of the file; like ``tail -F``
    it looks at the file every ``poll_interval`` seconds, in a worker thread: new
    lines, a new file at the path (rotation: the old file is read to its end, after
    one more poll for its last writes, then the new one from its start) or a file
    shorter than what was read (truncation: read again from its start, logged at
    WARNING). At a Stop, a wait is cancelled at once; lines read and not yet yielded
    are kept by the source (a later iteration yields them) and, not being
    acknowledged, are read again by the next run.

    One iteration at a time (another raises ``trio.BusyResourceError``); a later one
    goes on where the last ended. :meth:`aclose` closes the file for good.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        checkpoint: str | os.PathLike[str] | None = None,
        follow: bool = False,
        encoding: str = "utf-8",
        name: str = "file",
        poll_interval: float = 0.25,
        chunk_lines: int = 128,
        chunk_bytes: int = 400 * 1024,
    ) -> None:
        self.path = _check_path("path", path)
        self.checkpoint = (
            None if checkpoint is None else Path(_check_path("checkpoint", checkpoint))
        )
        self.follow = bool(follow)
        self.encoding = _check_encoding(encoding)
        self.name = check_text("name", name) or name
        self.poll_interval = check_seconds("poll_interval", poll_interval, positive=True) or 0.25
        self.chunk_lines = check_int("chunk_lines", chunk_lines, 1)
        self.chunk_bytes = check_int("chunk_bytes", chunk_bytes, 1)
        self._point: Checkpoint | None = None
        if self.checkpoint is not None:
            if str(self.checkpoint) == self.path:
                raise ConfigError(f"checkpoint must not be the path it keeps, got {self.path!r}")
            if not self.checkpoint.parent.is_dir():
                raise ConfigError(
                    f"checkpoint's folder {str(self.checkpoint.parent)!r} does not exist"
                )
            self._point = load_checkpoint(self.checkpoint, self.path)
        self._reader = FileReader(
            self.path,
            follow=self.follow,
            encoding=self.encoding,
            chunk_lines=self.chunk_lines,
            chunk_bytes=self.chunk_bytes,
        )
        self._started = False
        self._iterating = False
        self._closed = False
        self._ready: deque[ReadItem] = deque()
        self._unacknowledged = _Unacknowledged()
        self._position = 0
        self._acknowledged: tuple[OpenFile | None, int] = (None, 0)
        self._written = self._point
        self._lock = trio.Lock()
        self._counts = {"yielded": 0, "acknowledged": 0, "checkpoints": 0}

    # -- reading ----------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file: at the checkpoint's offset when it is the checkpoint's file (see
        above). Raises ``FileNotFoundError`` if there is no file at the path and the
        source does not follow it. Called by the pipeline, or by the first iteration."""
        if self._closed:
            raise trio.ClosedResourceError(f"{self.name}: the source was closed")
        if self._started:
            return
        await trio.to_thread.run_sync(self._reader.start, self._point)
        self._started = True
        current = self._reader.current
        start = 0 if current is None else current.pos
        self._acknowledged = (current, start)
        self._position = start

    async def __aiter__(self) -> AsyncIterator[Any]:
        if self._iterating:
            raise trio.BusyResourceError(f"{self.name}: another task is iterating the source")
        self._iterating = True
        try:
            await self.open()
            ready = self._ready
            counts = self._counts
            while True:
                while ready:
                    # No checkpoint from here to the yield: an item taken is yielded.
                    item, file, end = ready.popleft()
                    self._unacknowledged.push(file, end)
                    self._position = end
                    counts["yielded"] += 1
                    yield item
                # If cancelled meanwhile, the thread's read is still kept (the call
                # waits for the thread), and the Cancelled comes at the next checkpoint.
                items = await trio.to_thread.run_sync(self._reader.step)
                if items is None:
                    return
                ready.extend(items)
                if not items:
                    await trio.sleep(self.poll_interval)
        finally:
            self._iterating = False

    # -- acknowledgements -------------------------------------------------------------

    async def ack(self, items: Sequence[Any]) -> None:
        """Acknowledge the next ``len(items)`` lines yielded (see :meth:`Source.ack`):
        with a checkpoint, replace it (in a worker thread) with the offset just after
        the last of them. Raises ``ValueError`` for more items than were yielded and
        not acknowledged.

        Cancelled while waiting for an earlier call's write, it writes nothing; a write
        begun is finished. Either way the lines count as acknowledged, and the next
        call writes the newest offset.
        """
        if not items:
            await trio.lowlevel.checkpoint()
            return
        file, end = self._unacknowledged.pop(len(items))
        self._counts["acknowledged"] += len(items)
        self._acknowledged = (file, end)
        if self.checkpoint is None:
            await trio.lowlevel.checkpoint()
            return
        async with self._lock:
            # The newest offset, acknowledged by this call or one that came meanwhile.
            last, offset = self._acknowledged
            assert last is not None
            point = make_checkpoint(self.path, last.file, offset, last.head)
            if point != self._written:
                await trio.to_thread.run_sync(write_checkpoint, self.checkpoint, point)
                self._written = point
                self._counts["checkpoints"] += 1

    async def aclose(self) -> None:
        """Close the file (and a rotated one still open). The checkpoint is what the
        last :meth:`ack` wrote."""
        self._closed = True
        self._reader.close()
        await trio.lowlevel.checkpoint()

    # -- observing --------------------------------------------------------------------

    @property
    def position(self) -> int:
        """The offset just after the last line yielded, in the file it came from."""
        return self._position

    @property
    def acknowledged_offset(self) -> int:
        """The offset just after the last line acknowledged, in the file it came from
        (where reading began, until the first :meth:`ack`)."""
        return self._acknowledged[1]

    def statistics(self) -> FileSourceStatistics:
        """A snapshot of what the source read and what was acknowledged. Sync, not a
        checkpoint."""
        counts = self._counts
        return FileSourceStatistics(
            path=self.path,
            position=self._position,
            acknowledged_offset=self._acknowledged[1],
            yielded=counts["yielded"],
            acknowledged=counts["acknowledged"],
            unacknowledged=self._unacknowledged.count,
            checkpoints=counts["checkpoints"],
            rotations=self._reader.rotations,
            truncations=self._reader.truncations,
        )

    def __repr__(self) -> str:
        return f"FileSource({self.path!r}, checkpoint={self.checkpoint!r}, follow={self.follow})"
