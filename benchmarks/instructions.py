"""Instructions per record, counted by callgrind: trio_sink against the plain loop.

Run: ``python benchmarks/instructions.py [--small 20000] [--large 60000] [--batch-size 128]``
(needs ``valgrind``; about a minute). CPU time on a shared machine swings by +-20% from
run to run; instruction counts do not: the same binary on the same input counts the same
within a fraction of a percent, whatever else the machine is doing. Each case runs under
``valgrind --tool=callgrind`` at two sizes, and the difference divided by the difference
in records is its cost per record, free of start-up and import costs. The ratio
``plain / trio_sink`` is the throughput ratio the instruction counts predict (CPU time
also depends on cache misses and branch prediction, which this does not see). The cases
are those of ``throughput.py``: the plain loop (the ERROR test inline), trio_sink with
``when=is_error``, and trio_sink with ``when_batch=error_flags``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workload import expected_counts

HERE = Path(__file__).resolve().parent
CASES = ("plain", "trio_sink", "trio_sink_when_batch")


def child(case: str, n: int, batch_size: int, expected: tuple[int, int]) -> None:
    from throughput import pipeline_run
    from workload import plain_loop

    if case == "plain":
        counts = plain_loop(n)
    else:
        counts = pipeline_run(n, batch_size, when_batch=case == "trio_sink_when_batch")
    # The expected counts come from the parent: counting them here would add the same
    # work to both cases and pull the ratio towards 1.
    assert counts == expected, counts


def instructions(case: str, n: int, batch_size: int) -> int:
    """Instructions callgrind counted for one run of ``case`` over ``n`` records."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        proc = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--child",
                case,
                "--n",
                str(n),
                "--batch-size",
                str(batch_size),
                "--expected",
                *map(str, expected_counts(n)),
            ],
            capture_output=True,
            text=True,
            check=True,
            # The same string hashes, so the same dict layouts, in every run.
            env={**os.environ, "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0")},
        )
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in callgrind's output:\n{proc.stderr}")
    return int(found.group(1))


def per_record(small: int = 20_000, large: int = 60_000, batch_size: int = 128) -> dict[str, float]:
    """Instructions a record for each case: the difference between two sizes."""
    out: dict[str, float] = {}
    for case in CASES:
        low = instructions(case, small, batch_size)
        high = instructions(case, large, batch_size)
        out[case] = (high - low) / (large - small)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=60_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--expected", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.n, args.batch_size, tuple(args.expected))
        return
    counts = per_record(args.small, args.large, args.batch_size)
    for case, count in counts.items():
        print(f"{case:<28} {count:>9,.0f} instructions/record")
    for case in CASES[1:]:
        ratio = counts["plain"] / counts[case]
        print(
            f"{'ratio ' + case:<28} {ratio:>9.3f}x  (plain / {case}, batch_size {args.batch_size})"
        )


if __name__ == "__main__":
    main()
