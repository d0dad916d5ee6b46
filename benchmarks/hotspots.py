"""Where a trio_sink run spends its time: py-spy samples of the benchmark pipeline.

Run: ``python benchmarks/hotspots.py [--n 1000000] [--rate 1000] [--top 12]`` (needs
``py-spy``, in the ``bench`` extra, and the right to trace a child process). The
pipeline of ``throughput.py`` runs in a child process that py-spy samples; each sample is
charged to one place: the user's ``parse`` or ``when`` (which the plain loop pays too),
else the deepest line of trio_sink in the stack (shown with its source text, so that the
C work a line starts, such as building Records in ``map``, is charged to that line),
else the deepest frame of Trio (its scheduler, channels, checkpoints). Shares are of the
samples taken under ``pipeline_run``; nanoseconds a record are that share of the child's
CPU time over N.
"""

from __future__ import annotations

import argparse
import json
import linecache
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
USER = {"parse": "user: parse() (the plain loop pays it too)", "is_error": "user: when"}


def child(n: int) -> None:
    from throughput import pipeline_run

    cpu = time.process_time()
    pipeline_run(n)
    print(json.dumps({"cpu": time.process_time() - cpu}))


def place(stack: str) -> str | None:
    """The place a sample is charged to, or None for a sample outside the run."""
    frames = [FRAME.match(f) for f in stack.split(";")]
    names = [m["func"] if m else "" for m in frames]
    if "pipeline_run" not in names:
        return None
    found = [m for m in frames[names.index("pipeline_run") :] if m is not None]
    for m in found:
        if m["file"].endswith("workload.py") and m["func"] in USER:
            return USER[m["func"]]
    for m in reversed(found):
        path = m["file"]
        if "trio_sink" in path and m["line"]:
            module = path[path.rindex("trio_sink") :]
            text = linecache.getline(_resolve(path), int(m["line"])).strip()
            return f"{module}:{m['line']} `{text}`"
    for m in reversed(found):
        if "/trio/" in m["file"] or m["file"].startswith("trio/"):
            return f"trio: {m['func']} ({m['file'][m['file'].rindex('trio/') :]})"
    return f"other: {found[-1]['func']}" if found else "other"


def _resolve(path: str) -> str:
    if Path(path).exists():
        return path
    import trio_sink

    root = Path(trio_sink.__file__).parent.parent
    return str(root / path[path.rindex("trio_sink") :])


def profile(n: int, rate: int) -> tuple[Counter[str], int, float]:
    """``(samples by place, samples under the run, the child's CPU time)``."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "samples.txt"
        proc = subprocess.run(
            [
                *("py-spy", "record", "-r", str(rate), "-f", "raw", "-o", str(raw), "--"),
                *(sys.executable, __file__, "--child", "--n", str(n)),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        lines = raw.read_text().splitlines()
    # py-spy prints lines of its own around the child's.
    ours = [line for line in proc.stdout.splitlines() if line.startswith('{"cpu"')]
    cpu = float(json.loads(ours[-1])["cpu"])
    places: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.rpartition(" ")
        where = place(stack)
        if where is not None:
            places[where] += int(count)
    return places, sum(places.values()), cpu


def table(n: int, rate: int, top: int) -> list[str]:
    """The profile as Markdown rows: place, share, ns a record."""
    places, total, cpu = profile(n, rate)
    rows = ["| where | share | ns/record |", "|---|---:|---:|"]
    shown = places.most_common(top)
    for where, count in shown:
        share = count / total
        cell = where.replace("|", r"\|")  # a pipe in source text would end the cell
        rows.append(f"| {cell} | {share:.1%} | {share * cpu / n * 1e9:,.0f} |")
    rest = total - sum(c for _, c in shown)
    rows.append(f"| (everything else) | {rest / total:.1%} | {rest / total * cpu / n * 1e9:,.0f} |")
    rows.append(f"| **total** ({total:,} samples) | 100% | {cpu / n * 1e9:,.0f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=1000, help="samples a second")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.n)
        return
    print("\n".join(table(args.n, args.rate, args.top)))


if __name__ == "__main__":
    main()
