"""The fakes of trio_sink.testing, alone and in pipelines, in virtual time."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from helpers import ids, recs

from trio_sink import (
    DeliveryReport,
    PermanentError,
    Pipeline,
    Record,
    Route,
    Sink,
    Source,
    SourceError,
)
from trio_sink.sinks import CollectSink, SlowSink
from trio_sink.testing import (
    Fail,
    FailingProbe,
    FlakySink,
    HangingSink,
    Pause,
    RecordingSink,
    ScriptedSource,
    WriteCall,
    check_sink,
    running,
)


async def pull_all(source: ScriptedSource) -> list[tuple[float, Any]]:
    """Every item of one iteration, with the time it arrived."""
    return [(trio.current_time(), item) async for item in source]


# -- Pause and Fail ----------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [-1.0, math.nan, math.inf, True, "1"])
def test_pause_rejects_bad_seconds(seconds: Any) -> None:
    with pytest.raises(ValueError, match="seconds must be a finite number"):
        Pause(seconds)


def test_fail_needs_an_exception_instance() -> None:
    with pytest.raises(TypeError, match="error must be an exception instance"):
        Fail(ValueError)  # type: ignore[arg-type]


def test_steps_are_frozen_values() -> None:
    assert Pause(1.5) == Pause(1.5)
    error = OSError("x")
    assert Fail(error) == Fail(error)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Pause(1).seconds = 2  # type: ignore[misc]


# -- ScriptedSource ----------------------------------------------------------------------


def test_scripted_source_is_a_source() -> None:
    source = ScriptedSource()
    assert isinstance(source, Source)
    assert source.name == "scripted"
    assert ScriptedSource(name="s").name == "s"
    assert (source.opened, source.closed, source.pulled) == (0, 0, 0)


async def test_scripted_source_plays_items_and_pauses_in_virtual_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    source = ScriptedSource(["a", Pause(2), "b", "c", Pause(0.5), Pause(0.5), "d"])
    assert await pull_all(source) == [(0, "a"), (2, "b"), (2, "c"), (3, "d")]
    assert source.pulled == 4


async def test_scripted_source_fail_raises_its_error_after_the_items_before_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    error = OSError("feed gone")
    source = ScriptedSource([1, 2, Fail(error), 3])
    got: list[Any] = []

    async def pull() -> None:
        async for item in source:
            got.append(item)

    with pytest.raises(OSError, match="feed gone") as info:
        await pull()
    assert info.value is error
    assert got == [1, 2]
    assert source.pulled == 2


async def test_scripted_source_endless_follows_the_script_with_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    source = ScriptedSource(["s"], endless=lambda i: i * 10, interval=0.5)
    got: list[tuple[float, Any]] = []
    async with contextlib.aclosing(aiter(source)) as items:
        async for item in items:
            got.append((trio.current_time(), item))
            if len(got) == 4:
                break
    assert got == [(0, "s"), (0.5, 0), (1.0, 10), (1.5, 20)]


async def test_scripted_source_plays_from_the_start_on_each_iteration(
    autojump_clock: trio.testing.MockClock,
) -> None:
    source = ScriptedSource(iter([1, Pause(1), 2]))  # a one-shot iterable is copied
    first = await pull_all(source)
    second = await pull_all(source)
    assert [item for _, item in first] == [item for _, item in second] == [1, 2]
    assert source.pulled == 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"interval": -1}, "interval must be a finite number"),
        ({"interval": math.nan}, "interval must be a finite number"),
        ({"endless": 5}, "endless must be a callable"),
        ({"name": ""}, "name must be a non-empty str"),
    ],
)
def test_scripted_source_validates_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ScriptedSource((), **kwargs)


async def test_scripted_source_in_a_pipeline_is_opened_and_closed_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    source = ScriptedSource(["a", "b", Pause(1), "c"])
    sink = CollectSink()
    report = await Pipeline(source, routes=[Route("all", sink)]).run()
    report.check()
    assert [r.raw for r in sink.records] == ["a", "b", "c"]
    assert (source.opened, source.closed, source.pulled) == (1, 1, 3)


async def test_scripted_source_fail_ends_a_pipeline_with_source_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    error = ValueError("bad feed")
    source = ScriptedSource(["a", Pause(1), "b", Fail(error), "never"])
    sink = CollectSink()
    with pytest.raises(SourceError) as info:
        await Pipeline(source, routes=[Route("all", sink)]).run()
    assert info.value.__cause__ is error
    info.value.report.check()
    assert info.value.report.received == 2
    assert [r.raw for r in sink.records] == ["a", "b"]
    assert source.closed == 1


async def test_endless_scripted_source_runs_until_the_pipeline_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    source = ScriptedSource(endless=lambda i: {"n": i}, interval=1.0)
    sink = CollectSink()
    async with running(Pipeline(source, routes=[Route("all", sink)])) as handle:
        await trio.sleep(10.5)
        handle.stop()
        report = await handle.wait()
    report.check()
    assert report.ok
    assert source.pulled == report.received == 10
    assert [r.raw for r in sink.records] == [{"n": i} for i in range(10)]
    assert (source.opened, source.closed) == (1, 1)


# -- RecordingSink -----------------------------------------------------------------------


async def test_recording_sink_alone_records_calls_with_times(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = RecordingSink()
    assert isinstance(sink, Sink)
    assert sink.name == "recording"
    batch = recs(0, 2)
    await sink.write(batch)
    await trio.sleep(1)
    await sink.write(recs(2, 1))
    await sink.flush()
    await trio.sleep(1)
    await sink.aclose()
    assert sink.calls == [
        WriteCall(0, 0, tuple(batch), "delivered"),
        WriteCall(1, 1, tuple(recs(2, 1)), "delivered"),
    ]
    assert ids(sink.records) == [0, 1, 2]
    assert (sink.flushes, sink.closes) == ([1], [2])


async def test_recording_sink_alone_delivers_nothing_when_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = RecordingSink("r")
    with trio.CancelScope() as scope:
        scope.cancel()
        await sink.write(recs(0, 2))
    assert scope.cancelled_caught
    assert sink.records == []
    assert [c.outcome for c in sink.calls] == ["cancelled"]
    assert isinstance(sink.calls[0].error, trio.Cancelled)


async def test_recording_sink_times_and_delegates_to_inner(
    autojump_clock: trio.testing.MockClock,
) -> None:
    inner = CollectSink("inner")
    sink = RecordingSink("outer", inner=SlowSink(inner, per_record=1.0))
    await sink.write(recs(0, 3))
    with trio.move_on_after(1.5):
        await sink.write(recs(3, 2))
    await sink.flush()
    await sink.aclose()
    assert sink.name == "outer"
    assert [(c.started, c.ended, c.outcome) for c in sink.calls] == [
        (0, 3, "delivered"),
        (3, 4.5, "cancelled"),
    ]
    assert ids(sink.records) == ids(inner.records) == [0, 1, 2]
    assert (inner.flushed, inner.closed) == (1, 1)
    assert (sink.flushes, sink.closes) == ([4.5], [4.5])


async def test_recording_sink_records_an_inner_failure_as_raised() -> None:
    inner = FlakySink(fail_on={0})
    sink = RecordingSink(inner=inner)
    with pytest.raises(OSError, match="flaky write"):
        await sink.write(recs(0, 1))
    await sink.write(recs(1, 1))
    assert [c.outcome for c in sink.calls] == ["raised", "delivered"]
    assert isinstance(sink.calls[0].error, OSError)
    assert sink.calls[1].error is None
    assert ids(sink.records) == [1]


def test_write_call_ids_are_the_batch_ids_in_order() -> None:
    call = WriteCall(0.0, 1.0, tuple(recs(3, 2)), "delivered")
    assert call.ids == [3, 4]


def test_recording_sink_validates_arguments() -> None:
    with pytest.raises(ValueError, match="name must be a non-empty str"):
        RecordingSink("")
    with pytest.raises(ValueError, match="inner must be a sink"):
        RecordingSink(inner=object())  # type: ignore[arg-type]


async def test_recording_sink_in_a_pipeline_sees_batches_then_flush_then_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    source = ScriptedSource([1, 2, 3, Pause(5), 4])
    sink = RecordingSink()
    report = await Pipeline(source, routes=[Route("all", sink)], batch_timeout=0.3).run()
    report.check()
    # The first batch waits out batch_timeout; the last ships when the source ends.
    assert [ids(c.batch) for c in sink.calls] == [[0, 1, 2], [3]]
    assert [c.started for c in sink.calls] == pytest.approx([0.3, 5.0])
    assert sink.flushes == sink.closes == [pytest.approx(5.0)]


# -- FlakySink ---------------------------------------------------------------------------


async def test_flaky_sink_fails_the_writes_it_is_told_to() -> None:
    sink = FlakySink(fail_on={0, 2})
    assert isinstance(sink, Sink)
    assert sink.name == "flaky"
    outcomes = []
    for k in range(4):
        try:
            await sink.write(recs(k, 1))
        except OSError as exc:
            outcomes.append(str(exc))
        else:
            outcomes.append("ok")
    assert outcomes == ["flaky write", "ok", "flaky write", "ok"]
    assert (sink.writes, sink.failures) == (4, 2)
    assert ids(sink.records) == [1, 3]
    assert isinstance(sink.inner, CollectSink)
    assert ids(sink.inner.records) == [1, 3]


async def test_flaky_sink_fail_on_a_rule_sees_the_number_and_the_batch() -> None:
    seen: list[tuple[int, list[int]]] = []

    def rule(k: int, batch: Sequence[Record]) -> bool:
        seen.append((k, ids(batch)))
        return len(batch) > 1

    sink = FlakySink(fail_on=rule, error=lambda: RuntimeError("too big"))
    await sink.write(recs(0, 1))
    with pytest.raises(RuntimeError, match="too big"):
        await sink.write(recs(1, 2))
    assert seen == [(0, [0]), (1, [1, 2])]
    assert ids(sink.records) == [0]


async def fail_pattern(sink: FlakySink, writes: int) -> list[bool]:
    pattern = []
    for k in range(writes):
        try:
            await sink.write(recs(k, 1))
        except OSError:
            pattern.append(True)
        else:
            pattern.append(False)
    return pattern


async def test_flaky_sink_randomness_is_reproducible_by_seed() -> None:
    first = await fail_pattern(FlakySink(probability=0.5, seed=7), 64)
    again = await fail_pattern(FlakySink(probability=0.5, seed=7), 64)
    other = await fail_pattern(FlakySink(probability=0.5, seed=8), 64)
    assert first == again
    assert first != other
    assert 10 < sum(first) < 54  # about half


async def test_flaky_sink_random_draws_do_not_depend_on_fail_on() -> None:
    plain = await fail_pattern(FlakySink(probability=0.3, seed=1), 32)
    forced = await fail_pattern(FlakySink(probability=0.3, seed=1, fail_on={0, 5}), 32)
    assert forced == [p or k in {0, 5} for k, p in enumerate(plain)]


async def test_flaky_sink_probability_bounds() -> None:
    assert await fail_pattern(FlakySink(probability=0.0), 20) == [False] * 20
    assert await fail_pattern(FlakySink(probability=1.0), 20) == [True] * 20


async def test_flaky_sink_fails_with_a_checkpoint_and_delivers_nothing_when_cancelled() -> None:
    sink = FlakySink()
    with trio.CancelScope() as scope:
        scope.cancel()
        await sink.write(recs(0, 1))  # CollectSink is no checkpoint: delivered
    assert ids(sink.records) == [0]
    failing = FlakySink(fail_on={0})
    with trio.CancelScope() as scope:
        scope.cancel()
        await failing.write(recs(0, 1))
    assert scope.cancelled_caught
    assert (failing.writes, failing.failures, failing.records) == (1, 0, [])


async def test_flaky_sink_wraps_an_inner_sink_by_its_name() -> None:
    inner = CollectSink("db")
    sink = FlakySink(inner, fail_on={1})
    assert sink.name == "db"
    assert FlakySink(inner, name="db").name == "db"
    assert FlakySink(name="named").name == "named"
    await sink.write(recs(0, 2))
    with pytest.raises(OSError, match="flaky write"):
        await sink.write(recs(2, 2))
    await sink.flush()
    await sink.aclose()
    assert ids(inner.records) == ids(sink.records) == [0, 1]
    assert (inner.flushed, inner.closed) == (1, 1)


async def outcomes_at(sink: FlakySink, times: Sequence[float]) -> list[str]:
    """Write one record at each time (on Trio's clock); what each write came to."""
    got = []
    for k, t in enumerate(times):
        await trio.sleep_until(t)
        try:
            await sink.write(recs(k, 1))
        except PermanentError:
            got.append("permanent")
        except OSError:
            got.append("failed")
        else:
            got.append("ok")
    return got


async def test_flaky_sink_fails_every_write_during_an_outage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = FlakySink(outages=[(2, 4), (6, math.inf)])
    assert sink.outages == ((2, 4), (6, math.inf))
    times = [0, 1.9, 2, 3.5, 4, 5.9, 6, 100]
    assert await outcomes_at(sink, times) == [
        "ok", "ok", "failed", "failed", "ok", "ok", "failed", "failed"
    ]  # fmt: skip
    assert (sink.writes, sink.failures, sink.permanent_failures) == (8, 4, 0)
    assert ids(sink.records) == [0, 1, 4, 5]
    assert [sink.in_outage(t) for t in (1, 2, 4, 7)] == [False, True, False, True]


async def test_flaky_sink_outages_combine_with_the_other_rules_and_keep_the_draws(
    autojump_clock: trio.testing.MockClock,
) -> None:
    times = [float(t) for t in range(12)]
    plain = await outcomes_at(FlakySink(probability=0.3, seed=4), times)
    both = await outcomes_at(
        FlakySink(probability=0.3, seed=4, fail_on={0}, outages=[(15, 20), (5, 8)]),
        [t + 12 for t in times],  # the clock goes on: (5, 8) is past, (15, 20) holds writes 3-7
    )
    expected = [
        "failed" if k == 0 or 15 <= 12 + k < 20 else outcome for k, outcome in enumerate(plain)
    ]
    assert both == expected
    assert "ok" in plain
    assert "failed" in plain


async def test_flaky_sink_has_no_probe_unless_asked() -> None:
    assert FlakySink().probe is None
    assert FlakySink(outages=[(0, 1)]).probe is None


async def test_flaky_sink_probe_fails_only_during_an_outage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = FlakySink(outages=[(1, 3)], has_probe=True, fail_on={0, 1}, probability=1.0)
    probe = sink.probe
    assert probe is not None
    results = []
    for t in (0, 1, 2.5, 3):
        await trio.sleep_until(t)
        try:
            await probe()
        except OSError as exc:
            results.append(str(exc))
        else:
            results.append("ok")
    assert results == ["ok", "flaky write", "flaky write", "ok"]
    assert (sink.probes, sink.probe_failures) == ([0, 1, 2.5, 3], 2)
    assert sink.writes == 0  # a probe is no write, and draws nothing


async def test_flaky_sink_probe_is_a_checkpoint_and_counts_nothing_when_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = FlakySink(outages=[(0, 1)], has_probe=True)
    assert sink.probe is not None
    with trio.CancelScope() as scope:
        scope.cancel()
        await sink.probe()
    assert scope.cancelled_caught
    assert (sink.probes, sink.probe_failures) == ([0], 0)


async def test_flaky_sink_permanent_writes_raise_permanent_error_with_the_cause() -> None:
    sink = FlakySink(permanent={1}, fail_on={1, 2}, error=lambda: OSError("refused"))
    await sink.write(recs(0, 1))
    with pytest.raises(PermanentError, match=r"^refused$") as info:
        await sink.write(recs(1, 1))
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(OSError, match="refused"):
        await sink.write(recs(2, 1))
    assert (sink.writes, sink.failures, sink.permanent_failures) == (3, 2, 1)
    assert ids(sink.records) == [0]


async def test_flaky_sink_permanent_rule_models_a_poison_record(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[int] = []

    def poison(k: int, batch: Sequence[Record]) -> bool:
        seen.append(k)
        return 7 in ids(batch)

    sink = FlakySink(permanent=poison, outages=[(5, 10)])
    outcomes = await outcomes_at(sink, [0, 1, 6])
    assert outcomes == ["ok", "ok", "failed"]
    # Write 3 is in the outage too, and carries the poison record: permanent wins.
    with pytest.raises(PermanentError):
        await sink.write(recs(6, 3))
    assert seen == [0, 1, 2, 3]
    assert sink.permanent_failures == 1
    assert sink.failures == 2


async def test_flaky_sink_with_its_new_options_still_conforms(
    autojump_clock: trio.testing.MockClock,
) -> None:
    await check_sink(
        lambda: FlakySink(outages=[(1000, 2000)], permanent={999}, has_probe=True),
        delivered=lambda s: s.records,
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"probability": 1.5}, "probability must be a number in"),
        ({"probability": -0.1}, "probability must be a number in"),
        ({"probability": math.nan}, "probability must be a number in"),
        ({"fail_on": [0, -1]}, "fail_on must be write numbers"),
        ({"fail_on": ["0"]}, "fail_on must be write numbers"),
        ({"seed": "x"}, "seed must be an int or None"),
        ({"error": OSError("x")}, "error must be a callable"),
        ({"name": ""}, "name must be a non-empty str or None"),
        ({"inner": CollectSink("a"), "name": "b"}, "name must be None or inner's name 'a'"),
        ({"inner": "sink"}, "inner must be a sink"),
        ({"outages": [(2, 1)]}, "outages must be .start, end. pairs"),
        ({"outages": [(1, 1)]}, "outages must be .start, end. pairs"),
        ({"outages": [(math.nan, 1)]}, "outages must be .start, end. pairs"),
        ({"outages": [(-math.inf, 1)]}, "outages must be .start, end. pairs"),
        ({"outages": [(0, 1, 2)]}, "outages must be .start, end. pairs"),
        ({"outages": [("0", 1)]}, "outages must be .start, end. pairs"),
        ({"outages": [(True, 2)]}, "outages must be .start, end. pairs"),
        ({"outages": 5}, "outages must be .start, end. pairs"),
        ({"permanent": [-1]}, "permanent must be write numbers"),
        ({"permanent": 3}, "permanent must be write numbers"),
        ({"has_probe": 1}, "has_probe must be a bool"),
    ],
)
def test_flaky_sink_validates_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FlakySink(**kwargs)


