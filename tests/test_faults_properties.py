"""Properties of sink faults: whatever the failures, retries, breakers and deadlines,
every record routed to a sink reached it or is in the rescue store, once; and a replay
into healthy sinks delivers the rest.

Each example runs in virtual time from t=0 (a clock drawn per example) with a rescue
store in a fresh directory. Half of the examples run the store's writes in worker
threads, as in production (under the autojump clock, virtual time then races ahead
while a thread runs: more drains end at their deadline); the other half run them
inline, which keeps virtual time exact.
"""

from __future__ import annotations

import math
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from strategies import schedules

from trio_sink import (
    CircuitBreaker,
    DeliveryReport,
    Pipeline,
    PipelineHandle,
    RescueStore,
    RetryPolicy,
    Route,
    replay,
)
from trio_sink.sinks import CollectSink
from trio_sink.testing import FlakySink, Pause, ScriptedSource, quiet_library_logs, running
from trio_sink.testing.strategies import clocks

RAW_BASE = 1000
"""The raw item of record ``x`` is ``RAW_BASE + x``: never mistaken for an id."""

# Dyadic durations: sums are exact, so events often fall on the same instant.
TIMES = st.sampled_from([0.0, 1 / 8, 1 / 4, 1 / 2, 1.0, 2.0, 3.0])
POSITIVE = st.sampled_from([1 / 8, 1 / 4, 1 / 2, 1.0, 2.0, 5.0])


@attrs.frozen
class SinkSpec:
    """One flaky sink: which writes fail, how, and its retry policy and breaker."""

    name: str
    fail_on: frozenset[int]
    outages: tuple[tuple[float, float], ...]
    probability: float
    seed: int
    permanent: frozenset[int]
    has_probe: bool
    retry: RetryPolicy | None
    breaker: CircuitBreaker | None

    def build(self) -> FlakySink:
        return FlakySink(
            name=self.name,
            fail_on=self.fail_on,
            outages=self.outages,
            probability=self.probability,
            seed=self.seed,
            permanent=self.permanent,
            has_probe=self.has_probe,
        )


@attrs.frozen
class Case:
    gaps: tuple[float, ...]
    """The pause before each item of the source: one record each."""
    batch_size: int
    capacity: int
    max_batch_size: int | None
    """Batches grow up to it (buffers then bounded in records); None: they never grow."""
    sinks: tuple[SinkSpec, ...]
    drain_timeout: float | None
    stop_at: float | None
    immediate: bool
    real_threads: bool


writes = st.integers(min_value=0, max_value=30)


@st.composite
def outages(draw: st.DrawFn) -> tuple[tuple[float, float], ...]:
    out = []
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        start = draw(st.sampled_from([0.0, 1 / 2, 1.0, 2.0, 4.0, 8.0]))
        length = draw(st.sampled_from([1 / 4, 1.0, 3.0, 10.0, math.inf]))
        out.append((start, start + length))
    return tuple(out)


retry_policies = st.one_of(
    st.none(),
    st.builds(
        RetryPolicy,
        attempts=st.integers(min_value=1, max_value=3),
        initial_backoff=TIMES,
        max_backoff=POSITIVE,
        jitter=st.sampled_from([0.0, 0.5, 1.0]),
    ),
)
some_breakers = st.builds(
    CircuitBreaker,
    failures=st.integers(min_value=1, max_value=3),
    probe_interval=POSITIVE,
)
breakers = st.one_of(st.none(), some_breakers)


