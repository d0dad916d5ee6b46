"""Peak memory while a sink keeps failing, with a rescue store: it must stay near the
healthy run's, since what is stored need not be held in memory.

Run: ``python benchmarks/failing_memory.py [--n 1000000]``. Each case runs in a fresh
process (peak RSS is per process): the workload's lines to one sink, with a rescue
store in a temporary folder; ``healthy``: the sink takes everything; ``failing``: every
write raises ``OSError`` (not retried: a failure a retry cannot fix). Prints each
peak RSS and the ratio failing / healthy (the goal: at most 1.5x).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workload import lines, parse

from trio_sink import Pipeline, Record, RescueStore, Route
from trio_sink.sinks import NullSink


async def _down(batch: Sequence[Record]) -> None:
    raise OSError("the database is down")


def child(case: str, n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp, RescueStore(tmp, fsync="never") as store:
        sink = NullSink("db") if case == "healthy" else _down
        pipeline = Pipeline(
            lines(n), parse=parse, routes=[Route("db", sink)], rescue=store, drain_timeout=None
        )
        report = trio.run(pipeline.run)
        assert report.received == n
        assert len(report.undelivered) == (0 if case == "healthy" else n)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--child", choices=("healthy", "failing"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(child(args.child, args.n))
        return
    peaks = {}
    for case in ("healthy", "failing"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", case, "--n", str(args.n)],
            check=True,
            capture_output=True,
            text=True,
        )
        peaks[case] = float(out.stdout.strip().splitlines()[-1])
        print(f"{case:<8} {peaks[case]:>8,.1f} MiB peak RSS ({args.n:,} records)")
    print(
        f"ratio    {peaks['failing'] / peaks['healthy']:>8.2f}x  (failing / healthy; goal <= 1.5x)"
    )


if __name__ == "__main__":
    main()
