"""The cases that ``compare.py`` measures: the same work, done by different engines.

Every case reads :func:`workload.lines`, parses each line with :func:`workload.parse`,
and counts every record in one sink and the records with ``level == "ERROR"`` in another.
Every case returns ``(all, errors)``, the two sinks' counts. The plain loop and the
hand-written pipelines test ``level == "ERROR"`` inline (the batched ones in a list
comprehension over the batch), as the fastest honest hand-written code would; trio_sink
takes the test as a function, per record (``when=is_error``) or per batch
(``when_batch=error_flags``, the same list comprehension). Peer libraries are imported
inside their case, so that a case's process loads only what it uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any

import trio
from workload import error_flags, is_error, lines, parse, plain_loop

Counts = tuple[int, int]

CAPACITY = 128
"""Bound of every hand-written queue/channel (items, or batches in a batched case):
trio_sink's default ``capacity``."""
BATCH = 128
"""Batch size of the hand-written batched cases and bytewax: trio_sink's default."""


@dataclass(frozen=True)
class Case:
    name: str
    run: Callable[[int], Counts]
    gives_up: str
    """What the case gives up against trio_sink."""
    needs: str | None = None
    """The peer package the case imports, if any."""
    batch_size: int | None = None
    """For trio_sink cases: the batch size, for the chart."""
    imports: tuple[str, ...] = ()
    """Modules ``run`` imports, imported before the clock starts: a run's time excludes
    imports."""


# -- the plain loop -------------------------------------------------------------------


# -- trio_sink ----------------------------------------------------------------------


def trio_sink_run(
    n: int, batch_size: int | None = None, when_batch: bool = False, grow: int | None = None
) -> Counts:
    """Errors tested per record by ``when=is_error``, or per batch by
    ``when_batch=error_flags``; batches growing up to ``grow`` (``max_batch_size``)."""
    from trio_sink import Pipeline, Route
    from trio_sink.sinks import NullSink

    everything, errors = NullSink("all"), NullSink("errors")
    settings: dict[str, Any] = {} if batch_size is None else {"batch_size": batch_size}
    if grow is not None:
        settings["max_batch_size"] = grow
    errors_route = (
        Route("errors", errors, when_batch=error_flags)
        if when_batch
        else Route("errors", errors, when=is_error)
    )
    pipeline = Pipeline(
        lines(n),
        parse=parse,
        routes=[Route("all", everything), errors_route],
        drain_timeout=None,
        **settings,
    )
    report = trio.run(pipeline.run)
    report.check()
    assert report.ok, report
    return everything.count, errors.count


# -- hand-written asyncio: source -> Queue -> parse+route -> Queue per sink -> sink ------


async def _asyncio_pipeline(n: int, batch: int | None) -> Counts:
    """One record per queue item when ``batch`` is None, else lists of ``batch``.
    The end of the input travels as a ``None`` sentinel through every queue."""
    raw_q: asyncio.Queue[Any] = asyncio.Queue(CAPACITY)
    sink_qs: list[asyncio.Queue[Any]] = [asyncio.Queue(CAPACITY), asyncio.Queue(CAPACITY)]
    counts = [0, 0]

    async def source() -> None:
        it = lines(n)
        if batch is None:
            for line in it:
                await raw_q.put(line)
        else:
            while chunk := list(islice(it, batch)):
                await raw_q.put(chunk)
        await raw_q.put(None)

    async def parse_route() -> None:
        all_q, err_q = sink_qs
        while (item := await raw_q.get()) is not None:
            if batch is None:
                payload = parse(item)
                await all_q.put(payload)
                if payload["level"] == "ERROR":
                    await err_q.put(payload)
            else:
                payloads = list(map(parse, item))
                await all_q.put(payloads)
                if errs := [p for p in payloads if p["level"] == "ERROR"]:
                    await err_q.put(errs)
        for q in sink_qs:
            await q.put(None)

    async def sink(i: int) -> None:
        q = sink_qs[i]
        while (item := await q.get()) is not None:
            counts[i] += 1 if batch is None else len(item)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(source())
        tg.create_task(parse_route())
        tg.create_task(sink(0))
        tg.create_task(sink(1))
    return counts[0], counts[1]


