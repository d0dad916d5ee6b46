"""``trio-sink top``: the live per-sink view of a running pipeline, read every second
from the statistics endpoint that ``trio-sink run --stat-addr`` serves.

On a terminal, a rich table redrawn in place; otherwise (or with ``--once``) plain
text tables. The delivered rate of a sink comes from two readings, on the run's own
clock (the snapshot's ``time``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import trio

from ._exceptions import ConfigError
from ._stat_address import StatAddress, parse_stat_address
from ._stat_client import EndpointError, EndpointGone, read_statistics

__all__ = ["COLUMNS", "READ_SECONDS", "header_line", "plain_table", "sink_rows", "top"]

READ_SECONDS = 5.0
"""The longest one reading may take before it counts as unanswered."""
COLUMNS = (
    "sink",
    "buffered",
    "in flight",
    "delivered",
    "rate/s",
    "busy",
    "blocking",
    "undelivered",
    "health",
)
"""``busy``: the share of the time the sink spent in writes between two readings;
``blocking``: the share the source stage spent waiting for room in its buffer."""

ENDED = 0
CANNOT_CONNECT = 1
USAGE = 2

Doc = Mapping[str, Any]


def header_line(doc: Doc) -> str:
    """The run as a whole: state, received, acknowledged, undelivered and discarded;
    during a drain, what is left and the time left. (Per sink, the table tells what
    was delivered: a record routed to two sinks is delivered twice.)"""
    source = doc.get("source") or {}
    parts = [str(doc.get("state", "?")), f"received {doc.get('received', 0)}"]
    if source.get("acknowledged") is not None:
        parts.append(f"acknowledged {source['acknowledged']}")
    parts.append(f"undelivered {doc.get('undelivered', 0)}")
    discarded = sum((doc.get("discarded") or {}).values())
    if discarded:
        parts.append(f"discarded {discarded}")
    if source.get("paused"):
        parts.append("source paused")
    line = "  ".join(parts)
    drain = doc.get("drain")
    if drain:
        left = drain.get("time_left")
        deadline = "no deadline" if left is None else f"{left:.1f} s left"
        line += (
            f"\ndraining ({drain.get('kind', '?')}): {drain.get('pending_left', 0)}"
            f" pending left, {deadline}"
        )
    return line


def sink_rows(doc: Doc, previous: Doc | None) -> list[list[str]]:
    """One row a sink, in :data:`COLUMNS` order; the rate is empty without a previous
    reading of the same run."""
    rows = []
    sinks: Mapping[str, Any] = doc.get("sinks") or {}
    before: Mapping[str, Any] = {} if previous is None else previous.get("sinks") or {}
    elapsed = 0.0 if previous is None else doc.get("time", 0.0) - previous.get("time", 0.0)
    wall = 0.0 if previous is None else doc.get("unix_time", 0.0) - previous.get("unix_time", 0.0)

    def share(key: str, s: Mapping[str, Any], name: str) -> str:
        if name not in before or wall <= 0:
            return ""
        grew = s.get(key, 0.0) - before[name].get(key, 0.0)
        return f"{min(max(grew / wall, 0.0), 1.0):.0%}"

    for name, s in sinks.items():
        delivered = s.get("delivered", 0)
        rate = ""
        if name in before and elapsed > 0 and delivered >= before[name].get("delivered", 0):
            per_second = (delivered - before[name].get("delivered", 0)) / elapsed
            rate = f"{per_second:.1f}" if per_second < 10 else f"{per_second:.0f}"
        health = str(s.get("health", "?"))
        if s.get("paused"):
            health += ", paused"
        if s.get("breaker_opened"):
            health += f" (breaker opened {s['breaker_opened']}x)"
        rows.append(
            [
                str(name),
                str(s.get("buffered", 0)),
                str(s.get("in_flight", 0)),
                str(delivered),
                rate,
                share("busy_seconds", s, name),
                share("blocked_seconds", s, name),
                str(s.get("undelivered", 0)),
                health,
            ]
        )
    return rows


def plain_table(doc: Doc, previous: Doc | None) -> str:
    """The header and the sinks as aligned plain text (no colour, no box)."""
    rows = [list(COLUMNS), *sink_rows(doc, previous)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [header_line(doc)]
    for row in rows:
        cells = [
            cell.ljust(w) if i in (0, len(COLUMNS) - 1) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _rich_table(address: StatAddress, doc: Doc, previous: Doc | None, note: str) -> Any:
    from rich.table import Table

    title = f"{address.url}  {header_line(doc)}"
    if note:
        title += f"\n{note}"
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(COLUMNS):
        table.add_column(column, justify="left" if i in (0, len(COLUMNS) - 1) else "right")
    for row in sink_rows(doc, previous):
        table.add_row(*row)
    return table


async def _read(address: StatAddress) -> dict[str, Any] | None:
    """One reading; None when none came within :data:`READ_SECONDS`."""
    with trio.move_on_after(READ_SECONDS):
        return await read_statistics(address)
    return None


def _last_seen(doc: Doc) -> str:
    return (
        f"last seen: {doc.get('state', '?')}, received {doc.get('received', 0)},"
        f" pending {doc.get('pending', 0)}, undelivered {doc.get('undelivered', 0)}"
    )


async def top(target: str, *, once: bool, interval: float, out: TextIO, err: TextIO) -> int:
    """Follow the endpoint at ``target`` until it goes away (0), or print one table
    with ``once``. 2: ``target`` is not an address; 1: nothing answers at the start,
    or what answers is not a run's statistics."""
    try:
        if not (math.isfinite(interval) and interval > 0):
            raise ConfigError(f"--interval must be a positive number of seconds, got {interval}")
        address = parse_stat_address(target, url=True)
    except ConfigError as exc:
        hint = ""
        if target.endswith(".toml"):
            hint = " (give the address that `trio-sink run CONFIG --stat-addr HOST:PORT` serves)"
        print(f"trio-sink top: {exc}{hint}", file=err)
        return USAGE
    try:
        doc = await _read(address)
    except (EndpointGone, EndpointError) as exc:
        print(f"trio-sink top: {exc}", file=err)
        return CANNOT_CONNECT
    if doc is None:
        print(f"trio-sink top: no answer from {address} in {READ_SECONDS:g} s", file=err)
        return CANNOT_CONNECT
    if once:
        return await _once(address, doc, interval, out)
    if not out.isatty():

        def show(doc: Doc, previous: Doc | None, note: str) -> None:
            text = plain_table(doc, previous) + (f"\n{note}" if note else "")
            print(text + "\n", file=out, flush=True)

        status, why = await _follow(address, doc, interval, show)
    else:
        from rich.console import Console
        from rich.live import Live

        with Live(console=Console(file=out), auto_refresh=False) as live:

            def redraw(doc: Doc, previous: Doc | None, note: str) -> None:
                live.update(_rich_table(address, doc, previous, note), refresh=True)

            status, why = await _follow(address, doc, interval, redraw)
    print(f"trio-sink top: {why}", file=err)  # once the live table is left as it was
    return status


