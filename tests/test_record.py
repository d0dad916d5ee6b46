"""Record, Miss and Residue: the values that travel through a pipeline."""

from __future__ import annotations

import copy
import gc
import logging
import pickle
import weakref
from collections.abc import Callable, Sequence

import attrs
import pytest

import trio_sink
from trio_sink import NO_RETRY, Infra, Miss, Pipeline, Record, Residue, Route, _record
from trio_sink._record import with_error
from trio_sink.sinks import CollectSink


def test_record_fields_in_contract_order() -> None:
    r = Record(7, "raw line", {"k": 1})
    assert r.id == 7
    assert r.raw == "raw line"
    assert r.payload == {"k": 1}


def test_record_rest_and_error_default_to_none() -> None:
    r = Record(0, "a", "a")
    assert r.rest is None
    assert r.error is None


def test_record_carries_rest_and_error_when_given() -> None:
    exc = ValueError("boom")
    r = Record(1, "a", "b", rest="tail", error=exc)
    assert r.rest == "tail"
    assert r.error is exc


@pytest.mark.parametrize("field", ["id", "raw", "payload", "rest", "error"])
def test_record_is_frozen(field: str) -> None:
    r = Record(0, "a", "a")
    before = getattr(r, field)
    with pytest.raises(AttributeError):
        setattr(r, field, 1)
    assert getattr(r, field) == before


def test_record_equality_is_by_value() -> None:
    assert Record(3, "x", "y") == Record(3, "x", "y")
    assert Record(3, "x", "y") != Record(4, "x", "y")
    assert Record(3, "x", "y") != Record(3, "x", "y", rest="r")


def test_miss_is_an_exception_carrying_its_reason() -> None:
    miss = Miss("no rule for this line")
    assert isinstance(miss, Exception)
    assert miss.reason == "no rule for this line"
    assert str(miss) == "no rule for this line"
    with pytest.raises(Miss) as info:
        raise miss
    assert info.value.reason == "no rule for this line"


def test_residue_holds_payload_and_rest() -> None:
    residue = Residue({"a": 1}, "unparsed tail")
    assert residue.payload == {"a": 1}
    assert residue.rest == "unparsed tail"
    assert residue == Residue(payload={"a": 1}, rest="unparsed tail")


@pytest.mark.parametrize("field", ["payload", "rest"])
def test_residue_is_frozen(field: str) -> None:
    residue = Residue("p", "r")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(residue, field, "changed")
    assert (residue.payload, residue.rest) == ("p", "r")


# -- garbage collection -----------------------------------------------------------------


def test_records_are_untracked_and_error_records_tracked() -> None:
    record = Record(0, "a", {"k": 1})
    copy = with_error(record, ValueError("boom"))
    assert not gc.is_tracked(record)
    assert gc.is_tracked(copy)
    assert isinstance(copy, Record)
    assert (copy.id, copy.raw, copy.payload, copy.rest) == (0, "a", {"k": 1}, None)
    assert isinstance(copy.error, ValueError)


class Boom(ValueError):
    """Unlike the built-in exceptions, a subclass can be weakly referenced."""


class DiskFull(OSError):
    pass


def _cycle_through(make: Callable[[BaseException], Record]) -> weakref.ref[BaseException]:
    """An exception whose traceback holds the frame that holds the record carrying it."""
    try:
        raise Boom("boom")
    except Boom as exc:
        holder = [make(exc)]  # noqa: F841 - kept by the frame, which the traceback holds
        return weakref.ref(exc)


def test_a_cycle_through_an_error_record_is_collected() -> None:
    gone = _cycle_through(lambda exc: with_error(Record(0, "a", "a"), exc))
    gc.collect()
    assert gone() is None


async def test_the_records_a_pipeline_gives_an_error_are_tracked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Regression guard for Record(gc=False): the error records of a run (parse and
    # when errors, and the copies of failed writes) form cycles with their exceptions'
    # tracebacks, which the collector must still free once the run is over.
    def parse(raw: int) -> int:
        if raw % 3 == 0:
            raise Boom(f"bad {raw}")
        return raw

    async def failing(batch: Sequence[Record]) -> None:
        raise DiskFull("disk full")

    caplog.set_level(logging.CRITICAL, logger="trio_sink")  # log records keep exc_info
    errors = CollectSink("errors")
    pipeline = Pipeline(
        range(12),
        parse=parse,
        routes=[Route("r", failing)],
        infra=Infra(error=errors),
        retry=NO_RETRY,
        batch_size=4,
    )
    report = await pipeline.run()
    assert len(errors.records) == 12  # 4 parse errors, 8 failed writes
    assert all(type(r) is trio_sink.ErrorRecord for r in errors.records)
    assert all(gc.is_tracked(r) for r in errors.records)
    refs = [weakref.ref(r.error) for r in errors.records if r.error is not None]
    assert len(refs) == 12
    del errors, report, pipeline
    gc.collect()
    assert [ref() for ref in refs] == [None] * 12


async def test_residues_are_found_after_the_first_residue_of_a_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The route stage looks for residues only once one was made: here the first
    # batches have none, and the first Residue appears in a later one.
    monkeypatch.setattr(_record, "residue_made", False)

    def parse(raw: int) -> object:
        return Residue(raw, f"tail {raw}") if raw >= 10 else raw

    residues, everything = CollectSink("residues"), CollectSink("all")
    report = await Pipeline(
        range(12),
        parse=parse,
        routes=[Route("all", everything)],
        infra=Infra(residue=residues),
        batch_size=4,
    ).run()
    report.check()
    assert [r.rest for r in residues.records] == ["tail 10", "tail 11"]
    assert [r.payload for r in everything.records] == list(range(12))
    assert _record.residue_made


def test_copies_and_unpickled_residues_count_as_made(monkeypatch: pytest.MonkeyPatch) -> None:
    residue = Residue(1, "tail")
    for make in (copy.copy, lambda r: pickle.loads(pickle.dumps(r)), attrs.evolve):
        monkeypatch.setattr(_record, "residue_made", False)
        assert make(residue) == residue
        assert _record.residue_made
