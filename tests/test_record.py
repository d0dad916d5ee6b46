"""Record, Miss and Residue: the values that travel through a pipeline."""

from __future__ import annotations

import attrs
import pytest

from trio_sink import Miss, Record, Residue


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
