"""How the rescue store keeps an entry: :class:`RescueEntry`, one JSON line each.

A line is one JSON object, ``"v"`` (the schema version) first, then the entry's fields;
fields at their default are left out. A ``raw``, ``payload`` or ``rest`` that is bytes is
stored as base64 and named in ``"b64"``. A value that JSON cannot hold is stored as its
``repr()`` text, with ``repr_only`` set: an entry is never dropped for its values.
Decoding gives None for a line that is not whole and valid (torn or garbled), and raises
:class:`RescueFormatError` for a line of a newer schema version.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import math
import operator
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

import msgspec

from ._exceptions import ConfigError, TrioSinkError, describe
from ._record import Record
from ._report import Undelivered

__all__ = ["SCHEMA_VERSION", "PartlyStoredError", "RescueEntry", "RescueFormatError"]

SCHEMA_VERSION: Final = 1
"""The version this trio_sink writes, and the newest it reads."""

_BYTES: Final = (bytes, bytearray, memoryview)
_VALUES: Final = ("raw", "payload", "rest")
"""The fields of an entry that hold the record's values, in the order of ``"b64"``."""


class RescueFormatError(TrioSinkError, ValueError):
    """A segment holds a line of a schema version newer than this trio_sink reads.

    Raised by a read when it reaches such a line: the line and everything after it
    stay in the store as they are, and nothing is skipped. It means: upgrade trio_sink
    to read this store. It is never raised for a torn or garbled line: those are
    skipped and counted.
    """


class PartlyStoredError(TrioSinkError, OSError):
    """A write in chunks stored only the first :attr:`stored` of its :attr:`total`
    entries: the next chunk failed (its error is the ``__cause__``), and nothing after
    it was tried. The stored ones are in the store; the rest are not."""

    def __init__(self, stored: int, total: int, cause: OSError) -> None:
        super().__init__(f"stored {stored} of {total} entries, then: {describe(cause)}")
        self.stored = stored
        """How many of the first entries were stored."""
        self.total = total
        """How many entries the call was given."""


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
            time=wall_time() if time is None else time,
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


def rescue_entries(undelivered: Iterable[Undelivered], *, run: str) -> Sequence[RescueEntry]:
    """One entry per :class:`~trio_sink.Undelivered`, stamped with ``run`` and now;
    checked as :func:`checked_entries` checks them."""
    now = wall_time()
    entries = [RescueEntry.from_undelivered(u, run=run, time=now) for u in undelivered]
    return checked_entries(entries, "undelivered")


def wall_time() -> float:
    """Now, as entries are stamped: wall-clock seconds since the epoch."""
    return time.time()


def _error_text(error: BaseException | str | None) -> str | None:
    if error is None or isinstance(error, str):
        return error
    return describe(error)


_TEXT: Final = ("run", "stage", "reason")
"""The fields of an entry that hold a str."""
_OPTIONAL_TEXT: Final = ("sink", "error", "record_error")
"""The fields of an entry that hold a str or None."""


def checked_entries(entries: Sequence[RescueEntry], name: str) -> Sequence[RescueEntry]:
    """``entries``, each with the types that read back; ConfigError, naming
    ``name[i].field``, for the first field that would not.

    msgspec does not check types when a struct is built, and a line whose scalar fields
    have the wrong type is written but then skipped as bad on read. Subclasses of int,
    float and str (which msgspec does not encode as such) become plain values.
    """
    fixed: list[RescueEntry] | None = None
    isfinite = math.isfinite
    for i, e in enumerate(entries):
        if (
            type(e.id) is int
            and type(e.time) is float
            and isfinite(e.time)
            and type(e.reason) is str
            and type(e.stage) is str
            and type(e.run) is str
            and (e.sink is None or type(e.sink) is str)
            and (e.error is None or type(e.error) is str)
            and (e.record_error is None or type(e.record_error) is str)
            and type(e.repr_only) is bool
        ):
            ok = e  # the common case, in one expression
        else:
            ok = _checked_entry(e, name, i)
        if ok is not e and fixed is None:
            fixed = list(entries[:i])
        if fixed is not None:
            fixed.append(ok)
    return entries if fixed is None else fixed


