"""One worker of a scale-out: a Pipeline under ``serve()`` reading the stream ``in`` as a
consumer of the group ``g``, writing each entry to the stream ``out`` with its worker's
name; run by tests/test_redis_scaleout.py and benchmarks/redis_scaleout.py.

Usage: redis_worker_child.py URL CONSUMER [CLAIM_IDLE]. Prints ``ready`` once the
pipeline is up; SIGTERM (or SIGINT) stops it gracefully: it drains, acknowledges, and
exits with the report's status.
"""

from __future__ import annotations

import sys
from typing import Any

import trio

from trio_sink import DeliveryReport, Pipeline, PipelineHandle, Route, exit_status, serve
from trio_sink.redis import RedisStreamSink, RedisStreamSource, StreamEntry, entry_parser

BATCH = 100


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(url: str, consumer: str, claim_idle: float) -> int:
    def parse(entry: StreamEntry) -> dict[str, Any]:
        # A small, realistic parse: validate and convert a field, tag the record.
        return {"n": int(entry.fields["n"]), "worker": consumer}

    source = RedisStreamSource(
        url, "in", group="g", consumer=consumer, batch=BATCH, block=0.2, claim_idle=claim_idle
    )
    sink = RedisStreamSink(url, "out")
    pipeline = Pipeline(
        source,
        parse=entry_parser(parse),
        routes=[Route("out", sink)],
        batch_size=BATCH,
        batch_timeout=0.01,
        capacity=4,
        drain_timeout=30.0,
    )
    reports: list[DeliveryReport] = []

    async def run(task_status: trio.TaskStatus[PipelineHandle]) -> None:
        reports.append(await serve(pipeline, task_status=task_status))

    async with source, sink, trio.open_nursery() as nursery:
        await nursery.start(run)
        say("ready")
    return int(exit_status(reports[0]))


if __name__ == "__main__":
    claim_idle = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
    sys.exit(trio.run(main, sys.argv[1], sys.argv[2], claim_idle))
