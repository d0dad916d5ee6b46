"""The seed scenario, for ``trio-sink demo`` and examples/slower_sink.py: log lines, Stop
at once (the source ends), and a sink that takes 100 ms a record.

An engine that broke out of its sink loop at Stop counted 3,840 of 10,000 such lines;
a pipeline drains instead: every record is delivered or, past the drain deadline,
reported by id.
"""

from __future__ import annotations

from typing import Any

from ._pipeline import Pipeline
from ._report import DeliveryReport
from ._route import Route
from .sinks import NullSink, SlowSink

__all__ = ["SINK", "heading", "lines", "parse", "run_demo", "summarize"]

SINK = "slow_bkh"
"""The name of the slow sink (a ``NullSink`` behind a ``SlowSink``)."""

PER_RECORD = 0.1
"""Seconds the sink takes a record."""

_LEVELS = ("INFO", "WARN", "INFO", "ERROR", "DEBUG")


def lines(count: int) -> list[str]:
    """``count`` log lines, the same each time."""
    return [
        f"2026-11-28 12:00:{i % 60:02d} {_LEVELS[i % len(_LEVELS)]} user={i % 97} msg=hello"
        for i in range(count)
    ]


def parse(line: str) -> dict[str, Any]:
    """A line's date, time and level, and its ``key=value`` pairs."""
    date, clock, level, *pairs = line.split(" ")
    fields: dict[str, Any] = {"date": date, "time": clock, "level": level}
    for pair in pairs:
        key, _, value = pair.partition("=")
        fields[key] = value
    return fields


async def run_demo(count: int, drain_timeout: float | None, progress: float) -> DeliveryReport:
    """Run ``count`` lines to the slow sink; the source ends at once, so nearly all the
    time is the drain's. Takes the sink's time on the current Trio clock (a
    ``MockClock`` with autojump: no real time)."""
    slow = SlowSink(NullSink(SINK), per_record=PER_RECORD)
    pipeline = Pipeline(
        lines(count),
        parse=parse,
        routes=[Route("demo", slow)],
        drain_timeout=drain_timeout,
        progress_interval=progress,
    )
    return await pipeline.run()


def heading(count: int, drain_timeout: float | None) -> str:
    """What is about to run, in one line."""
    return (
        f"{count:,} lines -> SlowSink(NullSink({SINK!r}), per_record={PER_RECORD}),"
        f" drain_timeout={drain_timeout}"
    )


def summarize(report: DeliveryReport, wall: float, virtual: bool) -> str:
    """The report in a few lines: received, delivered, undelivered (the first ids, and
    their range), the drain's time, and how many records are unaccounted for (0)."""
    delivered = report.delivered.get(SINK, 0)
    out = [
        f"received     {report.received:>8,}",
        f"delivered    {delivered:>8,}  ({SINK})",
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
        out.append(f"  reason: {'; '.join(reasons)}; sink: {SINK}")
    lost = report.received - delivered - len(report.undelivered)
    out.append(f"unaccounted  {lost:>8,}")
    return "\n".join(out)
