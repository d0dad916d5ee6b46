"""The JSON shape of a record, as every built-in sink that writes JSON encodes it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, final

import msgspec

from ._batch import Batch
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


# The object of a record with no rest and no error, as record_object makes it (the same
# keys, in the same order, so the same bytes), built from three columns by a C call per
# item (map) instead of a dict per item in a Python loop: msgspec encodes a struct faster
# than a dict, too. Untracked by the garbage collector, as Record is: each one lives only
# while its batch is encoded, and nothing refers back to it.
class _Plain(msgspec.Struct, gc=False):
    id: int
    raw: Any
    payload: Any


def _plain_columns(
    batch: Sequence[Record],
) -> tuple[Sequence[int], Sequence[Any], Sequence[Any]] | None:
    """The ids, raw items and payloads of ``batch`` when they are all its records hold
    (a :class:`Batch` whose records were never built); None otherwise."""
    # _records is Batch's own (in this package, so reading it is safe): a Batch keeps
    # records only when it was made from them (Batch.of: they may carry rest or error)
    # or once iterated. Until then it holds nothing but its columns: records built from
    # them have no rest and no error.
    if type(batch) is Batch and batch._records is None:
        return batch.ids, batch.raws, batch.payloads
    return None


@final
class JsonLines:
    """Encodes batches of records as UTF-8 JSON: one object a line, or one array.

    Values are encoded by msgspec (bytes become base64, NaN and infinity ``null``);
    objects it cannot encode are written as their repr, exceptions as
    ``"TypeName: message"``. Not thread-safe: one encoder a sink.

    A :class:`Batch` made by the pipeline is encoded from its columns, building no
    record; the bytes are the same as for its records.
    """

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder(enc_hook=_fallback)

    def _objects(self, batch: Sequence[Record]) -> Iterable[Any]:
        columns = _plain_columns(batch)
        if columns is not None:
            return map(_Plain, *columns)
        return map(record_object, batch)

    def lines(self, batch: Sequence[Record]) -> bytes:
        """One JSON object a line, each line ending with ``\\n``; ``b""`` for no records."""
        return self._encoder.encode_lines(self._objects(batch))

    def array(self, batch: Sequence[Record]) -> bytes:
        """One JSON array of the records' objects."""
        return self._encoder.encode(list(self._objects(batch)))