@st.composite
def sink_specs(draw: st.DrawFn, name: str, *, breaker: bool = False) -> SinkSpec:
    return SinkSpec(
        name=name,
        fail_on=draw(st.frozensets(writes, max_size=6)),
        outages=draw(outages()),
        probability=draw(st.sampled_from([0.0, 0.25, 0.5, 0.75])),
        seed=draw(st.integers(min_value=0, max_value=2**16)),
        permanent=draw(st.frozensets(writes, max_size=2)),
        has_probe=draw(st.booleans()),
        retry=draw(retry_policies),
        breaker=draw(some_breakers if breaker else breakers),
    )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    n_sinks = draw(st.integers(min_value=1, max_value=3))
    n = draw(st.integers(min_value=0, max_value=30))
    return Case(
        gaps=tuple(draw(st.lists(TIMES, min_size=n, max_size=n))),
        batch_size=(batch_size := draw(st.integers(min_value=1, max_value=4))),
        capacity=draw(st.integers(min_value=0, max_value=3)),
        max_batch_size=draw(st.sampled_from([None, batch_size, 2 * batch_size, 8 * batch_size])),
        # Sink "a" always has a breaker: most of what is to check happens behind one.
        sinks=tuple(
            draw(sink_specs(name, breaker=name == "a")) for name in ("a", "b", "c")[:n_sinks]
        ),
        drain_timeout=draw(st.one_of(st.none(), TIMES, st.sampled_from([5.0, 20.0]))),
        # Mostly no stop (the source ends): recoveries and replays need time.
        stop_at=draw(st.one_of(st.none(), st.none(), TIMES, st.sampled_from([5.0, 10.0]))),
        immediate=draw(st.booleans()),
        real_threads=draw(st.booleans()),
    )


@contextmanager
def inline_threads(active: bool) -> Iterator[None]:
    """Run ``trio.to_thread.run_sync`` calls in the event loop, after a checkpoint (as
    ``tests/test_faults.py``'s fixture; a fixture cannot serve ``@given``)."""
    if not active:
        yield
        return

    async def run_sync(fn: Any, *args: Any, **kwargs: Any) -> Any:
        await trio.lowlevel.checkpoint()
        return fn(*args)

    saved = trio.to_thread.run_sync
    trio.to_thread.run_sync = run_sync  # type: ignore[assignment]
    try:
        yield
    finally:
        trio.to_thread.run_sync = saved


def script_of(case: Case) -> list[Any]:
    """The source's script: each item after its pause; item ``i`` is ``RAW_BASE + i``."""
    return [x for i, gap in enumerate(case.gaps) for x in (Pause(gap), RAW_BASE + i)]


def source_of(case: Case) -> ScriptedSource:
    return ScriptedSource(script_of(case))


def pipeline_of(
    case: Case, source: Any, sinks: list[FlakySink], store: RescueStore | None
) -> Pipeline:
    """The case's pipeline: ``source`` to every sink of the case, with its settings."""
    return Pipeline(
        source,
        routes=[Route("all", sinks)],
        batch_size=case.batch_size,
        max_batch_size=case.max_batch_size,
        batch_timeout=0.25,
        capacity=case.capacity,
        drain_timeout=case.drain_timeout,
        retry={s.name: s.retry for s in case.sinks if s.retry is not None},
        breaker={s.name: s.breaker for s in case.sinks if s.breaker is not None},
        rescue=store,
        progress_interval=None,
    )


async def play(
    case: Case, pipeline: Pipeline, started: list[PipelineHandle] | None = None
) -> PipelineHandle:
    """Run ``pipeline``, stopping it at the case's stop time, until it ends. Its handle
    goes in ``started`` as it starts (for a caller that cancels the run)."""
    async with running(pipeline) as handle:
        if started is not None:
            started.append(handle)
        if case.stop_at is not None:
            with trio.move_on_at(case.stop_at):
                await handle.wait()
            handle.stop(immediate=case.immediate)
        await handle.wait()
    return handle


async def run_case(case: Case, store: RescueStore) -> tuple[DeliveryReport, list[FlakySink]]:
    sinks = [spec.build() for spec in case.sinks]
    handle = await play(case, pipeline_of(case, source_of(case), sinks, store))
    report = handle.report
    assert report is not None
    return report, sinks


