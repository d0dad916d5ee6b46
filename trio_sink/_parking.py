"""Parking: one sink's batches set aside in the rescue store while its breaker is open,
and read back, in order, once the sink takes writes again."""

from __future__ import annotations

import logging
import sys
from collections import deque
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Final

import trio

from ._exceptions import describe
from ._progress import Consumed
from ._report import Undelivered
from ._rescue import RescueStore
from ._rescue_format import PartlyStoredError, rescue_entries
from ._rescue_segments import Chunk
from ._segment_log import SegmentLog

__all__ = ["PARK_CHUNK", "Parking"]

log = logging.getLogger("trio_sink.rescue")

PARK_CHUNK: Final = 128
"""Entries in one store write of :meth:`Parking.park`: on a nearly full disk, what
fits is stored, a chunk at a time."""


class _Sealed:
    """A sealed parking segment, and how far it was replayed."""

    __slots__ = ("consumed", "offset", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.consumed = Consumed()  # a parking segment is consumed from its start


class Parking:
    """One sink's parked batches: a segment log of its own on the rescue store's
    directory.

    Its segments hold this sink's parked entries only, in the order they were parked
    (a segment never fills up: it is sealed when replay wants to read it). Replay
    reads a sealed segment a chunk at a time and commits each chunk once the sink
    took it, as ``replay()`` does, so a later replay of the directory resumes past it.
    Entries are stamped with the store's ``run``.

    A store failure while reading parked entries back stops their replay in this run
    (they stay in the store, for a later replay); it is raised by :meth:`aclose` (or
    :meth:`close`), once the log is closed, so that the caller reports it.
    """

    def __init__(self, store: RescueStore) -> None:
        self.store = store
        self.log: SegmentLog | None = None
        """The writer of the parked entries, made at the first :meth:`park`."""
        self.segments: deque[_Sealed] = deque()
        """The sealed segments with entries to replay, in order."""
        self.pending = 0
        """Entries parked that this run may still replay."""
        self.chunk_size = 1
        """Entries replayed in one write: the largest batch parked."""
        self.failure: Exception | None = None
        """The store failure that stopped a replay of parked entries, until
        :meth:`aclose` or :meth:`close` raises it."""

    async def park(self, undelivered: Sequence[Undelivered]) -> None:
        """Write entries for ``undelivered`` (in a worker thread), in writes of
        :data:`PARK_CHUNK` entries, so that on a nearly full disk what fits is stored.

        Raises what the store raises when nothing could be stored, and
        :class:`~trio_sink.PartlyStoredError` when only the first ``stored`` entries
        were (those count as parked). Cancelled, nothing was written.
        """
        store = self.store
        segment_log = self.log
        if segment_log is None:
            segment_log = self.log = SegmentLog(
                store.path,
                fsync=store.fsync,
                fsync_interval=store.fsync_interval,
                segment_max_records=sys.maxsize,
            )
            # Each segment it seals (to be read, or after a failed write) joins the
            # segments to replay.
            segment_log.on_sealed = self._sealed
        entries = rescue_entries(undelivered, run=store.run)
        try:
            stored = await trio.to_thread.run_sync(segment_log.write_some, entries, PARK_CHUNK)
        except PartlyStoredError as exc:
            self.pending += exc.stored
            raise
        self.pending += stored

    def _sealed(self, path: Path) -> None:
        self.segments.append(_Sealed(path))

    async def next_chunk(self) -> Chunk | None:
        """The next chunk of parked entries, oldest first; None when none is left, or
        when the store failed (logged, and raised later by :meth:`aclose`: the entries
        stay in the store, and :attr:`pending` drops to 0 so that this run stops
        replaying them until more are parked). Seals the log's segment first when it
        is the one to read. A checkpoint; cancelled, nothing changed."""
        segment_log = self.log
        if segment_log is None:
            self.pending = 0
            return None
        try:
            if not self.segments and segment_log.current is not None:
                await trio.to_thread.run_sync(segment_log.seal)
            while self.segments:
                seg = self.segments[0]
                chunk = await trio.to_thread.run_sync(
                    segment_log.read_chunk, seg.path, seg.offset, self.chunk_size, seg.consumed
                )
                if chunk.items:
                    return chunk
                # Only undecodable lines (moved to the quarantine), or the end.
                await self.consume(chunk)
        except Exception as exc:
            log.error(
                'rescue.parked_read_failed dir=%s parked=%d error="%s"; left in the store',
                self.store.path,
                self.pending,
                describe(exc),
                exc_info=exc,
            )
            self.failure = exc
        self.pending = 0
        return None

    async def consume(self, chunk: Chunk) -> None:
        """Mark ``chunk`` consumed in the store (its undecodable lines moved to the
        quarantine; a segment read to its end deleted). Shielded from cancellation:
        once the records were written, the store must agree. Raises what the file
        system raises; the chunk counts as consumed here either way, so that this run
        does not write it again."""
        seg = self.segments[0]
        path = seg.path
        seg.offset = chunk.end
        finished = chunk.end >= chunk.size
        if finished:
            self.segments.popleft()
        self.pending = max(0, self.pending - len(chunk.items))
        assert self.log is not None
        commit = partial(self.log.commit, bad=chunk.bad, finished=finished)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(commit, path, [(chunk.start, chunk.end)])

    async def aclose(self) -> None:
        """Close the log (seal its segment) in a worker thread; then raise the store
        failure that stopped a replay of parked entries, if one did. Cancelled before
        the thread starts, it stays open; once started, it completes."""
        if self.log is not None:
            await trio.to_thread.run_sync(self.log.close)
        self._raise_failure()

    def close(self) -> None:
        """Close the log now (blocking: at the end of a cancelled task), then raise as
        :meth:`aclose`. Idempotent."""
        if self.log is not None:
            self.log.close()
        self._raise_failure()

    def _raise_failure(self) -> None:
        failure, self.failure = self.failure, None
        if failure is not None:
            raise failure
