"""The segment log: one writer on a rescue store's directory, and the reads and commits
that consume it (the directory's layout is in :mod:`trio_sink._rescue`, its files'
primitives in :mod:`trio_sink._rescue_segments`).

Writes encode a whole batch first, then append it to one segment (a batch is never
split: the segment rolls over before or after a call). If the OS fails the write or
the fsync, the segment is truncated back to where the call began and sealed (after a
failed fsync no later one can be trusted), so that a failed call leaves nothing
behind. A writer killed mid-write leaves at most one torn line, the last of its
segment; readers skip it, count it and log it.

Consumption (replay, and parking's own) never rewrites a segment. It records the byte
ranges of the lines it consumed in ``<segment>.done`` (:mod:`trio_sink._progress`),
appended and fsynced after each batch; a fully consumed segment is deleted, then its
``.done``. Entries a replay leaves behind stay where they are, as they are: nothing is
copied but the entries whose delivery failed again (appended, with their new reason, to
this log's segment and fsynced before their old lines count as consumed) and the lines
no reader can decode (moved to the quarantine, :mod:`trio_sink._quarantine`, first). An
interruption at any point leaves every entry in the store at least once; at most the
batch in flight is delivered twice, and its entries that failed again stored twice.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Literal, final

import attrs
import trio

from . import _progress
from ._exceptions import describe
from ._progress import Consumed, Range
from ._quarantine import quarantine, tidy_quarantine
from ._rescue_files import DirectoryLock, fsync_dir
from ._rescue_files import write_file as _write_all  # replaced by tests: a full disk
from ._rescue_format import Encoder, PartlyStoredError, RescueEntry
from ._rescue_segments import (
    FINAL,
    Bad,
    Chunk,
    Segment,
    Tally,
    create_segment,
    delete,
    final_path,
    held_segments,
    list_segments,
    read_chunk,
    tidy,
)

__all__ = ["FsyncPolicy", "LogStatistics", "SegmentLog"]

log = logging.getLogger("trio_sink.rescue")

FsyncPolicy = Literal["batch", "interval", "never"]

# Read at call time, so that tests can replace it.
_monotonic = time.monotonic


@final
@attrs.frozen
class LogStatistics:
    """What one :class:`SegmentLog` has written so far (a store shows it as
    :class:`~trio_sink.RescueStatistics`)."""

    written: int
    """Entries appended: written, and kept by a commit."""
    sealed: int
    """Segments sealed."""
    fsyncs: int
    """fsync calls on segment files."""
    segment: str | None
    """The name of the segment being written, or None."""


@final
class SegmentLog:
    """One writer on the store directory ``path``, and the reads and commits of
    consumption. Thread-safe: one lock guards the segment being written.

    The writer appends to one segment at a time, under its ``.open`` name and its
    lock, and seals it (renamed to its final name) when it holds
    ``segment_max_records`` entries, at :meth:`seal`, and at :meth:`close`. Several
    logs, in one process or several, may write to one directory at once. The methods
    that touch files block: from async code, call them in a worker thread.

    The settings are plain attributes, read at each call: ``fsync`` (``"batch"``,
    ``"interval"`` or ``"never"``), ``fsync_interval`` (seconds) and
    ``segment_max_records``; the caller checks them.
    """

    def __init__(
        self,
        path: Path,
        *,
        fsync: FsyncPolicy,
        fsync_interval: float,
        segment_max_records: int,
    ) -> None:
        self.path = path
        self.fsync: FsyncPolicy = fsync
        self.fsync_interval = fsync_interval
        self.segment_max_records = segment_max_records
        self._lock = threading.Lock()
        self._encoder = Encoder()
        self._file: IO[bytes] | None = None
        self._current: Path | None = None
        self._segment_records = 0
        self._unsynced = False
        self._last_sync = _monotonic()
        self._closed = False
        self._written = 0
        self._sealed = 0
        self._fsyncs = 0
        self._last_read = Tally()
        self.on_sealed: Callable[[Path], object] | None = None
        """Called with the final path of each segment this log seals (in the thread
        that seals it), also when the seal was forced by a failed write."""

    # -- writing ---------------------------------------------------------------------

    @property
    def current(self) -> Path | None:
        """The segment being written (under its ``.open`` name), or None. Never
        blocks."""
        return self._current

    def write(self, entries: Sequence[RescueEntry]) -> int:
        """Append ``entries`` (checked: :func:`~trio_sink._rescue_format.checked_entries`)
        to one segment, and fsync per the policy; return how many. Blocks.

        All or nothing: :class:`trio.ClosedResourceError` after :meth:`close`, with
        nothing written; an :class:`OSError` (creating a segment, writing, fsyncing)
        leaves the segment truncated back to where the call began, and sealed. Only
        when the truncation fails too may a prefix of the entries stay (logged as
        ``rescue.rollback_failed``, and noted on the exception).
        """
        with self._lock:
            self._check_open()
            if not entries:
                return 0
            buf, _ = self._encoder.encode(entries)
            self._append(buf, len(entries), durable=False)
            self._written += len(entries)
        return len(entries)

    def write_some(self, entries: Sequence[RescueEntry], chunk_size: int) -> int:
        """Append ``entries`` in chunks of ``chunk_size``, each a :meth:`write` of its
        own (all or nothing), until one fails; return how many (all of them). Blocks.

        When the first chunk fails, raises its error (nothing was stored); when a later
        one does, raises :class:`PartlyStoredError`, whose ``stored`` says how many of
        the first entries are in the store. So on a nearly full disk, what fits is
        stored.
        """
        stored = 0
        for i in range(0, len(entries), chunk_size):
            try:
                stored += self.write(entries[i : i + chunk_size])
            except OSError as exc:
                if stored == 0:
                    raise
                raise PartlyStoredError(stored, len(entries), exc) from exc
        return stored

    def sync(self) -> None:
        """fsync the segment being written, when part of it is not synced. Blocks.

        Raises :class:`trio.ClosedResourceError` after :meth:`close`. A failed fsync
        raises, and the segment is sealed (a later fsync could report success for
        data that never reached the disk); what it holds stays.
        """
        with self._lock:
            self._check_open()
            try:
                self._sync()
            except BaseException as exc:
                name = self._current.name if self._current is not None else "?"
                log.warning(
                    'rescue.segment_abandoned segment=%s error="%s"; sealed', name, describe(exc)
                )
                self._seal_quietly()
                raise

    def seal(self) -> None:
        """Finish the segment being written (fsync, rename to its final name, fsync of
        the directory); the next write starts a new one. Blocks. A failed fsync raises
        once the segment is sealed all the same; a failed rename leaves it closed under
        its ``.open`` name, where readers take it for a dead writer's."""
        with self._lock:
            self._seal()

    def close(self) -> None:
        """Seal the segment being written; later writes and commits that append raise
        :class:`trio.ClosedResourceError`. Idempotent. Blocks; fails as :meth:`seal`,
        closed all the same."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._seal()

    def statistics(self) -> LogStatistics:
        """What this log has written so far. Blocks only for the lock."""
        with self._lock:
            return LogStatistics(
                written=self._written,
                sealed=self._sealed,
                fsyncs=self._fsyncs,
                segment=None if self._current is None else self._current.name,
            )

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the rescue store is closed")

    def _segment_for(self, n: int) -> IO[bytes]:
        """The segment to append ``n`` entries to: a new one when they would not fit in
        the one being written (unless it is empty: a call is never split)."""
        self._check_open()
        f = self._file
        used = self._segment_records
        if f is not None and used > 0 and used + n > self.segment_max_records:
            self._seal_quietly()
            f = None
        return f if f is not None else self._open_segment()

    def _open_segment(self) -> IO[bytes]:
        f, path = create_segment(self.path)
        if self.fsync != "never":
            try:
                fsync_dir(self.path)
            except BaseException:
                # Removed while still locked: no reader takes it for a dead writer's.
                path.unlink(missing_ok=True)
                f.close()
                raise
        self._file, self._current = f, path
        self._segment_records = 0
        return f

    def _append(self, buf: bytes | bytearray, n: int, *, durable: bool) -> int:
        """Append ``buf`` (``n`` whole lines) to one segment, then fsync it: always when
        ``durable`` (and the directory), else per the policy. Return ``n``.

        All or nothing: if the write or an fsync raises, what was appended is truncated
        away and the segment sealed (:meth:`_take_back`). The segment rolls over before
        the write when the lines would not fit, and after it when it is full.
        """
        f = self._segment_for(n)
        start = f.tell()
        try:
            _write_all(f, buf)
            self._unsynced = True
            if durable:
                self._sync()
                fsync_dir(self.path)
            else:
                self._sync_by_policy()
        except BaseException as exc:
            self._take_back(f, start, exc)
            raise
        self._segment_records += n
        if self._segment_records >= self.segment_max_records:
            self._seal_quietly()
        return n

    def _take_back(self, f: IO[bytes], start: int, exc: BaseException) -> None:
        """After ``exc`` in an append to ``f`` that began at byte ``start``: truncate
        the segment back to ``start``, and seal it. Nothing more goes to it: a failed
        write may have left a torn line, and after a failed fsync a later one may
        report success for data that never reached the disk (Linux)."""
        name = self._current.name if self._current is not None else "?"
        try:
            os.ftruncate(f.fileno(), start)
        except OSError as err:
            log.error(
                'rescue.rollback_failed segment=%s offset=%d error="%s"',
                name,
                start,
                describe(err),
            )
            exc.add_note(
                f"part of this write may be in the rescue store: segment {name} could not"
                f" be truncated back to byte {start} ({describe(err)})"
            )
        log.warning('rescue.segment_abandoned segment=%s error="%s"; sealed', name, describe(exc))
        self._seal_quietly()

    def _sync(self) -> None:
        f = self._file
        if f is not None and self._unsynced:
            os.fsync(f.fileno())
            self._fsyncs += 1
            self._unsynced = False
        self._last_sync = _monotonic()

    def _sync_by_policy(self) -> None:
        if self._file is None or not self._unsynced:
            return
        if self.fsync == "batch" or (
            self.fsync == "interval" and _monotonic() - self._last_sync >= self.fsync_interval
        ):
            self._sync()

    def _seal(self) -> None:
        """:meth:`seal`, under the lock. The rename happens while the segment is still
        locked, so that no reader takes it for a dead writer's."""
        f, path = self._file, self._current
        if f is None or path is None:
            return
        self._file = self._current = None
        self._unsynced = False
        records, self._segment_records = self._segment_records, 0
        final = final_path(path)
        failed: OSError | None = None
        try:
            try:
                os.fsync(f.fileno())
                self._fsyncs += 1
            except OSError as exc:
                failed = exc
            if sys.platform == "win32":  # pragma: no cover - an open file cannot be renamed
                f.close()
            os.replace(path, final)
        finally:
            f.close()
        fsync_dir(self.path)
        self._sealed += 1
        log.debug("rescue.sealed segment=%s records=%d", final.name, records)
        if self.on_sealed is not None:
            self.on_sealed(final)
        if failed is not None:
            raise failed

    def _seal_quietly(self) -> None:
        """:meth:`_seal`, where a failure is logged, not raised: at a roll-over (the
        calls that wrote the segment have returned) and after a failed append (whose
        own error is raised)."""
        name = self._current.name if self._current is not None else "?"
        try:
            self._seal()
        except OSError as exc:
            log.error('rescue.seal_failed segment=%s error="%s"', name, describe(exc))

    # -- reading ---------------------------------------------------------------------

    def readable_segments(self) -> list[Segment]:
        """The segments a read takes, in write order: the sealed ones, with what replay
        has consumed of them, and those of writers that died; not :attr:`current`.
        Blocks (a directory listing, and a lock probe per ``.open`` segment); changes
        nothing."""
        with self._lock:
            own = self._current
        return list_segments(self.path, own)

    def read_chunk(
        self, path: Path, offset: int, n: int, consumed: Consumed, tally: Tally | None = None
    ) -> Chunk:
        """Up to ``n`` lines of segment ``path`` from the line that holds byte
        ``offset``, but those ``consumed`` covers; the lines that cannot be decoded are
        counted in ``tally``, when given. Blocks (a file read); changes nothing. An
        empty chunk at ``offset`` when the segment is gone. Raises
        :class:`~trio_sink.RescueFormatError` at a line of a newer schema version."""
        return read_chunk(path, offset, n, consumed, Tally() if tally is None else tally)

    def end_read(self, tally: Tally) -> None:
        """Record ``tally`` as what the read that ended last went through
        (:attr:`last_read`). Never blocks."""
        self._last_read = tally.copy()

    @property
    def last_read(self) -> Tally:
        """What the read that ended last went through (a copy); all zero before."""
        return self._last_read.copy()

    # -- consumption -----------------------------------------------------------------

    def lock_replay(self) -> DirectoryLock:
        """The directory's replay lock, taken: one replay at a time per directory.
        Closing it lets it go. Blocks (a directory open). Raises
        :class:`trio.BusyResourceError` when another replay holds it."""
        try:
            return DirectoryLock(self.path)
        except BlockingIOError:
            raise trio.BusyResourceError(f"another replay is running on {self.path}") from None

    def replay_segments(self, tally: Tally | None = None) -> tuple[list[Segment], list[Path]]:
        """Seal this log's segment, adopt the segments of dead writers, tidy up after
        interrupted work; then the segments to consume, in order, counted in ``tally``
        when given, and the segments live writers hold. Call under the replay lock
        (:meth:`lock_replay`). Blocks. A failure leaves the directory as tidy as it
        got: each step stands on its own."""
        self.seal()
        tidy(self.path)
        tidy_quarantine(self.path)
        segments = [s for s in self.readable_segments() if s.path.name.endswith(FINAL)]
        for s in segments:
            if _progress.needs_compacting(s.consumed):
                _progress.compact(s.path, s.consumed)
        if tally is not None:
            tally.segments = len(segments)
        return segments, held_segments(self.path, self.current)

    def commit(
        self,
        path: Path,
        consumed: Sequence[Range],
        *,
        bad: Sequence[Bad] = (),
        keep: Sequence[RescueEntry] = (),
        finished: bool = False,
    ) -> None:
        """Record that the lines of segment ``path`` in the byte ranges ``consumed``
        (and the ``bad`` lines) are consumed, after appending ``keep`` to this log and
        moving the ``bad`` lines, byte for byte, to the quarantine. ``finished``: every
        line of the segment is consumed now; it is deleted. Blocks.

        What stays and the quarantined lines are on disk (fsynced, and their
        directories) before the consumption is recorded, in the segment's ``.done``
        file (appended and fsynced) or by deleting it. A failure before that leaves the
        segment as it was, and ``keep`` truncated away (as :meth:`write`); appending
        after :meth:`close` raises :class:`trio.ClosedResourceError`. A failure to
        record the consumption leaves what stays in both places: nothing is lost, an
        entry may be read twice.
        """
        if keep:
            with self._lock:
                buf, _ = self._encoder.encode(keep)
                # What stays must be on disk before its old line counts as consumed.
                self._written += self._append(buf, len(keep), durable=True)
        if bad:
            quarantine(self.path, path, [(b.start, b.data) for b in bad])
        if finished:
            delete(path)
        else:
            _progress.append(path, [*consumed, *((b.start, b.end) for b in bad)])
