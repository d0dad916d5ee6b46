"""run_scenario and the public Hypothesis strategies of trio_sink.testing, for real."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any, TypeVar

import pytest
import trio
import trio.testing
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from trio_sink import (
    AccountingError,
    ConfigError,
    DeliveryReport,
    Pipeline,
    Record,
    Route,
    Sink,
    SourceError,
)
from trio_sink.sinks import NullSink, SlowSink
from trio_sink.testing import (
    Fail,
    HangingSink,
    Pause,
    PlanRun,
    ScenarioError,
    ScriptedSource,
    run_plan,
    run_scenario,
)
from trio_sink.testing.strategies import (
    PipelineScenario,
    PipelineSettings,
    SinkBehaviour,
    Stop,
    StopPlan,
    clocks,
    durations,
    pipeline_scenarios,
    pipeline_settings,
    record_batches,
    records,
    sink_behaviours,
    stop_plans,
)

T = TypeVar("T")


def make_pipeline() -> Pipeline:
    """A small user pipeline: a paced source, a slow sink and a hanging one."""
    script = [step for x in range(20) for step in (Pause(1 / 32), x)]
    slow = SlowSink(NullSink("slow"), per_record=1 / 64)
    return Pipeline(
        ScriptedSource(script),
        routes=[Route("all", [slow]), Route("odd", [HangingSink("stuck", after=2)], when=odd)],
        batch_size=4,
        batch_timeout=1 / 8,
        drain_timeout=1.0,
    )


def odd(x: int) -> bool:
    return x % 2 == 1


# -- the user's three lines ------------------------------------------------------------


@given(plan=stop_plans(), clock=clocks())
async def test_user_style_async_property(plan: StopPlan, clock: trio.testing.MockClock) -> None:
    await run_scenario(make_pipeline, plan)


@given(plan=stop_plans(), clock=clocks())
def test_user_style_sync_property(plan: StopPlan, clock: trio.testing.MockClock) -> None:
    trio.run(run_scenario, make_pipeline, plan, clock=clock)


@given(scenario=pipeline_scenarios(), clock=clocks())
async def test_drawn_scenarios_keep_every_promise(
    scenario: PipelineScenario, clock: trio.testing.MockClock
) -> None:
    report = await run_scenario(scenario.pipeline, scenario.plan)
    assert report.received <= scenario.items
    if scenario.plan.batch_mode:
        assert report.received == scenario.items
    assert set(report.delivered) == {f"sink{i}" for i in range(len(scenario.sinks))}


# -- what run_scenario does and checks -------------------------------------------------


async def test_batch_mode_returns_the_checked_report(
    autojump_clock: trio.testing.MockClock,
) -> None:
    report = await run_scenario(make_pipeline, StopPlan())
    assert report.received == 20
    assert report.delivered["slow"] == 20
    # The hanging sink took two batches of odd records, then hung until the deadline.
    assert report.timed_out
    assert {u.reason for u in report.undelivered} == {"drain deadline"}
    assert {u.sink for u in report.undelivered} == {"stuck"}


async def test_an_immediate_stop_reports_the_rest_at_its_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    report = await run_scenario(make_pipeline, StopPlan([Stop(0.25, immediate=True)]))
    assert trio.current_time() - start == 0.25
    assert 0 < report.received < 20
    assert report.timed_out
    assert {u.reason for u in report.undelivered} == {"immediate stop"}


async def test_stop_times_count_from_the_call(autojump_clock: trio.testing.MockClock) -> None:
    await trio.sleep(100)
    start = trio.current_time()
    await run_scenario(make_pipeline, StopPlan([Stop(1 / 4, immediate=True)]))
    assert trio.current_time() - start == 1 / 4


async def test_a_source_error_report_is_checked_and_returned(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def failing() -> Pipeline:
        source = ScriptedSource([0, 1, 2, Fail(RuntimeError("boom"))])
        return Pipeline(source, routes=[Route("all", [NullSink("n")])])

    report = await run_scenario(failing, StopPlan())
    assert (report.received, report.delivered["n"]) == (3, 3)
    with pytest.raises(SourceError) as info:
        await run_scenario(failing, StopPlan([Stop(5.0)]), raise_source_error=True)
    assert info.value.report.received == 3


async def test_the_report_check_is_applied(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[DeliveryReport] = []

    def broken(report: DeliveryReport) -> None:
        calls.append(report)
        raise AccountingError("sink 'slow': delivered 1 + undelivered 0 != routed 2")

    monkeypatch.setattr(DeliveryReport, "check", broken)
    with pytest.raises(ScenarioError, match=r"^accounting: sink 'slow'") as info:
        await run_scenario(make_pipeline, StopPlan([Stop(1.0)]))
    assert info.value.invariant == "accounting"
    assert isinstance(info.value, AssertionError)
    assert info.value.report is calls[0]
    assert isinstance(info.value.__cause__, AccountingError)


class StuckSink(Sink):
    """A sink that breaks its contract: its write hangs, and its aclose() then blocks,
    shielded from the deadline, for ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.name = "stuck"
        self.seconds = seconds

    async def write(self, batch: Sequence[Record]) -> None:
        await trio.sleep_forever()

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await trio.sleep(self.seconds)


