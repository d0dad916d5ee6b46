"""The seed scenario: 10,000 log lines, Stop at once, and a sink that takes 100 ms a record.

An engine that broke out of its sink loop at Stop counted 3,840 of these 10,000 lines.
trio_sink drains instead: every record is delivered, or, past the drain deadline,
reported by id.

    python examples/slower_sink.py                      # all 10,000 delivered
    python examples/slower_sink.py --drain-timeout 60   # the deadline: the rest, by id
    python examples/slower_sink.py --real-time --count 30 --progress 1
    python examples/slower_sink.py --quiet              # the summary only

It runs in virtual time by default (Trio's MockClock): 1,000 s of sink time take well
under a second. ``--real-time`` runs on the wall clock.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

import trio
import trio.testing

from trio_sink import DeliveryReport, Pipeline, Route
from trio_sink.sinks import NullSink, SlowSink

LEVELS = ("INFO", "WARN", "INFO", "ERROR", "DEBUG")


def lines(count: int) -> list[str]:
    return [
        f"2026-11-28 12:00:{i % 60:02d} {LEVELS[i % len(LEVELS)]} user={i % 97} msg=hello"
        for i in range(count)
    ]


def parse(line: str) -> dict[str, Any]:
    date, clock, level, *pairs = line.split(" ")
    fields: dict[str, Any] = {"date": date, "time": clock, "level": level}
    for pair in pairs:
        key, _, value = pair.partition("=")
        fields[key] = value
    return fields


async def run(count: int, drain_timeout: float | None, progress: float) -> DeliveryReport:
    slow = SlowSink(NullSink("slow_bkh"), per_record=0.1)
    pipeline = Pipeline(
        lines(count),
        parse=parse,
        routes=[Route("demo", slow)],
        drain_timeout=drain_timeout,
        progress_interval=progress,
    )
    return await pipeline.run()


def summarize(report: DeliveryReport, wall: float, virtual: bool) -> str:
    out = [
        f"received     {report.received:>8,}",
        f"delivered    {report.delivered['slow_bkh']:>8,}  (slow_bkh)",
        f"undelivered  {len(report.undelivered):>8,}",
        f"drain        {report.drain_seconds:>8,.1f} s"
        + (" of virtual time" if virtual else "")
        + f", {wall:.2f} s of wall time",
        f"timed out    {report.timed_out!s:>8}",
    ]
    if report.undelivered:
        ids = [u.record.id for u in report.undelivered]
        reasons = sorted({u.reason for u in report.undelivered})
        shown = ", ".join(map(str, ids[:8])) + (", ..." if len(ids) > 8 else "")
        out.append(f"  not delivered, by id: {shown} (ids {min(ids)}..{max(ids)})")
        out.append(f"  reason: {'; '.join(reasons)}; sink: slow_bkh")
    lost = report.received - report.delivered["slow_bkh"] - len(report.undelivered)
    out.append(f"unaccounted  {lost:>8,}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="lines to send")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=None,
        help="seconds the sink may drain after Stop (default: no limit)",
    )
    parser.add_argument("--real-time", action="store_true", help="run on the wall clock")
    parser.add_argument("--quiet", action="store_true", help="no drain log lines")
    parser.add_argument(
        "--progress",
        type=float,
        default=100.0,
        help="seconds between two drain.progress lines (default: 100)",
    )
    args = parser.parse_args()
    if not args.quiet:
        logging.basicConfig(
            level=logging.INFO, format="  log: %(name)s %(message)s", stream=sys.stdout
        )

    clock = None if args.real_time else trio.testing.MockClock(autojump_threshold=0)
    print(
        f"{args.count:,} lines -> SlowSink(NullSink('slow_bkh'), per_record=0.1),"
        f" drain_timeout={args.drain_timeout}"
    )
    start = time.perf_counter()
    report = trio.run(run, args.count, args.drain_timeout, args.progress, clock=clock)
    print(summarize(report, time.perf_counter() - start, virtual=clock is not None))
    report.check()


if __name__ == "__main__":
    main()
