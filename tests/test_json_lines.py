"""JsonLines: a Batch of columns is encoded without building a record, to the very bytes
its records give, as are batches made from records and plain lists."""

from __future__ import annotations

import math
import types
from collections.abc import Sequence
from itertools import compress
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from trio_sink import Batch, Record, Undecodable
from trio_sink._json_lines import JsonLines, _fallback, record_object


def reference_lines(records: Sequence[Record]) -> bytes:
    """The lines as JsonLines wrote them before it read columns: a record at a time."""
    encoder = msgspec.json.Encoder(enc_hook=_fallback)
    return b"".join(encoder.encode(record_object(r)) + b"\n" for r in records)


def reference_array(records: Sequence[Record]) -> bytes:
    encoder = msgspec.json.Encoder(enc_hook=_fallback)
    return encoder.encode([record_object(r) for r in records])


class Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


ODD_RAWS: tuple[Any, ...] = ("line", b"\x00\xffbytes", Undecodable(b"\xff"), 3, None)
ODD_PAYLOADS: tuple[Any, ...] = (
    {"n": 1, "nested": [1.5, None, True]},
    math.nan,
    ValueError("bad value"),
    types.MappingProxyType({"a": 1}),
    Opaque(),
)


def columns_batch() -> Batch:
    return Batch(range(10, 15), ODD_RAWS, ODD_PAYLOADS)


def as_records(batch: Batch) -> list[Record]:
    return list(map(Record, batch.ids, batch.raws, batch.payloads))


def test_a_batch_of_columns_gives_its_records_bytes_and_builds_none() -> None:
    batch = columns_batch()
    records = as_records(batch)
    assert JsonLines().lines(batch) == reference_lines(records)
    assert JsonLines().array(batch) == reference_array(records)
    assert batch._records is None  # encoded from its columns


def test_the_lines_of_a_batch_of_columns_as_written() -> None:
    batch = Batch(range(2), ("a", b"\x01"), ({"x": 1}, math.inf))
    assert JsonLines().lines(batch) == (
        b'{"id":0,"raw":"a","payload":{"x":1}}\n{"id":1,"raw":"AQ==","payload":null}\n'
    )
    assert JsonLines().array(batch) == (
        b'[{"id":0,"raw":"a","payload":{"x":1}},{"id":1,"raw":"AQ==","payload":null}]'
    )


def test_a_batch_picked_by_a_route_gives_its_records_bytes() -> None:
    # As the route stage makes them: the source batch's ids and raws, and the picks.
    flags = (True, False, True, True, False)
    picks = [k for k, keep in enumerate(flags) if keep]
    batch = Batch(range(10, 15), ODD_RAWS, tuple(compress(ODD_PAYLOADS, flags)), picks=picks)
    records = [r for r, keep in zip(as_records(columns_batch()), flags, strict=True) if keep]
    assert JsonLines().lines(batch) == reference_lines(records)
    assert JsonLines().array(batch) == reference_array(records)


def test_rest_and_error_are_written_from_a_batch_of_records() -> None:
    records = [
        Record(0, "a", {"x": 1}),
        Record(1, "b=1 junk", {"b": 1}, rest="junk"),
        Record(2, "c", "c", error=KeyError("c")),
    ]
    batch = Batch.of(records)
    lines = JsonLines().lines(batch)
    assert lines == reference_lines(records) == JsonLines().lines(records)
    assert b'"rest":"junk"' in lines
    assert b'"error":"KeyError: \'c\'"' in lines
    assert JsonLines().array(batch) == reference_array(records) == JsonLines().array(records)


def test_a_batch_already_iterated_gives_the_same_bytes() -> None:
    batch = columns_batch()
    records = list(batch)
    assert JsonLines().lines(batch) == reference_lines(records)
    assert JsonLines().array(batch) == reference_array(records)


def test_plain_lists_and_tuples_give_the_same_bytes() -> None:
    records = as_records(columns_batch())
    assert JsonLines().lines(records) == reference_lines(records)
    assert JsonLines().lines(tuple(records)) == reference_lines(records)
    assert JsonLines().array(records) == reference_array(records)


def test_no_records() -> None:
    empty: list[Sequence[Record]] = [[], Batch((), (), ()), Batch.of([])]
    for batch in empty:
        assert JsonLines().lines(batch) == b""
        assert JsonLines().array(batch) == b"[]"


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text()
    | st.binary(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(st.lists(st.tuples(values, values), max_size=8))
def test_columns_and_records_give_the_same_bytes(items: list[tuple[Any, Any]]) -> None:
    raws = tuple(raw for raw, _ in items)
    payloads = tuple(payload for _, payload in items)
    batch = Batch(range(len(items)), raws, payloads)
    records = as_records(batch)
    assert JsonLines().lines(batch) == reference_lines(records)
    assert JsonLines().array(batch) == reference_array(records)
