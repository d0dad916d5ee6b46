"""Helpers shared by the rescue store's tests: entries, filled stores, the command line
run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio_sink
from trio_sink import RescueEntry, RescueStore

# A subprocess imports the trio_sink under test, not whichever one is installed.
PROJECT = str(Path(trio_sink.__file__).parent.parent)


def entry(i: int, sink: str | None = "db", **fields: Any) -> RescueEntry:
    values: dict[str, Any] = {
        "id": i,
        "raw": f"raw {sink} {i}",
        "payload": {"n": i, "sink": sink},
        "sink": sink,
        "stage": "sink",
        "reason": "sink raised OSError: down",
        "error": "OSError: down",
        "time": 1_700_000_000.0,
        "run": "run-1",
    }
    values.update(fields)
    return RescueEntry(**values)


def fill(path: Path, entries: Sequence[RescueEntry], **kwargs: Any) -> None:
    with RescueStore(path, **kwargs) as store:
        store.write(entries)


def seg_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.startswith("seg-"))


def quarantine_files(path: Path) -> dict[str, bytes]:
    q = path / "quarantine"
    if not q.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(q.iterdir())}


def child_env() -> dict[str, str]:
    pythonpath = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [PROJECT, pythonpath]))}


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m trio_sink ARGS``, in a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "trio_sink", *args],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=timeout,
        check=False,
    )
