"""Drain cost and low-load latency of trio_sink, in real time (``time.perf_counter``).

- :func:`drain_seconds`: a pipeline on an async source that never ends; Stop is called
  either once the sinks have delivered everything (empty backlog), or while ``backlog``
  records wait in the "all" sink's channel behind a write held by a gate (released at
  Stop; the sink itself is fast). Measured: from ``handle.stop()`` to ``handle.wait()``.
- :func:`latencies`: one record every ``interval`` seconds; each raw item carries the
  ``time.perf_counter()`` of its making, and the "all" sink reads it on delivery.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import trio
from cases import CAPACITY, paced
from workload import is_error, lines, parse

from trio_sink import Pipeline, PipelineHandle, Record, Route
from trio_sink.sinks import NullSink

LINE = "2026-11-28 12:00:00 INFO user=42 msg=hello"


class _GatedSink:
    """Counts records; each write first waits for ``gate`` (set from the start when the
    backlog is to be empty)."""

    name = "all"

    def __init__(self, gate: trio.Event, records: int) -> None:
        self.gate = gate
        self.count = 0
        self.records = records
        self.all_delivered = trio.Event()

    async def write(self, batch: Sequence[Record]) -> None:
        await self.gate.wait()
        self.count += len(batch)
        if self.count >= self.records:
            self.all_delivered.set()


async def _drain_once(records: int, backlog: bool, batch_timeout: float) -> float:
    gate, produced = trio.Event(), trio.Event()
    if not backlog:
        gate.set()
    sink = _GatedSink(gate, records)

    async def source() -> AsyncIterator[str]:
        for line in lines(records):
            yield line
        produced.set()
        await trio.sleep_forever()

    pipeline = Pipeline(
        source(),
        parse=parse,
        routes=[Route("all", sink), Route("errors", NullSink("errors"), when=is_error)],
        capacity=max(CAPACITY, records // 128 + 2),
        batch_timeout=batch_timeout,
        drain_timeout=None,
    )
    async with trio.open_nursery() as nursery:
        handle: PipelineHandle = await nursery.start(pipeline.run)
        await produced.wait()
        # Let the last partial batch wait out batch_timeout and reach the channel.
        await trio.sleep(batch_timeout + 0.05)
        if not backlog:
            await sink.all_delivered.wait()
        start = time.perf_counter()
        handle.stop()
        gate.set()
        report = await handle.wait()
        elapsed = time.perf_counter() - start
    report.check()
    assert report.ok, report
    assert sink.count == records, sink.count
    return elapsed


def drain_seconds(
    records: int, backlog: bool, repeats: int, batch_timeout: float = 0.3
) -> list[float]:
    """``repeats`` runs, each a fresh ``trio.run``; seconds from Stop to the end of each."""
    return [trio.run(_drain_once, records, backlog, batch_timeout) for _ in range(repeats)]


# -- latency --------------------------------------------------------------------------


class _LatencySink:
    name = "all"

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def write(self, batch: Sequence[Record]) -> None:
        now = time.perf_counter()
        self.seconds.extend(now - r.raw[0] for r in batch)


def _parse_stamped(item: tuple[float, str]) -> dict[str, Any]:
    return parse(item[1])


async def _trio_sink_latency(
    seconds: float, interval: float, batch_timeout: float | None
) -> list[float]:
    sink = _LatencySink()
    settings: dict[str, Any] = {} if batch_timeout is None else {"batch_timeout": batch_timeout}
    pipeline = Pipeline(
        paced(seconds, interval, LINE),
        parse=_parse_stamped,
        routes=[Route("all", sink), Route("errors", NullSink("errors"), when=is_error)],
        drain_timeout=None,
        **settings,
    )
    report = await pipeline.run()
    report.check()
    assert report.ok, report
    return sink.seconds


async def _trio_channel_latency(seconds: float, interval: float) -> list[float]:
    """The hand-written trio pipeline of ``cases.py``, one record per message."""
    raw_send, raw_recv = trio.open_memory_channel[tuple[float, str]](CAPACITY)
    all_send, all_recv = trio.open_memory_channel[tuple[float, dict[str, Any]]](CAPACITY)
    out: list[float] = []

    async def source() -> None:
        async with raw_send:
            async for item in paced(seconds, interval, LINE):
                await raw_send.send(item)

    async def parse_route() -> None:
        async with raw_recv, all_send:
            async for stamp, line in raw_recv:
                await all_send.send((stamp, parse(line)))

    async def sink() -> None:
        async with all_recv:
            async for stamp, _ in all_recv:
                out.append(time.perf_counter() - stamp)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(source)
        nursery.start_soon(parse_route)
        nursery.start_soon(sink)
    return out


LATENCY_CASES = {
    "trio_sink (default: batch_timeout 0.3 s)": None,
    "trio_sink, batch_timeout 0.01 s": 0.01,
    "trio, channel, per record": "channel",
}


def latencies(case: str, seconds: float, interval: float = 0.01) -> list[float]:
    how = LATENCY_CASES[case]
    if how == "channel":
        return trio.run(_trio_channel_latency, seconds, interval)
    assert how is None or isinstance(how, float)
    return trio.run(_trio_sink_latency, seconds, interval, how)
