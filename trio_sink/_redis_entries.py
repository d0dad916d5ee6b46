"""Stream entries: what the Redis source yields, how a payload becomes an entry's fields,
and the parse that sends a poison entry to the ``error`` group."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias, final

import attrs
import msgspec

from ._checks import check_function
from ._exceptions import TrioSinkError
from ._record import Undecodable

__all__ = [
    "EntryItem",
    "PoisonEntry",
    "PoisonEntryError",
    "StreamEntry",
    "decode_entry",
    "entry_parser",
    "fields_of",
]


@final
@attrs.frozen
class StreamEntry:
    """One entry of a Redis stream, as :class:`RedisStreamSource` yields it.

    Attributes:
        id: The entry's id (``"1700000000000-0"``), unique in its stream.
        fields: Its field names and values, decoded as UTF-8, in the entry's order.
        deliveries: How many times the group has delivered it, this time included: 1
            when it is read for the first time; more when it is read again after a
            restart or taken over from another consumer.
    """

    id: str
    fields: dict[str, str]
    deliveries: int = 1


@final
@attrs.frozen
class PoisonEntry:
    """An entry delivered more than ``max_deliveries`` times: each delivery so far
    ended without an acknowledgement (its worker died, or its run ended first). It is
    yielded in place of a :class:`StreamEntry`, with the same data, so that the parse
    :func:`entry_parser` makes sends it to the ``error`` group instead of processing it
    once more. Once that group's sink has it (or the group discards it by
    configuration), it is acknowledged like any other entry.
    """

    id: str
    fields: dict[str, str]
    deliveries: int
    max_deliveries: int


EntryItem: TypeAlias = StreamEntry | PoisonEntry | Undecodable
"""What :class:`RedisStreamSource` yields: an entry, a poison entry, or an entry whose
bytes are not valid UTF-8 (:class:`~trio_sink.Undecodable`, which goes to the ``miss``
group; its ``data`` is the entry as MessagePack: ``{"id": ..., "fields": [[name,
value], ...]}`` with names and values as bytes)."""


class PoisonEntryError(TrioSinkError):
    """Raised by the parse :func:`entry_parser` makes, for a :class:`PoisonEntry`: the
    record goes to the ``error`` group, with the entry in ``record.raw``.

    It does not mean the entry is lost: it is acknowledged only once the ``error``
    group's sink has it, or the rescue store does.
    """

    def __init__(self, entry: PoisonEntry) -> None:
        super().__init__(
            f"stream entry {entry.id} was delivered {entry.deliveries} times, more than"
            f" max_deliveries={entry.max_deliveries}, and never acknowledged"
        )
        self.entry = entry


def entry_parser(parse: Callable[[StreamEntry], Any] | None = None) -> Callable[[Any], Any]:
    """The ``parse`` to give a :class:`~trio_sink.Pipeline` whose source is a
    :class:`RedisStreamSource`: a :class:`PoisonEntry` raises :class:`PoisonEntryError`
    (the record goes to the ``error`` group); a :class:`StreamEntry` is given to
    ``parse``, or is the payload itself when ``parse`` is None. (An undecodable entry
    goes to the ``miss`` group before any parse is called.)
    """
    if parse is not None:
        check_function("parse", parse, "a sync callable (StreamEntry -> payload) or None")

    def parse_entry(entry: Any) -> Any:
        if type(entry) is PoisonEntry:
            raise PoisonEntryError(entry)
        return entry if parse is None else parse(entry)

    return parse_entry


def decode_entry(raw: Sequence[Any], deliveries: int, max_deliveries: int | None) -> EntryItem:
    """The item for one entry of a reply, ``[id, [name, value, ...]]`` in bytes."""
    ident, flat = raw
    try:
        it = iter(flat)
        fields = {name.decode(): value.decode() for name, value in zip(it, it, strict=True)}
    except UnicodeDecodeError as exc:
        pairs = [list(pair) for pair in zip(flat[::2], flat[1::2], strict=True)]
        data = msgspec.msgpack.encode({"id": ident, "fields": pairs})
        return Undecodable(data, reason=f"stream entry {ident.decode()}: {exc}")
    if max_deliveries is not None and deliveries > max_deliveries:
        return PoisonEntry(ident.decode(), fields, deliveries, max_deliveries)
    return StreamEntry(ident.decode(), fields, deliveries)


_json = msgspec.json.Encoder()


def fields_of(payload: Any) -> dict[str | bytes, str | bytes]:
    """The fields of the stream entry that :class:`RedisStreamSink` writes for a record
    whose payload is ``payload``:

    - a mapping (a ``dict``): its items, each key a ``str`` or ``bytes``; a value that is a ``str``
      or ``bytes`` as it is, any other as its JSON text (``3`` -> ``"3"``, ``True`` ->
      ``"true"``, ``None`` -> ``"null"``, ``[1, 2]`` -> ``"[1,2]"``); an empty dict as
      one field ``data`` = ``"{}"`` (an entry has at least one field);
    - a :class:`StreamEntry` or :class:`PoisonEntry`: its fields (a copy of the entry);
    - anything else: one field ``data``, its JSON text (msgspec's JSON: a ``str`` is
      quoted, a dataclass, attrs class or msgspec Struct is an object).

    Raises ``TypeError`` for a key that is not ``str`` or ``bytes``, or a value that
    msgspec cannot encode.
    """
    if isinstance(payload, Mapping):
        if not payload:
            return {"data": "{}"}
        out: dict[str | bytes, str | bytes] = {}
        for key, value in payload.items():
            if not isinstance(key, (str, bytes)):
                raise TypeError(f"a stream entry's field names are str or bytes, got {key!r}")
            out[key] = value if isinstance(value, (str, bytes)) else _json.encode(value)
        return out
    if type(payload) is StreamEntry or type(payload) is PoisonEntry:
        copy: dict[str | bytes, str | bytes] = {k: v for k, v in payload.fields.items()}
        return copy
    return {"data": _json.encode(payload)}
