"""Throughput of a trio_sink pipeline against the plain loop doing the same work.

Run: ``python benchmarks/throughput.py [--n 200000] [--rounds 30]`` (or ``nox -s bench``).
Both run in this process on the same lines, the same parse and the same routing (all
records to one sink, ``level == "ERROR"`` to another), in short rounds of one run each,
the order alternating from round to round. Times are CPU time of this process
(``time.process_time``). On a shared machine the speed of the CPU drifts from second to
second, so the figure that matters is the median of the per-round ratios (each compares
two runs a fraction of a second apart), given with its interquartile range.
``--hand-written`` adds the hand-written trio and asyncio pipelines of ``cases.py``
(batches of 128, no accounting, queued records lost at a Stop) to the same rounds.
``--memory`` also runs the pipeline at N and 4N in fresh processes and compares their
peak RSS: it must not grow with N.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).parent))

from workload import is_error, lines, parse, plain_loop

from trio_sink import Pipeline, Route
from trio_sink.sinks import NullSink


def pipeline_run(n: int, batch_size: int = 128) -> tuple[int, int]:
    everything, errors = NullSink("all"), NullSink("errors")
    pipeline = Pipeline(
        lines(n),
        parse=parse,
        routes=[Route("all", everything), Route("errors", errors, when=is_error)],
        batch_size=batch_size,
        drain_timeout=None,
    )
    report = trio.run(pipeline.run)
    report.check()
    assert report.ok, report
    assert report.received == n, report
    return everything.count, errors.count


def timed(fn: Callable[[int], object], n: int) -> float:
    start = time.process_time()
    fn(n)
    return time.process_time() - start


def peak_rss_mib(n: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--n", str(n), "--child-rss"],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--memory", action="store_true", help="also compare peak RSS at N, 4N")
    parser.add_argument(
        "--hand-written",
        action="store_true",
        help="also run the hand-written trio and asyncio pipelines (batches of 128) in the rounds",
    )
    parser.add_argument("--child-rss", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.n

    if args.child_rss:
        pipeline_run(n)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return

    assert plain_loop(10_000) == pipeline_run(10_000), "the two must do the same work"
    cases: list[tuple[str, Callable[[int], object]]] = [
        ("plain loop", plain_loop),
        ("trio_sink", lambda m: pipeline_run(m, args.batch_size)),
    ]
    if args.hand_written:
        from cases import asyncio_batched, trio_batched

        cases += [("trio batched", trio_batched), ("asyncio batched", asyncio_batched)]
    times: dict[str, list[float]] = {name: [] for name, _ in cases}
    for k in range(args.rounds):
        for name, fn in cases if k % 2 else reversed(cases):
            times[name].append(timed(fn, n))
    print(f"records: {n:,}  rounds: {args.rounds}  batch_size: {args.batch_size}")
    for name, _ in cases:
        print(f"{name:<16} {n / statistics.median(times[name]):>10,.0f} records/s (median)")
    for name, _ in cases[1:]:
        ratios = [p / t for p, t in zip(times["plain loop"], times[name], strict=True)]
        low, _, high = statistics.quantiles(ratios, n=4)
        print(
            f"{'ratio ' + name:<22} {statistics.median(ratios):>6.3f}x  ({name} / plain loop,"
            f" median of per-round ratios; IQR {low:.3f}-{high:.3f})"
        )
    if args.memory:
        small, large = peak_rss_mib(n), peak_rss_mib(4 * n)
        print(f"peak RSS       {small:,.1f} MiB at N={n:,}, {large:,.1f} MiB at N={4 * n:,}")


if __name__ == "__main__":
    main()
