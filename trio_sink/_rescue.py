"""The rescue store: records that did not reach their sink, kept on disk until replayed.

Layout of a store directory::

    seg-<time_ns>-<pid>-<n>.jsonl.open   the segment a writer is appending to
    seg-<time_ns>-<pid>-<n>.jsonl        a finished segment
    seg-<time_ns>-<pid>-<n>.jsonl.done   what replay has consumed of that segment
    quarantine/                          lines no reader can decode, kept as they were

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

An undecodable line (a writer killed mid-write leaves at most one, the last of its
segment) is skipped, counted and logged, and nothing around it is lost; a replay moves
it to the quarantine, never deletes it. A line of a newer schema version stops the read
with :class:`RescueFormatError`; that line and all after it stay where they are. Names
that are not regular files (a directory, a FIFO, a symlink) are skipped with a warning,
and nothing is opened through a symlink. A replay holds an ``flock`` on the directory
itself.

:class:`RescueStore` is the public face: it checks arguments and builds entries. What
it does to the files is a :class:`~trio_sink._segment_log.SegmentLog`'s (writes that
are all or nothing, and consumption by replay, are described there), which it keeps as
its ``segment_log`` for replay and parking.
"""

from __future__ import annotations

import os
import secrets
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Final, TypeVar, final

import attrs
import trio

from ._checks import check_choice, check_int, check_seconds, check_text
from ._exceptions import ConfigError
from ._report import Undelivered
from ._rescue_format import PartlyStoredError, RescueEntry, checked_entries, rescue_entries
from ._rescue_reader import RescueReader, RescueReadStats, stats_of
from ._segment_log import FsyncPolicy, SegmentLog

__all__ = [
    "PartlyStoredError",
    "RescueReadStats",
    "RescueReader",
    "RescueStatistics",
    "RescueStore",
]

T = TypeVar("T")

_POLICIES: Final = ("batch", "interval", "never")


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
    check_choice("fsync", fsync, _POLICIES)
    check_seconds("fsync_interval", fsync_interval)
    check_int("segment_max_records", segment_max_records, 1)
    check_text("run", run, optional=True)


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
        self.segment_log = SegmentLog(
            self.path,
            fsync=fsync,
            fsync_interval=float(fsync_interval),
            segment_max_records=segment_max_records,
        )
        """Internal, for replay and parking: the writer, reads and commits behind this
        store. Not part of the public API."""

    @property
    def fsync(self) -> FsyncPolicy:
        """The fsync policy (the ``fsync`` argument)."""
        return self.segment_log.fsync

    @fsync.setter
    def fsync(self, value: FsyncPolicy) -> None:
        self.segment_log.fsync = value

    @property
    def fsync_interval(self) -> float:
        """Seconds between fsyncs for ``fsync="interval"``."""
        return self.segment_log.fsync_interval

    @fsync_interval.setter
    def fsync_interval(self, value: float) -> None:
        self.segment_log.fsync_interval = value

    @property
    def segment_max_records(self) -> int:
        """Entries in one segment before a new one is started."""
        return self.segment_log.segment_max_records

    @segment_max_records.setter
    def segment_max_records(self, value: int) -> None:
        self.segment_log.segment_max_records = value

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
        """:meth:`write`, for entries that were checked: every write of this store
        goes through here."""
        return self.segment_log.write(batch)

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

    def rescue_some(self, undelivered: Iterable[Undelivered], *, chunk_size: int = 256) -> int:
        """:meth:`rescue`, in writes of ``chunk_size`` entries, each all or nothing, so
        that on a nearly full disk what fits is stored; return how many (all). Blocks.

        When the first write fails, raises its error: nothing was stored. When a later
        one fails, raises :class:`PartlyStoredError`: its ``stored`` first entries are
        in the store, the rest not (its ``__cause__`` is the write's error).
        """
        check_int("chunk_size", chunk_size, 1)
        return self.segment_log.write_some(self._entries_of(undelivered), chunk_size)

    async def arescue_some(
        self, undelivered: Iterable[Undelivered], *, chunk_size: int = 256
    ) -> int:
        """:meth:`rescue_some`, with the writes in a worker thread, as :meth:`awrite`."""
        check_int("chunk_size", chunk_size, 1)
        entries = self._entries_of(undelivered)
        return await trio.to_thread.run_sync(self.segment_log.write_some, entries, chunk_size)

    def _entries_of(self, undelivered: Iterable[Undelivered]) -> Sequence[RescueEntry]:
        return rescue_entries(_checked(undelivered, Undelivered, "undelivered"), run=self.run)

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
        self.segment_log.sync()

    def seal(self) -> None:
        """Finish the segment being written (fsync, rename, fsync of the directory);
        the next write starts a new one: the store stays open. Entries become readable
        (and a replay takes them) once their segment is sealed. Idempotent. Blocks. A
        failed fsync raises, once the segment is sealed all the same (renamed and
        closed)."""
        self.segment_log.seal()

    def close(self) -> None:
        """Seal the segment being written; later writes raise. Idempotent. Blocks."""
        self.segment_log.close()

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
        stats = self.segment_log.statistics()
        return RescueStatistics(
            written=stats.written,
            segments_sealed=stats.sealed,
            fsyncs=stats.fsyncs,
            segment=stats.segment,
        )

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
        return RescueReader(self.segment_log, sink)

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
        return stats_of(self.segment_log.last_read)

    @property
    def torn_lines(self) -> int:
        """Torn last lines skipped by the read that ended last (:attr:`read_stats`)."""
        return self.segment_log.last_read.torn
