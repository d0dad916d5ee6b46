"""Throughput before and after the columns and the routing task's writes, against the plain loop.

Run: ``python benchmarks/before_after.py [--before benchmarks/before_throughput.json]
[--after benchmarks/after_throughput.json] [--write]``. Measures nothing: it reads two
files of ``throughput.py --json`` (the same cases, the same N, interleaved rounds, CPU
time, the median of the per-round ratios against the plain loop with their IQR), one
taken before the change and one after, and prints their table beside the instruction
counts of :data:`INSTRUCTIONS`. ``--write`` writes the section
``throughput_before_after`` of ``benchmarks/RESULTS.md`` (between
``<!-- throughput_before_after: begin -->`` and ``<!-- throughput_before_after: end -->``,
which compare.py keeps), with the goals of :data:`GOALS` and whether they are met.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from figures import RESULTS, replace_section, run_text

HERE = Path(__file__).parent
PLAIN = "plain loop"

INSTRUCTIONS: dict[str, dict[str, int]] = {
    "before": {PLAIN: 9_065, "trio_sink": 11_463, "trio_sink (when_batch)": 10_982},
    "after": {
        PLAIN: 9_078,
        "trio_sink": 10_449,
        "trio_sink (when_batch)": 9_933,
        "trio_sink, no `when`, two accepting routes": 9_177,
        "trio_sink, no `when`, one route": 9_103,
    },
}
"""Instructions per record under callgrind (``benchmarks/instructions.py``: 20,000 against
60,000 records, ``PYTHONHASHSEED=0``), before and after the change. The two pipelines
with no ``when`` (every route accepting; NullSinks, batch 128) were counted the same way
after the change; instructions.py has no case for them."""

GOALS = {"trio_sink": 0.90, "trio_sink (when_batch)": 0.95}
"""Goals for the CPU-time ratio against the plain loop: the defaults (``when=is_error``) at
least 0.90x, ``when_batch`` at least 0.95x."""

WHAT = {
    PLAIN: "plain loop (the baseline)",
    "trio_sink": "trio_sink, defaults: batch 128, `when=is_error`",
    "trio_sink (when_batch)": "trio_sink, `when_batch=error_flags`",
    "trio_sink (max 1024)": "trio_sink, `when=is_error`, `max_batch_size=1024`",
    "trio_sink (when_batch, max 1024)": "trio_sink, `when_batch`, `max_batch_size=1024`",
}


def ratio_cell(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "—"
    if "ratio" not in entry:
        return "1.000x"
    r = entry["ratio"]
    return f"{r['median']:.3f}x ({r['q1']:.3f}-{r['q3']:.3f})"


def rate_cell(entry: dict[str, Any] | None) -> str:
    return "—" if entry is None else f"{entry['records_per_s']:,.0f}"


def throughput_rows(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    names = [*after["cases"], *(n for n in before["cases"] if n not in after["cases"])]
    rows = [
        "| case | before: records/s | before: x plain loop (IQR) | after: records/s"
        " | after: x plain loop (IQR) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in names:
        old, new = before["cases"].get(name), after["cases"].get(name)
        rows.append(
            f"| {WHAT.get(name, name)} | {rate_cell(old)} | {ratio_cell(old)}"
            f" | {rate_cell(new)} | {ratio_cell(new)} |"
        )
    return rows


def instruction_rows() -> list[str]:
    rows = [
        "| pipeline | before: instructions/record | plain / it | after: instructions/record"
        " | plain / it |",
        "|---|---:|---:|---:|---:|",
    ]
    old, new = INSTRUCTIONS["before"], INSTRUCTIONS["after"]
    for name in new:
        rows.append(
            f"| {WHAT.get(name, name)} | {count_cells(old, name)} | {count_cells(new, name)} |"
        )
    return rows


def count_cells(counts: dict[str, int], name: str) -> str:
    """Instructions per record of ``name``, and the plain loop's over them."""
    if name not in counts:
        return "— | —"
    ratio = "1.000x" if name == PLAIN else f"{counts[PLAIN] / counts[name]:.3f}x"
    return f"{counts[name]:,} | {ratio}"


