"""What fan-out costs: trio_sink with K sinks against the plain loop doing the seed work.

Run: ``python benchmarks/sinks_scaling.py [--n 100000] [--rounds 7] [--ks 1 2 4 ...]
[--json FILE] [--chart FILE]`` (or ``nox -s bench_sinks``).

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

``--json FILE`` writes the figures; ``--chart FILE`` draws the ratio against K (log2
axis), one line per series, with the goals 0.70 at 32 sinks and 0.50 at 128 sinks as
dotted lines (needs matplotlib).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).parent))

from figures import ratio_summary, ratio_text, write_json
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


def chart(figures: dict[str, Any], path: Path) -> bool:
    """Ratio against K; False when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, colour in zip(figures["series"], ("tab:blue", "tab:orange"), strict=False):
        per_k = figures["series"][name]
        ks = [int(k) for k in per_k]
        medians = [per_k[str(k)]["ratio"]["median"] for k in ks]
        low = [m - per_k[str(k)]["ratio"]["q1"] for k, m in zip(ks, medians, strict=True)]
        high = [per_k[str(k)]["ratio"]["q3"] - m for k, m in zip(ks, medians, strict=True)]
        ax.errorbar(ks, medians, yerr=[low, high], marker="o", capsize=3, color=colour, label=name)
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
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="records per run (100,000)")
    parser.add_argument("--rounds", type=int, default=7, help="(7)")
    parser.add_argument("--ks", type=int, nargs="+", default=list(KS), help="numbers of sinks")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--chart", type=Path, metavar="FILE", help="draw the ratios (PNG)")
    args = parser.parse_args()
    if any(k < 1 for k in args.ks):
        parser.error("--ks: every K must be 1 or more")

    started = time.perf_counter()
    print(f"records: {args.n:,}  rounds: {args.rounds}  K: {' '.join(map(str, args.ks))}")
    figures = measure(args.ks, args.n, args.rounds)
    figures["wall_seconds"] = time.perf_counter() - started
    print("\n".join(table(figures)))
    print("(ratio: trio_sink with K sinks / plain loop doing the seed work; median, IQR)")
    if args.json:
        write_json(args.json, figures)
    if args.chart:
        if chart(figures, args.chart):
            print(f"wrote {args.chart}")
        else:
            print("no chart: matplotlib is not installed")
    print(f"{figures['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