async def test_flaky_sink_in_a_pipeline_reports_each_failed_batch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = FlakySink(fail_on={1, 3})
    pipeline = Pipeline(range(10), routes=[Route("all", sink)], batch_size=2)
    report = await pipeline.run()
    report.check()
    assert report.delivered["flaky"] == 6
    assert sorted(u.record.id for u in report.undelivered) == [2, 3, 6, 7]
    assert {u.reason for u in report.undelivered} == {"sink raised OSError: flaky write"}
    assert ids(sink.records) == [0, 1, 4, 5, 8, 9]
    assert (sink.writes, sink.failures) == (5, 2)


async def test_flaky_sink_seeded_run_is_reproducible(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def run(seed: int) -> DeliveryReport:
        sink = FlakySink(probability=0.4, seed=seed)
        report = await Pipeline(range(40), routes=[Route("all", sink)], batch_size=3).run()
        report.check()
        return report

    first, again = await run(3), await run(3)
    assert [u.record.id for u in first.undelivered] == [u.record.id for u in again.undelivered]
    assert first.undelivered  # with p=0.4 over 14 batches, seed 3 fails some


# -- FailingProbe ------------------------------------------------------------------------


async def try_write(sink: FailingProbe, batch: Sequence[Record]) -> str:
    try:
        await sink.write(batch)
    except OSError as exc:
        return str(exc)
    return "ok"


async def try_probe(sink: FailingProbe) -> str:
    try:
        await sink.probe()
    except OSError as exc:
        return str(exc)
    return "ok"


async def test_failing_probe_is_down_until_a_probe_succeeds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = FailingProbe(fail_probes=2)
    assert isinstance(sink, Sink)
    assert (sink.name, sink.down) == ("failing_probe", True)
    assert await try_write(sink, recs(0, 1)) == "sink down"
    results = []
    for _ in range(3):
        await trio.sleep(5)
        results.append(await try_probe(sink))
    assert results == ["sink down", "sink down", "ok"]
    assert (sink.probes, sink.probe_failures, sink.recovered) == ([5, 10, 15], 2, [15])
    assert sink.down is False
    assert await try_write(sink, recs(1, 2)) == "ok"
    assert (sink.writes, sink.failures, ids(sink.records)) == (2, 1, [1, 2])
    assert isinstance(sink.inner, CollectSink)
    assert ids(sink.inner.records) == [1, 2]


async def test_failing_probe_goes_down_again_and_probe_numbers_go_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = FailingProbe(down=False, fail_probes={1, 2})
    assert await try_write(sink, recs(0, 1)) == "ok"
    assert await try_probe(sink) == "ok"  # up already: nothing recovers
    assert sink.recovered == []
    sink.go_down()
    assert await try_write(sink, recs(1, 1)) == "sink down"
    assert [await try_probe(sink) for _ in range(3)] == ["sink down", "sink down", "ok"]
    assert sink.recovered == [0]
    assert await try_write(sink, recs(2, 1)) == "ok"
    assert ids(sink.records) == [0, 2]


async def test_failing_probe_by_rule_with_inner_and_error() -> None:
    inner = CollectSink("db")
    sink = FailingProbe(inner, fail_probes=lambda k: k % 2 == 0, error=lambda: OSError("no"))
    assert sink.name == "db"
    assert [await try_probe(sink) for _ in range(4)] == ["no", "ok", "no", "ok"]
    assert len(sink.recovered) == 1
    assert await try_write(sink, recs(0, 1)) == "ok"
    await sink.flush()
    await sink.aclose()
    assert (ids(inner.records), inner.flushed, inner.closed) == ([0], 1, 1)
    assert FailingProbe(fail_probes=0).name == "failing_probe"
    assert await try_probe(FailingProbe(fail_probes=0)) == "ok"


async def test_failing_probe_cancelled_probe_changes_nothing() -> None:
    sink = FailingProbe(fail_probes=0)
    with trio.CancelScope() as scope:
        scope.cancel()
        await sink.probe()
    assert scope.cancelled_caught
    assert (sink.down, len(sink.probes), sink.probe_failures) == (True, 1, 0)
    with trio.CancelScope() as scope:
        scope.cancel()
        await sink.write(recs(0, 1))
    assert scope.cancelled_caught
    assert (sink.writes, sink.failures) == (1, 0)


async def test_failing_probe_conforms_while_up(autojump_clock: trio.testing.MockClock) -> None:
    await check_sink(lambda: FailingProbe(down=False), delivered=lambda s: s.records)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fail_probes": -1}, "fail_probes must be an int >= 0, probe numbers"),
        ({"fail_probes": [0, -2]}, "fail_probes must be an int >= 0, probe numbers"),
        ({"fail_probes": True}, "fail_probes must be an int >= 0, probe numbers"),
        ({"fail_probes": 1.5}, "fail_probes must be an int >= 0, probe numbers"),
        ({"down": 0}, "down must be a bool"),
        ({"error": OSError()}, "error must be a callable"),
        ({"name": ""}, "name must be a non-empty str or None"),
        ({"inner": CollectSink("a"), "name": "b"}, "name must be None or inner's name 'a'"),
        ({"inner": 5}, "inner must be a sink"),
    ],
)
def test_failing_probe_validates_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FailingProbe(**kwargs)


