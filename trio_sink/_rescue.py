"""The rescue store: records that did not reach their sink, kept on disk until replayed.

Layout of a store directory::

    seg-<time_ns>-<pid>-<n>.jsonl.open   the segment a writer is appending to
    seg-<time_ns>-<pid>-<n>.jsonl        a finished segment
    seg-<time_ns>-<pid>-<n>.jsonl.done   how far replay has consumed that segment
    .replay.lock                         held by the replay in progress

A segment holds one JSON object a line, each with ``"v"``, the schema version. Its
name starts with a zero-padded wall-clock time, so names sort in write order. A writer
creates its segment under the ``.open`` name, holds an advisory lock (``flock``) on it
while it writes, and renames it to the final name when it is sealed (full, or the
store closed), after an fsync of the file and before one of the directory. A reader
takes the final segments and the ``.open`` segments whose lock is free: those of a
writer that died; never one that a live writer holds, the store's own included.

Writes encode a whole batch first, then append it in one ``write``: a batch is
appended whole, or raises before any byte is written, unless the OS fails midway (disk
full); then the segment is sealed at once, so its torn tail ends the file and no later
line is glued to it. A writer killed mid-write leaves at most one torn line, the last of
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

import base64
import binascii
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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import IO, Any, Final, Literal, NamedTuple, final

import attrs
import msgspec
import trio

from ._drain import describe
from ._exceptions import ConfigError, TrioSinkError
from ._ledger import Undelivered
from ._record import Record

__all__ = [
    "SCHEMA_VERSION",
    "RescueEntry",
    "RescueFormatError",
    "RescueReadStats",
    "RescueStatistics",
    "RescueStore",
]

log = logging.getLogger("trio_sink.rescue")

SCHEMA_VERSION: Final = 1
"""The version this trio_sink writes, and the newest it reads."""

FsyncPolicy = Literal["batch", "interval", "never"]
_POLICIES: Final = ("batch", "interval", "never")

_FINAL: Final = ".jsonl"
_OPEN: Final = ".jsonl.open"
_DONE: Final = ".done"
_TMP: Final = ".tmp"
_REPLAY_LOCK: Final = ".replay.lock"
_BYTES: Final = (bytes, bytearray, memoryview)

# Read at call time, so that tests can replace it.
_monotonic = time.monotonic

_names = itertools.count()
_names_lock = threading.Lock()
_last_ns = 0


class RescueFormatError(TrioSinkError, ValueError):
    """A segment holds a line of a schema version newer than this trio_sink reads.

    Raised by a read when it reaches such a line: the line and everything after it
    stay in the store as they are, and nothing is skipped. It means: upgrade trio_sink
    to read this store. It is never raised for a torn or garbled line: those are
    skipped and counted.
    """


class RescueEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One record that did not reach a sink, as the rescue store keeps it. Immutable.

    Values come back from the store in their JSON form (msgspec's mapping: tuples and
    sets as lists, NaN as None, datetimes as text, structs and dataclasses as objects),
    except that ``raw``, ``payload`` or ``rest`` that is bytes comes back as bytes.
    Bytes nested in a value come back as base64 text.
    """

    id: int
    """The record's id in the run that rescued it."""
    raw: Any
    """The item the source produced."""
    payload: Any
    """What ``parse`` returned."""
    sink: str | None
    """The sink the record was meant for; None for a record given up before routing."""
    stage: str
    """Where it was given up: ``"source"``, ``"route"``, ``"sink"`` or ``"replay"``."""
    reason: str
    """Why, as in :attr:`trio_sink.Undelivered.reason`."""
    error: str | None
    """The sink's exception as ``"TypeName: message"``, when a write raised."""
    time: float
    """When it was rescued: wall-clock seconds since the epoch (``time.time()``)."""
    run: str
    """The run that rescued it (:attr:`RescueStore.run`): ids repeat across runs."""
    repr_only: bool = False
    """True when part of ``raw``, ``payload`` or ``rest`` could not be encoded as JSON
    and is stored as its ``repr()`` text instead (a whole value, or an object nested
    in one)."""
    rest: Any = None
    """The record's ``rest`` (a partial parse); None otherwise."""
    record_error: str | None = None
    """The record's own ``error`` (what ``parse`` or a ``when`` raised) as text."""

    @classmethod
    def from_record(
        cls,
        record: Record,
        *,
        sink: str | None,
        reason: str,
        run: str,
        error: BaseException | str | None = None,
        stage: str = "sink",
        time: float | None = None,
    ) -> RescueEntry:
        """The entry for ``record``, given up on its way to ``sink`` for ``reason``.

        ``error`` is the sink's exception (or its text); ``time`` defaults to now.
        """
        return cls(
            id=record.id,
            raw=record.raw,
            payload=record.payload,
            rest=record.rest,
            sink=sink,
            stage=stage,
            reason=reason,
            error=_error_text(error),
            record_error=_error_text(record.error),
            time=_wall() if time is None else time,
            run=run,
        )

    @classmethod
    def from_undelivered(
        cls, undelivered: Undelivered, *, run: str, time: float | None = None
    ) -> RescueEntry:
        """The entry for one line of a :class:`~trio_sink.DeliveryReport`'s ``undelivered``."""
        return cls.from_record(
            undelivered.record,
            sink=undelivered.sink,
            stage=undelivered.stage,
            reason=undelivered.reason,
            error=undelivered.error,
            run=run,
            time=time,
        )


