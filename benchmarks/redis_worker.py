"""One worker of benchmarks/redis_scaleout.py: a Pipeline under ``serve()`` reading the
stream ``in`` as a consumer of the group ``g`` and writing what its parse makes of each
entry to the stream ``out``.

Usage: redis_worker.py URL CONSUMER BATCH. Prints ``ready`` once up; SIGTERM stops it
(it drains and acknowledges).
"""

from __future__ import annotations

import re
import sys
from typing import Any

import trio

from trio_sink import DeliveryReport, Pipeline, PipelineHandle, Route, exit_status, serve
from trio_sink.redis import RedisStreamSink, RedisStreamSource, StreamEntry, entry_parser

REQUEST = re.compile(r"(?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}) (?P<ms>\d+)ms")


def parse(entry: StreamEntry) -> dict[str, Any]:
    """An access-log line, as services write them to a stream: its parts, typed."""
    fields = entry.fields
    match = REQUEST.fullmatch(fields["msg"])
    if match is None:
        raise ValueError(f"not a request: {fields['msg']!r}")
    return {
        "host": fields["host"],
        "method": match["method"],
        "path": match["path"],
        "status": int(match["status"]),
        "ms": int(match["ms"]),
        "slow": int(match["ms"]) > 500,
    }


async def main(url: str, consumer: str, batch: int) -> int:
    source = RedisStreamSource(url, "in", group="g", consumer=consumer, batch=batch, block=0.2)
    sink = RedisStreamSink(url, "out")
    pipeline = Pipeline(
        source,
        parse=entry_parser(parse),
        routes=[Route("out", sink)],
        batch_size=batch,
        batch_timeout=0.01,
        capacity=8,
    )
    reports: list[DeliveryReport] = []

    async def run(task_status: trio.TaskStatus[PipelineHandle]) -> None:
        reports.append(await serve(pipeline, task_status=task_status))

    async with source, sink, trio.open_nursery() as nursery:
        await nursery.start(run)
        print("ready", flush=True)
    return int(exit_status(reports[0]))


if __name__ == "__main__":
    sys.exit(trio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3])))