def goal_lines(after: dict[str, Any]) -> list[str]:
    lines = []
    met = 0
    for name, goal in GOALS.items():
        ratio = after["cases"][name]["ratio"]
        count = INSTRUCTIONS["after"][PLAIN] / INSTRUCTIONS["after"][name]
        if ratio["median"] >= goal:
            met += 1
            verdict = f"**met**: {ratio['median']:.3f}x"
        else:
            verdict = f"**not met**: {ratio['median']:.3f}x, {goal - ratio['median']:.3f} short"
        lines.append(
            f"- {WHAT[name]}, goal {goal:.2f}x in CPU time: {verdict} (IQR {ratio['q1']:.3f}-"
            f"{ratio['q3']:.3f}; the instruction counts give {count:.3f}x"
            f"{', below the goal too' if count < goal else ''})."
        )
    others = [
        f"{WHAT.get(name, name)}: {entry['ratio']['median']:.3f}x"
        for name, entry in after["cases"].items()
        if name != PLAIN and name not in GOALS
    ]
    if others:
        lines.append(f"- for reference, not a goal's case: {'; '.join(others)}.")
    total = len(GOALS)
    summary = (
        "Both goals are met."
        if met == total
        else "Neither goal is met."
        if met == 0
        else f"{met} of the {total} goals are met."
    )
    return [*lines, "", summary]


def section(
    before: dict[str, Any], after: dict[str, Any], paths: tuple[Path, Path], command: str
) -> list[str]:
    env = after.get("environment", {})
    old, new = INSTRUCTIONS["before"], INSTRUCTIONS["after"]
    return [
        "## Throughput before and after",
        "",
        f"Written by `{command}` (see the docstring of `benchmarks/before_after.py`) from two"
        " runs of `benchmarks/throughput.py --json`:",
        "",
        f"- before (main before the columns and the routing task's writes of the sinks that"
        f" never block): `{paths[0]}`, {run_text(before)}",
        f"- after (now): `{paths[1]}`, {run_text(after)}",
        f"- machine: `{env.get('platform', '?')}`, os.cpu_count() = {env.get('cpu_count', '?')};"
        f" {env.get('python', '?')}",
        "",
        "The work: parse each log line, send every record to one NullSink and the records"
        ' whose `level == "ERROR"` to another. The baseline is the plain loop, fixed: the'
        " fastest honest loop doing the same work, the ERROR test written inline"
        " (`workload.plain_loop`), the same in both runs. Every case runs in one process, in"
        " short interleaved rounds (the plain loop in the middle of each round, the order"
        " reversing from round to round); times are CPU time (`time.process_time`). A ratio"
        " is the median of the per-round ratios (the plain loop's CPU time over the case's),"
        " with their interquartile range in brackets; each run's ratios are against its own"
        " plain loop. Records/s of the two runs are not comparable with each other: the"
        " machine is shared and its speed drifts from hour to hour (see the plain loop's); the"
        " ratios are.",
        "",
        *throughput_rows(before, after),
        "",
        "Instructions per record under callgrind (`benchmarks/instructions.py`: 20,000 against"
        " 60,000 records, `PYTHONHASHSEED=0`, so start-up drops out; no cache misses, so a"
        " floor for the CPU-time ratio rather than a forecast of it). They do not drift with"
        " the machine's speed: the plain loop counts"
        f" {old[PLAIN]:,} before and {new[PLAIN]:,} after. The pipelines with no `when` (every"
        " route accepting, NullSinks, batch 128) were counted the same way, after the change"
        " only. compare.py's 'Instructions per record' section, where there is one, is another"
        " run of instructions.py: counts differ from run to run by a fraction of a percent.",
        "",
        *instruction_rows(),
        "",
        "With no `when`, trio_sink counts about the plain loop's instructions: routing, the"
        " ledger and the writes of sinks that never block cost next to nothing; what is left"
        " at the defaults is the per-record call of the user's `when`.",
        "",
        "Goals (CPU time against the plain loop): the defaults at least"
        f" {GOALS['trio_sink']:.2f}x, `when_batch` at least"
        f" {GOALS['trio_sink (when_batch)']:.2f}x.",
        "",
        *goal_lines(after),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, default=HERE / "before_throughput.json")
    parser.add_argument("--after", type=Path, default=HERE / "after_throughput.json")
    parser.add_argument(
        "--write", action="store_true", help="write the throughput_before_after section"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    before = json.loads(args.before.read_text())
    after = json.loads(args.after.read_text())
    command = " ".join(["python benchmarks/before_after.py", *sys.argv[1:]])
    paths = (shown(args.before), shown(args.after))
    lines = section(before, after, paths, command)
    print("\n".join(lines))
    if args.write:
        replace_section(args.results, "throughput_before_after", lines)
        print(f"\nwrote the throughput_before_after section of {args.results}")


def shown(path: Path) -> Path:
    """``path`` relative to the repository when it is in it, for the section."""
    try:
        return path.resolve().relative_to(HERE.resolve().parent)
    except ValueError:
        return path


if __name__ == "__main__":
    main()
