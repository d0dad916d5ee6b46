"""Property tests of the core promise: after Stop every stage drains, and at the drain
deadline every record not delivered is reported by id. Nothing is lost uncounted.

Each example builds a whole pipeline from a drawn :class:`~strategies.Scenario`, runs it
in virtual time (a fresh ``MockClock`` per example, so every run starts at t=0), and
compares what each recording sink really kept against the report and against an
independent model of routing computed from the input alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from itertools import pairwise

import attrs
import trio
import trio.testing
from hypothesis import given
from strategies import (
    RAW_BASE,
    ObservedSink,
    Scenario,
    ScriptedSource,
    SourceBoom,
    Stop,
    build_pipeline,
    clocks,
    scenarios,
    schedules,
    stop_plans,
)

from trio_sink import DeliveryReport, PipelineStatistics, Record, SourceError, Undelivered
from trio_sink.testing import run_plan

EPS = 1e-9
"""Virtual time is exact; this only absorbs float rounding in ``t + drain_timeout``."""

DEADLINE = "drain deadline"
IMMEDIATE = "immediate stop"


# -- running a scenario --------------------------------------------------------------


@attrs.frozen
class Outcome:
    scenario: Scenario
    report: DeliveryReport
    source_error: SourceError | None
    crash: BaseException | None
    """Anything but SourceError that ``run()`` raised."""
    end: float
    """When the run ended, on the virtual clock."""
    stops_made: tuple[Stop, ...]
    """The planned stops that were issued while the run was still going."""
    sinks: Mapping[str, ObservedSink]
    source: ScriptedSource | None


def play(scenario: Scenario, clock: trio.testing.MockClock) -> Outcome:
    """Run ``scenario`` in virtual time from t=0, with ``trio_sink.testing.run_plan``:
    the runner of ``run_scenario`` without its checks, since the properties below make
    their own. ``run()`` may raise SourceError (its report is used); anything else it
    raises is kept in ``Outcome.crash`` and the handle's report is used, so that the
    other properties are still checked (a crash fails a property of its own).
    """
    built = build_pipeline(scenario)

    async def run() -> Outcome:
        ran = await run_plan(built.pipeline, scenario.plan)
        if ran.report is None:
            raise AssertionError("the run ended without a report") from ran.crash
        return Outcome(
            scenario,
            ran.report,
            ran.source_error,
            ran.crash,
            ran.ended,
            ran.stops_made,
            built.sinks,
            built.source,
        )

    return trio.run(run, clock=clock)


# -- the model of routing ------------------------------------------------------------


@attrs.frozen
class Expected:
    """What the record for one position must look like at one destination."""

    raw: int
    payload: object
    rest: object = None
    errors: frozenset[str] = frozenset()
    """Acceptable ``"Type: message"`` of ``.error``; empty: ``.error`` must be None."""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def destinations(scenario: Scenario, x: int) -> dict[str, Expected]:
    """Where the record at position ``x`` goes, computed from the scenario alone.

    Keys are sink names, or ``"discarded:<group>"`` for an infra group without a sink.
    Fan-out to every accepting route; no accepting route goes to ``default``; Miss to
    ``miss``; a Residue's payload is routed and its rest goes to ``residue``; a parse
    exception to ``error``; a ``when`` that raises sends the record to ``error`` once
    and not to that route. A record that no route accepted because its ``when`` raised
    goes to ``error`` and to ``default``: CONTRACT.md says a record that no route
    accepts goes to ``default``.
    """
    out: dict[str, Expected] = {}

    def infra(group: str, expected: Expected) -> None:
        spec = scenario.infra.sink_for(group)
        out[f"discarded:{group}" if spec is None else spec.name] = expected

    raw = RAW_BASE + x
    payload: object = raw
    parse = scenario.parse
    if parse.enabled:
        if parse.miss(x):
            infra("miss", Expected(raw, raw))
            return out
        if parse.error(x):
            infra("error", Expected(raw, raw, errors=frozenset({f"ParseBoom: parse {x}"})))
            return out
        payload = ("p", x)
        if parse.residue(x):
            infra("residue", Expected(raw, payload, rest=("rest", x)))
    accepted = False
    when_errors: set[str] = set()
    for route in scenario.routes:
        if route.accept is not None:
            if route.raise_on(x):
                when_errors.add(f"WhenBoom: when {route.name} {x}")
                continue
            if not route.accept(x):
                continue
        accepted = True
        for sink in route.sinks:
            out[sink.name] = Expected(raw, payload)
    if when_errors:
        infra("error", Expected(raw, payload, errors=frozenset(when_errors)))
    if not accepted:
        infra("default", Expected(raw, payload))
    return out


def assert_record_is(record: Record, expected: Expected, where: str) -> None:
    assert record.raw == expected.raw, (where, record)
    assert record.payload == expected.payload, (where, record)
    assert record.rest == expected.rest, (where, record)
    if expected.errors:
        assert record.error is not None, (where, record)
        assert _describe(record.error) in expected.errors, (where, record, expected.errors)
    else:
        assert record.error is None, (where, record)


def monitor_name(scenario: Scenario) -> str | None:
    spec = scenario.infra.sink_for("monitor")
    return None if spec is None else spec.name


def business_sinks(outcome: Outcome) -> dict[str, ObservedSink]:
    """Every sink but the monitor's, which gets the pipeline's own statistics records
    (see the monitor property)."""
    monitor = monitor_name(outcome.scenario)
    return {name: sink for name, sink in outcome.sinks.items() if name != monitor}


def is_failure_copy(record: Record) -> bool:
    """A copy of a record whose write failed at some sink, sent to the error group."""
    return type(record.error).__name__ == "SinkBoom"


def unrouted_ids(report: DeliveryReport) -> list[int]:
    return [u.record.id for u in report.undelivered if u.sink is None]


def undelivered_by_sink(report: DeliveryReport) -> dict[str, list[Undelivered]]:
    out: dict[str, list[Undelivered]] = {}
    for u in report.undelivered:
        if u.sink is not None:
            out.setdefault(u.sink, []).append(u)
    return out


def model(outcome: Outcome) -> dict[str, dict[int, Expected]]:
    """Per destination: id -> expected record, over the records that were routed
    (every produced id except those reported with sink None, before routing)."""
    report = outcome.report
    before_routing = set(unrouted_ids(report))
    per_dest: dict[str, dict[int, Expected]] = {}
    for x in range(report.received):
        if x in before_routing:
            continue
        for dest, expected in destinations(outcome.scenario, x).items():
            per_dest.setdefault(dest, {})[x] = expected
    return per_dest


# -- properties ----------------------------------------------------------------------


@given(scenario=scenarios(), clock=clocks(), schedule=schedules())
def test_run_ends_with_a_consistent_report_and_reads_the_source_as_far_as_it_should(
    scenario: Scenario, clock: trio.testing.MockClock, schedule: object
) -> None:
    outcome = play(scenario, clock)
    # run() ends with its report: it returns it, or raises SourceError carrying it.
    assert outcome.crash is None, repr(outcome.crash)
    report = outcome.report
    report.check()
    spec = scenario.source
    assert 0 <= report.received <= spec.produces
    assert set(report.delivered) == set(outcome.sinks)
    assert set(report.routed) == set(outcome.sinks)
    if scenario.plan.batch_mode:
        # Batch mode pulls the source to its end (or its failure), whatever happens next.
        assert report.received == spec.produces
        assert (outcome.source_error is not None) == (spec.fail_at is not None)
    if outcome.source_error is not None:
        assert spec.fail_at is not None
        assert isinstance(outcome.source_error.__cause__, SourceBoom)
        assert report.received == spec.fail_at


@given(
    scenario=scenarios(source_failures="always", plans=stop_plans(kinds=["batch"])),
    clock=clocks(),
    schedule=schedules(),
)
def test_a_failing_source_ends_the_run_with_source_error(
    scenario: Scenario, clock: trio.testing.MockClock, schedule: object
) -> None:
    outcome = play(scenario, clock)
    assert outcome.crash is None, repr(outcome.crash)
    # Whatever the deadline did to the drain, run() raises SourceError with the report.
    error = outcome.source_error
    assert error is not None, f"run() returned instead of raising: {outcome.report}"
    assert isinstance(error.__cause__, SourceBoom), repr(error.__cause__)
    assert error.report.received == scenario.source.fail_at
    error.report.check()


@given(scenario=scenarios(), clock=clocks(), schedule=schedules())
def test_every_produced_record_is_delivered_reported_or_discarded(
    scenario: Scenario, clock: trio.testing.MockClock, schedule: object
) -> None:
    outcome = play(scenario, clock)
    report = outcome.report
    received = report.received
    unrouted = unrouted_ids(report)
    assert len(unrouted) == len(set(unrouted)), unrouted
    # Routing runs in source order: what was still before routing is the tail.
    assert sorted(unrouted) == list(range(received - len(unrouted), received)), unrouted
    for u in report.undelivered:
        if u.sink is None:
            assert u.record.raw == RAW_BASE + u.record.id, u
            assert u.record.payload == u.record.raw, u
    accounted = set(unrouted)
    for sink in business_sinks(outcome).values():
        accounted.update(r.id for r in sink.delivered)
    accounted.update(u.record.id for u in report.undelivered if u.record.id >= 0)
    discarded: Counter[str] = Counter()
    for x in set(range(received)) - set(unrouted):
        dests = destinations(scenario, x)
        assert dests, x
        for dest in dests:
            if dest.startswith("discarded:"):
                discarded[dest.removeprefix("discarded:")] += 1
                accounted.add(x)
    assert accounted == set(range(received)), sorted(set(range(received)) - accounted)
    # Statistics records the monitor had no room for are counted apart (monitor property),
    # and so are copies of failed writes the error sink had no room for.
    apart = {"monitor"} if scenario.infra.sink_for("error") is None else {"monitor", "error"}
    assert {g: n for g, n in report.discarded.items() if n and g not in apart} == {
        g: n for g, n in discarded.items() if g not in apart
    }


@given(scenario=scenarios(routing_heavy=True), clock=clocks(), schedule=schedules())
def test_each_sink_gets_exactly_what_the_routing_model_routes_to_it(
    scenario: Scenario, clock: trio.testing.MockClock, schedule: object
) -> None:
    outcome = play(scenario, clock)
    report = outcome.report
    per_dest = model(outcome)
    lost = undelivered_by_sink(report)
    for name, sink in business_sinks(outcome).items():
        expected = per_dest.get(name, {})
        # The error sink also gets copies of records whose write failed at another sink,
        # after the fact: the routing model leaves them out.
        routed_here = [r for r in sink.delivered if not is_failure_copy(r)]
        lost_here = [u for u in lost.get(name, []) if not is_failure_copy(u.record)]
        delivered = {r.id for r in routed_here}
        undelivered = [u.record.id for u in lost_here]
        assert len(sink.delivered) == report.delivered[name], name
        assert len(undelivered) == len(set(undelivered)), (name, undelivered)
        assert not delivered & set(undelivered), (name, sorted(delivered & set(undelivered)))
        assert delivered | set(undelivered) == set(expected), (
            name,
            sorted(set(expected) - delivered - set(undelivered)),
            sorted((delivered | set(undelivered)) - set(expected)),
        )
        copies = len(sink.delivered) - len(routed_here) + len(lost.get(name, [])) - len(lost_here)
        assert report.routed[name] == len(expected) + copies, name
        # In source order, as routed; each id once.
        delivered_ids = [r.id for r in routed_here]
        assert delivered_ids == sorted(delivered), (name, delivered_ids)
        for record in routed_here:
            assert_record_is(record, expected[record.id], f"{name} delivered")
        for u in lost_here:
            assert_record_is(u.record, expected[u.record.id], f"{name} undelivered")
    assert set(lost) <= set(outcome.sinks)


@given(scenario=scenarios(), clock=clocks(), schedule=schedules())
def test_the_monitor_gets_statistics_records_each_accounted_for(
    scenario: Scenario, clock: trio.testing.MockClock, schedule: object
) -> None:
    outcome = play(scenario, clock)
    report = outcome.report
    name = monitor_name(scenario)
    generated = report.generated
    if name is None:
        assert generated == 0
        assert report.discarded.get("monitor", 0) == 0
        return
    sink = outcome.sinks[name]
    lost = [u.record.id for u in report.undelivered if u.sink == name]
    delivered = [r.id for r in sink.delivered]
    # Ids -1, -2, ... in the order they were made; each either delivered, reported, or
    # (no room in the monitor's buffer) counted in discarded["monitor"].
    assert all(-generated <= i < 0 for i in [*delivered, *lost]), (generated, delivered, lost)
    assert not set(delivered) & set(lost)
    assert delivered == sorted(delivered, reverse=True)
    assert report.routed[name] == len(delivered) + len(lost)
    assert report.routed[name] + report.discarded.get("monitor", 0) == generated
    for record in sink.delivered:
        stats = record.payload
        assert isinstance(stats, PipelineStatistics), record
        assert record.raw is stats
        assert stats.received <= report.received
    # A run that drained fully (no immediate stop, no deadline: both cancel the monitor's
    # task) sent a final record with the final source figures.
    drain_timeout = scenario.settings.drain_timeout
    drained = (drain_timeout is None or report.drain_seconds < drain_timeout - EPS) and not any(
        s.immediate for s in outcome.stops_made
    )
    if drained and report.ok and not outcome.crash and not report.discarded.get("monitor"):
        final = sink.delivered[-1].payload
        assert final.received == report.received
        assert final.state == "draining"


@given(scenario=scenarios(), clock=clocks(), schedule=schedules())
def test_each_sink_sees_each_id_once_in_source_order_in_bounded_batches(
    scenario: Scenario, clock: trio.testing.MockClock, schedule: object
) -> None:
    outcome = play(scenario, clock)
    batch_size = scenario.settings.batch_size
    for name, sink in outcome.sinks.items():
        assert all(0 < size <= batch_size for size in sink.batch_sizes), (name, sink.batch_sizes)
        # Every write attempt, failed ones included: a batch is written once, in order,
        # never retried. (What was delivered is a subsequence of it, so it is in order too.)
        # The monitor's records count down from -1, in the order they were made; the
        # error sink's copies of failed writes come after the fact, in their own order.
        attempted = [
            abs(r.id) for call in sink.sink.calls for r in call.batch if not is_failure_copy(r)
        ]
        assert all(a < b for a, b in pairwise(attempted)), (name, attempted)


@given(scenario=scenarios(), clock=clocks(), schedule=schedules())
def test_failed_writes_are_reported_with_the_sink_error(
    scenario: Scenario, clock: trio.testing.MockClock, schedule: object
) -> None:
    outcome = play(scenario, clock)
    lost = undelivered_by_sink(outcome.report)
    for name, sink in outcome.sinks.items():
        raised = [u for u in lost.get(name, []) if u.reason.startswith("sink raised")]
        # A monitor's failed statistics records (negative ids) are discarded, not reported.
        data = sorted(i for i in sink.failed if i >= 0)
        assert sorted(u.record.id for u in raised) == data, name
        for u in raised:
            assert u.stage == "sink", u
            assert u.reason.startswith("sink raised SinkBoom:"), u


@given(
    scenario=scenarios(drain="finite"),
    clock=clocks(),
    schedule=schedules(),
)
def test_the_drain_deadline_bounds_the_run(
    scenario: Scenario, clock: trio.testing.MockClock, schedule: object
) -> None:
    outcome = play(scenario, clock)
    report = outcome.report
    drain_timeout = scenario.settings.drain_timeout
    assert drain_timeout is not None
    # The first Stop (or the source's end, or its failure) starts the drain clock.
    assert 0.0 <= report.drain_seconds <= drain_timeout + EPS, report.drain_seconds
    if outcome.stops_made:
        first = outcome.stops_made[0].at
        assert outcome.end <= first + drain_timeout + EPS, (outcome.end, first)
        assert outcome.end - report.drain_seconds <= first + EPS


@given(
    scenario=scenarios(
        plans=stop_plans(kinds=("immediate", "graceful_then_immediate")),
    ),
    clock=clocks(),
    schedule=schedules(),
)
def test_an_immediate_stop_ends_the_run_at_the_stop_time(
    scenario: Scenario, clock: trio.testing.MockClock, schedule: object
) -> None:
    outcome = play(scenario, clock)
    report = outcome.report
    at = next((s.at for s in outcome.stops_made if s.immediate), None)
    if at is None:
        return  # the run ended before the immediate stop was due
    assert abs(outcome.end - at) <= EPS, (outcome.end, at)
    # Nothing is delivered after it: everything still held was reported.
    for name, sink in outcome.sinks.items():
        assert all(t <= at + EPS for t in sink.delivered_at), (name, at, sink.delivered_at)
    # It cut the run short unless a drain deadline had already passed by then.
    stopped_at = outcome.end - report.drain_seconds
    drain_timeout = scenario.settings.drain_timeout
    if drain_timeout is None or stopped_at + drain_timeout > at + EPS:
        reasons = {u.reason for u in report.undelivered}
        assert DEADLINE not in reasons, (stopped_at, drain_timeout, at)
    # And it ends the run with its report, whatever the stages were doing at that instant.
    assert outcome.crash is None, repr(outcome.crash)


@given(scenario=scenarios(), clock=clocks(), schedule=schedules())
def test_every_sink_and_the_source_are_closed_exactly_once(
    scenario: Scenario, clock: trio.testing.MockClock, schedule: object
) -> None:
    outcome = play(scenario, clock)
    report = outcome.report
    # A run that ended before any deadline was due drained every sink to its end.
    drain_timeout = scenario.settings.drain_timeout
    before_deadline = drain_timeout is None or report.drain_seconds < drain_timeout - EPS
    drained = before_deadline and not any(s.immediate for s in outcome.stops_made)
    monitor = monitor_name(scenario)
    for name, sink in outcome.sinks.items():
        if not sink.spec.plain_function:
            assert sink.closes == 1, (name, sink.closes)
            # Flushed once after its last write; at most once if a deadline cut it off,
            # or (the monitor) the end of its grace after the data was done.
            if drained and name != monitor:
                assert sink.flushes == 1, (name, sink.flushes)
            else:
                assert sink.flushes <= 1, (name, sink.flushes)
    if outcome.source is not None:
        assert (outcome.source.opened, outcome.source.closed) == (1, 1)


@given(scenario=scenarios(), clock=clocks(), schedule=schedules())
def test_timed_out_iff_a_record_missed_the_deadline(
    scenario: Scenario, clock: trio.testing.MockClock, schedule: object
) -> None:
    outcome = play(scenario, clock)
    report = outcome.report
    reasons = {u.reason for u in report.undelivered}
    assert report.timed_out == bool(reasons & {DEADLINE, IMMEDIATE}), reasons
    for reason in reasons:
        assert reason in (DEADLINE, IMMEDIATE) or reason.startswith("sink raised SinkBoom:"), reason
    if DEADLINE in reasons:
        assert scenario.settings.drain_timeout is not None
    if IMMEDIATE in reasons:
        assert any(s.immediate for s in outcome.stops_made)


@given(
    scenario=scenarios(
        drain="unlimited",
        plans=stop_plans(kinds=("batch", "graceful")),
        sink_failures=False,
    ),
    clock=clocks(),
    schedule=schedules(),
)
def test_without_a_deadline_or_failures_everything_is_delivered(
    scenario: Scenario, clock: trio.testing.MockClock, schedule: object
) -> None:
    outcome = play(scenario, clock)
    report = outcome.report
    assert report.ok, report.undelivered[:5]
    assert not report.timed_out
    assert report.dispatched == report.received
    assert report.delivered == report.routed
    per_dest = model(outcome)
    for name, sink in business_sinks(outcome).items():
        assert [r.id for r in sink.delivered] == sorted(per_dest.get(name, {})), name
