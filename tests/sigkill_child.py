"""Runs a pipeline whose only sink hangs, with a rescue store, until killed; run by
tests/test_pipeline_crash.py.

Usage: sigkill_child.py DIR. The source is endless; the sink never returns, so
backpressure holds the source once the sink's buffer is full. Then the child prints
``held RECEIVED`` (the records the run received) and waits to be killed.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import trio

from trio_sink import Pipeline, Record, RescueStore, Route
from trio_sink.testing import ScriptedSource

CAPACITY, BATCH = 4, 8


async def hung(batch: Sequence[Record]) -> None:
    await trio.sleep_forever()


async def main(directory: str) -> None:
    store = RescueStore(directory, run="child")
    pipeline = Pipeline(
        ScriptedSource(endless=lambda i: f"item {i}", interval=0.001),
        routes=[Route("hung", hung)],
        capacity=CAPACITY,
        batch_size=BATCH,
        batch_timeout=0.01,
        rescue=store,
    )
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(pipeline.run)
        # Until backpressure holds the source: a sub-batch waits for room in the full
        # buffer (counted as buffered already). The statistics have no event to wait on.
        while handle.statistics().sinks["hung"].buffered <= CAPACITY * BATCH:  # noqa: ASYNC110
            await trio.sleep(0.01)
        sys.stdout.write(f"held {handle.statistics().received}\n")
        sys.stdout.flush()
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