def _wall() -> float:
    return time.time()


def _error_text(error: BaseException | str | None) -> str | None:
    if error is None or isinstance(error, str):
        return error
    return describe(error)


class _Line(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    tag_field="v",
    tag=SCHEMA_VERSION,
    omit_defaults=True,
):
    """One line of a segment: a RescueEntry, and which of its values were bytes."""

    run: str
    id: int
    time: float
    sink: str | None
    stage: str
    reason: str
    error: str | None = None
    raw: Any = None
    payload: Any = None
    rest: Any = None
    record_error: str | None = None
    repr_only: bool = False
    b64: tuple[str, ...] = ()


class _Version(msgspec.Struct):
    v: object = None


_DECODER: Final = msgspec.json.Decoder(_Line)
_VERSION_DECODER: Final = msgspec.json.Decoder(_Version)


def _safe_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        return f"<{type(value).__name__} object: repr() raised>"
    return _clean(text)


def _clean(text: str) -> str:
    """``text`` with lone surrogates escaped, so that it encodes as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _repr_hook(value: object) -> str:
    if isinstance(value, BaseException):
        return _clean(describe(value))
    return _safe_repr(value)


class _Encoder:
    """Encodes entries to lines: faithfully when it can, with reprs when it cannot."""

    def __init__(self) -> None:
        self._plain = msgspec.json.Encoder()
        self._lenient = msgspec.json.Encoder(enc_hook=_repr_hook)

    def encode(self, entries: Sequence[RescueEntry]) -> tuple[bytearray, list[int]]:
        """One buffer of lines, and the end offset of each line in it."""
        buf = bytearray()
        ends: list[int] = []
        encode_into = self._plain.encode_into
        for e in entries:
            start = len(buf)
            raw, payload, rest = e.raw, e.payload, e.rest
            b64: tuple[str, ...] = ()
            if isinstance(raw, _BYTES) or isinstance(payload, _BYTES) or isinstance(rest, _BYTES):
                b64 = tuple(
                    name
                    for name, value in (("raw", raw), ("payload", payload), ("rest", rest))
                    if isinstance(value, _BYTES)
                )
            line = _Line(
                run=e.run,
                id=e.id,
                time=e.time,
                sink=e.sink,
                stage=e.stage,
                reason=e.reason,
                error=e.error,
                raw=raw,
                payload=payload,
                rest=rest,
                record_error=e.record_error,
                repr_only=e.repr_only,
                b64=b64,
            )
            try:
                encode_into(line, buf, -1)
            except Exception:
                del buf[start:]
                self._encode_lenient(e, line, buf)
            buf += b"\n"
            ends.append(len(buf))
        return buf, ends

    def _encode_lenient(self, e: RescueEntry, line: _Line, buf: bytearray) -> None:
        start = len(buf)
        try:
            # Objects msgspec does not know become their repr, in place.
            self._lenient.encode_into(msgspec.structs.replace(line, repr_only=True), buf, -1)
            return
        except Exception:
            del buf[start:]
        # Text it cannot encode (lone surrogates), or an int beyond 64 bits: the whole
        # values become reprs, and every text field is cleaned.
        fallback = _Line(
            run=_clean(e.run),
            id=e.id,
            time=e.time,
            sink=None if e.sink is None else _clean(e.sink),
            stage=_clean(e.stage),
            reason=_clean(e.reason),
            error=None if e.error is None else _clean(e.error),
            raw=_safe_repr(e.raw),
            payload=_safe_repr(e.payload),
            rest=None if e.rest is None else _safe_repr(e.rest),
            record_error=None if e.record_error is None else _clean(e.record_error),
            repr_only=True,
        )
        self._plain.encode_into(fallback, buf, -1)


def _decode(data: bytes, where: str) -> RescueEntry | None:
    """The entry of one line; None when it cannot be decoded.

    Raises RescueFormatError for a line of a newer schema version.
    """
    try:
        line = _DECODER.decode(data)
    except msgspec.ValidationError:
        try:
            version = _VERSION_DECODER.decode(data).v
        except msgspec.MsgspecError:
            return None
        if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
            raise RescueFormatError(
                f"{where}: schema version {version} is newer than this trio_sink reads"
                f" ({SCHEMA_VERSION}); upgrade trio_sink to read this store"
            ) from None
        return None
    except msgspec.DecodeError:
        return None
    raw, payload, rest = line.raw, line.payload, line.rest
    if line.b64:
        try:
            if "raw" in line.b64:
                raw = base64.b64decode(raw, validate=True)
            if "payload" in line.b64:
                payload = base64.b64decode(payload, validate=True)
            if "rest" in line.b64:
                rest = base64.b64decode(rest, validate=True)
        except (binascii.Error, TypeError, ValueError):
            return None
    return RescueEntry(
        id=line.id,
        raw=raw,
        payload=payload,
        sink=line.sink,
        stage=line.stage,
        reason=line.reason,
        error=line.error,
        time=line.time,
        run=line.run,
        repr_only=line.repr_only,
        rest=rest,
        record_error=line.record_error,
    )


@final
@attrs.frozen
class RescueReadStats:
    """What the most recent read of a store (``entries()``, ``counts()``,
    ``pending()``, or a replay) went through; a read stopped early counts what it
    had passed."""

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


class _Tally:
    __slots__ = ("bad", "entries", "segments", "torn")

    def __init__(self) -> None:
        self.segments = 0
        self.entries = 0
        self.torn = 0
        self.bad = 0


class _Item(NamedTuple):
    """One decoded line of a segment, with its byte range."""

    start: int
    end: int
    line: bytes
    entry: RescueEntry


class _Chunk(NamedTuple):
    """Up to ``n`` entries of a segment from an offset, as replay reads them."""

    items: list[_Item]
    start: int
    end: int
    size: int
    skipped: int


class _Segment(NamedTuple):
    path: Path
    start: int


if sys.platform == "win32":  # pragma: no cover - no flock: one writer per directory

    def _try_lock(fd: int) -> bool:
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def _fsync_dir(path: Path) -> None:
    if sys.platform == "win32":  # pragma: no cover - directories cannot be opened
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _segment_base() -> str:
    """A new segment name without suffix; later calls in this process sort later."""
    global _last_ns
    with _names_lock:
        ns = max(time.time_ns(), _last_ns + 1)
        _last_ns = ns
        n = next(_names)
    return f"seg-{ns:020d}-{os.getpid()}-{n:06d}"


def _new_run_id() -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"{stamp}-{os.getpid()}-{secrets.token_hex(3)}"


def _read_offset(path: Path) -> int:
    done = path.with_name(path.name + _DONE)
    try:
        text = done.read_text("ascii")
    except FileNotFoundError:
        return 0
    except (OSError, UnicodeDecodeError):
        text = ""
    try:
        offset = int(text.strip())
    except ValueError:
        offset = -1
    if offset < 0:
        log.warning('rescue.bad_progress file=%s text="%s"; reading from the start', done, text)
        return 0
    return offset


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
            since the last fsync, and when a segment is sealed. ``"never"``: only when a
            segment is sealed. Every write reaches the OS before it returns, so a
            killed process loses nothing; the policy bounds what a power loss takes.
        fsync_interval: Seconds, for ``fsync="interval"``.
        segment_max_records: Entries in one segment before a new one is started.
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
            raise ConfigError(
                f"segment_max_records must be an int >= 1, got {segment_max_records!r}"
            )
        if run is not None and (not isinstance(run, str) or not run):
            raise ConfigError(f"run must be a non-empty str or None, got {run!r}")
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
        self._encoder = _Encoder()
        self._file: IO[bytes] | None = None
        self._open_path: Path | None = None
        self._segment_records = 0
        self._unsynced = False
        self._last_sync = _monotonic()
        self._closed = False
        self._written = 0
        self._sealed = 0
        self._fsyncs = 0
        self._tally = _Tally()

    # -- writing ---------------------------------------------------------------------

    def write(self, entries: Iterable[RescueEntry]) -> int:
        """Append ``entries``; return how many. Blocks for the write (and the fsync,
        per the policy): from async code, use :meth:`awrite`.

        Every entry has reached the OS when this returns. The entries are encoded
        before anything is written: an encoding problem writes nothing. Raises
        :class:`trio.ClosedResourceError` after :meth:`close`.
        """
        batch = entries if isinstance(entries, Sequence) else list(entries)
        with self._lock:
            if self._closed:
                raise trio.ClosedResourceError("the rescue store is closed")
            if not batch:
                return 0
            buf, ends = self._encoder.encode(batch)
            self._append(buf, ends)
            self._sync_by_policy()
            self._written += len(batch)
        return len(batch)

    async def awrite(self, entries: Iterable[RescueEntry]) -> int:
        """:meth:`write`, in a worker thread, so that the fsync does not block Trio.

        A checkpoint. Cancelled before the thread starts, nothing was written;
        once it has started, the write completes and its count is returned (the
        cancellation is delivered at the next checkpoint).
        """
        batch = list(entries)
        return await trio.to_thread.run_sync(self.write, batch)

    def rescue(self, undelivered: Iterable[Undelivered]) -> int:
        """Write one entry per :class:`~trio_sink.Undelivered`, stamped with
        :attr:`run` and the current time; return how many."""
        now = _wall()
        run = self.run
        return self.write([RescueEntry.from_undelivered(u, run=run, time=now) for u in undelivered])

    async def arescue(self, undelivered: Iterable[Undelivered]) -> int:
        """:meth:`rescue`, with the write in a worker thread, as :meth:`awrite`."""
        now = _wall()
        run = self.run
        batch = [RescueEntry.from_undelivered(u, run=run, time=now) for u in undelivered]
        return await trio.to_thread.run_sync(self.write, batch)

    def seal(self) -> None:
        """Finish the segment being written (fsync, rename, fsync of the directory);
        the next write starts a new one. Entries become readable through this object
        once their segment is sealed. Blocks."""
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

    def _open_segment(self) -> IO[bytes]:
        base = _segment_base()
        path = self.path / (base + _OPEN)
        # Created and locked under a name readers ignore, then renamed: no reader
        # ever sees it unlocked and takes it for the segment of a dead writer.
        tmp = self.path / (f".{base}{_TMP}")
        f = open(tmp, "xb")  # noqa: SIM115 - closed when the segment is sealed
        try:
            _try_lock(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            f.close()
            tmp.unlink(missing_ok=True)
            raise
        self._file, self._open_path = f, path
        self._segment_records = 0
        if self.fsync != "never":
            _fsync_dir(self.path)
        return f

    def _append(self, buf: bytearray, ends: list[int]) -> None:
        """Write the lines of ``buf``, rolling over to a new segment when one is full."""
        view = memoryview(buf)
        pos = 0
        i = 0
        n = len(ends)
        while i < n:
            f = self._file if self._file is not None else self._open_segment()
            stop = min(n, i + self.segment_max_records - self._segment_records)
            end = ends[stop - 1]
            try:
                f.write(view[pos:end])
                f.flush()
            except BaseException:
                # A partial line may end the file: seal it, so no later line follows it.
                with contextlib.suppress(OSError):
                    self._seal()
                raise
            self._unsynced = True
            self._segment_records += stop - i
            pos, i = end, stop
            if self._segment_records >= self.segment_max_records:
                self._seal()

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
        f, path = self._file, self._open_path
        if f is None or path is None:
            return
        self._file = self._open_path = None
        final = path.with_name(path.name.removesuffix(".open"))
        try:
            os.fsync(f.fileno())
            self._fsyncs += 1
            self._unsynced = False
            if sys.platform == "win32":  # pragma: no cover - an open file cannot be renamed
                f.close()
            # Renamed while this object still holds its lock: no reader takes it for
            # the segment of a dead writer in between.
            os.replace(path, final)
        finally:
            f.close()
        _fsync_dir(self.path)
        self._sealed += 1
        log.debug("rescue.sealed segment=%s records=%d", final.name, self._segment_records)
        self._segment_records = 0

    # -- reading ---------------------------------------------------------------------

    def entries(self, *, sink: str | None = None) -> Iterator[RescueEntry]:
        """Every entry in the store, in write order; only those for ``sink`` when given.

        Reads the sealed segments and those left by writers that died, from where
        replay has consumed them; not the segment this object is writing (see
        :meth:`seal`). Skips undecodable lines with a warning, and counts them in
        :attr:`read_stats`. Raises :class:`RescueFormatError` at a line of a newer
        schema version. Blocks on file reads.
        """
        tally = self._tally = _Tally()
        for seg in self._readable_segments():
            tally.segments += 1
            for item in _scan(seg.path, seg.start, tally):
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
        """What the most recent read went through (torn and bad lines skipped)."""
        t = self._tally
        return RescueReadStats(
            segments=t.segments, entries=t.entries, torn_lines=t.torn, bad_lines=t.bad
        )

    @property
    def torn_lines(self) -> int:
        """Torn last lines skipped by the most recent read."""
        return self._tally.torn

    def _readable_segments(self) -> list[_Segment]:
        with self._lock:
            own = self._open_path
        found: list[tuple[str, Path, bool]] = []  # (sort key, path, sealed)
        with os.scandir(self.path) as it:
            for d in it:
                name = d.name
                if not name.startswith("seg-"):
                    continue
                if name.endswith(_FINAL):
                    found.append((name, Path(d.path), True))
                elif name.endswith(_OPEN):
                    found.append((name.removesuffix(".open"), Path(d.path), False))
        found.sort()
        segments: list[_Segment] = []
        for _, path, sealed in found:
            if sealed:
                segments.append(_Segment(path, _read_offset(path)))
            elif path != own and _writer_gone(path):
                segments.append(_Segment(path, 0))
        return segments

    # -- consumption, for replay ---------------------------------------------------

    @contextlib.contextmanager
    def _replay_lock(self) -> Iterator[None]:
        """Held by a replay: one at a time per directory."""
        f = open(self.path / _REPLAY_LOCK, "ab")  # noqa: SIM115 - closed below
        try:
            if not _try_lock(f.fileno()):
                raise trio.BusyResourceError(f"another replay is running on {self.path}")
            yield
        finally:
            f.close()

    def _replay_segments(self) -> list[_Segment]:
        """Seal this object's segment, adopt the segments of dead writers (rename them
        to their final name), drop orphaned progress files; then the segments to
        consume, in order. Call under :meth:`_replay_lock`."""
        self.seal()
        self._tally = _Tally()
        with os.scandir(self.path) as it:
            names = sorted(d.name for d in it if d.name.startswith(("seg-", ".seg-")))
        for name in names:
            path = self.path / name
            if name.startswith(".seg-"):
                # A writer died between creating its segment and naming it: empty.
                if _writer_gone(path):
                    path.unlink(missing_ok=True)
            elif name.endswith(_OPEN) and _writer_gone(path):
                final = path.with_name(name.removesuffix(".open"))
                with contextlib.suppress(FileNotFoundError):
                    os.replace(path, final)
                    log.info("rescue.adopted segment=%s", final.name)
            elif name.endswith(_DONE + _TMP):
                path.unlink(missing_ok=True)
        for name in names:
            if name.endswith(_DONE):
                seg = self.path / name.removesuffix(_DONE)
                if not seg.exists():
                    (self.path / name).unlink(missing_ok=True)
        _fsync_dir(self.path)
        segments = [s for s in self._readable_segments() if s.path.name.endswith(_FINAL)]
        self._tally.segments = len(segments)
        return segments

    def _read_chunk(self, path: Path, start: int, n: int) -> _Chunk:
        """Up to ``n`` entries of segment ``path`` from byte ``start``."""
        items: list[_Item] = []
        tally = self._tally
        before = tally.torn + tally.bad
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return _Chunk(items, start, start, start, 0)
        with f:
            size = os.fstat(f.fileno()).st_size
            end = start
            for item in _scan_open(f, path, start, size, tally):
                items.append(item)
                end = item.end
                if len(items) >= n:
                    break
            else:
                end = size
        return _Chunk(items, start, end, size, tally.torn + tally.bad - before)

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
            wrote = 0
            if moved is not None:
                with open(path, "rb") as f:
                    pending: list[bytes] = []
                    for item in _scan_open(f, path, moved[0], moved[1], _Tally(), quiet=True):
                        if item.end > moved[1]:
                            break
                        pending.append(item.line)
                        if len(pending) >= 1024:
                            self._append_lines(pending)
                            wrote += len(pending)
                            pending.clear()
                    if pending:
                        self._append_lines(pending)
                        wrote += len(pending)
            lines: list[bytes] = []
            fresh = [k for k in keep if isinstance(k, RescueEntry)]
            encoded = iter(self._encoded_lines(fresh))
            for k in keep:
                lines.append(next(encoded) if isinstance(k, RescueEntry) else k)
            if lines:
                self._append_lines(lines)
                wrote += len(lines)
            if wrote:
                self._written += wrote
                # What stays must be on disk before the offset moves past its old copy.
                self._sync()
                _fsync_dir(self.path)
        _commit(path, offset, size)

    def _encoded_lines(self, entries: Sequence[RescueEntry]) -> list[bytes]:
        if not entries:
            return []
        buf, ends = self._encoder.encode(entries)
        starts = [0, *ends[:-1]]
        return [bytes(buf[a:b]) for a, b in zip(starts, ends, strict=True)]

    def _append_lines(self, lines: Sequence[bytes]) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the rescue store is closed")
        buf = bytearray()
        ends: list[int] = []
        for line in lines:
            buf += line
            if not line.endswith(b"\n"):
                buf += b"\n"
            ends.append(len(buf))
        self._append(buf, ends)


def _writer_gone(path: Path) -> bool:
    """True when no live writer holds segment ``path`` (its writer died)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return False
    with f:
        return _try_lock(f.fileno())


