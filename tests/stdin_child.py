"""Runs a pipeline over its standard input under ``serve()``; run by tests/test_sources.py.

Each delivered record is printed as ``delivered <line>`` at once; when the run ends, a
last line ``report <json>`` says what was undelivered (the lines) and the exit status.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

import trio

from trio_sink import Pipeline, Record, Route, exit_status, serve


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def printer(batch: Sequence[Record]) -> None:
    for r in batch:
        say(f"delivered {r.raw.rstrip()}")


async def main() -> int:
    pipeline = Pipeline(
        sys.stdin, routes=[Route("out", printer)], batch_timeout=0.1, drain_timeout=2.0
    )
    say("ready")
    report = await serve(pipeline)
    lost = [u.record.raw.rstrip() for u in report.undelivered]
    status = int(exit_status(report))
    say("report " + json.dumps({"received": report.received, "lost": lost, "status": status}))
    return status


if __name__ == "__main__":
    sys.exit(trio.run(main))