def _checked_entry(e: RescueEntry, name: str, i: int) -> RescueEntry:
    changes: dict[str, object] = {}
    value: object = e.id
    if type(value) is not int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _wrong(name, i, "id", "an int", value)
        changes["id"] = operator.index(value)
    value = e.time
    if type(value) is not float or not math.isfinite(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _wrong(name, i, "time", "a finite float", value)
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise _wrong(name, i, "time", "a finite float", value)
        changes["time"] = number
    for field in _TEXT:
        value = getattr(e, field)
        if type(value) is not str:
            if not isinstance(value, str):
                raise _wrong(name, i, field, "a str", value)
            changes[field] = str.__str__(value)
    for field in _OPTIONAL_TEXT:
        value = getattr(e, field)
        if value is not None and type(value) is not str:
            if not isinstance(value, str):
                raise _wrong(name, i, field, "a str or None", value)
            changes[field] = str.__str__(value)
    if type(e.repr_only) is not bool:
        raise _wrong(name, i, "repr_only", "a bool", e.repr_only)
    return msgspec.structs.replace(e, **changes) if changes else e


def _wrong(name: str, i: int, field: str, expected: str, value: object) -> ConfigError:
    return ConfigError(f"{name}[{i}].{field} must be {expected}, got {value!r}")


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


def _clean_optional(text: str | None) -> str | None:
    return None if text is None else _clean(text)


def _repr_hook(value: object) -> str:
    if isinstance(value, BaseException):
        return _clean(describe(value))
    return _safe_repr(value)


class Encoder:
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
            b64: tuple[str, ...] = ()
            if (
                isinstance(e.raw, _BYTES)
                or isinstance(e.payload, _BYTES)
                or isinstance(e.rest, _BYTES)
            ):
                b64 = tuple(
                    name
                    for name, value in zip(_VALUES, (e.raw, e.payload, e.rest), strict=True)
                    if isinstance(value, _BYTES)
                )
            line = _line_of(e, b64)
            try:
                encode_into(line, buf, -1)
            except Exception:
                del buf[start:]
                self._encode_lenient(e, line, buf)
            buf += b"\n"
            ends.append(len(buf))
        return buf, ends

    def lines(self, entries: Sequence[RescueEntry]) -> list[bytes]:
        """The line of each entry, with its newline."""
        buf, ends = self.encode(entries)
        return [bytes(buf[a:b]) for a, b in itertools.pairwise([0, *ends])]

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
        cleaned = msgspec.structs.replace(
            e,
            run=_clean(e.run),
            sink=_clean_optional(e.sink),
            stage=_clean(e.stage),
            reason=_clean(e.reason),
            error=_clean_optional(e.error),
            raw=_safe_repr(e.raw),
            payload=_safe_repr(e.payload),
            rest=None if e.rest is None else _safe_repr(e.rest),
            record_error=_clean_optional(e.record_error),
            repr_only=True,
        )
        self._plain.encode_into(_line_of(cleaned, ()), buf, -1)


def _line_of(e: RescueEntry, b64: tuple[str, ...]) -> _Line:
    """The line of ``e``, whose values named in ``b64`` are bytes."""
    return _Line(
        run=e.run,
        id=e.id,
        time=e.time,
        sink=e.sink,
        stage=e.stage,
        reason=e.reason,
        error=e.error,
        raw=e.raw,
        payload=e.payload,
        rest=e.rest,
        record_error=e.record_error,
        repr_only=e.repr_only,
        b64=b64,
    )


def decode(data: bytes, where: str) -> RescueEntry | None:
    """The entry of one line; None when it cannot be decoded.

    Raises RescueFormatError for a line of a newer schema version; ``where`` names the
    line in its message.
    """
    try:
        line = _DECODER.decode(data)
    except msgspec.ValidationError:
        version = _version_of(data)
        if version is not None and version > SCHEMA_VERSION:
            raise RescueFormatError(
                f"{where}: schema version {version} is newer than this trio_sink reads"
                f" ({SCHEMA_VERSION}); upgrade trio_sink to read this store"
            ) from None
        return None
    except msgspec.DecodeError:
        return None
    raw, payload, rest = line.raw, line.payload, line.rest
    if line.b64:
        values = _from_base64(line)
        if values is None:
            return None
        raw, payload, rest = values
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


def _from_base64(line: _Line) -> tuple[Any, ...] | None:
    """The line's ``raw``, ``payload`` and ``rest``, those named in ``"b64"`` decoded;
    None when one of them is not base64."""
    try:
        return tuple(
            base64.b64decode(value, validate=True) if name in line.b64 else value
            for name, value in zip(_VALUES, (line.raw, line.payload, line.rest), strict=True)
        )
    except (binascii.Error, TypeError, ValueError):
        return None


def _version_of(data: bytes) -> int | None:
    """The schema version a line says it has; None when it says none."""
    try:
        version = _VERSION_DECODER.decode(data).v
    except msgspec.MsgspecError:
        return None
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    return None
