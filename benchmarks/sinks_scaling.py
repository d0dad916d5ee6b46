"""What fan-out costs: trio_sink with K sinks against the plain loop doing the seed work.

Run: ``python benchmarks/sinks_scaling.py [--n 100000] [--rounds 7] [--ks 1 2 4 ...]
[--json FILE] [--chart FILE] [--before FILE] [--write]`` (or ``nox -s bench_sinks``), or
``python benchmarks/sinks_scaling.py --from-json FILE [--before FILE] [--chart FILE]
[--write]`` to report figures measured before without measuring again.

For each K (1, 2, 4, ... 128 by default), a Pipeline with its default settings reads
``workload.lines(n)``, parses each line with ``workload.parse`` and sends every record
to K routes, each its own ``Route`` with no condition (every route accepts every record)
and one sink. Two series:

- ``NullSink``: K :class:`trio_sink.sinks.NullSink`, whose write only counts (not a
  checkpoint);
- ``checkpoint sink``: K :class:`CheckpointSink`, defined here, whose write awaits
  ``trio.lowlevel.checkpoint()`` and then counts. A write that checkpoints cannot be
  called inline by the route stage: every batch goes through the sink's own task and
  channel.

The baseline is the plain loop of ``throughput.py`` (:func:`workload.plain_loop`: parse
each line, count it, count it again when ``level == "ERROR"``, the test inline), the
same loop whatever K. The ratio for K is "trio_sink with K sinks / plain loop doing the
seed work": the plain loop's CPU time over trio_sink's on the same N, so 1.0 is as fast
as the loop with one destination, and the fall as K grows is what fan-out costs (each
extra sink is more per-record work for trio_sink and none for the loop).

All runs are in this process. In each round, for each K, the plain loop runs between
the two series' runs (the order reverses from round to round), all three on the same N;
times are CPU time of this process (``time.process_time``). The figure is the median of
the per-round ratios, with their interquartile range: on a shared machine the CPU's speed
drifts, and two runs a fraction of a second apart see the same speed far more often than
runs a minute apart. Every run's counts are checked (each sink counts N).

``--json FILE`` writes the figures; ``--from-json FILE`` reads them from such a file
instead of measuring. ``--chart FILE`` draws the ratio against K (log2 axis), one line
per series, with the goals 0.70 at 32 sinks and 0.50 at 128 sinks as dotted lines (needs
matplotlib). ``--before FILE`` names the JSON of an earlier run (an earlier version of
trio_sink): its ratios go beside these in the section and, dashed, on the chart.
``--write`` writes the section ``sinks_scaling`` of ``benchmarks/RESULTS.md`` (between
``<!-- sinks_scaling: begin -->`` and ``<!-- sinks_scaling: end -->``, which compare.py
keeps): what is measured, the table, the chart's link, the goals and whether they are met.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).parent))

from figures import (
    RESULTS,
    machine,
    ratio_summary,
    ratio_text,
    replace_section,
    run_text,
    write_json,
)
from workload import expected_counts, lines, parse, plain_loop

from trio_sink import Pipeline, Record, Route, Sink
from trio_sink.sinks import NullSink

KS = (1, 2, 4, 8, 16, 32, 64, 128)
GOALS = {32: 0.70, 128: 0.50}
"""Goals for the ratio: at least 0.70 with 32 sinks and 0.50 with 128."""


class CheckpointSink(Sink):
    """Counts the records it is given, after a checkpoint: its writes cannot run inline
    in the route stage, so each batch goes through this sink's task and channel."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    async def write(self, batch: Sequence[Record]) -> None:
        await trio.lowlevel.checkpoint()
        self.count += len(batch)


Make = Callable[[str], NullSink | CheckpointSink]

SERIES: dict[str, tuple[Make, int | None]] = {
    "NullSink": (NullSink, None),
    "NullSink, max_batch_size 1024": (NullSink, 1024),
    "checkpoint sink": (CheckpointSink, None),
}
"""Each series: its sinks, and ``max_batch_size`` (None: batches never grow)."""


