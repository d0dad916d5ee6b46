"""What the benchmarks report: ratio summaries, the machine, JSON files, and the marked
sections of RESULTS.md that scripts other than compare.py keep."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import re
import statistics
import sys
from pathlib import Path
from typing import Any


def ratio_summary(ratios: list[float]) -> dict[str, Any]:
    """The median of per-round ratios, with the interquartile range and every ratio."""
    if len(ratios) > 1:
        q1, median, q3 = statistics.quantiles(ratios, n=4)
        median = statistics.median(ratios)
    else:
        q1 = median = q3 = ratios[0]
    return {"median": median, "q1": q1, "q3": q3, "rounds": ratios}


def ratio_text(summary: dict[str, Any]) -> str:
    return f"{summary['median']:.3f}x (IQR {summary['q1']:.3f}-{summary['q3']:.3f})"


def machine() -> dict[str, Any]:
    """Where and when the figures were taken, for the JSON files."""

    def version(pkg: str) -> str:
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    try:
        load: list[float] | None = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "date": f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}",
        "command": " ".join(["python", *sys.argv]),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": {p: version(p) for p in ("trio_sink", "trio")},
        "load_average_at_end": load,
    }


def run_text(figures: dict[str, Any]) -> str:
    """When and how the figures of a JSON file (of ``write_json``) were taken."""
    env = figures.get("environment") or machine()
    load = env.get("load_average_at_end")
    at_end = f", load average at the end {load[0]:.1f}" if load else ""
    return (
        f"{env['date']}, `{env['command']}` (N = {figures['n']:,}, {figures['rounds']} rounds"
        f"{at_end})"
    )


def write_json(path: Path, figures: dict[str, Any]) -> None:
    path.write_text(json.dumps({**figures, "environment": machine()}, indent=1) + "\n")
    print(f"wrote {path}")


RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
"""The file compare.py writes; other scripts keep a marked section each in it."""

SECTION = re.compile(r"^<!-- ([\w.-]+): begin -->$.*?^<!-- \1: end -->$", re.M | re.S)
"""A marked section, ``<!-- NAME: begin -->`` to ``<!-- NAME: end -->``, each marker on a
line of its own."""


def markers(name: str) -> tuple[str, str]:
    """The begin and end markers of the section ``name``."""
    if not re.fullmatch(r"[\w.-]+", name):
        raise ValueError(f"not a section name: {name!r}")
    return f"<!-- {name}: begin -->", f"<!-- {name}: end -->"


def marked_sections(text: str) -> list[str]:
    """Every marked section of ``text``, markers included, in their order."""
    return [m.group(0) for m in SECTION.finditer(text)]


def replace_section(path: Path, name: str, lines: list[str]) -> None:
    """Put ``lines`` between the markers of the section ``name`` in the file at ``path``:
    in place of that section if the file has it, else at its end (the file is made if
    there is none). The rest of the file is left as it is."""
    begin, end = markers(name)
    block = "\n".join([begin, *lines, end])
    old = path.read_text() if path.exists() else ""
    match = re.search(rf"^{re.escape(begin)}$.*?^{re.escape(end)}$", old, re.M | re.S)
    if match:
        new = old[: match.start()] + block + old[match.end() :]
    elif old.strip():
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    else:
        new = block + "\n"
    path.write_text(new)
