"""Batch: a read-only Sequence[Record] kept as columns, equal to the records it stands for."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import compress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_sink import Batch, ErrorRecord, Pipeline, Record, Route, Sink, payloads_of
from trio_sink.sinks import CollectSink

values = st.one_of(st.integers(), st.text(max_size=3), st.none())


def naive(ids: Sequence[int], raws: Sequence[Any], payloads: Sequence[Any]) -> list[Record]:
    return [Record(i, r, p) for i, r, p in zip(ids, raws, payloads, strict=True)]


@given(
    first=st.integers(min_value=0, max_value=10**6),
    raws=st.lists(values, max_size=20),
    data=st.data(),
)
def test_a_batch_is_the_records_of_its_columns(first: int, raws: list[Any], data: Any) -> None:
    payloads = tuple(data.draw(st.lists(values, min_size=len(raws), max_size=len(raws))))
    flags = data.draw(
        st.one_of(st.none(), st.lists(st.booleans(), min_size=len(raws), max_size=len(raws)))
    )
    ids = range(first, first + len(raws))
    if flags is None:
        batch = Batch(ids, tuple(raws), payloads)
        expected = naive(ids, raws, payloads)
    else:
        picks = list(compress(range(len(raws)), flags))
        batch = Batch(ids, tuple(raws), tuple(compress(payloads, flags)), picks=picks)
        expected = list(compress(naive(ids, raws, payloads), flags))
    assert len(batch) == batch.size == len(expected)
    assert [batch[k] for k in range(len(batch))] == expected
    assert list(batch) == expected
    assert list(batch.ids) == [r.id for r in expected]
    assert list(batch.raws) == [r.raw for r in expected]
    assert list(batch.payloads) == [r.payload for r in expected]
    assert batch == expected
    assert batch == Batch.of(expected)
    assert list(batch[1:3]) == expected[1:3]
    if expected:
        assert batch[-1] == expected[-1]
    assert payloads_of(batch) == batch.payloads
    assert list(payloads_of(expected)) == [r.payload for r in expected]


def test_records_are_built_once_when_iterated() -> None:
    batch = Batch(range(3), ("a", "b", "c"), (1, 2, 3))
    first = list(batch)
    assert [r.id for r in first] == [0, 1, 2]
    assert all(a is b for a, b in zip(first, batch, strict=True))
    assert batch[1] is first[1]


def test_of_keeps_the_records_as_they_are() -> None:
    error = ValueError("boom")
    records = [Record(5, "x", {"k": 1}, rest="tail"), ErrorRecord(9, "y", "y", error=error)]
    batch = Batch.of(records)
    assert list(batch) == records
    assert batch[0].rest == "tail"
    assert batch[1].error is error
    assert type(batch[1]) is ErrorRecord
    assert list(batch.ids) == [5, 9]
    assert Batch.of(batch) is batch
    assert batch[0:1] == records[0:1]


def test_a_batch_is_read_only() -> None:
    batch = Batch(range(2), ("a", "b"), (1, 2))
    with pytest.raises(TypeError):
        batch[0] = Record(0, "z", 0)  # type: ignore[index]
    with pytest.raises(AttributeError):
        batch.anything = 1  # type: ignore[attr-defined]
    assert batch != [Record(0, "a", 1)]
    assert batch.__eq__(object()) is NotImplemented
    with pytest.raises(TypeError):
        hash(batch)


def test_repr_shows_the_records() -> None:
    assert repr(Batch(range(1), ("a",), (1,))) == (
        "Batch([Record(id=0, raw='a', payload=1, rest=None, error=None)])"
    )


async def test_a_sink_reads_payloads_without_building_records() -> None:
    class Payloads(Sink):
        def __init__(self, name: str) -> None:
            self.name = name
            self.seen: list[list[Any]] = []
            self.ids: list[list[int]] = []

        async def write(self, batch: Sequence[Record]) -> None:
            assert isinstance(batch, Batch)
            self.seen.append(list(batch.payloads))
            self.ids.append(list(batch.ids))
            assert batch._records is None  # nothing asked for a record

    every, big = Payloads("every"), Payloads("big")
    report = await Pipeline(
        range(10),
        parse=lambda x: x * 10,
        routes=[Route("all", every), Route("big", big, when=lambda p: p >= 40)],
        batch_size=5,
    ).run()
    assert report.ok
    assert every.seen == [[0, 10, 20, 30, 40], [50, 60, 70, 80, 90]]
    assert big.seen == [[40], [50, 60, 70, 80, 90]]
    assert big.ids == [[4], [5, 6, 7, 8, 9]]


def test_size_and_payloads_cannot_be_replaced() -> None:
    batch = Batch(range(2), ("a", "b"), (1, 2))
    with pytest.raises(AttributeError):
        batch.size = 0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        batch.payloads = ()  # type: ignore[misc]


def test_an_interrupted_pick_leaves_the_batch_as_it_was() -> None:
    """Regression: picking the ids, then the raws, wrote over the source columns one at
    a time: a KeyboardInterrupt in between left the ids picked twice on the next read."""

    class Flaky(tuple[int, ...]):
        passes = 0

        def __iter__(self):  # type: ignore[no-untyped-def]
            type(self).passes += 1
            if type(self).passes == 2:  # while picking the raws
                raise KeyboardInterrupt
            return super().__iter__()

    picks = Flaky((0, 2, 3))
    batch = Batch(range(4), ("a", "b", "c", "d"), (0, 2, 3), picks=picks)
    with pytest.raises(KeyboardInterrupt):
        _ = batch.ids
    assert list(batch.ids) == [0, 2, 3]
    assert list(batch.raws) == ["a", "c", "d"]
    assert list(batch) == [Record(0, "a", 0), Record(2, "c", 2), Record(3, "d", 3)]


async def test_a_when_flag_is_judged_once() -> None:
    """Regression: the values ``when`` returned were kept, and judged again when a sink
    read the batch's ids; a sink of another route that emptied them in between made
    the ids shorter than the payloads, and records went missing, counted delivered."""

    class Consume(Sink):
        name = "consume"
        never_blocks = True

        async def write(self, batch: Sequence[Record]) -> None:
            for payload in payloads_of(batch):
                payload["tags"].clear()

    tagged = CollectSink("tagged")
    report = await Pipeline(
        range(4),
        parse=lambda i: {"n": i, "tags": ["x"]},
        routes=[Route("all", Consume()), Route("tagged", tagged, when=lambda p: p["tags"])],
        batch_size=4,
    ).run()
    report.check()
    assert [(r.id, r.payload["n"]) for r in tagged.records] == [(i, i) for i in range(4)]


async def test_a_slow_path_batch_shares_no_mutable_column() -> None:
    """Regression: with a failed parse in the batch, the ids column was a list shared by
    the routes' batches."""
    got: list[Sequence[int]] = []

    class Ids(Sink):
        name = "ids"
        never_blocks = True

        async def write(self, batch: Sequence[Record]) -> None:
            assert isinstance(batch, Batch)
            got.append(batch.ids)

    def parse(x: int) -> int:
        if x == 1:
            raise ValueError(x)
        return x

    await Pipeline(range(4), parse=parse, routes=[Route("all", Ids())], batch_size=4).run()
    assert [type(ids) for ids in got] == [tuple]
