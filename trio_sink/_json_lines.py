"""The JSON shape of a record, as every built-in sink that writes JSON encodes it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, final

import msgspec

from ._record import Record

__all__ = ["JsonLines", "record_object"]


def _fallback(obj: Any) -> Any:
    if isinstance(obj, BaseException):
        return f"{type(obj).__name__}: {obj}"
    if isinstance(obj, Mapping):  # e.g. the read-only mappings of a statistics record
        return dict(obj)
    return repr(obj)


def record_object(record: Record) -> dict[str, Any]:
    """``id``, ``raw``, ``payload``, and ``rest`` / ``error`` when set."""
    obj: dict[str, Any] = {"id": record.id, "raw": record.raw, "payload": record.payload}
    if record.rest is not None:
        obj["rest"] = record.rest
    if record.error is not None:
        obj["error"] = record.error
    return obj


@final
class JsonLines:
    """Encodes batches of records as UTF-8 JSON: one object a line, or one array.

    Values are encoded by msgspec (bytes become base64, NaN and infinity ``null``);
    objects it cannot encode are written as their repr, exceptions as
    ``"TypeName: message"``. Not thread-safe: one encoder a sink.
    """

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder(enc_hook=_fallback)

    def lines(self, batch: Sequence[Record]) -> bytes:
        """One JSON object a line, each line ending with ``\\n``; ``b""`` for no records."""
        buf = bytearray()
        encode_into = self._encoder.encode_into
        for record in batch:
            encode_into(record_object(record), buf, -1)
            buf += b"\n"
        return bytes(buf)

    def array(self, batch: Sequence[Record]) -> bytes:
        """One JSON array of the records' objects."""
        return self._encoder.encode([record_object(r) for r in batch])
