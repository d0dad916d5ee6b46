"""Helpers of the sink tests: reading back what the file sinks wrote."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trio_sink import Record

HOST = "127.0.0.1"
WAIT = 30.0
"""The longest a helper waits for a condition: long enough that only a bug reaches it."""


def recs(first: int, n: int) -> list[Record]:
    """Records ``first`` .. ``first + n - 1``, JSON-friendly: raw ``raw{i}``, payload
    ``{"i": i}``."""
    return [Record(i, f"raw{i}", {"i": i}) for i in range(first, first + n)]


def as_records(objects: Sequence[dict[str, Any]]) -> list[Record]:
    """The records that JSON objects written by a sink stand for."""
    return [Record(d["id"], d["raw"], d["payload"]) for d in objects]


def parse_lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line]


# -- files --------------------------------------------------------------------------------


def rotated(path: Path) -> list[Path]:
    """The rotated files of ``path`` as a reader takes them: oldest first, each number
    once (its ``.gz`` when there is one: a ``.gz`` is complete once it has its name)."""
    pattern = re.compile(re.escape(path.name) + r"\.([0-9]+)(\.gz)?")
    by_number: dict[int, Path] = {}
    if not path.parent.exists():
        return []
    for candidate in sorted(path.parent.iterdir()):
        match = pattern.fullmatch(candidate.name)
        if match is not None:
            number = int(match.group(1))
            if match.group(2) or number not in by_number:
                by_number[number] = candidate
    return [by_number[n] for n in sorted(by_number, reverse=True)]


def read_file(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def read_all(path: Path) -> list[dict[str, Any]]:
    """Every line of ``path`` and of its rotated files, oldest first."""
    files = [*rotated(path), *([path] if path.exists() else [])]
    return [obj for f in files for obj in parse_lines(read_file(f))]


def ids_of(objects: Sequence[dict[str, Any]]) -> list[int]:
    return [obj["id"] for obj in objects]
