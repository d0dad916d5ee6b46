"""Properties of acknowledgements: whatever the sink failures, stores, stops, deadlines
and cancellations, the acknowledged items are a prefix of the produced ones, each one's
records are in every sink's real output or in the rescue store's real contents, and
(when an ack call cannot be cut short) the prefix reaches the first record that is
neither delivered nor stored.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from strategies import schedules
from test_faults_properties import (
    POSITIVE,
    RAW_BASE,
    Case,
    cases,
    inline_threads,
    pipeline_of,
    play,
    script_of,
)

from trio_sink import DeliveryReport, PipelineHandle, RescueEntry, RescueStore
from trio_sink._segment_log import SegmentLog
from trio_sink.testing import AckingSource, FlakySink, quiet_library_logs
from trio_sink.testing.strategies import clocks


@attrs.frozen
class AckCase:
    case: Case
    store: bool
    ack_delay: float
    """0: an ack call is no checkpoint, so nothing cuts it short."""
    cancel_at: float | None
    """When the run is cancelled from outside, if it is."""


@st.composite
def ack_cases(draw: st.DrawFn) -> AckCase:
    return AckCase(
        case=draw(cases()),
        store=draw(st.booleans()),
        ack_delay=draw(st.sampled_from([0.0, 0.0, 1 / 8, 1.0])),
        cancel_at=draw(st.one_of(st.none(), st.none(), POSITIVE, st.sampled_from([5.0, 10.0]))),
    )


async def run_case(
    ac: AckCase, store: RescueStore | None, undo: contextlib.ExitStack
) -> tuple[AckingSource, list[FlakySink], DeliveryReport, list[tuple[str, int]]]:
    case = ac.case
    source = AckingSource(script_of(case), ack_delay=ac.ack_delay)
    sinks = [spec.build() for spec in case.sinks]
    unsafe = check_each_call(source, sinks, store, undo)
    started: list[PipelineHandle] = []
    with trio.move_on_at(math.inf if ac.cancel_at is None else ac.cancel_at):
        await play(case, pipeline_of(case, source, sinks, store), started)
    report = started[0].report
    assert report is not None
    return source, sinks, report, unsafe


def check_each_call(
    source: AckingSource,
    sinks: list[FlakySink],
    store: RescueStore | None,
    undo: contextlib.ExitStack,
) -> list[tuple[str, int]]:
    """Before each ack call: every item's record is in each sink's output, or was
    written to the store (for that sink, or for no sink yet), by then."""
    written: set[tuple[str | None, int]] = set()
    if store is not None:
        # Every segment log of the store: its own, and the one each parking writer opens.
        write = SegmentLog.write

        def spy(log: SegmentLog, entries: Sequence[RescueEntry]) -> int:
            n = write(log, entries)
            written.update((e.sink, e.id) for e in entries[:n])
            return n

        SegmentLog.write = spy  # type: ignore[method-assign,assignment]
        undo.callback(setattr, SegmentLog, "write", write)
    ack = source.ack

    async def checked(items: Sequence[Any]) -> None:
        for sink in sinks:
            delivered = {r.id for r in sink.records}
            for raw in items:
                i = raw - RAW_BASE
                if i not in delivered and not {(sink.name, i), (None, i)} & written:
                    unsafe.append((sink.name, i))
        await ack(items)

    unsafe: list[tuple[str, int]] = []
    source.ack = checked  # type: ignore[method-assign]
    return unsafe


def check_case(ac: AckCase, directory: Path, clock: trio.testing.MockClock) -> None:
    async def main() -> None:
        store = RescueStore(directory, fsync="never") if ac.store else None
        try:
            with contextlib.ExitStack() as undo:
                source, sinks, report, unsafe = await run_case(ac, store, undo)
            stored: set[tuple[str | None, int]] = set()
            if store is not None:
                store.seal()
                stored = {(e.sink, e.id) for e in store.entries() if e.run == store.run}
        finally:
            if store is not None:
                store.close()
        acked = source.acked
        # No ack call covered a record that was neither delivered nor stored then.
        assert unsafe == []
        # A prefix of what the source produced, in consecutive calls, one at a time.
        assert acked == [RAW_BASE + i for i in range(len(acked))]
        assert len(acked) <= report.received
        assert report.acknowledged == len(acked)
        assert source.most_in_flight <= 1
        assert source.events.count("close") == 1
        assert source.events[-1] == "close"
        # Every acknowledged item's record is in each sink's output, or in the store:
        # for that sink, or for no sink yet (given up before routing).
        for sink in sinks:
            delivered = {r.id for r in sink.records}
            for i in range(len(acked)):
                assert i in delivered or {(sink.name, i), (None, i)} & stored, (sink.name, i)
        if ac.ack_delay == 0:
            # Nothing cut an ack short: every item up to the first record neither
            # delivered nor stored was acknowledged.
            lost = [u.record.id for u in report.undelivered if not u.stored]
            assert len(acked) == min([*lost, report.received])

    with quiet_library_logs(), inline_threads(not ac.case.real_threads):
        trio.run(main, clock=clock)


@given(ac=ack_cases(), clock=clocks(), schedule=schedules())
def test_acknowledged_items_are_a_safe_prefix(
    ac: AckCase, clock: trio.testing.MockClock, schedule: object
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        check_case(ac, Path(tmp), clock)
