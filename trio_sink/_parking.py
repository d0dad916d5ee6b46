"""Parking: one sink's batches set aside in the rescue store while its breaker is open,
and read back, in order, once the sink takes writes again."""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import trio

from ._report import Undelivered
from ._rescue import RescueStore
from ._rescue_format import rescue_entries
from ._rescue_segments import Chunk, final_path
from ._segment_log import SegmentLog

__all__ = ["Parking"]


class _Sealed:
    """A sealed parking segment, and how far replay has consumed it."""

    __slots__ = ("offset", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0


class Parking:
    """One sink's parked batches: a segment log of its own on the rescue store's
    directory.

    Its segments hold this sink's parked entries only, in the order they were parked
    (a segment never fills up: it is sealed when replay wants to read it). Replay
    reads a sealed segment a chunk at a time and commits each chunk's end offset
    once the sink took it, as ``replay()`` does, so a later replay of the directory
    resumes past it. Entries are stamped with the store's ``run``.
    """

    def __init__(self, store: RescueStore) -> None:
        self.store = store
        self.log: SegmentLog | None = None
        """The writer of the parked entries, made at the first :meth:`park`."""
        self.open: Path | None = None
        """The log's segment, not sealed yet."""
        self.segments: deque[_Sealed] = deque()
        """The sealed segments with entries to replay, in order."""
        self.pending = 0
        """Entries parked and not replayed yet."""
        self.chunk_size = 1
        """Entries replayed in one write: the largest batch parked."""

    async def park(self, undelivered: Sequence[Undelivered]) -> None:
        """Write entries for ``undelivered`` (in a worker thread). Raises what the store
        raises; cancelled, nothing was written."""
        store = self.store
        log = self.log
        if log is None:
            log = self.log = SegmentLog(
                store.path,
                fsync=store.fsync,
                fsync_interval=store.fsync_interval,
                segment_max_records=sys.maxsize,
            )
        entries = rescue_entries(undelivered, run=store.run)
        try:
            await trio.to_thread.run_sync(log.write, entries)
        finally:
            self._track()
        self.pending += len(undelivered)

    def _track(self) -> None:
        """Follow the log's segment: one it sealed by itself (after a failed write)
        joins the segments to replay."""
        assert self.log is not None
        path = self.log.current
        if path != self.open:
            if self.open is not None:
                self.segments.append(_Sealed(final_path(self.open)))
            self.open = path

    async def next_chunk(self) -> Chunk | None:
        """The next chunk of parked entries, oldest first; None when none is left.
        Seals the log's segment first when it is the one to read. A checkpoint;
        cancelled, nothing changed."""
        log = self.log
        if log is None:
            self.pending = 0
            return None
        if not self.segments and self.open is not None:
            await trio.to_thread.run_sync(log.seal)
            self._track()
        while self.segments:
            seg = self.segments[0]
            chunk = await trio.to_thread.run_sync(
                log.read_chunk, seg.path, seg.offset, self.chunk_size
            )
            if chunk.items:
                return chunk
            # Only undecodable lines (counted and logged by the read), or the end.
            await self.consume(chunk)
        self.pending = 0
        return None

    async def consume(self, chunk: Chunk) -> None:
        """Mark ``chunk`` consumed in the store (a segment read to its end is deleted).
        Shielded from cancellation: once the records were written, the store must
        agree. Raises what the file system raises; the chunk counts as consumed
        here either way, so that this run does not write it again."""
        seg = self.segments[0]
        path = seg.path
        seg.offset = chunk.end
        if chunk.end >= chunk.size:
            self.segments.popleft()
        self.pending = max(0, self.pending - len(chunk.items))
        assert self.log is not None
        with trio.CancelScope(shield=True):
            # Nothing stays: commit only marks the segment consumed up to chunk.end.
            await trio.to_thread.run_sync(self.log.commit, path, chunk.end, chunk.size)

    async def aclose(self) -> None:
        """Close the log (seal its segment) in a worker thread. Cancelled before the
        thread starts, it stays open; once started, it completes."""
        if self.log is not None:
            await trio.to_thread.run_sync(self.log.close)

    def close(self) -> None:
        """Close the log now (blocking: at the end of a cancelled task). Idempotent."""
        if self.log is not None:
            self.log.close()