def asyncio_per_record(n: int) -> Counts:
    return asyncio.run(_asyncio_pipeline(n, None))


def asyncio_batched(n: int) -> Counts:
    return asyncio.run(_asyncio_pipeline(n, BATCH))


# -- hand-written trio: the same shape, memory channels -------------------------------


async def _trio_pipeline(n: int, batch: int | None) -> Counts:
    """One record per channel message when ``batch`` is None, else lists of ``batch``.
    The end of the input is the closing of each send channel."""
    raw_send, raw_recv = trio.open_memory_channel[Any](CAPACITY)
    all_send, all_recv = trio.open_memory_channel[Any](CAPACITY)
    err_send, err_recv = trio.open_memory_channel[Any](CAPACITY)
    counts = [0, 0]

    async def source() -> None:
        async with raw_send:
            it = lines(n)
            if batch is None:
                for line in it:
                    await raw_send.send(line)
            else:
                while chunk := list(islice(it, batch)):
                    await raw_send.send(chunk)

    async def parse_route() -> None:
        async with raw_recv, all_send, err_send:
            async for item in raw_recv:
                if batch is None:
                    payload = parse(item)
                    await all_send.send(payload)
                    if payload["level"] == "ERROR":
                        await err_send.send(payload)
                else:
                    payloads = list(map(parse, item))
                    await all_send.send(payloads)
                    if errs := [p for p in payloads if p["level"] == "ERROR"]:
                        await err_send.send(errs)

    async def sink(i: int, recv: trio.MemoryReceiveChannel[Any]) -> None:
        async with recv:
            async for item in recv:
                counts[i] += 1 if batch is None else len(item)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(source)
        nursery.start_soon(parse_route)
        nursery.start_soon(sink, 0, all_recv)
        nursery.start_soon(sink, 1, err_recv)
    return counts[0], counts[1]


def trio_per_record(n: int) -> Counts:
    return trio.run(_trio_pipeline, n, None)


def trio_batched(n: int) -> Counts:
    return trio.run(_trio_pipeline, n, BATCH)


# -- peers --------------------------------------------------------------------------


def aiostream_run(n: int) -> Counts:
    """An operator chain on asyncio: iterate | map(parse) | action(count all)
    | filter(is_error) | action(count errors), pulled by one consumer."""
    from aiostream import pipe, stream

    counts = [0, 0]

    def parse_one(line: str, *_: str) -> dict[str, Any]:
        # aiostream's map takes f(item, *items_of_more_sources); there is one source here.
        return parse(line)

    def count_all(_: object) -> None:
        counts[0] += 1

    def count_error(_: object) -> None:
        counts[1] += 1

    async def main() -> None:
        xs = (
            stream.iterate(lines(n))
            | pipe.map(parse_one)
            | pipe.action(count_all)
            | pipe.filter(is_error)
            | pipe.action(count_error)
        )
        async with xs.stream() as streamer:
            async for _ in streamer:
                pass

    asyncio.run(main())
    return counts[0], counts[1]


def streamz_run(n: int) -> Counts:
    """A synchronous push graph: emit -> map(parse) -> sink(all), filter -> sink(errors)."""
    import streamz

    counts = [0, 0]

    def count_all(_: object) -> None:
        counts[0] += 1

    def count_error(_: object) -> None:
        counts[1] += 1

    source = streamz.Stream()
    parsed = source.map(parse)
    parsed.sink(count_all)
    parsed.filter(is_error).sink(count_error)
    emit = source.emit
    for line in lines(n):
        emit(line)
    return counts[0], counts[1]


def bytewax_run(n: int) -> Counts:
    """A bytewax dataflow, one worker in this process (``run_main``), input in batches
    of :data:`BATCH`, two counting sinks."""
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.outputs import DynamicSink, StatelessSinkPartition
    from bytewax.testing import TestingSource, run_main

    counts = [0, 0]

    class _Partition(StatelessSinkPartition[Any]):
        def __init__(self, i: int) -> None:
            self._i = i

        def write_batch(self, items: list[Any]) -> None:
            counts[self._i] += len(items)

    class _CountSink(DynamicSink[Any]):
        def __init__(self, i: int) -> None:
            self._i = i

        def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
            return _Partition(self._i)

    flow = Dataflow("bench")
    raw = op.input("lines", flow, TestingSource(lines(n), batch_size=BATCH))
    parsed = op.map("parse", raw, parse)
    op.output("all", parsed, _CountSink(0))
    op.output("errors", op.filter("is_error", parsed, is_error), _CountSink(1))
    run: Callable[[Dataflow], None] = run_main  # run_main is not annotated
    run(flow)
    return counts[0], counts[1]


