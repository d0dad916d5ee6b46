"""Throughput of a trio_sink pipeline against the plain loop doing the same work.

Run: ``python benchmarks/throughput.py [--n 200000] [--rounds 30] [--json FILE]``.
All cases run in this process on the same lines, the same parse and the same routing
(all records to one sink, ``level == "ERROR"`` to another), in short rounds of one run
each. The baseline is :func:`workload.plain_loop`, the fastest honest plain loop (the
ERROR test written inline). trio_sink runs twice: with ``Route("errors", ...,
when=is_error)`` (a Python call per record, the default way), and with
``when_batch=error_flags`` (one list comprehension with the test inline per batch).
In each round the plain loop runs in the middle of the cases, and the order reverses
from round to round. Times are CPU time of this process (``time.process_time``). On a
shared machine the speed of the CPU drifts from second to second, so the figure that
matters is the median of the per-round ratios (each compares two runs a fraction of a
second apart), given with its interquartile range. Every run's two counts are checked.

``--hand-written`` adds the hand-written trio and asyncio pipelines of ``cases.py``
(batches of 128, the ERROR test inline, no accounting, queued records lost at a Stop) to
the same rounds. ``--memory`` also runs the pipeline at N and 4N in fresh processes and
compares their peak RSS: it must not grow with N. ``--json FILE`` writes the figures
(records/s, the ratios with their IQR, the raw CPU times) for other scripts to use.
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
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).parent))

from figures import ratio_summary, ratio_text, write_json
from workload import error_flags, expected_counts, is_error, lines, parse, plain_loop

from trio_sink import Pipeline, Route
from trio_sink.sinks import NullSink

PLAIN = "plain loop"


def pipeline_run(
    n: int, batch_size: int = 128, when_batch: bool = False, grow: int | None = None
) -> tuple[int, int]:
    """trio_sink over ``lines(n)``: every record to one NullSink, the errors to another
    (tested by ``when=is_error``, or by ``when_batch=error_flags``); batches growing up to
    ``grow`` (``max_batch_size``; None: they never grow)."""
    everything, errors = NullSink("all"), NullSink("errors")
    errors_route = (
        Route("errors", errors, when_batch=error_flags)
        if when_batch
        else Route("errors", errors, when=is_error)
    )
    pipeline = Pipeline(
        lines(n),
        parse=parse,
        routes=[Route("all", everything), errors_route],
        batch_size=batch_size,
        max_batch_size=grow,
        drain_timeout=None,
    )
    report = trio.run(pipeline.run)
    report.check()
    assert report.ok, report
    assert report.received == n, report
    return everything.count, errors.count


def timed(fn: Callable[[int], tuple[int, int]], n: int) -> tuple[float, tuple[int, int]]:
    start = time.process_time()
    counts = fn(n)
    return time.process_time() - start, counts


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
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--child-rss", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.n

    if args.child_rss:
        pipeline_run(n)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return

    others: list[tuple[str, Callable[[int], tuple[int, int]]]] = [
        ("trio_sink", lambda m: pipeline_run(m, args.batch_size)),
        ("trio_sink (when_batch)", lambda m: pipeline_run(m, args.batch_size, when_batch=True)),
        ("trio_sink (max 1024)", lambda m: pipeline_run(m, args.batch_size, grow=1024)),
        (
            "trio_sink (when_batch, max 1024)",
            lambda m: pipeline_run(m, args.batch_size, when_batch=True, grow=1024),
        ),
    ]
    if args.hand_written:
        from cases import asyncio_batched, trio_batched

        others += [("trio batched", trio_batched), ("asyncio batched", asyncio_batched)]
    # The plain loop in the middle: each case runs at most len(others) / 2 runs away from it.
    half = (len(others) + 1) // 2
    cases = [*others[:half], (PLAIN, plain_loop), *others[half:]]
    expected = expected_counts(n)
    times: dict[str, list[float]] = {name: [] for name, _ in cases}
    for k in range(args.rounds):
        for name, fn in cases if k % 2 else reversed(cases):
            seconds, counts = timed(fn, n)
            assert counts == expected, (name, counts, expected)
            times[name].append(seconds)

    figures: dict[str, Any] = {
        "script": "benchmarks/throughput.py",
        "n": n,
        "rounds": args.rounds,
        "batch_size": args.batch_size,
        "baseline": "plain loop: parse, count all, count level == 'ERROR' (tested inline)",
        "cases": {},
    }
    print(f"records: {n:,}  rounds: {args.rounds}  batch_size: {args.batch_size}")
    for name in [PLAIN, *(name for name, _ in others)]:
        rate = n / statistics.median(times[name])
        entry: dict[str, Any] = {"records_per_s": rate, "cpu_seconds": times[name]}
        line = f"{name:<24} {rate:>10,.0f} records/s (median)"
        if name != PLAIN:
            ratios = [p / t for p, t in zip(times[PLAIN], times[name], strict=True)]
            entry["ratio"] = ratio_summary(ratios)
            line += f"  {ratio_text(entry['ratio'])} vs plain loop"
        figures["cases"][name] = entry
        print(line)
    print("(ratio: plain loop's CPU time / the case's, median of per-round ratios)")
    if args.memory:
        small, large = peak_rss_mib(n), peak_rss_mib(4 * n)
        figures["memory"] = {"n": n, "peak_rss_mib": small, "n_4": 4 * n, "peak_rss_mib_4": large}
        print(f"peak RSS       {small:,.1f} MiB at N={n:,}, {large:,.1f} MiB at N={4 * n:,}")
    if args.json:
        write_json(args.json, figures)


if __name__ == "__main__":
    main()