# -- HangingSink -------------------------------------------------------------------------


async def test_hanging_sink_takes_after_writes_then_hangs_until_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = HangingSink(after=2)
    assert isinstance(sink, Sink)
    assert sink.name == "hanging"
    await sink.write(recs(0, 1))
    await sink.write(recs(1, 2))
    with trio.move_on_after(100) as scope:
        await sink.write(recs(3, 1))
    assert scope.cancelled_caught
    assert trio.current_time() == 100
    assert ids(sink.records) == [0, 1, 2]
    assert sink.hung == 1


async def test_hanging_sink_passes_its_first_writes_to_inner() -> None:
    inner = CollectSink("inner")
    sink = HangingSink("h", after=1, inner=inner)
    await sink.write(recs(0, 2))
    with trio.CancelScope() as scope:
        scope.cancel()
        await sink.write(recs(2, 1))
    await sink.flush()
    await sink.aclose()
    assert ids(inner.records) == ids(sink.records) == [0, 1]
    assert (inner.flushed, inner.closed, sink.hung) == (1, 1, 1)


async def test_hanging_sink_has_no_probe_unless_asked_and_then_it_hangs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    assert HangingSink().probe is None
    sink = HangingSink(after=1, hang_probe=True)
    assert sink.probe is not None
    with trio.move_on_after(30) as scope:
        await sink.probe()
    assert scope.cancelled_caught
    assert (trio.current_time(), sink.probes_hung, sink.hung) == (30, 1, 0)
    await sink.write(recs(0, 1))  # writes are unaffected
    assert ids(sink.records) == [0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"after": -1}, "after must be an int >= 0"),
        ({"after": 1.5}, "after must be an int >= 0"),
        ({"name": ""}, "name must be a non-empty str"),
        ({"inner": 3}, "inner must be a sink"),
        ({"hang_probe": None}, "hang_probe must be a bool"),
    ],
)
def test_hanging_sink_validates_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HangingSink(**kwargs)


