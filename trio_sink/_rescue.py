"""The rescue store: records that did not reach their sink, kept on disk until replayed.

Layout of a store directory::

    seg-<time_ns>-<pid>-<n>.jsonl.open   the segment a writer is appending to
    seg-<time_ns>-<pid>-<n>.jsonl        a finished segment
    seg-<time_ns>-<pid>-<n>.jsonl.done   how far replay has consumed that segment
    .replay.lock                         held by the replay in progress

A segment holds one JSON object a line, each with ``"v"``, the schema version (the
line format is in :mod:`trio_sink._rescue_format`, the files' primitives in
:mod:`trio_sink._rescue_segments`). Its name starts with a zero-padded wall-clock time,
so names sort in write order. A writer creates its segment under a hidden name, takes
an advisory lock (``flock``) on it, and only then gives it its ``.open`` name; it holds
the lock while it writes, and renames the file to the final name when it is sealed
(full, or the store closed), after an fsync of the file and before one of the
directory. A reader takes the final segments and the ``.open``
segments whose lock is free: those of a writer that died; never one that a live writer
holds, the store's own included.

Writes check and encode a whole batch first, then append it to one segment (a batch
is never split: the segment rolls over before or after a call). If the OS fails the
write or the fsync, the segment is truncated back to where the call began and sealed
(after a failed fsync no later one can be trusted), so that a failed call leaves
nothing behind. A writer killed mid-write leaves at most one torn line, the last of
its segment; readers skip it, count it and log it. An undecodable line elsewhere is
skipped and counted the same way, and nothing around it is lost. A line of a newer
schema version stops the read with :class:`RescueFormatError`; that line and all
after it stay where they are.

Consumption (replay) never rewrites a segment. Its consumed prefix is a byte offset in
``<segment>.done``, replaced atomically (write, fsync, rename, fsync of the directory)
after each batch; a fully consumed segment is deleted, then its ``.done``. An entry
whose delivery failed again, and an entry the replay leaves behind while it consumes
those after it, is appended to a new segment (and fsynced) before the offset moves
past it. An interruption at any point leaves every entry in the store at least once;
at most the batch in flight is delivered twice.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import IO, Final, Literal, TypeVar, final

import attrs
import trio

from ._exceptions import ConfigError, describe
from ._report import Undelivered
from ._rescue_format import Encoder, RescueEntry, checked_entries, wall_time
from ._rescue_segments import (
    FINAL,
    REPLAY_LOCK,
    Chunk,
    Segment,
    Tally,
    create_segment,
    final_path,
    fsync_dir,
    list_segments,
    mark_consumed,
    read_chunk,
    scan,
    scan_open,
    tidy,
    try_lock,
)

__all__ = ["RescueReadStats", "RescueReader", "RescueStatistics", "RescueStore"]

log = logging.getLogger("trio_sink.rescue")

T = TypeVar("T")

FsyncPolicy = Literal["batch", "interval", "never"]
_POLICIES: Final = ("batch", "interval", "never")

# Read at call time, so that tests can replace it.
_monotonic = time.monotonic


@final
@attrs.frozen
class RescueReadStats:
    """What one read of a store (``entries()``, ``counts()``, ``pending()``, or a
    replay) went through: :attr:`RescueReader.stats` for a read of its own,
    :attr:`RescueStore.read_stats` for the read that ended last. A read stopped
    early counts what it had passed."""

    segments: int
    """Segments read."""
    entries: int
    """Entries read."""
    torn_lines: int
    """Undecodable last lines of a segment (a writer killed mid-write), skipped."""
    bad_lines: int
    """Undecodable lines elsewhere, skipped."""


@final
@attrs.frozen
class RescueStatistics:
    """What one :class:`RescueStore` object has written so far."""

    written: int
    """Entries written."""
    segments_sealed: int
    """Segments sealed (renamed to their final name)."""
    fsyncs: int
    """fsync calls on segment files."""
    segment: str | None
    """The name of the segment being written, or None."""


def _check_settings(
    fsync: object, fsync_interval: object, segment_max_records: object, run: object
) -> None:
    """Raise ConfigError, naming the argument, for the first that is invalid."""
    if fsync not in _POLICIES:
        raise ConfigError(f"fsync must be one of {', '.join(_POLICIES)}, got {fsync!r}")
    if (
        isinstance(fsync_interval, bool)
        or not isinstance(fsync_interval, (int, float))
        or not math.isfinite(fsync_interval)
        or fsync_interval < 0
    ):
        raise ConfigError(
            f"fsync_interval must be a finite number of seconds >= 0, got {fsync_interval!r}"
        )
    if (
        isinstance(segment_max_records, bool)
        or not isinstance(segment_max_records, int)
        or segment_max_records < 1
    ):
        raise ConfigError(f"segment_max_records must be an int >= 1, got {segment_max_records!r}")
    if run is not None and (not isinstance(run, str) or not run):
        raise ConfigError(f"run must be a non-empty str or None, got {run!r}")


def _checked(items: Iterable[T], kind: type[T], name: str) -> Sequence[T]:
    """``items`` as a sequence; ConfigError, naming the argument ``name``, unless it is
    an iterable of ``kind``."""
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise ConfigError(f"{name} must be an iterable of {kind.__name__}, got {items!r}")
    batch = items if isinstance(items, Sequence) else list(items)
    for item in batch:
        if not isinstance(item, kind):
            raise ConfigError(f"{name} must hold only {kind.__name__} objects, got {item!r}")
    return batch


def _new_run_id() -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"{stamp}-{os.getpid()}-{secrets.token_hex(3)}"


@final
class RescueStore:
    """A directory of records that did not reach their sink, kept until replayed.

    Append-only segments of JSON lines (see the module documentation for the format
    and docs/rescue.md for the guarantees). One object writes one segment at a time,
    thread-safely; several objects, in one process or several, may write to the same
    directory at once. Use it as a context manager, or call :meth:`close`.

    Args:
        path: The directory; created if missing.
        fsync: When segment files are forced to disk. ``"batch"``: after each write
            call. ``"interval"``: at a write once ``fsync_interval`` seconds have passed
            since the last fsync, and when a segment is sealed; nothing syncs between
            writes (no timer): call :meth:`sync` for that. ``"never"``: only when a
            segment is sealed. Every write reaches the OS before it returns, so a
            killed process loses nothing; the policy bounds what a power loss takes.
        fsync_interval: Seconds, for ``fsync="interval"``.
        segment_max_records: Entries in one segment before a new one is started:
            between write calls, never inside one (a larger call has a segment of its
            own).
        run: This store object's run identifier, stamped on the entries that
            :meth:`rescue` builds; a new unique one by default.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy = "batch",
        fsync_interval: float = 1.0,
        segment_max_records: int = 100_000,
        run: str | None = None,
    ) -> None:
        _check_settings(fsync, fsync_interval, segment_max_records, run)
        try:
            self.path: Path = Path(path)
        except TypeError:
            raise ConfigError(f"path must be a str or os.PathLike, got {path!r}") from None
        self.path.mkdir(parents=True, exist_ok=True)
        self.run: str = run if run is not None else _new_run_id()
        """Stamped on the entries that :meth:`rescue` and :meth:`arescue` build."""
        self.fsync: FsyncPolicy = fsync
        self.fsync_interval = float(fsync_interval)
        self.segment_max_records = segment_max_records
        self._lock = threading.Lock()
        self._encoder = Encoder()
        self._file: IO[bytes] | None = None
        self._open_path: Path | None = None
        self._segment_records = 0
        self._unsynced = False
        self._last_sync = _monotonic()
        self._closed = False
        self._written = 0
        self._sealed = 0
        self._fsyncs = 0
        self._last_read = _stats_of(Tally())

    # -- writing ---------------------------------------------------------------------

    def write(self, entries: Iterable[RescueEntry]) -> int:
        """Append ``entries``, all to one segment; return how many. Blocks for the
        write (and the fsync, per the policy): from async code, use :meth:`awrite`.

        All or nothing. When this returns, every entry has reached the OS (and the
        disk, per the policy). When it raises, none of them is in the store, except in
        the one case named under OSError, so that a caller may write them again:

        - :class:`~trio_sink.ConfigError`: ``entries`` is not an iterable of
          :class:`RescueEntry`, or an entry has a field of a type that would not read
          back (``entries[3].reason must be a str, got None``). Checked and encoded
          before anything is written.
        - :class:`trio.ClosedResourceError`: after :meth:`close`.
        - :class:`OSError`: the OS failed to create a segment, to write, or to fsync
          (with ``fsync="batch"``, or ``"interval"`` when one is due). What this call
          had written is truncated away, and the segment is sealed: after a failed
          fsync, a later one may report success for data that never reached the disk,
          so nothing more goes to it, and the next write starts a new segment.
          Entries of earlier calls stay. Only when the truncation fails too may a
          prefix of this call's entries be in the store (its last line possibly torn,
          which reads skip): then ``rescue.rollback_failed`` is logged, and the
          exception carries a note that says so (``__notes__``).

        A segment is started before a call whose entries would not fit in the one
        being written, so a call larger than ``segment_max_records`` fills a segment
        of its own.
        """
        return self._write(checked_entries(_checked(entries, RescueEntry, "entries"), "entries"))

    def _write(self, batch: Sequence[RescueEntry]) -> int:
        """:meth:`write`, for entries that were checked."""
        with self._lock:
            self._check_open()
            if not batch:
                return 0
            buf, _ = self._encoder.encode(batch)
            self._append([(buf, len(batch))], durable=False)
            self._written += len(batch)
        return len(batch)

    async def awrite(self, entries: Iterable[RescueEntry]) -> int:
        """:meth:`write`, in a worker thread, so that the fsync does not block Trio.

        A checkpoint. Cancelled before the thread starts, nothing was written;
        once it has started, the write completes and its count is returned (the
        cancellation is delivered at the next checkpoint).
        """
        batch = checked_entries(list(_checked(entries, RescueEntry, "entries")), "entries")
        return await trio.to_thread.run_sync(self._write, batch)

    def rescue(self, undelivered: Iterable[Undelivered]) -> int:
        """Write one entry per :class:`~trio_sink.Undelivered`, stamped with
        :attr:`run` and the current time; return how many."""
        return self._write(self._entries_of(undelivered))

    async def arescue(self, undelivered: Iterable[Undelivered]) -> int:
        """:meth:`rescue`, with the write in a worker thread, as :meth:`awrite`."""
        return await trio.to_thread.run_sync(self._write, self._entries_of(undelivered))

    def _entries_of(self, undelivered: Iterable[Undelivered]) -> Sequence[RescueEntry]:
        batch = _checked(undelivered, Undelivered, "undelivered")
        now = wall_time()
        run = self.run
        entries = [RescueEntry.from_undelivered(u, run=run, time=now) for u in batch]
        return checked_entries(entries, "undelivered")

    def sync(self) -> None:
        """Force what this object has written to the disk now: fsync the segment being
        written, when part of it is not synced yet. Blocks: from async code, use
        ``await trio.to_thread.run_sync(store.sync)``.

        With ``fsync="interval"``, a write fsyncs only when it finds the interval
        passed, and nothing runs in between (no timer, no thread): the last writes
        before a quiet spell stay unsynced until the next write, :meth:`seal` or
        :meth:`close`. For a bound in time, call this on a schedule of your own, such
        as a Trio task that loops over ``trio.sleep(interval)``. The interval then
        counts from this fsync.

        A failed fsync raises, and the segment is sealed (a later fsync could report
        success for data that never reached the disk); the next write starts a new
        one. What earlier writes put in it stays, but may not be on the disk. Raises
        :class:`trio.ClosedResourceError` after :meth:`close`.
        """
        with self._lock:
            self._check_open()
            try:
                self._sync()
            except BaseException as exc:
                name = self._open_path.name if self._open_path is not None else "?"
                log.warning(
                    'rescue.segment_abandoned segment=%s error="%s"; sealed', name, describe(exc)
                )
                self._seal_quietly()
                raise

    def seal(self) -> None:
        """Finish the segment being written (fsync, rename, fsync of the directory);
        the next write starts a new one. Entries become readable through this object
        once their segment is sealed. Blocks. A failed fsync raises, once the segment
        is sealed all the same (renamed and closed)."""
        with self._lock:
            self._seal()

    def close(self) -> None:
        """Seal the segment being written; later writes raise. Idempotent. Blocks."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._seal()

    async def aclose(self) -> None:
        """:meth:`close` in a worker thread. Cancelled before it starts, the store
        stays open; once started, it completes."""
        await trio.to_thread.run_sync(self.close)

    def __enter__(self) -> RescueStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def statistics(self) -> RescueStatistics:
        """What this object has written so far. Not a checkpoint."""
        with self._lock:
            return RescueStatistics(
                written=self._written,
                segments_sealed=self._sealed,
                fsyncs=self._fsyncs,
                segment=None if self._open_path is None else self._open_path.name,
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
        self._file, self._open_path = f, path
        self._segment_records = 0
        return f

    def _append(self, pieces: Iterable[tuple[bytes | bytearray, int]], *, durable: bool) -> int:
        """Append ``pieces`` (whole lines, and how many) to one segment, then fsync it:
        always when ``durable`` (and the directory), else per the policy. Return how
        many lines were appended.

        All or nothing: if a piece, a write or an fsync raises, what was appended is
        truncated away and the segment sealed (:meth:`_take_back`). The segment rolls
        over before the first piece when that would not fit, and after the last when
        it is full; never in between.
        """
        f: IO[bytes] | None = None
        start = 0
        n = 0
        try:
            for buf, count in pieces:
                if f is None:
                    f = self._segment_for(count)
                    start = f.tell()
                _write_all(f, buf)
                self._unsynced = True
                n += count
            if f is None:
                return 0
            if durable:
                self._sync()
                fsync_dir(self.path)
            else:
                self._sync_by_policy()
        except BaseException as exc:
            if f is not None:
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
        name = self._open_path.name if self._open_path is not None else "?"
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
        """Finish the segment being written: fsync it, rename it to its final name
        (still locked, so that no reader takes it for a dead writer's), close it, fsync
        the directory; the next write starts a new one.

        A failed fsync is raised once the segment is finished all the same. A failed
        rename leaves it under its ``.open`` name, closed: readers and replay take it
        for a dead writer's segment.
        """
        f, path = self._file, self._open_path
        if f is None or path is None:
            return
        self._file = self._open_path = None
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
        if failed is not None:
            raise failed

    def _seal_quietly(self) -> None:
        """:meth:`_seal`, where a failure is logged, not raised: at a roll-over (the
        calls that wrote the segment have returned) and after a failed append (whose
        own error is raised)."""
        name = self._open_path.name if self._open_path is not None else "?"
        try:
            self._seal()
        except OSError as exc:
            log.error('rescue.seal_failed segment=%s error="%s"', name, describe(exc))

    # -- reading ---------------------------------------------------------------------

    def entries(self, *, sink: str | None = None) -> RescueReader:
        """Every entry in the store, in write order; only those for ``sink`` when given.

        Reads the sealed segments and those left by writers that died, from where
        replay has consumed them; not the segment this object is writing (see
        :meth:`seal`). The segments are listed at the first ``next()``. Skips
        undecodable lines with a warning, and counts them in the reader's
        :attr:`~RescueReader.stats`. Raises :class:`RescueFormatError` at a line of
        a newer schema version. Blocks on file reads.
        """
        return RescueReader(self, sink)

    def _scan_entries(self, tally: Tally, sink: str | None) -> Generator[RescueEntry, None, None]:
        for seg in self._readable_segments():
            tally.segments += 1
            for item in scan(seg.path, seg.start, tally):
                if sink is None or item.entry.sink == sink:
                    yield item.entry

    def counts(self) -> Mapping[str | None, int]:
        """Entries per sink name (None: records given up before routing)."""
        c: Counter[str | None] = Counter(e.sink for e in self.entries())
        return MappingProxyType(dict(c))

    def pending(self, *, sink: str | None = None) -> int:
        """How many entries :meth:`entries` would yield."""
        return sum(1 for _ in self.entries(sink=sink))

    @property
    def read_stats(self) -> RescueReadStats:
        """What the read of this object that ended last went through (torn and bad
        lines skipped): an :meth:`entries` reader that reached its end, raised or was
        closed, :meth:`counts`, :meth:`pending`, or a replay. All zero before the
        first. A read of its own has its own :attr:`RescueReader.stats`."""
        return self._last_read

    @property
    def torn_lines(self) -> int:
        """Torn last lines skipped by the read that ended last (:attr:`read_stats`)."""
        return self._last_read.torn_lines

    def _end_read(self, tally: Tally) -> None:
        self._last_read = _stats_of(tally)

    def _readable_segments(self) -> list[Segment]:
        with self._lock:
            own = self._open_path
        return list_segments(self.path, own)

    # -- consumption, for replay ---------------------------------------------------

    def _lock_replay(self) -> IO[bytes]:
        """The directory's replay lock, taken: one replay at a time per directory.
        Closing the file lets it go. Blocks (a file open): call in a worker thread."""
        f = open(self.path / REPLAY_LOCK, "ab")  # noqa: SIM115 - the caller closes it
        try:
            if not try_lock(f.fileno()):
                raise trio.BusyResourceError(f"another replay is running on {self.path}")
        except BaseException:
            f.close()
            raise
        return f

    def _replay_segments(self, tally: Tally | None = None) -> list[Segment]:
        """Seal this object's segment, adopt the segments of dead writers, tidy up
        after interrupted work; then the segments to consume, in order, counted in
        ``tally``. Call under the replay lock (:meth:`_lock_replay`)."""
        self.seal()
        tidy(self.path)
        segments = [s for s in self._readable_segments() if s.path.name.endswith(FINAL)]
        if tally is not None:
            tally.segments = len(segments)
        return segments

    def _read_chunk(self, path: Path, start: int, n: int, tally: Tally | None = None) -> Chunk:
        """Up to ``n`` entries of segment ``path`` from byte ``start``; the lines
        skipped are counted in ``tally``, when given."""
        return read_chunk(path, start, n, Tally() if tally is None else tally)

    def _settle(
        self,
        path: Path,
        moved: tuple[int, int] | None,
        keep: Sequence[bytes | RescueEntry],
        offset: int,
        size: int,
    ) -> None:
        """Append what stays (lines of ``path`` in byte range ``moved``, then ``keep``:
        kept lines as they are, entries encoded), fsync it, then mark ``path`` consumed
        up to ``offset``: in its ``.done`` file, or by deleting it at its end."""
        with self._lock:
            fresh = iter(self._encoder.lines([k for k in keep if isinstance(k, RescueEntry)]))
            lines = [next(fresh) if isinstance(k, RescueEntry) else k for k in keep]
            copied = _pieces_of(path, moved)
            with contextlib.closing(copied):
                pieces = itertools.chain(copied, [(_joined(lines), len(lines))] if lines else [])
                # What stays must be on disk before the offset moves past its old copy.
                self._written += self._append(pieces, durable=True)
        mark_consumed(path, offset, size)


def _write_all(f: IO[bytes], data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[f.write(view) :]


def _joined(lines: Iterable[bytes]) -> bytes:
    """``lines`` as one buffer, each ending with its newline."""
    return b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines)


def _pieces_of(
    path: Path, moved: tuple[int, int] | None
) -> Generator[tuple[bytes, int], None, None]:
    """The decodable lines of segment ``path`` in byte range ``moved``, as they are, a
    piece of up to 1024 lines at a time (whole lines, and how many)."""
    if moved is None:
        return
    start, stop = moved
    pending: list[bytes] = []
    with open(path, "rb") as f:
        for item in scan_open(f, path, start, stop, None):
            if item.end > stop:
                break
            pending.append(item.line)
            if len(pending) >= 1024:
                yield _joined(pending), len(pending)
                pending = []
    if pending:
        yield _joined(pending), len(pending)


def _stats_of(tally: Tally) -> RescueReadStats:
    return RescueReadStats(
        segments=tally.segments, entries=tally.entries, torn_lines=tally.torn, bad_lines=tally.bad
    )


@final
class RescueReader(Iterator[RescueEntry]):
    """One read of a store, from :meth:`RescueStore.entries`: an iterator of its
    entries, in write order, and what the read has gone through in :attr:`stats`.

    Each read counts for itself, so reads at once (in threads, or during a replay)
    do not mix their counts. The read ends when it reaches its end, raises, or is
    closed; then its stats become the store's :attr:`~RescueStore.read_stats`.
    Close it (or use it as a context manager) to let go of its open file early.
    """

    def __init__(self, store: RescueStore, sink: str | None) -> None:
        self._store = store
        self._tally = Tally()
        self._entries = store._scan_entries(self._tally, sink)
        self._ended = False

    def __iter__(self) -> RescueReader:
        return self

    def __next__(self) -> RescueEntry:
        try:
            return next(self._entries)
        except BaseException:  # StopIteration, or what the read raised: it ended
            self._end()
            raise

    @property
    def stats(self) -> RescueReadStats:
        """What this read has gone through so far."""
        return _stats_of(self._tally)

    def close(self) -> None:
        """End the read here, closing the file it reads. Idempotent."""
        self._entries.close()
        self._end()

    def __enter__(self) -> RescueReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._store._end_read(self._tally)
