"""The DeliveryReport: check(), ok, immutability; Undelivered and its kind."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import pytest

from trio_sink import AccountingError, DeliveryReport, Record, TrioSinkError, Undelivered

DEADLINE = "drain deadline"


def _lost(rid: int, sink: str | None, stage: str = "sink", reason: str = DEADLINE) -> Undelivered:
    return Undelivered(Record(rid, f"raw{rid}", f"raw{rid}"), sink, stage, reason)


def _consistent() -> DeliveryReport:
    """Five records: 0..3 dispatched (0, 1 to "a"; 2, 3 to "a" and "b"), 4 lost before routing.

    "a": 4 routed, 3 delivered, record 3 undelivered.
    "b": 2 routed, 1 delivered, record 2 undelivered.
    """
    return DeliveryReport(
        received=5,
        routed={"a": 4, "b": 2},
        delivered={"a": 3, "b": 1},
        undelivered=[_lost(3, "a"), _lost(2, "b"), _lost(4, None, stage="source")],
        discarded={"default": 0},
        timed_out=True,
        drain_seconds=1.5,
        dispatched=4,
    )


# -- check(): passes ----------------------------------------------------------------------


def test_check_passes_on_a_consistent_report() -> None:
    _consistent().check()


def test_check_passes_on_an_empty_run() -> None:
    DeliveryReport(
        received=0,
        routed={"a": 0},
        delivered={"a": 0},
        undelivered=[],
        discarded={},
        timed_out=False,
        drain_seconds=0.0,
    ).check()


def test_check_passes_when_everything_was_discarded() -> None:
    DeliveryReport(
        received=3,
        routed={},
        delivered={},
        undelivered=[],
        discarded={"default": 3},
        timed_out=False,
        drain_seconds=0.0,
        dispatched=3,
    ).check()


def test_check_allows_one_record_undelivered_to_several_sinks() -> None:
    # The same id for two different sinks is not a double report.
    DeliveryReport(
        received=1,
        routed={"a": 1, "b": 1},
        delivered={"a": 0, "b": 0},
        undelivered=[_lost(0, "a"), _lost(0, "b")],
        discarded={},
        timed_out=True,
        drain_seconds=0.0,
        dispatched=1,
    ).check()


# -- check(): each broken case -----------------------------------------------------------


def test_accounting_error_is_a_trio_sink_error() -> None:
    assert issubclass(AccountingError, TrioSinkError)


def test_check_fails_when_delivered_plus_undelivered_is_not_routed() -> None:
    report = attrs.evolve(_consistent(), delivered={"a": 4, "b": 1})
    with pytest.raises(
        AccountingError, match=r"sink 'a': delivered 4 \+ undelivered 1 != routed 4"
    ):
        report.check()


def test_check_fails_when_too_few_are_accounted_for() -> None:
    report = attrs.evolve(_consistent(), routed={"a": 4, "b": 3})
    with pytest.raises(
        AccountingError, match=r"sink 'b': delivered 1 \+ undelivered 1 != routed 3"
    ):
        report.check()


def test_check_fails_for_a_sink_delivered_but_never_routed() -> None:
    report = attrs.evolve(_consistent(), delivered={"a": 3, "b": 1, "c": 2})
    with pytest.raises(
        AccountingError, match=r"sink 'c': delivered 2 \+ undelivered 0 != routed 0"
    ):
        report.check()


def test_check_fails_for_negative_delivered_even_when_the_sum_matches() -> None:
    # -1 + 1 == 0: the sum alone would pass.
    report = DeliveryReport(
        received=1,
        routed={"a": 0},
        delivered={"a": -1},
        undelivered=[_lost(0, "a")],
        discarded={},
        timed_out=False,
        drain_seconds=0.0,
        dispatched=1,
    )
    with pytest.raises(AccountingError, match="sink 'a'"):
        report.check()


def test_check_fails_when_a_record_is_reported_twice_for_one_sink() -> None:
    # Counts add up (2 routed, 0 delivered, 2 undelivered), but it is the same record twice.
    report = DeliveryReport(
        received=2,
        routed={"a": 2},
        delivered={"a": 0},
        undelivered=[_lost(1, "a"), _lost(1, "a")],
        discarded={},
        timed_out=True,
        drain_seconds=0.0,
        dispatched=2,
    )
    with pytest.raises(AccountingError, match="record 1 reported twice for sink 'a'"):
        report.check()


def test_check_fails_when_a_record_is_reported_twice_before_routing() -> None:
    report = DeliveryReport(
        received=2,
        routed={},
        delivered={},
        undelivered=[_lost(0, None), _lost(0, None)],
        discarded={},
        timed_out=True,
        drain_seconds=0.0,
        dispatched=0,
    )
    with pytest.raises(AccountingError, match="record 0 reported twice for sink None"):
        report.check()


def test_check_fails_when_undelivered_names_an_unknown_sink() -> None:
    base = _consistent()
    report = attrs.evolve(base, undelivered=[*base.undelivered, _lost(0, "ghost")])
    with pytest.raises(AccountingError, match=r"undelivered names unknown sinks \['ghost'\]"):
        report.check()


@pytest.mark.parametrize("rid", [5, 99, -1])
def test_check_fails_for_a_record_id_outside_the_received_range(rid: int) -> None:
    report = DeliveryReport(
        received=5,
        routed={"a": 5},
        delivered={"a": 4},
        undelivered=[_lost(rid, "a")],
        discarded={},
        timed_out=True,
        drain_seconds=0.0,
        dispatched=5,
    )
    with pytest.raises(AccountingError, match=rf"record id {rid} outside 0\.\.4"):
        report.check()


def test_check_fails_when_dispatched_plus_unrouted_is_not_received() -> None:
    report = attrs.evolve(_consistent(), dispatched=3)
    with pytest.raises(AccountingError, match=r"dispatched 3 \+ unrouted 1 != received 5"):
        report.check()


def test_check_fails_when_records_vanished_before_routing() -> None:
    # A record neither dispatched nor reported: the source produced 6, only 5 are counted.
    report = attrs.evolve(_consistent(), received=6)
    with pytest.raises(AccountingError, match=r"dispatched 4 \+ unrouted 1 != received 6"):
        report.check()


def test_check_reports_every_problem_at_once() -> None:
    base = _consistent()
    report = attrs.evolve(
        base,
        delivered={"a": 0, "b": 1},
        undelivered=[*base.undelivered, _lost(9, "ghost")],
        dispatched=0,
    )
    with pytest.raises(AccountingError) as info:
        report.check()
    message = str(info.value)
    assert "sink 'a'" in message
    assert "unknown sinks ['ghost']" in message
    assert "record id 9 outside 0..4" in message
    assert "!= received 5" in message
    assert "sink 'b'" not in message


# -- the report as a value ---------------------------------------------------------------


def test_ok_is_true_only_when_nothing_is_undelivered() -> None:
    assert not _consistent().ok
    clean = attrs.evolve(
        _consistent(),
        delivered={"a": 4, "b": 2},
        undelivered=[],
        dispatched=5,
        timed_out=False,
    )
    clean.check()
    assert clean.ok


def test_ok_is_false_for_a_record_lost_before_routing() -> None:
    report = DeliveryReport(
        received=1,
        routed={},
        delivered={},
        undelivered=[_lost(0, None, stage="source")],
        discarded={},
        timed_out=True,
        drain_seconds=0.0,
    )
    report.check()
    assert not report.ok


@pytest.mark.parametrize("field", ["routed", "delivered", "discarded", "sink_errors"])
def test_report_mappings_are_read_only(field: str) -> None:
    report = attrs.evolve(_consistent(), sink_errors={"a": "flush raised OSError: disk"})
    assert isinstance(getattr(report, field), Mapping)
    mapping: Any = getattr(report, field)
    key = next(iter(mapping))
    with pytest.raises(TypeError):
        mapping[key] = 0
    with pytest.raises(TypeError):
        mapping["new"] = 0
    with pytest.raises(TypeError):
        del mapping[key]


def test_report_copies_the_mappings_it_is_given() -> None:
    routed = {"a": 1}
    delivered = {"a": 1}
    discarded = {"default": 2}
    errors = {"a": "aclose raised OSError: x"}
    report = DeliveryReport(
        received=3,
        routed=routed,
        delivered=delivered,
        undelivered=[],
        discarded=discarded,
        timed_out=False,
        drain_seconds=0.0,
        dispatched=3,
        sink_errors=errors,
    )
    routed["a"] = 9
    delivered["b"] = 9
    discarded["miss"] = 9
    errors.clear()
    assert dict(report.routed) == {"a": 1}
    assert dict(report.delivered) == {"a": 1}
    assert dict(report.discarded) == {"default": 2}
    assert dict(report.sink_errors) == {"a": "aclose raised OSError: x"}
    report.check()


def test_report_undelivered_is_an_immutable_copy() -> None:
    lost = [_lost(0, "a")]
    report = DeliveryReport(
        received=1,
        routed={"a": 1},
        delivered={"a": 0},
        undelivered=lost,
        discarded={},
        timed_out=True,
        drain_seconds=0.0,
        dispatched=1,
    )
    lost.append(_lost(0, "a"))
    assert len(report.undelivered) == 1
    assert isinstance(report.undelivered, tuple)
    report.check()


def test_report_is_frozen() -> None:
    report = _consistent()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        report.received = 0  # type: ignore[misc]
    assert report.received == 5


def test_undelivered_is_frozen_and_keeps_the_error_out_of_equality() -> None:
    u1 = Undelivered(Record(0, "r", "r"), "a", "sink", "sink raised OSError: x", OSError("x"))
    u2 = Undelivered(Record(0, "r", "r"), "a", "sink", "sink raised OSError: x", OSError("x"))
    assert u1 == u2
    assert isinstance(u1.error, OSError)
    assert Undelivered(Record(0, "r", "r"), "a", "sink", "x").error is None
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        u1.sink = "b"  # type: ignore[misc]


# -- Undelivered.kind ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("drain deadline", "deadline"),
        ("immediate stop", "immediate"),
        ("cancelled", "cancelled"),
        ("sink raised OSError: x", "sink_error"),
        ("sink unhealthy: OSError: x", "unhealthy"),
        ("pipeline failed: KeyboardInterrupt: ", "pipeline_failed"),
        ("no sink named 'x'", "no_sink"),
        ("not routed (replay does not route)", "not_routed"),
        ("something else", "sink_error"),
    ],
)
def test_an_undelivered_built_without_a_kind_gets_the_kind_of_its_reason(
    reason: str, kind: str
) -> None:
    assert _lost(0, "a", reason=reason).kind == kind


def test_the_kind_given_wins_over_the_reason_text() -> None:
    u = Undelivered(Record(0, 0, 0), "a", "sink", "drain deadline", kind="immediate")
    assert u.kind == "immediate"