async def test_hanging_sink_takes_inner_first_and_is_named_after_it() -> None:
    inner = CollectSink("db")
    sink = HangingSink(inner, after=1)
    assert (sink.name, sink.inner, sink.after) == ("db", inner, 1)
    await sink.write(recs(0, 2))
    assert ids(inner.records) == [0, 1]
    assert HangingSink(inner=inner).name == "db"
    assert HangingSink(inner, name="other").name == "other"


def test_hanging_sink_still_takes_the_name_first_as_before() -> None:
    inner = CollectSink("db")
    sink = HangingSink("stuck", after=2, inner=inner)
    assert (sink.name, sink.inner, sink.after) == ("stuck", inner, 2)
    assert (HangingSink("h").name, HangingSink("h").inner) == ("h", None)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("a",), {"name": "b"}, "got its name twice"),
        ((CollectSink("a"),), {"inner": CollectSink("b")}, "got inner twice"),
        (("a", "b"), {}, "takes one positional argument"),
    ],
)
def test_hanging_sink_refuses_an_argument_given_twice(
    args: tuple[Any, ...], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(TypeError, match=match):
        HangingSink(*args, **kwargs)


async def test_drain_deadline_reports_the_batch_a_hanging_sink_holds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hanging = HangingSink(after=1)
    other = CollectSink("other")
    source = ScriptedSource([0, 1, Pause(1), 2, 3])
    pipeline = Pipeline(
        source,
        routes=[Route("hang", hanging), Route("other", other)],
        batch_timeout=0.3,
        drain_timeout=5.0,
    )
    report = await pipeline.run()
    report.check()
    assert report.timed_out
    assert report.drain_seconds == pytest.approx(5.0)
    assert report.delivered == {"hanging": 2, "other": 4}
    assert [(u.record.id, u.sink, u.reason) for u in report.undelivered] == [
        (2, "hanging", "drain deadline"),
        (3, "hanging", "drain deadline"),
    ]
    assert ids(hanging.records) == [0, 1]
    assert hanging.hung == 1
    assert source.closed == 1


async def test_immediate_stop_reports_what_a_hanging_sink_holds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = RecordingSink(inner=HangingSink())
    source = ScriptedSource(endless=lambda i: i, interval=0.1)
    async with running(Pipeline(source, routes=[Route("all", sink)])) as handle:
        await trio.sleep(2)
        handle.stop(immediate=True)
        report = await handle.wait()
    report.check()
    assert report.timed_out
    assert report.delivered == {"recording": 0}
    assert len(report.undelivered) == report.received > 0
    assert {u.reason for u in report.undelivered} == {"immediate stop"}
    assert [c.outcome for c in sink.calls] == ["cancelled"]
    assert sink.closes == [2]