NO_ACCOUNTING = "no per-record accounting"

CASES: list[Case] = [
    Case(
        "plain loop",
        plain_loop,
        "no concurrency: a slow sink stalls the loop; nothing to stop or drain",
    ),
    Case(
        "trio_sink (default: batch 128)",
        trio_sink_run,
        "(reference: lossless Stop/drain, every record delivered or reported)",
        batch_size=128,
        imports=("trio_sink", "trio_sink.sinks"),
    ),
    Case(
        "trio_sink (when_batch)",
        partial(trio_sink_run, when_batch=True),
        "(as default; the errors route tests a whole batch in one list comprehension)",
        imports=("trio_sink", "trio_sink.sinks"),
    ),
    Case(
        "trio_sink (max_batch_size 1024)",
        partial(trio_sink_run, grow=1024),
        "(as default; batches grow from 128 to 1024 while full, buffers bounded in records)",
        imports=("trio_sink", "trio_sink.sinks"),
    ),
    Case(
        "trio_sink (when_batch, max_batch_size 1024)",
        partial(trio_sink_run, when_batch=True, grow=1024),
        "(as the two above together)",
        imports=("trio_sink", "trio_sink.sinks"),
    ),
    *(
        Case(
            f"trio_sink batch {size}",
            partial(trio_sink_run, batch_size=size),
            "(as default)",
            batch_size=size,
            imports=("trio_sink", "trio_sink.sinks"),
        )
        for size in (1, 16, 1024)
    ),
    Case(
        "asyncio, Queue, per record",
        asyncio_per_record,
        f"drops queued records at Stop (cancel), silently; {NO_ACCOUNTING}",
    ),
    Case(
        f"asyncio, Queue, batch {BATCH}",
        asyncio_batched,
        f"drops queued batches at Stop (cancel), silently; {NO_ACCOUNTING}; no batch timeout",
    ),
    Case(
        "trio, channel, per record",
        trio_per_record,
        f"drops buffered records at Stop (cancel), silently; {NO_ACCOUNTING}",
    ),
    Case(
        f"trio, channel, batch {BATCH}",
        trio_batched,
        f"drops buffered batches at Stop (cancel), silently; {NO_ACCOUNTING}; no batch timeout",
    ),
    Case(
        "aiostream (asyncio)",
        aiostream_run,
        f"one pull chain, sinks inline: no sink tasks or buffers; {NO_ACCOUNTING}",
        needs="aiostream",
        imports=("aiostream",),
    ),
    Case(
        "streamz (sync push)",
        streamz_run,
        f"synchronous push, sinks inline: no concurrency, no Stop/drain; {NO_ACCOUNTING}",
        needs="streamz",
        imports=("streamz",),
    ),
    Case(
        "bytewax (1 worker)",
        bytewax_run,
        "Rust dataflow runtime; recovery by replay from snapshots (off here), "
        f"no drain deadline; {NO_ACCOUNTING}",
        needs="bytewax",
        imports=("bytewax.operators", "bytewax.dataflow", "bytewax.outputs", "bytewax.testing"),
    ),
]


def by_name(name: str) -> Case:
    for case in CASES:
        if case.name == name:
            return case
    raise KeyError(name)


def stamped(seconds: float, interval: float) -> Iterable[float]:
    """Not a source itself: the schedule of :func:`paced`, ``seconds / interval`` items."""
    return [i * interval for i in range(round(seconds / interval))]


async def paced(seconds: float, interval: float, line: str) -> AsyncIterator[tuple[float, str]]:
    """A trio async source: ``(time.perf_counter(), line)`` every ``interval`` seconds."""
    import time

    start = trio.current_time()
    for offset in stamped(seconds, interval):
        await trio.sleep_until(start + offset)
        yield time.perf_counter(), line
