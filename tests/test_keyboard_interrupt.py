"""Ctrl-C outside serve(): a real SIGINT at hundreds of points inside trio_sink's code.

``trio.run(pipeline.run)`` is the README's batch usage, where a Ctrl-C raises
KeyboardInterrupt wherever the code happens to be. A trace function counts the line
events of trio_sink's own modules and, at the Nth, sends the process a real SIGINT
(``signal.raise_signal``). Whatever N: the run's report passes ``check()``, every record
is delivered to a sink or reported for it (never both, never neither), and nothing
delivered is left in the rescue store.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import trio

import trio_sink
from trio_sink import DeliveryReport, Pipeline, PipelineHandle, Record, RescueStore, Route
from trio_sink.sinks import CollectSink

PACKAGE = str(Path(trio_sink.__file__).parent)


class SlowCollect:
    """Collects, with a checkpoint a write, as a real sink has."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.records: list[Record] = []

    async def write(self, batch: Sequence[Record]) -> None:
        await trio.lowlevel.checkpoint()
        self.records.extend(batch)


def _pipeline(store: RescueStore | None) -> tuple[Pipeline, list[Any]]:
    sinks: list[Any] = [SlowCollect("a"), CollectSink("b")]
    pipeline = Pipeline(
        range(40),
        parse=lambda x: x,
        routes=[Route("all", sinks[0]), Route("odd", sinks[1], when=lambda p: p % 2 == 1)],
        batch_size=4,
        capacity=2,
        rescue=store,
    )
    return pipeline, sinks


def _run(pipeline: Pipeline, interrupt_at: int | None) -> tuple[DeliveryReport | None, int]:
    """Run ``pipeline``; with ``interrupt_at``, send a SIGINT at that line event of
    trio_sink's code. Returns the report and how many line events there were."""
    handles: list[PipelineHandle] = []
    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if not frame.f_code.co_filename.startswith(PACKAGE):
            return None
        if event == "line":
            count += 1
            if count == interrupt_at:
                signal.raise_signal(signal.SIGINT)
        return tracer

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            handles.append(await nursery.start(pipeline.run))

    sys.settrace(tracer)
    try:
        trio.run(main)
    except BaseException as exc:
        # A KeyboardInterrupt, alone or in the groups of the nurseries it crossed; any
        # other exception (an AccountingError of the strict ledger) fails the test.
        if not _only_interrupts(exc):
            raise
    finally:
        sys.settrace(None)
    return (handles[0].report if handles else None), count


def _only_interrupts(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_interrupts(e) for e in exc.exceptions)
    return isinstance(exc, (KeyboardInterrupt, trio.Cancelled))


def _check(report: DeliveryReport, sinks: list[Any], store: RescueStore | None) -> None:
    report.check()
    reported = {(u.sink, u.record.id) for u in report.undelivered}
    for sink in sinks:
        delivered = [r.id for r in sink.records]
        assert len(delivered) == len(set(delivered)), sink.name  # each delivered once
        both = {(sink.name, i) for i in delivered} & reported
        assert not both, f"delivered and reported: {sorted(both)}"
        assert len(delivered) == report.delivered[sink.name]
    if store is not None:
        store.seal()
        with RescueStore(store.path) as reader:
            stored = {(e.sink, e.id) for e in reader.entries()}
        delivered_pairs = {(s.name, r.id) for s in sinks for r in s.records}
        assert not stored & delivered_pairs, "delivered records left in the store"
        assert {(u.sink, u.record.id) for u in report.undelivered if u.stored} <= stored


def _points(total: int, most: int) -> Iterator[int]:
    step = max(1, total // most)
    yield from range(1, total + 1, step)


@pytest.mark.parametrize("with_store", [False, True])
def test_a_sigint_anywhere_in_trio_sink_keeps_the_books(with_store: bool, tmp_path: Path) -> None:
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("Trio delivers KeyboardInterrupt only with Python's default handler")
    pipeline, _ = _pipeline(None)
    _, total = _run(pipeline, None)
    assert total > 1000
    tried = interrupted = 0
    for n in _points(total, 300):
        store = RescueStore(tmp_path / f"store-{n}") if with_store else None
        try:
            pipeline, sinks = _pipeline(store)
            report, _ = _run(pipeline, n)
            tried += 1
            if report is None or (report.ok and report.received == 40):
                continue  # interrupted before the run began, or after it ended
            interrupted += 1
            _check(report, sinks, store)
        finally:
            if store is not None:
                store.close()
    assert tried >= 250
    assert interrupted >= tried // 2
