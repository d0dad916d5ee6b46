"""The seed scenario: 10,000 log lines, Stop at once, and a sink that takes 100 ms a record.

An engine that broke out of its sink loop at Stop counted 3,840 of these 10,000 lines.
trio_sink drains instead: every record is delivered, or, past the drain deadline,
reported by id.

    python examples/slower_sink.py                      # all 10,000 delivered
    python examples/slower_sink.py --drain-timeout 60   # the deadline: the rest, by id
    python examples/slower_sink.py --real-time --count 30 --progress 1
    python examples/slower_sink.py --quiet              # the summary only

It runs in virtual time by default (Trio's MockClock): 1,000 s of sink time take well
under a second. ``--real-time`` runs on the wall clock. ``trio-sink demo`` runs the same
scenario (trio_sink/_demo.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import trio
import trio.testing

# The scenario itself is trio_sink's own, for `trio-sink demo` too.
from trio_sink._demo import heading, run_demo, summarize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="lines to send")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=None,
        help="seconds the sink may drain after Stop (default: no limit)",
    )
    parser.add_argument("--real-time", action="store_true", help="run on the wall clock")
    parser.add_argument("--quiet", action="store_true", help="no drain log lines")
    parser.add_argument(
        "--progress",
        type=float,
        default=100.0,
        help="seconds between two drain.progress lines (default: 100)",
    )
    args = parser.parse_args()
    if not args.quiet:
        logging.basicConfig(
            level=logging.INFO, format="  log: %(name)s %(message)s", stream=sys.stdout
        )

    clock = None if args.real_time else trio.testing.MockClock(autojump_threshold=0)
    print(heading(args.count, args.drain_timeout))
    start = time.perf_counter()
    report = trio.run(run_demo, args.count, args.drain_timeout, args.progress, clock=clock)
    print(summarize(report, time.perf_counter() - start, virtual=clock is not None))
    report.check()


if __name__ == "__main__":
    main()