def stuck_pipeline(close_seconds: float) -> Callable[[], Pipeline]:
    def factory() -> Pipeline:
        return Pipeline(
            ScriptedSource([0, 1]),
            routes=[Route("all", [StuckSink(close_seconds)])],
            drain_timeout=1.0,
        )

    return factory


async def test_a_run_past_its_drain_deadline_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with pytest.raises(ScenarioError, match=r"^drain deadline: drained for 1.5s") as info:
        await run_scenario(stuck_pipeline(0.5), StopPlan())
    assert info.value.invariant == "drain deadline"
    with pytest.raises(ScenarioError, match=r"^drain deadline: drained for 1.5s"):
        await run_scenario(stuck_pipeline(0.5), StopPlan([Stop(2.0)]))


async def test_a_run_that_overruns_for_long_is_cancelled_and_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    with pytest.raises(ScenarioError, match=r"^drain deadline: the run was still going"):
        await run_scenario(stuck_pipeline(1000.0), StopPlan([Stop(2.0)]))
    # The shielded aclose() runs to its end; then the guard's cancellation is seen.
    assert trio.current_time() - start == 1001.0


async def test_run_scenario_needs_virtual_time() -> None:
    with pytest.raises(RuntimeError, match="run_scenario runs in virtual time"):
        await run_scenario(make_pipeline, StopPlan())


async def test_the_factory_must_return_a_pipeline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    not_a_pipeline: Any = lambda: [1, 2]  # noqa: E731
    with pytest.raises(TypeError, match="pipeline_factory must return a Pipeline"):
        await run_scenario(not_a_pipeline, StopPlan())


# -- run_plan: the run alone, nothing checked ------------------------------------------


async def test_run_plan_tells_how_a_daemon_run_ended(
    autojump_clock: trio.testing.MockClock,
) -> None:
    await trio.sleep(10)
    plan = StopPlan([Stop(0.5), Stop(0.75, immediate=True), Stop(100.0)])
    ran = await run_plan(make_pipeline(), plan)
    assert isinstance(ran, PlanRun)
    assert (ran.started, ran.ended) == (10.0, 10.75)
    assert ran.stops_made == plan.stops[:2]  # the run had ended before the third
    assert ran.report is not None
    assert {u.reason for u in ran.report.undelivered} == {"immediate stop"}
    assert (ran.source_error, ran.crash, ran.overran) == (None, None, False)


async def test_run_plan_keeps_a_source_error_instead_of_raising_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    for plan in (StopPlan(), StopPlan([Stop(5.0)])):
        source = ScriptedSource([0, 1, 2, Fail(RuntimeError("boom"))])
        ran = await run_plan(Pipeline(source, routes=[Route("all", [NullSink("n")])]), plan)
        assert isinstance(ran.source_error, SourceError)
        assert ran.report is ran.source_error.report
        assert (ran.crash, ran.stops_made) == (None, ())


