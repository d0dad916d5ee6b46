"""Property: control calls at random virtual times never lose a record.

Each example draws a small pipeline (a sync or async source, one to three sinks on a
route that takes every record, sometimes a second route that takes the even ones and a
monitor sink; random capacity, batching and drain settings, sometimes
``stop_after_records`` or ``stop_when_idle``) and a list of control calls (pause, resume,
resume_all, isolate, pause_source, resume_source, stop, immediate stop) at random
virtual times. The run always ends: a final Stop comes after the last call (with every
sink resumed first when the drain has no deadline).

Properties: the report's accounting holds; each sink got, by id, exactly what was routed
to it, each record delivered or reported (never both, never twice, in order); the
statistics add up after every task step and the final snapshot equals the report; a
drain without deadline and without immediate stop delivers everything a sink did not
refuse; and the run ends within its deadline.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import attrs
import trio
import trio.testing
from hypothesis import example, given
from hypothesis import strategies as st
from strategies import clocks, schedules

from trio_sink import (
    DeliveryReport,
    Infra,
    Pipeline,
    PipelineHandle,
    PipelineStatistics,
    Route,
)
from trio_sink.testing import Pause, RecordingSink, ScriptedSource, quiet_library_logs, running
from trio_sink.testing.strategies import (
    PipelineSettings,
    SinkBehaviour,
    durations,
    pipeline_settings,
    sink_behaviours,
)

EPS = 1e-9
END_AT = 5.0
"""When the final Stop comes: after every drawn control call."""

OpName = Literal[
    "pause",
    "resume",
    "resume_all",
    "isolate",
    "pause_source",
    "resume_source",
    "stop",
    "stop_immediate",
]
SINK_OPS = ("pause", "resume", "isolate")
SourceKind = Literal["list", "scripted", "endless"]


@attrs.frozen
class Op:
    """At ``at`` seconds, the control call ``name`` (on ``sink`` for sink calls)."""

    at: float
    name: OpName
    sink: str | None = None


@attrs.frozen
class ControlScenario:
    settings: PipelineSettings
    source: SourceKind
    items: int
    delays: tuple[float, ...]
    """Scripted: the pause before item ``i`` is ``delays[i % len(delays)]``; endless: the
    interval is ``delays[0]``."""
    sinks: tuple[SinkBehaviour, ...]
    """``s0``, ``s1``, ... on the route that takes every record."""
    even: SinkBehaviour | None
    """``ev`` on a route that takes the even payloads."""
    monitor: SinkBehaviour | None
    monitor_interval: float
    stop_after_records: int | None
    stop_when_idle: float | None
    ops: tuple[Op, ...]
    resume_at_end: bool
    """Resume every sink before the final Stop (always, when the drain has no limit)."""

    @property
    def names(self) -> list[str]:
        names = [f"s{i}" for i in range(len(self.sinks))]
        if self.even is not None:
            names.append("ev")
        if self.monitor is not None:
            names.append("mon")
        return names


# Every op, with "pause" twice as likely as each other one.
_ops: st.SearchStrategy[OpName] = st.sampled_from(("pause", *get_args(OpName)))


@st.composite
def control_scenarios(draw: st.DrawFn) -> ControlScenario:
    settings = draw(
        pipeline_settings(
            max_capacity=3,
            max_batch_size=6,
            max_batch_timeout=0.5,
            drain="any",
            max_drain_timeout=4.0,
        )
    )
    # A hang ends only at a deadline: only when the drain has one.
    behaviours = sink_behaviours(
        max_per_record=1 / 16,
        max_per_batch=1.0,
        failures=True,
        max_fail_write=6,
        hangs=settings.drain_timeout is not None,
        max_hang_after=4,
    )
    sinks = tuple(draw(st.lists(behaviours, min_size=1, max_size=3)))
    even = draw(st.one_of(st.none(), behaviours))
    monitor = draw(st.one_of(st.none(), behaviours))
    source: SourceKind = draw(st.sampled_from(["list", "scripted", "endless"]))
    items = draw(st.integers(0, 30))
    if source == "endless":
        delays: tuple[float, ...] = (draw(st.sampled_from([1 / 16, 1 / 4, 1 / 2])),)
    else:
        delays = tuple(
            draw(st.lists(st.sampled_from([0.0, 1 / 64, 1 / 4, 1.0]), min_size=1, max_size=3))
        )
    names = [f"s{i}" for i in range(len(sinks))]
    names += ["ev"] if even is not None else []
    names += ["mon"] if monitor is not None else []
    ops: list[Op] = []
    for _ in range(draw(st.integers(0, 8))):
        at = draw(durations(max_value=END_AT - 0.5))
        name = draw(_ops)
        ops.append(Op(at, name, draw(st.sampled_from(names)) if name in SINK_OPS else None))
    ops.sort(key=lambda op: op.at)
    return ControlScenario(
        settings=settings,
        source=source,
        items=items,
        delays=delays,
        sinks=sinks,
        even=even,
        monitor=monitor,
        monitor_interval=draw(st.sampled_from([0.25, 0.5, 1.0, 2.0])),
        stop_after_records=draw(st.one_of(st.none(), st.integers(1, 30))),
        stop_when_idle=draw(st.one_of(st.none(), st.sampled_from([0.5, 1.0, 3.0]))),
        ops=tuple(ops),
        resume_at_end=settings.drain_timeout is None or draw(st.booleans()),
    )


# -- building and running ---------------------------------------------------------------


def is_even(payload: int) -> bool:
    return payload % 2 == 0


@attrs.frozen
class Built:
    pipeline: Pipeline
    sinks: dict[str, RecordingSink]
    source: ScriptedSource | None


def build(scenario: ControlScenario) -> Built:
    sinks = {f"s{i}": b.build(f"s{i}") for i, b in enumerate(scenario.sinks)}
    routes = [Route("all", list(sinks.values()))]
    if scenario.even is not None:
        sinks["ev"] = scenario.even.build("ev")
        routes.append(Route("even", sinks["ev"], when=is_even))
    monitor = None
    if scenario.monitor is not None:
        monitor = sinks["mon"] = scenario.monitor.build("mon")
    source: Any
    scripted: ScriptedSource | None = None
    if scenario.source == "list":
        source = list(range(scenario.items))
    elif scenario.source == "scripted":
        delays = scenario.delays
        script: list[object] = []
        for i in range(scenario.items):
            if delays[i % len(delays)]:
                script.append(Pause(delays[i % len(delays)]))
            script.append(i)
        source = scripted = ScriptedSource(script)
    else:
        source = scripted = ScriptedSource(endless=lambda i: i, interval=scenario.delays[0])
    pipeline = Pipeline(
        source,
        routes=routes,
        infra=Infra(monitor=monitor),
        monitor_interval=scenario.monitor_interval,
        stop_after_records=scenario.stop_after_records,
        stop_when_idle=scenario.stop_when_idle,
        **scenario.settings.kwargs(),
    )
    return Built(pipeline, sinks, scripted)


class Watcher(trio.abc.Instrument):
    """Checks the statistics after every task step (an instrument must not raise:
    problems are noted)."""

    def __init__(self) -> None:
        self.handle: PipelineHandle | None = None
        self.problems: list[str] = []

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        handle = self.handle
        if handle is None or handle.report is not None:
            return
        stats = handle.statistics()
        for s in stats.sinks.values():
            if s.routed != s.delivered + s.undelivered + s.pending:
                self.problems.append(f"t={stats.time} after {task.name}: {s}")
        source = stats.source
        if source.dispatched + source.undelivered != stats.received:
            self.problems.append(f"t={stats.time} after {task.name}: {source}")


@attrs.frozen
class Outcome:
    report: DeliveryReport
    final: PipelineStatistics
    after: PipelineStatistics
    """statistics() again, after control calls made once the run had ended."""
    immediate_at: float | None
    """When the first immediate stop was made while the run was going."""
    problems: list[str]
    made: list[tuple[float, Op]]
    """Every control call made while the run was going, with its time (the final
    ``resume_all`` included)."""


def apply(handle: PipelineHandle, op: Op) -> None:
    if op.name in SINK_OPS:
        assert op.sink is not None
        getattr(handle, op.name)(op.sink)
    elif op.name == "stop_immediate":
        handle.stop(immediate=True)
    else:
        getattr(handle, op.name)()


def run(scenario: ControlScenario, built: Built, clock: trio.testing.MockClock) -> Outcome:
    async def main() -> Outcome:
        watcher = Watcher()
        immediate_at: float | None = None
        made: list[tuple[float, Op]] = []
        trio.lowlevel.add_instrument(watcher)
        try:
            # Virtual seconds: a run that never ends fails the example instead of hanging.
            with trio.fail_after(10_000):
                async with running(built.pipeline) as handle:
                    watcher.handle = handle
                    for op in scenario.ops:
                        await trio.sleep_until(op.at)
                        if handle.report is None:
                            made.append((trio.current_time(), op))
                            if op.name == "stop_immediate" and immediate_at is None:
                                immediate_at = trio.current_time()
                        apply(handle, op)  # after the run, a no-op
                    await trio.sleep_until(END_AT)
                    if scenario.resume_at_end:
                        made.append((END_AT, Op(END_AT, "resume_all")))
                        handle.resume_all()
                    handle.stop()
                report = await handle.wait()
        finally:
            trio.lowlevel.remove_instrument(watcher)
        final = handle.statistics()
        for op in scenario.ops:
            apply(handle, op)
        return Outcome(report, final, handle.statistics(), immediate_at, watcher.problems, made)

    with quiet_library_logs():
        return trio.run(main, clock=clock)


# -- the property -------------------------------------------------------------------------


@given(scenario=control_scenarios(), clock=clocks(), schedule=schedules())
def test_control_calls_never_lose_a_record(
    scenario: ControlScenario, clock: trio.testing.MockClock, schedule: object
) -> None:
    built = build(scenario)
    out = run(scenario, built, clock)
    check_accounting(scenario, built, out)


def check_accounting(scenario: ControlScenario, built: Built, out: Outcome) -> None:
    report = out.report
    report.check()
    assert out.problems == []

    # The source: every item it produced got an id, and no more than the limit.
    if built.source is not None:
        assert built.source.pulled == report.received
    else:
        assert report.received <= scenario.items
    if scenario.stop_after_records is not None:
        assert report.received <= scenario.stop_after_records

    # Each sink, by id: routed = delivered (in order, once) + reported, never both.
    unrouted = {u.record.id for u in report.undelivered if u.sink is None}
    dispatched = [i for i in range(report.received) if i not in unrouted]
    for name, sink in built.sinks.items():
        delivered = [r.id for r in sink.records]
        reported = [u.record.id for u in report.undelivered if u.sink == name]
        # In id order, each once: source order, or -1, -2, ... for the monitor.
        assert delivered == sorted(set(delivered), reverse=name == "mon"), name
        assert len(reported) == len(set(reported)), name
        assert not set(delivered) & set(reported), name
        assert len(delivered) == report.delivered[name]
        if name == "mon":
            assert all(i < 0 for i in delivered + reported)
            assert report.routed[name] == len(delivered) + len(reported)
            assert report.generated == report.routed[name] + report.discarded.get("monitor", 0)
            continue
        expected = dispatched if name != "ev" else [i for i in dispatched if is_even(i)]
        assert sorted(delivered + reported) == expected, name
        assert all(r.payload == r.raw == r.id for r in sink.records)

    # The final snapshot is the report, and calls after the run changed nothing.
    final = out.final
    assert final == out.after
    assert final.state == "stopped"
    assert final.received == report.received
    assert {n: s.routed for n, s in final.sinks.items()} == report.routed
    assert {n: s.delivered for n, s in final.sinks.items()} == report.delivered
    assert final.undelivered == len(report.undelivered)
    assert dict(final.discarded) == dict(report.discarded)
    assert final.pending == 0
    assert final.drain is not None  # every run here ends with a Stop of some kind
    assert final.drain.elapsed == report.drain_seconds

    # Timing: the drain deadline bounds the run; an immediate stop ends it at once.
    drain_timeout = scenario.settings.drain_timeout
    if drain_timeout is not None:
        assert report.drain_seconds <= drain_timeout + EPS
    if out.immediate_at is not None:
        assert final.time <= out.immediate_at + EPS

    # Reasons: without a deadline and an immediate stop, only a sink's refusal.
    reasons = {u.reason for u in report.undelivered}
    if drain_timeout is None and out.immediate_at is None:
        assert all(r.startswith("sink raised") for r in reasons), reasons
        assert not report.timed_out
    failing = [b for b in (*scenario.sinks, scenario.even, scenario.monitor) if b is not None]
    if drain_timeout is None and out.immediate_at is None and not any(b.can_fail for b in failing):
        assert report.ok
    if out.immediate_at is None:
        assert "immediate stop" not in reasons
    if drain_timeout is None:
        assert "drain deadline" not in reasons


# -- pause semantics ------------------------------------------------------------------


def paused_spells(scenario: ControlScenario, out: Outcome) -> dict[str, list[tuple[float, float]]]:
    """Per sink, the spans of time it was paused, from the calls made (a model of
    pause, resume, resume_all and isolate)."""
    names = scenario.names
    since: dict[str, float | None] = dict.fromkeys(names)
    spells: dict[str, list[tuple[float, float]]] = {name: [] for name in names}

    def set_paused(name: str, paused: bool, t: float) -> None:
        start = since[name]
        if paused and start is None:
            since[name] = t
        elif not paused and start is not None:
            spells[name].append((start, t))
            since[name] = None

    for t, op in out.made:
        if op.name == "pause":
            assert op.sink is not None
            set_paused(op.sink, True, t)
        elif op.name == "resume":
            assert op.sink is not None
            set_paused(op.sink, False, t)
        elif op.name == "resume_all":
            for name in names:
                set_paused(name, False, t)
        elif op.name == "isolate":
            for name in names:
                if name == op.sink:
                    set_paused(name, False, t)
                elif name != "mon":
                    set_paused(name, True, t)
    for name, start in since.items():
        if start is not None:
            spells[name].append((start, float("inf")))
    return spells


PAUSED_WHILE_WAITING = ControlScenario(
    settings=PipelineSettings(capacity=1, batch_size=1, batch_timeout=0.0, drain_timeout=None),
    source="scripted",
    items=3,
    delays=(1.0,),
    sinks=(SinkBehaviour(),),
    even=None,
    monitor=None,
    monitor_interval=1.0,
    stop_after_records=None,
    stop_when_idle=None,
    ops=(Op(0.5, "pause", "s0"),),
    resume_at_end=True,
)


@example(
    scenario=PAUSED_WHILE_WAITING, clock=trio.testing.MockClock(autojump_threshold=0), schedule=None
)
@given(scenario=control_scenarios(), clock=clocks(), schedule=schedules())
def test_a_paused_sink_starts_no_write(
    scenario: ControlScenario, clock: trio.testing.MockClock, schedule: object
) -> None:
    built = build(scenario)
    out = run(scenario, built, clock)
    check_accounting(scenario, built, out)
    spells = paused_spells(scenario, out)
    call_times = {t for t, _ in out.made}
    for name, sink in built.sinks.items():
        for call in sink.calls:
            # A write that starts at the very instant of a call may be ordered either way.
            if call.started in call_times:
                continue
            paused = [(a, b) for a, b in spells[name] if a < call.started < b]
            assert not paused, f"{name} began a write at t={call.started} while paused {paused}"
