"""Runs a pipeline whose only sink always fails, with a rescue store, until killed; run
by tests/test_pipeline_crash.py.

Usage: pipeline_crash_child.py DIR BATCH_SIZE

The source is endless (one item a millisecond, on the real clock); every batch fails,
so the sink's task stores each one at once. A watcher task prints ``stored N`` each
time the store's count of written entries has grown to N: a line printed means those
entries reached the OS, so a SIGKILL afterwards cannot take them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import trio

from trio_sink import Pipeline, Record, RescueStore, Route
from trio_sink.testing import ScriptedSource


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def always_fails(batch: Sequence[Record]) -> None:
    raise OSError("sink down")


async def announce(store: RescueStore) -> None:
    """Print ``stored N`` whenever the store's count of written entries has grown."""
    said = 0
    while True:
        written = store.statistics().written
        if written > said:
            said = written
            say(f"stored {written}")
        await trio.sleep(0.001)


async def main(directory: str, batch_size: int) -> None:
    store = RescueStore(directory, fsync="never", run="child")
    source = ScriptedSource(endless=lambda i: f"item {i}", interval=0.001)
    pipeline = Pipeline(
        source,
        routes=[Route("r", always_fails)],
        batch_size=batch_size,
        batch_timeout=0.01,
        rescue=store,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(announce, store)
        await pipeline.run()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]))