def check_case(case: Case, directory: Path, clock: trio.testing.MockClock) -> None:
    async def main() -> None:
        with RescueStore(directory, fsync="never") as store:
            report, sinks = await run_case(case, store)
            report.check()
            assert report.received == len(case.gaps) or case.stop_at is not None
            # The store never failed: every undelivered record is in it.
            assert "rescue" not in report.sink_errors
            assert all(u.stored for u in report.undelivered)
            stored: dict[str | None, list[int]] = {}
            for u in report.undelivered:
                stored.setdefault(u.sink, []).append(u.record.id)
            routed_ids = set(range(report.received)) - set(stored.get(None, []))
            for sink in sinks:
                name = sink.name
                mine = sorted(stored.get(name, []))
                # Every record routed to the sink reached it, once, or is stored.
                got = [r.id for r in sink.records]
                assert len(got) == len(set(got)) == report.delivered[name]
                assert report.delivered[name] + len(mine) == report.routed[name]
                assert set(got).isdisjoint(mine)
                assert set(got) | set(mine) == routed_ids
                assert all(r.raw == RAW_BASE + r.id for r in sink.records)
            store.seal()
            # This run's entries: the store's directory is fresh for each example, and
            # the parking writers stamp the run's id too.
            entries = [e for e in store.entries() if e.run == store.run]
            # As many entries as records the report says are stored.
            assert len(entries) == sum(1 for u in report.undelivered if u.stored)
            per_sink: dict[str | None, list[int]] = {}
            for e in entries:
                per_sink.setdefault(e.sink, []).append(e.id)
            assert {k: sorted(v) for k, v in per_sink.items()} == {
                k: sorted(v) for k, v in stored.items()
            }
            # A replay into healthy sinks delivers every stored record routed to one.
            targets = [CollectSink(spec.name) for spec in case.sinks]
            again = await replay(store, targets)
            again.check()
            for target, sink in zip(targets, sinks, strict=True):
                raws = Counter(r.raw - RAW_BASE for r in target.records)
                assert raws == Counter(stored.get(sink.name, []))
                assert (
                    report.delivered[sink.name] + again.delivered[sink.name]
                    == (report.routed[sink.name])
                )
            assert sorted(e.id for e in store.entries()) == sorted(stored.get(None, []))

    with quiet_library_logs(), inline_threads(not case.real_threads):
        trio.run(main, clock=clock)


@given(case=cases(), clock=clocks(), schedule=schedules())
def test_every_routed_record_is_delivered_or_stored_once_and_replay_delivers_the_rest(
    case: Case, clock: trio.testing.MockClock, schedule: object
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        check_case(case, Path(tmp), clock)


@pytest.mark.parametrize("real_threads", [False, True])
def test_an_outage_with_every_setting_at_once(real_threads: bool, tmp_path: Path) -> None:
    """One hand-written example of the property, with each mechanism in play."""
    case = Case(
        gaps=(1 / 4,) * 24,
        batch_size=2,
        capacity=1,
        max_batch_size=8,
        sinks=(
            SinkSpec(
                "a",
                frozenset({0}),
                ((1.0, 3.0),),
                0.0,
                0,
                frozenset({9}),
                True,
                RetryPolicy(attempts=2, initial_backoff=1 / 8),
                CircuitBreaker(failures=1, probe_interval=1.0),
            ),
            SinkSpec("b", frozenset(), ((0.0, math.inf),), 0.0, 0, frozenset(), False, None, None),
            SinkSpec(
                "c",
                frozenset(),
                ((2.0, 4.0),),
                0.25,
                7,
                frozenset(),
                False,
                None,
                CircuitBreaker(failures=2, probe_interval=1 / 2),
            ),
        ),
        drain_timeout=3.0,
        stop_at=None,
        immediate=False,
        real_threads=real_threads,
    )
    check_case(case, tmp_path / "rescue", trio.testing.MockClock(autojump_threshold=0))