def _commit(path: Path, offset: int, size: int) -> None:
    if offset >= size:
        path.unlink(missing_ok=True)
        path.with_name(path.name + _DONE).unlink(missing_ok=True)
        log.debug("rescue.consumed segment=%s", path.name)
    else:
        done = path.with_name(path.name + _DONE)
        tmp = done.with_name(done.name + _TMP)
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{offset}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, done)
    _fsync_dir(path.parent)


def _scan(path: Path, start: int, tally: _Tally) -> Iterator[_Item]:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:  # consumed, or adopted, since it was listed
        return
    with f:
        size = os.fstat(f.fileno()).st_size
        yield from _scan_open(f, path, start, size, tally)


def _scan_open(
    f: IO[bytes], path: Path, start: int, size: int, tally: _Tally, *, quiet: bool = False
) -> Iterator[_Item]:
    """The decodable lines of ``f`` from ``start``; the rest are counted and logged.

    A last line without its newline is kept when it decodes: a JSON object decodes
    only when whole.
    """
    f.seek(start)
    pos = start
    for data in f:
        end = pos + len(data)
        entry = _decode(data, f"{path.name} at byte {pos}")
        if entry is None:
            if quiet:
                pass
            elif end >= size:
                tally.torn += 1
                log.warning(
                    "rescue.torn_line segment=%s offset=%d bytes=%d", path.name, pos, len(data)
                )
            else:
                tally.bad += 1
                log.warning(
                    "rescue.bad_line segment=%s offset=%d bytes=%d", path.name, pos, len(data)
                )
        else:
            tally.entries += 1
            yield _Item(pos, end, data, entry)
        pos = end