async def _once(address: StatAddress, doc: dict[str, Any], interval: float, out: TextIO) -> int:
    # A second reading, for the rates; if the run ends meanwhile, the first one alone.
    await trio.sleep(interval)
    previous: dict[str, Any] | None = None
    try:
        second = await _read(address)
    except (EndpointGone, EndpointError):
        second = None
    if second is not None:
        previous, doc = doc, second
    print(plain_table(doc, previous), file=out, flush=True)
    return ENDED


async def _follow(
    address: StatAddress,
    doc: dict[str, Any],
    interval: float,
    show: Callable[[Doc, Doc | None, str], None],
) -> tuple[int, str]:
    """Show a reading every ``interval`` until the endpoint goes away (0) or stops
    being one (1), and say why; a reading unanswered leaves the last one shown, with
    a note."""
    previous: dict[str, Any] | None = None
    note = ""
    since = trio.current_time()
    while True:
        show(doc, previous, note)
        await trio.sleep(interval)
        try:
            reading = await _read(address)
        except EndpointGone:
            return ENDED, f"{address.url} went away: the run has ended ({_last_seen(doc)})"
        except EndpointError as exc:
            return CANNOT_CONNECT, str(exc)
        if reading is None:
            note = f"no answer for {trio.current_time() - since:.0f} s"
        else:
            previous, doc, note = doc, reading, ""
            since = trio.current_time()
