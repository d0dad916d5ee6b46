"""What the in-process benchmarks report: ratio summaries, the machine, JSON files."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
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


def write_json(path: Path, figures: dict[str, Any]) -> None:
    path.write_text(json.dumps({**figures, "environment": machine()}, indent=1) + "\n")
    print(f"wrote {path}")