def fan_out(n: int, k: int, make: Make, grow: int | None = None) -> float:
    """CPU seconds of one run of trio_sink (default settings, but ``max_batch_size``)
    with ``k`` accepting routes of one sink each; checks that every sink counted ``n``."""
    sinks = [make(f"sink{i}") for i in range(k)]
    pipeline = Pipeline(
        lines(n),
        parse=parse,
        routes=[Route(f"route{i}", sink) for i, sink in enumerate(sinks)],
        drain_timeout=None,
        max_batch_size=grow,
    )
    start = time.process_time()
    report = trio.run(pipeline.run)
    seconds = time.process_time() - start
    report.check()
    assert report.ok, report
    assert report.received == n, report
    assert all(sink.count == n for sink in sinks), [sink.count for sink in sinks]
    return seconds


def plain(n: int, expected: tuple[int, int]) -> float:
    start = time.process_time()
    counts = plain_loop(n)
    seconds = time.process_time() - start
    assert counts == expected, (counts, expected)
    return seconds


def measure(ks: list[int], n: int, rounds: int) -> dict[str, Any]:
    expected = expected_counts(n)
    # One small run of each side first: the first run in a process pays for warming up.
    plain(1000, expected_counts(1000))
    for make, grow in SERIES.values():
        fan_out(1000, max(ks), make, grow)
    times: dict[int, dict[str, list[float]]] = {
        k: {name: [] for name in ["plain loop", *SERIES]} for k in ks
    }
    names = list(SERIES)
    for r in range(rounds):
        print(f"  round {r + 1}/{rounds}", flush=True)
        for k in ks:
            half = (len(names) + 1) // 2  # the plain loop in the middle
            order = [*names[:half], "plain loop", *names[half:]]
            for name in order if r % 2 == 0 else reversed(order):
                if name == "plain loop":
                    times[k][name].append(plain(n, expected))
                else:
                    times[k][name].append(fan_out(n, k, *SERIES[name]))
    figures: dict[str, Any] = {
        "script": "benchmarks/sinks_scaling.py",
        "n": n,
        "rounds": rounds,
        "ratio": "trio_sink with K sinks / plain loop doing the seed work "
        "(plain loop's CPU time over trio_sink's, median of per-round ratios)",
        "baseline": "plain loop: parse, count all, count level == 'ERROR' (tested inline)",
        "goals": {str(k): goal for k, goal in GOALS.items()},
        "plain loop": {
            str(k): {"records_per_s": n / statistics.median(times[k]["plain loop"])} for k in ks
        },
        "series": {},
    }
    for name in SERIES:
        figures["series"][name] = {
            str(k): {
                "n": n,
                "records_per_s": n / statistics.median(times[k][name]),
                "ratio": ratio_summary(
                    [p / t for p, t in zip(times[k]["plain loop"], times[k][name], strict=True)]
                ),
                "cpu_seconds": times[k][name],
                "plain_cpu_seconds": times[k]["plain loop"],
            }
            for k in ks
        }
    return figures


def table(figures: dict[str, Any]) -> list[str]:
    names = list(figures["series"])
    header = f"{'K':>4}  {'plain loop/s':>12}"
    header += "".join(f"  {name + ' /s':>18}  {'ratio (IQR)':<24}" for name in names)
    rows = [header.rstrip()]
    for k, base in figures["plain loop"].items():
        row = f"{k:>4}  {base['records_per_s']:>12,.0f}"
        for name in names:
            entry = figures["series"][name][k]
            row += f"  {entry['records_per_s']:>18,.0f}  {ratio_text(entry['ratio']):<24}"
        rows.append(row.rstrip())
    return rows


COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def chart(figures: dict[str, Any], path: Path, before: dict[str, Any] | None = None) -> bool:
    """Ratio against K, and the ratios of ``before`` dashed; False when matplotlib is not
    installed."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colours = dict(zip(figures["series"], COLOURS * len(figures["series"]), strict=False))
    for name, colour in colours.items():
        per_k = figures["series"][name]
        ks = [int(k) for k in per_k]
        medians = [per_k[str(k)]["ratio"]["median"] for k in ks]
        low = [m - per_k[str(k)]["ratio"]["q1"] for k, m in zip(ks, medians, strict=True)]
        high = [per_k[str(k)]["ratio"]["q3"] - m for k, m in zip(ks, medians, strict=True)]
        ax.errorbar(ks, medians, yerr=[low, high], marker="o", capsize=3, color=colour, label=name)
    for name, per_k in (before or {}).get("series", {}).items():
        ks = [int(k) for k in per_k]
        ax.plot(
            ks,
            [per_k[str(k)]["ratio"]["median"] for k in ks],
            marker=".",
            linestyle="--",
            alpha=0.6,
            color=colours.get(name, "tab:gray"),
            label=f"{name}, before",
        )
    for k, goal in figures["goals"].items():
        ax.axhline(goal, color="tab:gray", linestyle=":")
        ax.annotate(
            f"goal {goal:.2f} at {k} sinks",
            (1, goal),
            xycoords=("axes fraction", "data"),
            xytext=(-4, 3),
            textcoords="offset points",
            ha="right",
            fontsize=8,
            color="tab:gray",
        )
    ks = sorted({int(k) for per_k in figures["series"].values() for k in per_k})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("K: sinks, one accepting route each")
    ax.set_ylabel("x plain loop (median of per-round ratios; bars: IQR)")
    ax.set_title(
        f"trio_sink with K sinks / plain loop doing the seed work, N = {figures['n']:,}",
        fontsize=10,
    )
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i].endswith(", before"))
    ax.legend([handles[i] for i in order], [labels[i] for i in order], loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def cell(entry: dict[str, Any] | None) -> str:
    """A ratio and its IQR, for a table of the section."""
    if entry is None:
        return "—"
    ratio = entry["ratio"]
    return f"{ratio['median']:.3f}x ({ratio['q1']:.3f}-{ratio['q3']:.3f})"


def goal_lines(figures: dict[str, Any]) -> list[str]:
    """For each goal and each series: met or not, said plainly."""
    out = []
    for k, goal in figures["goals"].items():
        for name, per_k in figures["series"].items():
            if k not in per_k:
                out.append(f"- {k} sinks, {name}: not measured.")
                continue
            ratio = per_k[k]["ratio"]
            median, q1 = ratio["median"], ratio["q1"]
            if median < goal:
                verdict = f"**not met**: {median:.3f}x"
            elif q1 < goal:
                verdict = (
                    f"**met by the median, narrowly**: {median:.3f}x, but the lower quartile"
                    f" ({q1:.3f}x) is below the goal"
                )
            else:
                verdict = f"**met**: {median:.3f}x (lower quartile {q1:.3f}x)"
            out.append(f"- {k} sinks, {name} (goal {goal:.2f}x): {verdict}.")
    return out


def section(
    figures: dict[str, Any],
    before: dict[str, Any] | None,
    before_path: Path | None,
    chart_name: str,
    command: str,
) -> list[str]:
    """The section ``sinks_scaling`` of RESULTS.md, as lines."""
    names = list(figures["series"])
    ks = list(figures["plain loop"])
    lines = [
        "## Sinks scaling: what fan-out costs",
        "",
        f"Written by `{command}` (see the docstring of `benchmarks/sinks_scaling.py`).",
        "",
        f"- figures: {run_text(figures)}",
    ]
    if before is not None:
        lines.append(f"- before: `{before_path}`, {run_text(before)}")
    env = figures.get("environment") or machine()
    lines += [
        f"- machine: `{env['platform']}`, os.cpu_count() = {env['cpu_count']};"
        f" {env['python']}; " + ", ".join(f"{p} {v}" for p, v in env["packages"].items()),
        "",
        "For each K (number of sinks), one Pipeline with its default settings (but"
        " `max_batch_size` where the series says so) reads the benchmark's log lines, parses"
        " each with `workload.parse` and sends every record to K routes, each its own `Route`"
        " with no condition (every route accepts every record) and one sink. Series:"
        " `NullSink` (its write only counts, and never blocks: the routing task writes it"
        " inline); the same with batches growing to 1,024 records while full"
        " (`max_batch_size=1024`); and `checkpoint sink`, a sink whose write awaits"
        " `trio.lowlevel.checkpoint()`, so every batch goes through the sink's own task and"
        " channel.",
        "",
        "The baseline is the plain loop doing the seed work (`workload.plain_loop`: parse each"
        ' line, count it, count it again when `level == "ERROR"`, the test inline), the'
        " same loop whatever K: the ratio is the plain loop's CPU time over trio_sink's on the"
        " same N, so 1.0 is as fast as the loop with one destination, and the fall as K grows"
        " is what fan-out costs. Times are CPU time of the process (`time.process_time`), all"
        " runs in one process, in interleaved rounds: in each round, for each K, the plain loop"
        " runs between the series' runs, the order reversing from round to round. A figure is"
        " the median of the per-round ratios, with their interquartile range in brackets."
        " Every run's counts are checked (each sink counts N).",
        "",
        "| K | plain loop records/s | "
        + " | ".join(f"{name} records/s | x plain loop (IQR)" for name in names)
        + " |",
        "|---:|---:|" + "---:|---:|" * len(names),
    ]
    for k in ks:
        row = f"| {k} | {figures['plain loop'][k]['records_per_s']:,.0f} |"
        for name in names:
            entry = figures["series"][name].get(k)
            rate = f"{entry['records_per_s']:,.0f}" if entry else "—"
            row += f" {rate} | {cell(entry)} |"
        lines.append(row)
    lines += ["", f"![trio_sink with K sinks / plain loop doing the seed work]({chart_name})", ""]
    if before is not None:
        both = [name for name in names if name in before["series"]]
        lines += [
            "Before and after, x plain loop (median; IQR), each against the plain loop of its"
            " own run:",
            "",
            "| K | " + " | ".join(f"{name}, before | {name}, after" for name in both) + " |",
            "|---:|" + "---:|---:|" * len(both),
        ]
        for k in ks:
            lines.append(
                f"| {k} |"
                + "".join(
                    f" {cell(before['series'][name].get(k))} |"
                    f" {cell(figures['series'][name].get(k))} |"
                    for name in both
                )
            )
        lines.append("")
    widest = max(
        (entry["ratio"]["q3"] - entry["ratio"]["q1"], k, name)
        for name, per_k in figures["series"].items()
        for k, entry in per_k.items()
    )
    lines += [
        "Goals: at least "
        + " and ".join(f"{goal:.2f}x with {k} sinks" for k, goal in figures["goals"].items())
        + ".",
        "",
        *goal_lines(figures),
        "",
        f"The machine is shared and its speed drifts: the widest interquartile range here is"
        f" {widest[0]:.2f} ({widest[2]}, K = {widest[1]}). Read a difference smaller than"
        " the interquartile ranges around it, or a ratio above 1, as noise.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="records per run (100,000)")
    parser.add_argument("--rounds", type=int, default=7, help="(7)")
    parser.add_argument("--ks", type=int, nargs="+", default=list(KS), help="numbers of sinks")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--chart", type=Path, metavar="FILE", help="draw the ratios (PNG)")
    parser.add_argument(
        "--from-json", type=Path, metavar="FILE", help="report the figures of FILE; measure nothing"
    )
    parser.add_argument(
        "--before", type=Path, metavar="FILE", help="the JSON of an earlier run, to compare with"
    )
    parser.add_argument(
        "--write", action="store_true", help="write the sinks_scaling section of RESULTS.md"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if any(k < 1 for k in args.ks):
        parser.error("--ks: every K must be 1 or more")
    if args.from_json and args.json:
        parser.error("--from-json and --json: the figures are in a file already")

    before = json.loads(args.before.read_text()) if args.before else None
    if args.from_json:
        figures = json.loads(args.from_json.read_text())
        print(f"figures of {args.from_json}: {run_text(figures)}")
    else:
        started = time.perf_counter()
        print(f"records: {args.n:,}  rounds: {args.rounds}  K: {' '.join(map(str, args.ks))}")
        figures = measure(args.ks, args.n, args.rounds)
        figures["wall_seconds"] = time.perf_counter() - started
    print("\n".join(table(figures)))
    print("(ratio: trio_sink with K sinks / plain loop doing the seed work; median, IQR)")
    if args.json:
        write_json(args.json, figures)
        figures = json.loads(args.json.read_text())  # with its environment
    if args.chart:
        if chart(figures, args.chart, before):
            print(f"wrote {args.chart}")
        else:
            print("no chart: matplotlib is not installed")
    if args.write:
        command = " ".join(["python benchmarks/sinks_scaling.py", *sys.argv[1:]])
        chart_name = args.chart.name if args.chart else "sinks_scaling.png"
        lines = section(figures, before, args.before, chart_name, command)
        replace_section(args.results, "sinks_scaling", lines)
        print(f"wrote the sinks_scaling section of {args.results}")
    if "wall_seconds" in figures and not args.from_json:
        print(f"{figures['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