async def test_run_plan_checks_nothing_and_cancels_an_overrun(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ran = await run_plan(stuck_pipeline(0.5)(), StopPlan())
    assert ran.report is not None
    assert ran.report.drain_seconds == 1.5  # past the deadline: not run_plan's business
    ran = await run_plan(stuck_pipeline(1000.0)(), StopPlan([Stop(2.0)]))
    assert ran.overran
    assert ran.ended - ran.started == 1001.0


async def test_run_plan_needs_virtual_time() -> None:
    with pytest.raises(RuntimeError, match="run_plan runs in virtual time"):
        await run_plan(make_pipeline(), StopPlan())


# -- plain values validate themselves --------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Stop(-1.0), "at must be a finite number of seconds >= 0, got -1.0"),
        (lambda: Stop(math.inf), "at must be a finite number"),
        (lambda: StopPlan([Stop(2.0), Stop(1.0)]), r"stops must be in time order"),
        (lambda: StopPlan([(1.0, True)]), "stops must hold Stop values"),  # type: ignore[list-item]
        (lambda: PipelineSettings(batch_size=0), "batch_size must be an int >= 1, got 0"),
        (lambda: PipelineSettings(drain_timeout=-1), "drain_timeout must be a finite"),
        (lambda: SinkBehaviour(per_record=math.nan), "per_record must be a finite"),
        (lambda: SinkBehaviour(fail_writes=[-1]), "fail_writes must hold write numbers"),
        (lambda: SinkBehaviour(fail_probability=2), r"fail_probability must be a number in"),
        (lambda: SinkBehaviour(hang_after=-1), "hang_after must be an int >= 0"),
        (lambda: PipelineScenario(PipelineSettings(), (), StopPlan(), -1), "items must be"),
    ],
)
def test_values_reject_bad_fields(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_settings_are_pipeline_keyword_arguments() -> None:
    settings = PipelineSettings(capacity=0, batch_size=3, batch_timeout=0.5, drain_timeout=None)
    pipeline = Pipeline([], routes=[Route("r", NullSink())], **settings.kwargs())
    assert (pipeline.capacity, pipeline.batch_size) == (0, 3)
    assert (pipeline.batch_timeout, pipeline.drain_timeout) == (0.5, None)


# -- strategies: arguments, bounds and reach -------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: clocks(autojump_threshold=-1), "autojump_threshold must be"),
        (lambda: durations(min_value=2, max_value=1), r"min_value=2.0 must be <= max_value=1.0"),
        (lambda: durations(max_value=math.inf), "max_value must be a finite"),
        (lambda: records(min_id=-1), "min_id must be an int >= 0"),
        (lambda: record_batches(min_size=3, max_size=2), "min_size=3 must be <= max_size=2"),
        (lambda: sink_behaviours(max_per_batch=-1), "max_per_batch must be"),
        (lambda: sink_behaviours(hangs=1), "hangs must be a bool, got 1"),  # type: ignore[arg-type]
        (lambda: stop_plans(kinds=["graceful", "later"]), "kinds must be a non-empty"),  # type: ignore[list-item]
        (lambda: stop_plans(kinds=()), "kinds must be a non-empty"),
        (lambda: stop_plans(kinds="graceful"), "got the str 'graceful'"),  # type: ignore[arg-type]
        (lambda: stop_plans(min_at=3, max_at=1), "min_at=3.0 must be <= max_at=1.0"),
        (lambda: pipeline_settings(drain="none"), "drain must be 'any', 'finite' or"),  # type: ignore[arg-type]
        (lambda: pipeline_settings(max_batch_size=0), "max_batch_size must be an int >= 1"),
        (lambda: pipeline_scenarios(max_sinks=0), "max_sinks must be an int >= 1"),
    ],
)
def test_strategies_reject_bad_arguments(make: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        make()


@given(
    plan=stop_plans(kinds=["immediate", "graceful_twice"], min_at=1.0, max_at=2.0),
    settings=pipeline_settings(
        max_capacity=2, max_batch_size=3, max_batch_timeout=0.5, drain="finite", max_drain_timeout=4
    ),
    behaviour=sink_behaviours(max_per_record=1 / 8, max_per_batch=0.5, max_fail_write=3),
    seconds=durations(min_value=0.25, max_value=0.75, exact=True),
    record=records(min_id=5, max_id=9, payloads=st.just("p")),
    batch=record_batches(min_size=2, max_size=4),
)
def test_strategies_respect_their_bounds(
    plan: StopPlan,
    settings: PipelineSettings,
    behaviour: SinkBehaviour,
    seconds: float,
    record: Record,
    batch: tuple[Record, ...],
) -> None:
    assert len(plan.stops) in (1, 2)
    assert all(1.0 <= s.at <= 2.0 for s in plan.stops)
    if len(plan.stops) == 2:
        assert not any(s.immediate for s in plan.stops)
    else:
        assert plan.stops[0].immediate
    assert 0 <= settings.capacity <= 2
    assert 1 <= settings.batch_size <= 3
    assert 0 <= settings.batch_timeout <= 0.5
    assert settings.drain_timeout is not None
    assert 0 <= settings.drain_timeout <= 4
    assert 0 <= behaviour.per_record <= 1 / 8
    assert 0 <= behaviour.per_batch <= 0.5
    assert all(k <= 3 for k in behaviour.fail_writes)
    assert behaviour.hang_after is None
    assert behaviour.fail_probability == 0
    assert 0.25 <= seconds <= 0.75
    assert (seconds * 1024).is_integer()
    assert 5 <= record.id <= 9
    assert record.payload == "p"
    assert 2 <= len(batch) <= 4
    assert all(a.id < b.id for a, b in pairwise(batch))


def reach(strategy: st.SearchStrategy[T], condition: Callable[[T], bool]) -> T:
    """An example meeting ``condition``, found without shrinking (that costs seconds)."""
    return find(strategy, condition, settings=settings(phases=[Phase.generate], database=None))


def test_strategies_reach_every_kind() -> None:
    plans = stop_plans()
    assert reach(plans, lambda p: p.batch_mode) == StopPlan()
    for immediate in (False, True):

        def second_is(plan: StopPlan, immediate: bool = immediate) -> bool:
            return len(plan.stops) == 2 and plan.stops[1].immediate is immediate

        assert not reach(plans, second_is).stops[0].immediate
    # Two stops at the very same instant occur.
    assert reach(plans, lambda p: len(p.stops) == 2 and p.stops[0].at == p.stops[1].at)
    assert reach(plans, lambda p: len(p.stops) == 1 and p.stops[0].immediate)
    assert reach(pipeline_settings(), lambda s: s.drain_timeout is None)
    assert reach(sink_behaviours(hangs=True), lambda b: b.hang_after is not None)
    assert reach(sink_behaviours(random_failures=True), lambda b: b.fail_probability > 0)
    assert reach(sink_behaviours(), lambda b: b.fail_every > 0)
    assert reach(sink_behaviours(), lambda b: bool(b.fail_writes))
    # Times off the binary grid occur too.
    assert reach(durations(), lambda t: not (t * 1024).is_integer())


@given(scenario=pipeline_scenarios())
def test_a_scenario_that_may_hang_can_always_end(scenario: PipelineScenario) -> None:
    if any(b.hang_after is not None for b in scenario.sinks):
        assert not scenario.plan.batch_mode
        immediate = any(s.immediate for s in scenario.plan.stops)
        assert scenario.settings.drain_timeout is not None or immediate


# -- SinkBehaviour.build ---------------------------------------------------------------


def batch_of(first: int, n: int) -> list[Record]:
    return [Record(first + i, first + i, first + i) for i in range(n)]


async def write_all(
    sink: Any, batches: Sequence[Sequence[Record]], *, each: float = math.inf
) -> list[str]:
    """Write each batch (giving up on one after ``each`` seconds); the outcomes."""
    outcomes: list[str] = []
    for batch in batches:
        with trio.move_on_after(each) as scope:
            try:
                await sink.write(batch)
            except OSError as exc:
                outcomes.append(f"raised {exc}")
                continue
        outcomes.append("hung" if scope.cancelled_caught else "delivered")
    return outcomes


async def test_built_sink_sleeps_per_batch_and_per_record(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = SinkBehaviour(per_record=1 / 64, per_batch=1 / 4).build("s")
    assert sink.name == "s"
    start = trio.current_time()
    await sink.write(batch_of(0, 4))
    assert trio.current_time() - start == 1 / 4 + 4 / 64
    assert [r.id for r in sink.records] == [0, 1, 2, 3]
    await sink.flush()
    await sink.aclose()
    assert (len(sink.flushes), len(sink.closes)) == (1, 1)


async def test_built_sink_fails_the_chosen_writes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    behaviour = SinkBehaviour(fail_writes={1}, fail_every=3, fail_offset=2)
    assert [k for k in range(9) if behaviour.fails(k)] == [1, 2, 5, 8]
    sink = behaviour.build("f")
    outcomes = await write_all(sink, [batch_of(k * 10, 2) for k in range(6)])
    assert outcomes == [
        "delivered",
        "raised flaky write",
        "raised flaky write",
        "delivered",
        "delivered",
        "raised flaky write",
    ]
    assert [r.id for r in sink.records] == [0, 1, 30, 31, 40, 41]
    assert [c.outcome for c in sink.calls] == [
        "delivered",
        "raised",
        "raised",
        "delivered",
        "delivered",
        "raised",
    ]


async def test_built_sink_raises_the_given_error(autojump_clock: trio.testing.MockClock) -> None:
    class Boom(Exception):
        pass

    sink = SinkBehaviour(fail_writes={0}).build("e", error=lambda: Boom("e fails"))
    with pytest.raises(Boom, match="e fails"):
        await sink.write(batch_of(0, 1))
    assert sink.records == []


async def test_built_sink_hangs_after_its_writes(autojump_clock: trio.testing.MockClock) -> None:
    sink = SinkBehaviour(per_batch=1 / 8, hang_after=2).build("h")
    outcomes = await write_all(sink, [batch_of(k, 1) for k in range(4)], each=10.0)
    assert outcomes == ["delivered", "delivered", "hung", "hung"]
    assert [c.outcome for c in sink.calls] == ["delivered", "delivered", "cancelled", "cancelled"]


async def test_built_sink_random_failures_follow_the_seed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    behaviour = SinkBehaviour(fail_probability=0.5, seed=7)
    batches = [batch_of(k, 1) for k in range(40)]
    first = await write_all(behaviour.build("r"), batches)
    again = await write_all(behaviour.build("r"), batches)
    assert first == again
    assert 5 < first.count("delivered") < 35
