"""Runs an endless pipeline with a slow sink under ``serve()``; run by tests/test_serve.py.

Usage: serve_child.py ignore|restore. Prints ``ready`` once up, ``returned`` once
``serve()`` has returned, then waits for a line on stdin (the program's wind-down)
before it exits with the report's status.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import trio

from trio_sink import (
    DeliveryReport,
    Pipeline,
    PipelineHandle,
    Record,
    Route,
    exit_status,
    serve,
)
from trio_sink.testing import ScriptedSource


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(ignore: bool) -> int:
    writing = trio.Event()

    async def slow(batch: Sequence[Record]) -> None:
        writing.set()
        await trio.sleep(10.0)

    pipeline = Pipeline(
        ScriptedSource(endless=lambda i: i, interval=0.001),
        routes=[Route("slow", slow)],
        drain_timeout=60.0,
    )
    reports: list[DeliveryReport] = []

    async def run(task_status: trio.TaskStatus[PipelineHandle]) -> None:
        reports.append(await serve(pipeline, ignore_after_stop=ignore, task_status=task_status))

    async with trio.open_nursery() as nursery:
        await nursery.start(run)
        await writing.wait()  # records are in the sink's hands: a Stop has work to do
        say("ready")
    say("returned")
    await trio.to_thread.run_sync(sys.stdin.readline)
    return int(exit_status(reports[0]))


if __name__ == "__main__":
    sys.exit(trio.run(main, sys.argv[1] == "ignore"))
