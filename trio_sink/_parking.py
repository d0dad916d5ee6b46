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
from ._rescue_segments import Chunk

__all__ = ["Parking"]


def _final_name(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".open"))


class _Sealed:
    """A sealed parking segment, and how far replay has consumed it."""

    __slots__ = ("offset", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0


class Parking:
    """One sink's parked batches: a writer of its own on the rescue store's directory.

    Its segments hold this sink's parked entries only, in the order they were parked
    (a segment never fills up: it is sealed when replay wants to read it). Replay
    reads a sealed segment a chunk at a time and commits each chunk's end offset
    once the sink took it, with the machinery of ``replay()``, so a later replay of
    the directory resumes past it.
    """

    def __init__(self, store: RescueStore) -> None:
        self.store = store
        self.writer: RescueStore | None = None
        self.open: Path | None = None
        """The writer's segment, not sealed yet."""
        self.segments: deque[_Sealed] = deque()
        """The sealed segments with entries to replay, in order."""
        self.pending = 0
        """Entries parked and not replayed yet."""
        self.chunk_size = 1
        """Entries replayed in one write: the largest batch parked."""

    async def park(self, undelivered: Sequence[Undelivered]) -> None:
        """Write entries for ``undelivered`` (in a worker thread). Raises what the store
        raises; cancelled, nothing was written."""
        writer = self.writer
        if writer is None:
            store = self.store
            writer = self.writer = RescueStore(
                store.path,
                fsync=store.fsync,
                fsync_interval=store.fsync_interval,
                segment_max_records=sys.maxsize,
                run=store.run,
            )
        try:
            await writer.arescue(undelivered)
        finally:
            self._track()
        self.pending += len(undelivered)

    def _track(self) -> None:
        """Follow the writer's segment: one it sealed by itself (after a failed write)
        joins the segments to replay."""
        assert self.writer is not None
        path = self.writer.segment_log.current
        if path != self.open:
            if self.open is not None:
                self.segments.append(_Sealed(_final_name(self.open)))
            self.open = path

    async def next_chunk(self) -> Chunk | None:
        """The next chunk of parked entries, oldest first; None when none is left.
        Seals the writer's segment first when it is the one to read. A checkpoint;
        cancelled, nothing changed."""
        writer = self.writer
        if writer is None:
            self.pending = 0
            return None
        if not self.segments and self.open is not None:
            await trio.to_thread.run_sync(writer.seal)
            self._track()
        while self.segments:
            seg = self.segments[0]
            chunk = await trio.to_thread.run_sync(
                writer.segment_log.read_chunk, seg.path, seg.offset, self.chunk_size
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
        assert self.writer is not None
        with trio.CancelScope(shield=True):
            # Nothing stays: commit only marks the segment consumed up to chunk.end.
            await trio.to_thread.run_sync(
                self.writer.segment_log.commit, path, chunk.end, chunk.size
            )

    async def aclose(self) -> None:
        """Close the writer (seal its segment) in a worker thread."""
        if self.writer is not None:
            await self.writer.aclose()

    def close(self) -> None:
        """Close the writer now (blocking: at the end of a cancelled task). Idempotent."""
        if self.writer is not None:
            self.writer.close()
