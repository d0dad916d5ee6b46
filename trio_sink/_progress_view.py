"""What ``trio-sink run`` shows: a live table on a terminal, and the report at the end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TextIO

import trio

from ._handle import PipelineHandle
from ._report import DeliveryReport
from ._stats import PipelineStatistics

__all__ = ["ProgressView", "report_lines"]

REFRESH = 0.5
"""Seconds between two refreshes of the live table."""


class ProgressView:
    """A live table of the run's statistics, drawn with rich on ``stream`` when it is a
    terminal; nothing otherwise (the log lines tell the progress there)."""

    def __init__(self, stream: TextIO, *, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled and stream.isatty()
        self._scope = trio.CancelScope()

    async def follow(self, handle: PipelineHandle) -> None:
        if not self.enabled:
            return
        from rich.console import Console
        from rich.live import Live

        self._scope = trio.CancelScope()
        console = Console(file=self.stream)
        last: tuple[float, dict[str, int]] | None = None
        with self._scope, Live(console=console, refresh_per_second=4, transient=True) as live:
            while True:
                stats = handle.statistics()
                live.update(_table(stats, last))
                last = (stats.time, {n: s.delivered for n, s in stats.sinks.items()})
                await trio.sleep(REFRESH)

    def stop(self) -> None:
        self._scope.cancel()


def _table(stats: PipelineStatistics, last: tuple[float, dict[str, int]] | None) -> Any:
    from rich.table import Table

    source = stats.source
    title = f"{stats.state}: received {stats.received}"
    if source.acknowledged is not None:
        title += f", acknowledged {source.acknowledged}"
    if stats.drain is not None:
        left = stats.drain.time_left
        title += f"; draining: {stats.drain.pending_left} pending"
        if left is not None:
            title += f", {left:.1f} s to the deadline"
    table = Table(title=title, title_justify="left")
    for column in ("sink", "delivered", "rate/s", "buffered", "in flight", "undelivered", "health"):
        table.add_column(column, justify="left" if column in ("sink", "health") else "right")
    for name, s in stats.sinks.items():
        rate = ""
        if last is not None and stats.time > last[0]:
            rate = f"{(s.delivered - last[1].get(name, 0)) / (stats.time - last[0]):.0f}"
        table.add_row(
            name,
            str(s.delivered),
            rate,
            str(s.buffered),
            str(s.in_flight),
            str(s.undelivered),
            s.health,
        )
    return table


def report_lines(report: DeliveryReport, status: int) -> Iterator[str]:
    """The report, as plain lines: the counts per sink, then the outcome."""
    yield f"received {report.received}" + (
        "" if report.acknowledged is None else f", acknowledged {report.acknowledged}"
    )
    undelivered: dict[str | None, int] = {}
    for u in report.undelivered:
        undelivered[u.sink] = undelivered.get(u.sink, 0) + 1
    width = max((len(n) for n in report.routed), default=4)
    for name, routed in report.routed.items():
        yield (
            f"  {name:<{width}}  routed {routed:>8}  delivered {report.delivered[name]:>8}"
            f"  undelivered {undelivered.get(name, 0):>6}"
        )
    for group, n in report.discarded.items():
        if n:
            yield f"  discarded from {group}: {n}"
    if undelivered.get(None):
        yield f"  undelivered before routing: {undelivered[None]}"
    stored = sum(1 for u in report.undelivered if u.stored)
    if report.undelivered:
        yield f"{len(report.undelivered)} undelivered ({stored} kept in the rescue store)"
    for key, text in report.sink_errors.items():
        yield f"  {key}: {text}"
    yield f"exit status {status}"
