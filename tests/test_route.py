"""Routing: parse, Miss / Residue / errors, ``when`` per route, fan-out, infra groups.

Most tests drive ``Router.route`` directly on one batch; the last part runs whole
pipelines and checks where every record went. Validation of Route, Infra and Pipeline
arguments lives here too, since routes and sinks are what it is mostly about.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
import trio
import trio.testing
from helpers import ids

from trio_sink import (
    Batch,
    ConfigError,
    Infra,
    Miss,
    Pipeline,
    PipelineHandle,
    Record,
    Residue,
    Route,
    TrioSinkError,
    Undecodable,
)
from trio_sink._dest import Dest
from trio_sink._fanout import Fanout
from trio_sink._feeds import SinkBatch
from trio_sink._ledger import Ledger, Ticket
from trio_sink._report import pipeline_failed
from trio_sink._route import FAILED, INFRA_GROUPS, Router, apply_each
from trio_sink.sinks import CollectSink, NullSink
from trio_sink.testing import HangingSink

When = Callable[[Any], Any] | None


class Harness:
    """A Router with a Ledger and one Dest (with a real channel) per named sink."""

    def __init__(
        self,
        routes: Sequence[tuple[When, Sequence[str]]],
        *,
        parse: Callable[[Any], Any] | None = None,
        infra: Mapping[str, str] | None = None,
    ) -> None:
        infra = dict(infra or {})
        names = [n for _, ns in routes for n in ns] + list(infra.values())
        self.settled: list[Ticket] = []
        self.ledger = Ledger(names, on_settled=self.settled.append)
        self.dests: dict[str, Dest] = {}
        self.receivers: dict[str, trio.MemoryReceiveChannel[SinkBatch]] = {}
        for name in names:
            send, recv = trio.open_memory_channel[SinkBatch](math.inf)
            self.dests[name] = Dest(self.ledger.accounts[name], send)
            self.receivers[name] = recv
        self.router = Router(
            parse,
            [(when, [self.dests[n] for n in ns]) for when, ns in routes],
            {g: self.dests[infra[g]] if g in infra else None for g in INFRA_GROUPS},
            self.ledger,
        )
        self.out: list[tuple[Dest, SinkBatch]] = []

    def route(self, first_id: int, raws: list[Any]) -> dict[str, list[Record]]:
        """Route one batch, send each sub-batch down its channel, and read them all back."""
        self.out = self.router.route(first_id, raws)
        for dest, msg in self.out:
            dest.send.send_nowait(msg)
        got: dict[str, list[Record]] = {}
        for name, recv in self.receivers.items():
            while True:
                try:
                    batch, _ticket = recv.receive_nowait()
                except trio.WouldBlock:
                    break
                got.setdefault(name, []).extend(batch)
        return got

    def routed(self) -> dict[str, int]:
        return {name: a.routed for name, a in self.ledger.accounts.items()}


def is_even(p: Any) -> bool:
    return bool(p % 2 == 0)


# -- ids, raw and payload ---------------------------------------------------------------


def test_ids_are_assigned_from_first_id_in_order() -> None:
    h = Harness([(None, ["all"])])
    got = h.route(100, ["a", "b", "c"])
    assert got["all"] == [Record(100, "a", "a"), Record(101, "b", "b"), Record(102, "c", "c")]
    assert h.ledger.dispatched == 3


def test_ids_continue_across_batches() -> None:
    h = Harness([(None, ["all"])])
    first = h.route(0, ["a", "b"])
    second = h.route(2, ["c"])
    assert ids(first["all"]) == [0, 1]
    assert ids(second["all"]) == [2]
    assert h.ledger.dispatched == 3
    assert h.routed() == {"all": 3}


def test_payload_is_the_parse_result_and_raw_is_kept() -> None:
    h = Harness([(None, ["all"])], parse=lambda raw: {"upper": raw.upper()})
    got = h.route(0, ["ab", "cd"])
    assert got["all"] == [
        Record(0, "ab", {"upper": "AB"}),
        Record(1, "cd", {"upper": "CD"}),
    ]
    assert all(r.rest is None and r.error is None for r in got["all"])


def test_parse_is_called_once_per_item() -> None:
    calls: list[Any] = []

    def parse(raw: Any) -> Any:
        calls.append(raw)
        if raw == 1:
            raise Miss("one")
        if raw == 3:
            raise ValueError("three")
        return raw

    h = Harness([(None, ["all"])], parse=parse, infra={"miss": "m", "error": "e"})
    h.route(0, [0, 1, 2, 3, 4])
    assert calls == [0, 1, 2, 3, 4]


def test_payload_is_the_raw_item_without_parse() -> None:
    raw = {"k": [1, 2]}
    h = Harness([(None, ["all"])])
    (record,) = h.route(0, [raw])["all"]
    assert record.payload is raw
    assert record.raw is raw


# -- Miss, Residue, parse errors --------------------------------------------------------


def _parse_kinds(raw: str) -> Any:
    kind, _, value = raw.partition(":")
    if kind == "miss":
        raise Miss(f"no rule for {value}")
    if kind == "part":
        return Residue({"v": value}, f"tail-{value}")
    if kind == "bad":
        raise ValueError(f"bad {value}")
    return {"v": value}


def test_miss_goes_to_the_miss_group_only() -> None:
    h = Harness(
        [(None, ["all"])], parse=_parse_kinds, infra={"miss": "m", "default": "d", "error": "e"}
    )
    got = h.route(0, ["ok:0", "miss:1", "ok:2", "miss:3"])
    assert ids(got["all"]) == [0, 2]
    assert got["m"] == [Record(1, "miss:1", "miss:1"), Record(3, "miss:3", "miss:3")]
    assert "d" not in got
    assert "e" not in got
    assert h.routed() == {"all": 2, "m": 2, "d": 0, "e": 0}


def test_miss_without_a_sink_is_counted_as_discarded() -> None:
    h = Harness([(None, ["all"])], parse=_parse_kinds)
    got = h.route(0, ["miss:0", "ok:1", "miss:2"])
    assert ids(got["all"]) == [1]
    assert h.ledger.discarded == {"miss": 2}
    assert h.ledger.dispatched == 3


def test_residue_routes_its_payload_and_sends_rest_to_the_residue_group() -> None:
    h = Harness([(None, ["all"])], parse=_parse_kinds, infra={"residue": "res"})
    got = h.route(5, ["ok:0", "part:1", "ok:2"])
    assert got["all"] == [
        Record(5, "ok:0", {"v": "0"}),
        Record(6, "part:1", {"v": "1"}),
        Record(7, "ok:2", {"v": "2"}),
    ]
    assert got["res"] == [Record(6, "part:1", {"v": "1"}, rest="tail-1")]
    assert h.routed() == {"all": 3, "res": 1}


def test_residue_payload_is_what_the_routes_see() -> None:
    seen: list[Any] = []

    def when(p: Any) -> bool:
        seen.append(p)
        return True

    h = Harness([(when, ["r"])], parse=lambda raw: Residue(raw * 2, "rest"))
    h.route(0, [1, 2])
    assert seen == [2, 4]


def test_residue_without_a_sink_is_discarded_but_its_payload_still_routed() -> None:
    h = Harness([(None, ["all"])], parse=_parse_kinds)
    got = h.route(0, ["part:0", "part:1"])
    assert ids(got["all"]) == [0, 1]
    assert all(r.rest is None for r in got["all"])
    assert h.ledger.discarded == {"residue": 2}


def test_parse_exception_goes_to_error_with_the_exception() -> None:
    boom = ValueError("boom")

    def parse(raw: Any) -> Any:
        if raw == "bad":
            raise boom
        return raw

    h = Harness([(None, ["all"])], parse=parse, infra={"error": "e", "default": "d"})
    got = h.route(0, ["ok", "bad", "ok2"])
    assert ids(got["all"]) == [0, 2]
    (err,) = got["e"]
    assert (err.id, err.raw, err.payload) == (1, "bad", "bad")
    assert err.error is boom
    assert "d" not in got


def test_parse_exception_without_a_sink_is_discarded() -> None:
    h = Harness([(None, ["all"])], parse=_parse_kinds)
    got = h.route(0, ["bad:0", "ok:1", "bad:2", "bad:3"])
    assert ids(got["all"]) == [1]
    assert h.ledger.discarded == {"error": 3}


def test_a_batch_that_fails_to_parse_entirely_routes_nothing() -> None:
    h = Harness([(None, ["all"])], parse=_parse_kinds, infra={"error": "e", "miss": "m"})
    got = h.route(0, ["bad:0", "miss:1", "bad:2"])
    assert "all" not in got
    assert ids(got["e"]) == [0, 2]
    assert ids(got["m"]) == [1]
    assert h.routed() == {"all": 0, "e": 2, "m": 1}


def test_parse_raising_stopiteration_goes_to_error_and_loses_nothing() -> None:
    # Regression guard: a parse that raises StopIteration (a stray next() on an empty
    # iterator) must not end the batch early; the records after it must still be routed.
    def parse(raw: Any) -> Any:
        if raw == 2:
            raise StopIteration("stray next()")
        return raw

    h = Harness([(None, ["all"])], parse=parse, infra={"error": "e"})
    got = h.route(0, [0, 1, 2, 3, 4, 5])
    assert ids(got.get("all", [])) == [0, 1, 3, 4, 5]
    assert ids(got.get("e", [])) == [2]
    # map() swallows the StopIteration itself, so it is reported the way PEP 479 does.
    error = got["e"][0].error
    assert isinstance(error, RuntimeError)
    assert "StopIteration" in str(error)


# -- when --------------------------------------------------------------------------------


def test_when_selects_per_route() -> None:
    h = Harness([(is_even, ["even"]), (lambda p: p > 2, ["big"])])
    got = h.route(0, [0, 1, 2, 3, 4])
    assert ids(got["even"]) == [0, 2, 4]
    assert ids(got["big"]) == [3, 4]
    assert h.routed() == {"even": 3, "big": 2}


def test_when_uses_the_truth_value_of_any_result() -> None:
    h = Harness([(lambda p: p, ["truthy"])], infra={"default": "d"})
    got = h.route(0, [0, 1, "", "x", [], [0], None])
    assert ids(got["truthy"]) == [1, 3, 5]
    assert ids(got["d"]) == [0, 2, 4, 6]


def test_when_is_called_once_per_record_per_route() -> None:
    calls: list[Any] = []

    def when(p: Any) -> bool:
        calls.append(p)
        if p == 1:
            raise RuntimeError("one")
        return True

    h = Harness([(when, ["r1"]), (when, ["r2"])], infra={"error": "e"})
    h.route(0, [0, 1, 2])
    assert calls == [0, 1, 2, 0, 1, 2]


def test_when_raising_in_several_routes_goes_to_error_once() -> None:
    def picky(p: Any) -> bool:
        if p == 2:
            raise KeyError(p)
        return True

    def fussy(p: Any) -> bool:
        if p == 2:
            raise TypeError(p)
        return False

    h = Harness(
        [(picky, ["r1"]), (fussy, ["r2"]), (is_even, ["r3"])],
        infra={"error": "e", "default": "d"},
    )
    got = h.route(0, [0, 1, 2, 3])
    assert ids(got["r1"]) == [0, 1, 3]
    assert "r2" not in got
    assert ids(got["r3"]) == [0, 2]
    (err,) = got["e"]
    assert (err.id, err.raw, err.payload) == (2, 2, 2)
    assert isinstance(err.error, KeyError | TypeError)
    assert "d" not in got
    assert h.routed() == {"r1": 3, "r2": 0, "r3": 2, "e": 1, "d": 0}


def test_when_raising_on_the_only_route_sends_the_record_to_error_and_default() -> None:
    # CONTRACT.md: a record that no route accepts goes to default; one whose when
    # raised was accepted nowhere.
    def when(p: Any) -> bool:
        if p == 1:
            raise ValueError("one")
        return False

    h = Harness([(when, ["r"])], infra={"error": "e", "default": "d"})
    got = h.route(0, [0, 1, 2])
    assert "r" not in got
    assert ids(got["d"]) == [0, 1, 2]
    assert ids(got["e"]) == [1]
    assert isinstance(got["e"][0].error, ValueError)


def test_when_error_record_carries_the_parsed_payload() -> None:
    def when(p: Any) -> bool:
        raise LookupError("no")

    h = Harness([(when, ["r"])], parse=lambda raw: {"v": raw}, infra={"error": "e"})
    (err,) = h.route(3, ["x"])["e"]
    assert (err.id, err.raw, err.payload, err.rest) == (3, "x", {"v": "x"}, None)
    assert isinstance(err.error, LookupError)


def test_when_raising_without_an_error_sink_is_discarded_once() -> None:
    def boom(p: Any) -> bool:
        raise ValueError(p)

    h = Harness([(boom, ["r1"]), (boom, ["r2"])])
    got = h.route(0, [0, 1])
    assert got == {}
    assert h.ledger.discarded == {"error": 2, "default": 2}


class NoTruth:
    def __bool__(self) -> bool:
        raise ValueError("no truth value")


def test_when_result_without_a_truth_value_goes_to_error() -> None:
    def when(p: Any) -> Any:
        return NoTruth() if p == 1 else p >= 2

    h = Harness([(when, ["r"]), (None, ["all"])], infra={"error": "e"})
    got = h.route(0, [0, 1, 2, 3])
    assert ids(got["r"]) == [2, 3]
    assert ids(got["all"]) == [0, 1, 2, 3]
    (err,) = got["e"]
    assert err.id == 1
    assert isinstance(err.error, ValueError)


def test_when_result_without_a_truth_value_goes_to_error_and_default() -> None:
    def when(p: Any) -> Any:
        return NoTruth() if p == 0 else False

    h = Harness([(when, ["r"])], infra={"error": "e", "default": "d"})
    got = h.route(0, [0, 1])
    assert ids(got["d"]) == [0, 1]
    assert ids(got["e"]) == [0]


def test_when_raising_stopiteration_goes_to_error_and_loses_nothing() -> None:
    # Regression guard: StopIteration from a when must not cut the route's selection
    # short; the later records are still evaluated for that route.
    def when(p: Any) -> bool:
        if p == 2:
            raise StopIteration
        return bool(p % 2 == 0)

    h = Harness([(when, ["even"])], infra={"error": "e", "default": "d"})
    got = h.route(0, [0, 1, 2, 3, 4, 5])
    assert ids(got.get("even", [])) == [0, 4]
    assert ids(got.get("e", [])) == [2]
    assert ids(got.get("d", [])) == [1, 2, 3, 5]


class StopTruth:
    def __bool__(self) -> bool:
        raise StopIteration


def test_when_result_whose_truth_raises_stopiteration_goes_to_error() -> None:
    # Regression guard: the same, for a result whose __bool__ raises StopIteration.
    def when(p: Any) -> Any:
        return StopTruth() if p == 1 else True

    h = Harness([(when, ["r"])], infra={"error": "e", "default": "d"})
    got = h.route(0, [0, 1, 2, 3])
    assert ids(got.get("r", [])) == [0, 2, 3]
    assert ids(got.get("e", [])) == [1]
    assert ids(got.get("d", [])) == [1]


# -- default, fan-out, counts -----------------------------------------------------------


def test_default_gets_what_no_route_accepted() -> None:
    h = Harness([(is_even, ["even"]), (lambda p: p % 3 == 0, ["three"])], infra={"default": "d"})
    got = h.route(0, list(range(10)))
    assert ids(got["even"]) == [0, 2, 4, 6, 8]
    assert ids(got["three"]) == [0, 3, 6, 9]
    assert ids(got["d"]) == [1, 5, 7]
    assert h.routed() == {"even": 5, "three": 4, "d": 3}


def test_default_includes_records_whose_when_raised() -> None:
    def when(p: Any) -> bool:
        if p in (1, 3):
            raise ValueError(p)
        return bool(p == 0)

    h = Harness([(when, ["r"])], infra={"default": "d", "error": "e"})
    got = h.route(0, [0, 1, 2, 3, 4])
    assert ids(got["r"]) == [0]
    assert ids(got["d"]) == [1, 2, 3, 4]
    assert ids(got["e"]) == [1, 3]


def test_no_routes_sends_everything_to_default() -> None:
    h = Harness([], infra={"default": "d"})
    got = h.route(0, ["a", "b"])
    assert ids(got["d"]) == [0, 1]


def test_a_catch_all_route_leaves_nothing_for_default() -> None:
    h = Harness([(lambda p: False, ["never"]), (None, ["all"])], infra={"default": "d"})
    got = h.route(0, [0, 1, 2])
    assert ids(got["all"]) == [0, 1, 2]
    assert "never" not in got
    assert "d" not in got


def test_default_without_a_sink_is_counted_as_discarded() -> None:
    h = Harness([(is_even, ["even"])])
    got = h.route(0, [0, 1, 2, 3, 5])
    assert ids(got["even"]) == [0, 2]
    assert h.ledger.discarded == {"default": 3}
    assert h.ledger.dispatched == 5


def test_infra_groups_without_sinks_count_each_group() -> None:
    h = Harness([(lambda p: p["v"] == "0", ["r"])], parse=_parse_kinds)
    h.route(0, ["ok:0", "ok:1", "miss:2", "part:3", "bad:4", "bad:5"])
    # ok:1 and part:3 reach no route: default. part:3 also leaves its rest.
    assert h.ledger.discarded == {"default": 2, "miss": 1, "residue": 1, "error": 2}


def test_fan_out_of_one_route_to_two_sinks() -> None:
    h = Harness([(is_even, ["a", "b"])])
    got = h.route(0, [0, 1, 2])
    assert got["a"] == got["b"] == [Record(0, 0, 0), Record(2, 2, 2)]
    assert h.routed() == {"a": 2, "b": 2}
    assert len(h.out) == 2


def test_a_record_accepted_by_two_routes_goes_to_both() -> None:
    h = Harness([(is_even, ["even"]), (lambda p: p < 3, ["small"])], infra={"default": "d"})
    got = h.route(0, [0, 1, 2, 3])
    assert ids(got["even"]) == [0, 2]
    assert ids(got["small"]) == [0, 1, 2]
    assert ids(got["d"]) == [3]


def test_routed_counts_per_sink_add_up_over_batches() -> None:
    h = Harness([(is_even, ["even"]), (None, ["all1", "all2"])], parse=int, infra={"error": "e"})
    h.route(0, ["0", "1", "x"])
    h.route(3, ["3", "4"])
    assert h.routed() == {"even": 2, "all1": 4, "all2": 4, "e": 1}
    assert h.ledger.dispatched == 5


def test_sub_batches_are_read_only() -> None:
    h = Harness([(None, ["all"])])
    h.route(0, [1, 2])
    ((_dest, (batch, _ticket)),) = h.out
    assert isinstance(batch, Batch)
    assert not hasattr(batch, "__setitem__")
    for column in (batch.ids, batch.raws, batch.payloads, batch.records()):
        assert isinstance(column, (tuple, range))


def test_an_empty_batch_routes_nothing() -> None:
    h = Harness([(None, ["all"])], infra={"default": "d"})
    assert h.route(0, []) == {}
    assert h.out == []
    assert h.ledger.dispatched == 0


# -- tickets ------------------------------------------------------------------------------


def test_one_ticket_per_source_batch_settles_after_every_sub_batch() -> None:
    h = Harness([(is_even, ["a", "b"])], infra={"default": "d"})
    h.route(10, [10, 11, 12])
    tickets = {id(ticket) for _dest, (_batch, ticket) in h.out}
    assert len(tickets) == 1
    ticket = h.out[0][1][1]
    assert (ticket.first_id, ticket.count, ticket.pending) == (10, 3, 3)
    assert h.settled == []
    for _ in range(2):
        h.ledger.settle(ticket)
    assert h.settled == []
    h.ledger.settle(ticket)
    assert h.settled == [ticket]
    assert h.ledger.settled_batches == 1


def test_a_batch_sent_nowhere_settles_at_once() -> None:
    h = Harness([(is_even, ["even"])])
    h.route(0, [1, 3])
    assert h.out == []
    assert len(h.settled) == 1
    assert (h.settled[0].first_id, h.settled[0].count) == (0, 2)


# -- apply_each ----------------------------------------------------------------------------


def test_apply_each_calls_once_per_item_and_indexes_failures() -> None:
    calls: list[int] = []

    def fn(x: int) -> int:
        calls.append(x)
        if x % 3 == 0:
            raise ValueError(x)
        return x * 10

    out, failures = apply_each(fn, list(range(8)))
    assert calls == list(range(8))
    assert [k for k, _ in failures] == [0, 3, 6]
    assert [exc.args for _, exc in failures] == [(0,), (3,), (6,)]
    assert all(isinstance(exc, ValueError) for _, exc in failures)
    assert out[0] is FAILED
    assert out[3] is FAILED
    assert out[6] is FAILED
    assert [v for v in out if v is not FAILED] == [10, 20, 40, 50, 70]
    assert len(out) == 8


def test_apply_each_without_failures() -> None:
    assert apply_each(str, [1, 2]) == (["1", "2"], [])


def test_apply_each_on_nothing() -> None:
    assert apply_each(str, []) == ([], [])


def test_apply_each_when_every_call_fails() -> None:
    def fn(x: int) -> int:
        raise RuntimeError(x)

    out, failures = apply_each(fn, [1, 2, 3])
    assert out == [FAILED, FAILED, FAILED]
    assert [k for k, _ in failures] == [0, 1, 2]


def test_apply_each_lets_base_exceptions_through() -> None:
    def fn(x: int) -> int:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        apply_each(fn, [1])


def test_apply_each_survives_stopiteration() -> None:
    # Regression guard: StopIteration from fn must count as a failure of that item,
    # not as the end of the items.
    calls: list[int] = []

    def fn(x: int) -> int:
        calls.append(x)
        if x == 1:
            raise StopIteration
        return x

    out, failures = apply_each(fn, [0, 1, 2, 3])
    assert calls == [0, 1, 2, 3]
    assert len(out) == 4
    assert [k for k, _ in failures] == [1]
    assert [out[0], out[2], out[3]] == [0, 2, 3]


# -- Route / Infra validation -----------------------------------------------------------


def test_config_error_is_a_value_error_and_a_trio_sink_error() -> None:
    assert issubclass(ConfigError, ValueError)
    assert issubclass(ConfigError, TrioSinkError)


def test_route_accepts_one_sink_or_a_sequence() -> None:
    sink = NullSink("a")
    assert Route("r", sink).sinks == (sink,)
    other = NullSink("b")
    assert Route("r", [sink, other]).sinks == (sink, other)

    async def plain(batch: Sequence[Record]) -> None:
        pass

    assert Route("r", plain).sinks == (plain,)
    assert Route("r", sink).when is None


@pytest.mark.parametrize("name", ["", None, 3, b"bytes"])
def test_route_name_must_be_a_non_empty_str(name: Any) -> None:
    with pytest.raises(ConfigError, match="Route name"):
        Route(name, NullSink())


@pytest.mark.parametrize("sinks", [[], ()])
def test_route_sinks_must_not_be_empty(sinks: Any) -> None:
    with pytest.raises(ConfigError, match="'r': sinks must not be empty"):
        Route("r", sinks)


@pytest.mark.parametrize("sinks", ["null", b"null", 42, {NullSink()}])
def test_route_sinks_must_be_a_sink_or_a_sequence(sinks: Any) -> None:
    with pytest.raises(ConfigError, match="sinks"):
        Route("r", sinks)


def test_route_when_must_not_be_async() -> None:
    async def when(p: Any) -> bool:
        return True

    with pytest.raises(ConfigError, match="'r': when must be a sync callable"):
        Route("r", NullSink(), when=when)  # type: ignore[arg-type]


@pytest.mark.parametrize("when", [True, "p > 1", 3, [is_even]])
def test_route_when_must_be_callable(when: Any) -> None:
    with pytest.raises(ConfigError, match="'r': when must be a sync callable"):
        Route("r", NullSink(), when=when)


def test_route_when_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        Route("r", NullSink(), is_even)  # type: ignore[call-arg]


def test_infra_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        Infra(NullSink())  # type: ignore[call-arg]


# -- Pipeline validation -----------------------------------------------------------------


def test_duplicate_route_names() -> None:
    with pytest.raises(ConfigError, match="route names must be unique"):
        Pipeline([], routes=[Route("r", NullSink("a")), Route("r", NullSink("b"))])


def test_duplicate_sink_names_across_routes() -> None:
    with pytest.raises(ConfigError, match="sink names must be unique: 'x'"):
        Pipeline([], routes=[Route("a", NullSink("x")), Route("b", NullSink("x"))])


def test_duplicate_sink_names_within_a_route() -> None:
    with pytest.raises(ConfigError, match="sink names must be unique: 'x'"):
        Pipeline([], routes=[Route("a", [NullSink("x"), CollectSink("x")])])


def test_duplicate_sink_names_between_a_route_and_infra() -> None:
    with pytest.raises(ConfigError, match="sink names must be unique: 'x'"):
        Pipeline([], routes=[Route("a", NullSink("x"))], infra=Infra(error=CollectSink("x")))


def test_duplicate_sink_names_between_infra_groups() -> None:
    with pytest.raises(ConfigError, match="sink names must be unique: 'x'"):
        Pipeline([], infra=Infra(miss=NullSink("x"), error=NullSink("x")))


def test_same_sink_object_twice_in_one_route() -> None:
    sink = NullSink("x")
    with pytest.raises(ConfigError, match="same sink object 'x'"):
        Pipeline([], routes=[Route("a", [sink, sink])])


def test_same_sink_object_in_two_routes() -> None:
    sink = NullSink("x")
    with pytest.raises(ConfigError, match="same sink object 'x'"):
        Pipeline([], routes=[Route("a", sink), Route("b", sink)])


def test_same_sink_object_in_a_route_and_infra() -> None:
    sink = CollectSink("x")
    with pytest.raises(ConfigError, match="same sink object 'x'"):
        Pipeline([], routes=[Route("a", sink)], infra=Infra(default=sink))


def test_same_sink_object_in_two_infra_groups() -> None:
    sink = CollectSink("x")
    with pytest.raises(ConfigError, match="same sink object 'x'"):
        Pipeline([], infra=Infra(miss=sink, error=sink))


def test_same_plain_function_sink_twice() -> None:
    async def out(batch: Sequence[Record]) -> None:
        pass

    with pytest.raises(ConfigError, match="same sink object 'out'"):
        Pipeline([], routes=[Route("a", out), Route("b", out)])


def test_distinct_sinks_are_accepted_and_listed_in_order() -> None:
    p = Pipeline(
        [],
        routes=[Route("a", [NullSink("x"), NullSink("y")]), Route("b", NullSink("z"))],
        infra=Infra(default=NullSink("d"), error=NullSink("e")),
    )
    assert p.sink_names == ("x", "y", "z", "d", "e")


@pytest.mark.parametrize("sink", [object(), "name", 3, lambda batch: None])
def test_something_that_is_not_a_sink(sink: Any) -> None:
    with pytest.raises(ConfigError, match="sink"):
        Pipeline([], routes=[Route("a", [sink])])


def test_a_sink_with_an_empty_name() -> None:
    with pytest.raises(ConfigError, match="name must be a non-empty str"):
        Pipeline([], routes=[Route("a", NullSink(""))])


BAD_INTS = [-1, True, False, math.nan, 1.5, 8.0, "8", None]


@pytest.mark.parametrize("value", BAD_INTS)
def test_bad_capacity(value: Any) -> None:
    with pytest.raises(ConfigError, match="capacity must be an int >= 0"):
        Pipeline([], capacity=value)


@pytest.mark.parametrize("value", [*BAD_INTS, 0])
def test_bad_batch_size(value: Any) -> None:
    with pytest.raises(ConfigError, match="batch_size must be an int >= 1"):
        Pipeline([], batch_size=value)


BAD_SECONDS = [-0.001, -1, True, False, math.nan, math.inf, -math.inf, "0.3", [1.0]]


@pytest.mark.parametrize("value", [*BAD_SECONDS, None])
def test_bad_batch_timeout(value: Any) -> None:
    with pytest.raises(ConfigError, match="batch_timeout must be a finite number of seconds"):
        Pipeline([], batch_timeout=value)


@pytest.mark.parametrize("value", BAD_SECONDS)
def test_bad_drain_timeout(value: Any) -> None:
    with pytest.raises(ConfigError, match="drain_timeout must be a finite number of seconds"):
        Pipeline([], drain_timeout=value)


def test_boundary_values_are_accepted() -> None:
    routes = [Route("r", CollectSink())]
    Pipeline([], routes=routes, capacity=0, batch_size=1, batch_timeout=0, drain_timeout=0)
    Pipeline([], routes=[Route("r", CollectSink())], batch_timeout=0.0, drain_timeout=None)


@pytest.mark.parametrize("source", ["abc", b"abc", ""])
def test_a_str_source_is_rejected(source: Any) -> None:
    with pytest.raises(ConfigError, match="source must be an iterable"):
        Pipeline(source)


def _gen() -> Iterator[int]:
    yield 1


async def _agen() -> AsyncIterator[int]:
    yield 1


@pytest.mark.parametrize("source", [_gen, _agen])
def test_a_generator_function_passed_uncalled_is_rejected(source: Any) -> None:
    with pytest.raises(ConfigError, match=r"source .*generator function.*call it"):
        Pipeline(source)


@pytest.mark.parametrize("source", [3, None, object()])
def test_a_non_iterable_source_is_rejected(source: Any) -> None:
    with pytest.raises(ConfigError, match="source must be"):
        Pipeline(source)


def test_an_async_parse_is_rejected() -> None:
    async def parse(raw: Any) -> Any:
        return raw

    with pytest.raises(ConfigError, match="parse must be a sync callable"):
        Pipeline([], parse=parse)


@pytest.mark.parametrize("parse", ["int", 3, True])
def test_a_non_callable_parse_is_rejected(parse: Any) -> None:
    with pytest.raises(ConfigError, match="parse must be a sync callable"):
        Pipeline([], parse=parse)


def test_routes_must_be_a_sequence_of_route() -> None:
    route = Route("a", NullSink())
    with pytest.raises(ConfigError, match="routes must be a sequence"):
        Pipeline([], routes=route)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="routes must hold Route"):
        Pipeline([], routes=[route, "b"])  # type: ignore[list-item]


def test_infra_must_be_an_infra() -> None:
    with pytest.raises(ConfigError, match="infra must be an Infra"):
        Pipeline([], infra={"default": NullSink()})  # type: ignore[arg-type]


# -- end to end through Pipeline.run -------------------------------------------------------


def _parse_line(raw: str) -> Any:
    kind, _, value = raw.partition(":")
    if kind == "miss":
        raise Miss("no rule")
    if kind == "part":
        return Residue({"kind": kind, "v": value}, f"tail-{value}")
    if kind == "bad":
        raise ValueError(f"bad {value}")
    return {"kind": kind, "v": value}


LINES = ["a:0", "b:1", "miss:2", "part:3", "bad:4", "a:5", "c:6", "b:7"]


async def test_pipeline_routes_every_record_exactly(autojump_clock: trio.testing.MockClock) -> None:
    a1, a2, b = CollectSink("a1"), CollectSink("a2"), CollectSink("b")
    d, m, res, e = CollectSink("d"), CollectSink("m"), CollectSink("res"), CollectSink("e")
    pipeline = Pipeline(
        LINES,
        parse=_parse_line,
        routes=[
            Route("as", [a1, a2], when=lambda p: p["kind"] == "a"),
            Route("bs", b, when=lambda p: p["kind"] in ("b", "part")),
        ],
        infra=Infra(default=d, miss=m, residue=res, error=e),
        batch_size=3,
    )
    report = await pipeline.run()
    report.check()
    assert report.ok
    assert report.received == 8
    assert ids(a1.records) == ids(a2.records) == [0, 5]
    assert a1.records == [
        Record(0, "a:0", {"kind": "a", "v": "0"}),
        Record(5, "a:5", {"kind": "a", "v": "5"}),
    ]
    assert b.records[1] == Record(3, "part:3", {"kind": "part", "v": "3"})
    assert ids(b.records) == [1, 3, 7]
    assert ids(d.records) == [6]
    assert m.records == [Record(2, "miss:2", "miss:2")]
    assert res.records == [Record(3, "part:3", {"kind": "part", "v": "3"}, rest="tail-3")]
    (err,) = e.records
    assert (err.id, err.raw) == (4, "bad:4")
    assert isinstance(err.error, ValueError)
    expected = {"a1": 2, "a2": 2, "b": 3, "d": 1, "m": 1, "res": 1, "e": 1}
    assert dict(report.routed) == expected
    assert dict(report.delivered) == expected
    assert dict(report.discarded) == {}


async def test_pipeline_counts_infra_groups_without_sinks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    kept = CollectSink("kept")
    report = await Pipeline(
        LINES,
        parse=_parse_line,
        routes=[Route("as", kept, when=lambda p: p["kind"] == "a")],
        batch_size=2,
    ).run()
    report.check()
    assert ids(kept.records) == [0, 5]
    # b:1, part:3, c:6, b:7 reach no route.
    assert dict(report.discarded) == {"default": 4, "miss": 1, "residue": 1, "error": 1}
    assert dict(report.delivered) == {"kept": 2}


async def test_pipeline_when_raising_in_two_routes_reports_one_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def fails_on_3(p: int) -> bool:
        if p == 3:
            raise ZeroDivisionError(p)
        return True

    r1, r2, r3, e = CollectSink("r1"), CollectSink("r2"), CollectSink("r3"), CollectSink("e")
    report = await Pipeline(
        range(6),
        routes=[
            Route("r1", r1, when=fails_on_3),
            Route("r2", r2, when=fails_on_3),
            Route("r3", r3),
        ],
        infra=Infra(error=e),
        batch_size=4,
    ).run()
    report.check()
    assert ids(r1.records) == ids(r2.records) == [0, 1, 2, 4, 5]
    assert ids(r3.records) == [0, 1, 2, 3, 4, 5]
    assert ids(e.records) == [3]
    assert isinstance(e.records[0].error, ZeroDivisionError)


async def test_pipeline_ids_follow_an_async_source_across_batches(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def source() -> AsyncIterator[str]:
        for i in range(7):
            yield f"item{i}"
            await trio.sleep(0.1)

    out = CollectSink("out")
    report = await Pipeline(source(), routes=[Route("all", out)], batch_size=3).run()
    report.check()
    assert [(r.id, r.raw) for r in out.records] == [(i, f"item{i}") for i in range(7)]
    assert report.received == 7


@pytest.mark.parametrize("routes", [(), []])
def test_a_pipeline_with_no_routes_is_refused(routes: Sequence[Route]) -> None:
    # It would discard every record to the default group, silently.
    with pytest.raises(ConfigError, match="routes must hold at least one Route"):
        Pipeline(range(5), routes=routes)
    with pytest.raises(ConfigError, match="routes must hold at least one Route"):
        Pipeline(range(5), infra=Infra(default=CollectSink()))


async def test_pipeline_loses_no_record_when_parse_raises_stopiteration(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Regression guard: every record the source produced ends up delivered, discarded or
    # reported; a parse raising StopIteration must not make the rest of its batch vanish.
    def parse(raw: int) -> int:
        if raw == 2:
            raise StopIteration
        return raw

    out, e = CollectSink("out"), CollectSink("e")
    report = await Pipeline(
        range(6), parse=parse, routes=[Route("all", out)], infra=Infra(error=e)
    ).run()
    report.check()
    assert ids(out.records) == [0, 1, 3, 4, 5]
    assert ids(e.records) == [2]


class _AsyncCallable:
    async def __call__(self, value: Any) -> bool:
        return True


def test_async_callable_object_is_rejected_as_when() -> None:
    with pytest.raises(ConfigError, match="when must be a sync callable"):
        Route("r", NullSink("n"), when=_AsyncCallable())  # type: ignore[arg-type]


def test_async_callable_object_is_rejected_as_parse() -> None:
    with pytest.raises(ConfigError, match="parse must be a sync callable"):
        Pipeline([1], parse=_AsyncCallable(), routes=[Route("r", NullSink("n"))])


# -- tickets, sends and abandons, against the ledger ------------------------------------------


def test_a_routed_batch_is_an_open_ticket_until_its_last_sub_batch_settles() -> None:
    # The strict ledger's end-of-run check (source batches never settled) and the error
    # group's memory of ids both rely on it.
    h = Harness([(None, ["a", "b"])])
    h.route(10, ["x", "y"])
    ((_, (_, ticket)), _) = h.out
    assert h.ledger.open_tickets == {10: ticket}
    h.ledger.settle(ticket)
    assert h.ledger.open_tickets == {10: ticket}
    h.ledger.settle(ticket)
    assert h.ledger.open_tickets == {}


class _Abort(BaseException):
    """A BaseException from user code, like KeyboardInterrupt or SystemExit."""


async def test_a_base_exception_from_parse_leaves_its_batch_reported_unrouted() -> None:
    # Only an Exception from parse makes an error record; a BaseException ends the run.
    # The fan-out then reports the batch it was routing with sink None, once.
    def parse(raw: int) -> int:
        if raw == 4:
            raise _Abort
        return raw

    h = Harness([(None, ["a"])], parse=parse)
    fanout = Fanout(h.router, list(h.dests.values()))
    h.ledger.receive(6)
    await fanout.ship(0, [0, 1, 2])
    with pytest.raises(_Abort):
        await fanout.ship(3, [3, 4, 5])
    fanout.abandon(pipeline_failed(_Abort()))
    fanout.abandon(pipeline_failed(_Abort()))  # once: nothing more the second time
    assert [(u.record.id, u.record.raw, u.sink, u.stage) for u in h.ledger.undelivered] == [
        (i, i, None, "route") for i in (3, 4, 5)
    ]
    assert (h.ledger.unrouted, h.ledger.dispatched) == (3, 3)
    assert h.ledger.accounts["a"].routed == 3


async def test_a_send_waiting_for_room_at_the_drain_deadline_is_reported_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Capacity 0: the sink's task holds batch [0] (a write that hangs) and the source
    # waits to hand it [1]. At the deadline the send is cancelled: [1] waits again and
    # is reported by the route stage, [0] by the sink's task; each once.
    pipeline = Pipeline(
        range(10),
        routes=[Route("r", HangingSink("h"))],
        batch_size=1,
        capacity=0,
        drain_timeout=1.0,
    )
    async with trio.open_nursery() as nursery:
        handle: PipelineHandle = await nursery.start(pipeline.run)
        await trio.testing.wait_all_tasks_blocked()
        handle.stop()
    report = await handle.wait()
    report.check()
    assert report.received == 2
    assert sorted((u.record.id, u.stage, u.reason) for u in report.undelivered) == [
        (0, "sink", "drain deadline"),
        (1, "route", "drain deadline"),
    ]


@pytest.mark.parametrize("inline", [True, False])
async def test_a_sub_batch_sent_before_another_send_is_cancelled_is_reported_once(
    inline: bool, autojump_clock: trio.testing.MockClock
) -> None:
    # One batch, two sinks: "free" takes its sub-batch at once (written by the routing
    # task, or sent to its own task's channel); "h" holds [0] in a write that hangs, so
    # the send of [1] to it waits (capacity 0). At the deadline only what was not sent
    # is reported by the route stage: [1] for h. Free's copy of [1] was sent, and is
    # delivered.
    free = CollectSink("free")
    free.never_blocks = inline
    pipeline = Pipeline(
        range(10),
        routes=[Route("r", [free, HangingSink("h")])],
        batch_size=1,
        capacity=0,
        drain_timeout=1.0,
    )
    async with trio.open_nursery() as nursery:
        handle: PipelineHandle = await nursery.start(pipeline.run)
        await trio.testing.wait_all_tasks_blocked()
        handle.stop()
    report = await handle.wait()
    report.check()
    assert ids(free.records) == [0, 1]
    assert sorted((u.record.id, u.sink, u.stage) for u in report.undelivered) == [
        (0, "h", "sink"),
        (1, "h", "route"),
    ]


@pytest.mark.parametrize("parse", [None, str.upper])
async def test_an_undecodable_item_goes_to_miss_unparsed_with_its_bytes(
    parse: Callable[[Any], Any] | None,
) -> None:
    kept, miss = CollectSink("kept"), CollectSink("miss")
    bad = Undecodable(b"caf\xe9", reason="not valid utf-8 at byte 3")
    report = await Pipeline(
        ["a", bad, "b"], parse=parse, routes=[Route("all", kept)], infra=Infra(miss=miss)
    ).run()
    assert report.ok
    assert [r.payload for r in kept.records] == (["A", "B"] if parse else ["a", "b"])
    assert [(r.id, r.raw) for r in miss.records] == [(1, bad)]
    assert miss.records[0].raw.data == b"caf\xe9"


async def test_when_batch_decides_for_a_whole_batch_in_one_call() -> None:
    calls: list[int] = []

    def big(payloads: Sequence[int]) -> list[bool]:
        calls.append(len(payloads))
        return [p >= 5 for p in payloads]

    kept = CollectSink("kept")
    report = await Pipeline(
        range(10), routes=[Route("big", kept, when_batch=big)], batch_size=10
    ).run()
    assert report.ok
    assert [r.payload for r in kept.records] == [5, 6, 7, 8, 9]
    assert calls == [10]


async def test_when_batch_that_fails_is_asked_again_for_each_payload() -> None:
    def picky(payloads: Sequence[Any]) -> list[bool]:
        if any(p == 3 for p in payloads):
            raise ValueError("three")
        return [p % 2 == 0 for p in payloads]

    def short(payloads: Sequence[Any]) -> list[bool]:
        return [True] if len(payloads) == 1 else []  # the wrong count for a batch

    kept, shorts, errors = CollectSink("kept"), CollectSink("shorts"), CollectSink("errors")
    report = await Pipeline(
        range(6),
        routes=[Route("even", kept, when_batch=picky), Route("short", shorts, when_batch=short)],
        infra=Infra(error=errors),
        batch_size=6,
    ).run()
    assert report.ok
    assert [r.payload for r in kept.records] == [0, 2, 4]
    assert [r.payload for r in shorts.records] == [0, 1, 2, 3, 4, 5]
    assert [(r.id, type(r.error)) for r in errors.records] == [(3, ValueError)]


def test_a_route_takes_when_or_when_batch_not_both() -> None:
    with pytest.raises(ConfigError, match="not both"):
        Route("r", NullSink("n"), when=bool, when_batch=list)
    with pytest.raises(ConfigError, match="when_batch"):
        Route("r", NullSink("n"), when_batch=42)  # type: ignore[arg-type]
