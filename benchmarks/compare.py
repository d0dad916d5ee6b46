"""trio_sink against the plain loop, hand-written asyncio/trio pipelines and peer libraries.

Run: ``nox -s bench`` (installs ``.[bench]``), or ``python benchmarks/compare.py [--n 1000000]
[--rounds 5] [--quick]`` (``--quick``: N = 200,000, 3 rounds, 2 s of latency).
Every case (``cases.py``) parses the same N log lines and counts them in two sinks (all,
``level == "ERROR"``). The baseline of every ratio is the plain loop, fixed: the fastest
honest loop, with the ERROR test inline (``workload.plain_loop``). Each case runs once a
round, each run in a fresh process: CPU time (``time.process_time``, all threads, imports
excluded), wall time, peak RSS. Rounds are interleaved across cases, and each run of a
case is paired with a run of the plain loop next to it; the table gives medians, the
min-max spread and the median of the paired ratios. Also: trio_sink's drain time from
Stop with an empty backlog and with 10,000 records queued; source-to-sink latency at one
record per 10 ms (``probes.py``); peak RSS at N and 5N; instructions per record of the
plain loop and trio_sink under callgrind (``instructions.py``, where valgrind is
installed; not with ``--quick``); and a py-spy profile of trio_sink (``hotspots.py``,
where py-spy is installed). Writes ``benchmarks/RESULTS.md``, ``results.png`` and the raw
runs, ``results.json`` (``--replot`` redraws the chart from them). Other scripts keep a
section each in RESULTS.md, between ``<!-- NAME: begin -->`` and ``<!-- NAME: end -->``
(``redis_scaleout.py --write``, ``sinks_scaling.py --write``, ``before_after.py
--write``): this script keeps every such section of the file it replaces, in their order,
after its own content.
``throughput.py`` is the quick in-process measure of the same work.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import CASES, Case, by_name
from figures import marked_sections
from workload import expected_counts

HERE = Path(__file__).resolve().parent

BACKLOG = 10_000
EMPTY_BACKLOG_RECORDS = 1_000
DRAIN_REPEATS = 20
CHILD_TIMEOUT = 1800.0


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- children: one measurement each, printed as one JSON line ---------------------------


def child(args: argparse.Namespace) -> None:
    out: dict[str, Any]
    if args.child_case:
        case = by_name(args.child_case)
        for module in case.imports:
            importlib.import_module(module)
        cpu, wall = time.process_time(), time.perf_counter()
        counts = case.run(args.n)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        out = {"cpu": cpu, "wall": wall, "counts": counts}
    elif args.child_drain:
        from probes import drain_seconds

        backlog = args.child_drain == "backlog"
        records = BACKLOG if backlog else EMPTY_BACKLOG_RECORDS
        out = {"seconds": drain_seconds(records, backlog, DRAIN_REPEATS)}
    else:
        from probes import latencies

        out = {"seconds": latencies(args.child_latency, args.latency_seconds)}
    out["rss"] = peak_rss_mib()
    print(json.dumps(out))


class ChildFailed(Exception):
    pass


def spawn(*argv: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *argv],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise ChildFailed(lines[-1] if lines else f"exit status {proc.returncode}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- the parent -------------------------------------------------------------------------


@dataclass
class Result:
    case: Case
    n: int
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    problem: str | None = None
    paired: list[float] = field(default_factory=list)
    """CPU time of the plain-loop run next to each of this case's runs."""

    def ratios(self) -> list[float]:
        """Per run: its speed over the plain loop's in the run next to it."""
        return [plain / cpu for plain, cpu in zip(self.paired, self.cpu, strict=True)]

    def rates(self) -> list[float]:
        return [self.n / t for t in self.cpu]

    def rate(self) -> float:
        return statistics.median(self.rates())

    def wall_rate(self) -> float:
        return self.n / statistics.median(self.wall)


def unavailable(case: Case) -> str | None:
    if case.needs and importlib.util.find_spec(case.needs) is None:
        return f"not installed (`pip install {case.needs}` failed or was not run)"
    return None


def run_cases(n: int, rounds: int) -> list[Result]:
    """Every case once a round, each run next to a run of the plain loop (before it in
    odd rounds, after it in even ones): the speed of a shared machine drifts, and two runs
    a second apart see the same speed far more often than runs a minute apart."""
    expected = list(expected_counts(n))
    results = [Result(case, n, problem=unavailable(case)) for case in CASES]
    plain = results[0]
    assert plain.case.name == "plain loop", plain

    def run(res: Result, label: str) -> bool:
        print(f"  {label}: {res.case.name} ...", end=" ", flush=True)
        try:
            out = spawn("--child-case", res.case.name, "--n", str(n))
        except (ChildFailed, subprocess.TimeoutExpired) as exc:
            res.problem = f"could not run: {exc}"
            print(res.problem)
            return False
        if out["counts"] != expected:
            res.problem = f"wrong counts {out['counts']}, expected {expected}"
            print(res.problem)
            return False
        res.cpu.append(out["cpu"])
        res.wall.append(out["wall"])
        res.rss.append(out["rss"])
        print(f"{n / out['cpu']:,.0f} records/s (CPU)")
        return True

    for r in range(rounds):
        label = f"round {r + 1}/{rounds}"
        for res in results[1:]:
            if res.problem:
                continue
            first, second = (plain, res) if r % 2 == 0 else (res, plain)
            if run(first, label) and run(second, label):
                res.paired.append(plain.cpu[-1])
            elif plain.problem:
                return results
    return results


def quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def ms(x: float) -> str:
    return f"{x * 1000:,.1f} ms"


def spread(values: list[float]) -> str:
    mid = statistics.median(values)
    return f"{(min(values) / mid - 1) * 100:+.0f}% / {(max(values) / mid - 1) * 100:+.0f}%"


def throughput_table(results: list[Result]) -> list[str]:
    plain = results[0]
    assert plain.case.name == "plain loop", plain
    assert not plain.problem, plain.problem
    rows = [
        "| case | records/s (CPU, median) | spread (min / max) | x plain loop | "
        "paired ratios (min-max) | records/s (wall) | peak RSS MiB | gives up vs trio_sink |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for res in results:
        if res.problem or not res.cpu:
            rows.append(f"| {res.case.name} | — | — | — | — | — | — | {res.problem} |")
            continue
        ratios = res.ratios() if res is not plain else [1.0]
        rows.append(
            f"| {res.case.name} | {res.rate():,.0f} | {spread(res.rates())} "
            f"| {statistics.median(ratios):.2f}x | {min(ratios):.2f}-{max(ratios):.2f} "
            f"| {res.wall_rate():,.0f} | {statistics.median(res.rss):,.0f} | {res.case.gives_up} |"
        )
    return rows


def write_results(path: Path, doc: list[str]) -> None:
    """Write ``doc`` (lines) to the RESULTS.md at ``path``, followed by every marked
    section (``<!-- NAME: begin -->`` to ``<!-- NAME: end -->``) of the file it replaces,
    in their order: the sections other scripts keep there."""
    kept = marked_sections(path.read_text()) if path.exists() else []
    lines = list(doc)
    while lines and not lines[-1]:
        lines.pop()
    for section in kept:
        lines += ["", section]
    path.write_text("\n".join(lines) + "\n")


def environment() -> list[str]:
    def version(pkg: str) -> str:
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    pkgs = ["trio_sink", "trio", "aiostream", "streamz", "bytewax", "matplotlib"]
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    return [
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}",
        f"- command: `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}`",
        f"- machine: `{platform.platform()}`, {platform.machine()}, "
        f"os.cpu_count() = {os.cpu_count()}, processor `{platform.processor() or '?'}`, "
        f"load average (1/5/15 min) at the end {load}",
        f"- Python: {platform.python_implementation()} {platform.python_version()}",
        "- packages: " + ", ".join(f"{p} {version(p)}" for p in pkgs),
    ]


def save(results: list[Result], path: Path) -> None:
    """The raw runs, for ``--replot``."""
    raw = {
        r.case.name: {
            "n": r.n,
            "cpu": r.cpu,
            "wall": r.wall,
            "rss": r.rss,
            "problem": r.problem,
            "paired": r.paired,
        }
        for r in results
    }
    path.write_text(json.dumps(raw, indent=1) + "\n")


def load(path: Path) -> list[Result]:
    raw = json.loads(path.read_text())
    return [Result(by_name(name), **fields) for name, fields in raw.items()]


def chart(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches
    import matplotlib.pyplot as plt

    ok = [r for r in results if r.cpu and not r.problem]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [1.6, 1]}
    )

    def colour(res: Result) -> str:
        if res.case.name == "plain loop":
            return "tab:gray"
        if res.case.name.startswith("trio_sink"):
            return "tab:blue"
        return "tab:green" if res.case.needs else "tab:orange"

    names = [r.case.name for r in ok][::-1]
    rates = [r.rate() / 1000 for r in ok][::-1]
    lo = [(r.rate() - min(r.rates())) / 1000 for r in ok][::-1]
    hi = [(max(r.rates()) - r.rate()) / 1000 for r in ok][::-1]
    left.barh(names, rates, xerr=[lo, hi], color=[colour(r) for r in ok][::-1], capsize=3)
    for y, (rate, top) in enumerate(zip(rates, hi, strict=True)):
        left.text(rate + top, y, f"  {rate:,.0f}k", va="center", fontsize=8)
    left.set_xlabel("thousand records/s (CPU time, median; whiskers: min-max of rounds)")
    n = ok[0].n
    left.set_title(f"Throughput, N = {n:,}: parse + route to 2 counting sinks")
    left.set_xlim(0, max(r + h for r, h in zip(rates, hi, strict=True)) * 1.15)
    handles = [
        matplotlib.patches.Patch(color=c, label=label)
        for c, label in (
            ("tab:gray", "plain loop"),
            ("tab:blue", "trio_sink"),
            ("tab:orange", "hand-written"),
            ("tab:green", "peer library"),
        )
    ]
    left.legend(handles=handles, loc="lower right", fontsize=8)
    left.tick_params(axis="y", labelsize=8)

    sweep = sorted((r for r in ok if r.case.batch_size), key=lambda r: r.case.batch_size or 0)
    sizes = [r.case.batch_size for r in sweep]
    right.errorbar(
        sizes,
        [r.rate() / 1000 for r in sweep],
        yerr=[
            [(r.rate() - min(r.rates())) / 1000 for r in sweep],
            [(max(r.rates()) - r.rate()) / 1000 for r in sweep],
        ],
        marker="o",
        capsize=3,
        color="tab:blue",
        label="trio_sink",
    )
    right.axhline(ok[0].rate() / 1000, color="tab:gray", linestyle="--", label="plain loop")
    right.set_xscale("log", base=2)
    right.set_xticks(sizes, [str(s) for s in sizes])
    right.set_ylim(bottom=0)
    right.set_xlabel("batch_size (records)")
    right.set_ylabel("thousand records/s (CPU time, median)")
    right.set_title("trio_sink throughput against batch size")
    right.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="records per run (1,000,000)")
    parser.add_argument("--rounds", type=int, default=None, help="runs per case (5)")
    parser.add_argument("--latency-seconds", type=float, default=None, help="(5)")
    parser.add_argument("--quick", action="store_true", help="N=200,000, 3 rounds, 2 s latency")
    parser.add_argument("--out", type=Path, default=HERE, help="where RESULTS.md goes")
    parser.add_argument("--no-memory", action="store_true", help="skip the 5N run")
    parser.add_argument(
        "--replot", action="store_true", help="redraw results.png from results.json in --out"
    )
    parser.add_argument("--child-case", help=argparse.SUPPRESS)
    parser.add_argument("--child-drain", choices=["empty", "backlog"], help=argparse.SUPPRESS)
    parser.add_argument("--child-latency", help=argparse.SUPPRESS)
    args = parser.parse_args()
    quick = args.quick
    n = args.n or (200_000 if quick else 1_000_000)
    rounds = args.rounds or (3 if quick else 5)
    args.n = n
    args.latency_seconds = args.latency_seconds or (2.0 if quick else 5.0)
    if args.child_case or args.child_drain or args.child_latency:
        child(args)
        return
    if args.replot:
        chart(load(args.out / "results.json"), args.out / "results.png")
        return

    print(f"throughput: N = {n:,}, {rounds} rounds, each case in its own process")
    results = run_cases(n, rounds)
    table = throughput_table(results)

    print("drain (trio_sink defaults, real time, from handle.stop() to handle.wait())")
    drains: dict[str, list[float]] = {}
    for kind in ("empty", "backlog"):
        drains[kind] = spawn("--child-drain", kind)["seconds"]
    drain_rows = [
        "| backlog at Stop | runs | median | p90 | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, label in (
        ("empty", f"empty ({EMPTY_BACKLOG_RECORDS:,} records already delivered)"),
        ("backlog", f"{BACKLOG:,} records queued behind a fast sink"),
    ):
        xs = drains[kind]
        drain_rows.append(
            f"| {label} | {len(xs)} | {ms(statistics.median(xs))} "
            f"| {ms(quantile(xs, 0.9))} | {ms(max(xs))} |"
        )

    print(f"latency: one record per 10 ms for {args.latency_seconds:g} s, real time")
    from probes import LATENCY_CASES

    latency_rows = [
        "| case | records | p50 | p99 | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in LATENCY_CASES:
        xs = spawn("--child-latency", name, "--latency-seconds", str(args.latency_seconds))[
            "seconds"
        ]
        latency_rows.append(
            f"| {name} | {len(xs)} | {ms(quantile(xs, 0.5))} | {ms(quantile(xs, 0.99))} "
            f"| {ms(max(xs))} |"
        )

    memory_rows: list[str] = []
    default = results[1]
    if not args.no_memory and default.rss:
        print(f"memory: trio_sink (default) at N = {5 * n:,}")
        big = spawn("--child-case", default.case.name, "--n", str(5 * n))
        small = statistics.median(default.rss)
        memory_rows = [
            "| N | peak RSS MiB |",
            "|---:|---:|",
            f"| {n:,} | {small:,.1f} (median of {len(default.rss)}) |",
            f"| {5 * n:,} | {big['rss']:,.1f} |",
            "",
            f"Growth from N to 5N: {big['rss'] - small:+,.1f} MiB "
            f"({(big['rss'] / small - 1) * 100:+.1f}%).",
        ]

    instruction_rows: list[str] = []
    if shutil.which("valgrind") and not quick:
        print("instructions per record: plain loop and trio_sink (when, when_batch), callgrind")
        from instructions import per_record

        counts = per_record()
        instruction_rows = [
            "| case | instructions/record |",
            "|---|---:|",
            *(f"| {case} | {count:,.0f} |" for case, count in counts.items()),
            "",
            *(
                f"- ratio plain / {case}: **{counts['plain'] / count:.3f}x**."
                for case, count in counts.items()
                if case != "plain"
            ),
        ]

    profile_rows: list[str] = []
    if shutil.which("py-spy"):
        print("profile: py-spy samples of trio_sink (defaults)")
        from hotspots import table as profile_table

        profile_rows = profile_table(n, 1000, 12)

    chart_path = args.out / "results.png"
    save(results, args.out / "results.json")

    not_run = [f"- {r.case.name}: {r.problem}" for r in results if r.problem]
    doc = [
        "# Benchmark results",
        "",
        "Written by `benchmarks/compare.py` (see its docstring); rerun with `nox -s bench`.",
        "",
        *environment(),
        "",
        "## Throughput",
        "",
        "The baseline of every ratio is the plain loop (`workload.plain_loop`), fixed: "
        "the fastest honest loop doing the same work, a `for` loop that parses each line, "
        'counts it, and counts it again when `payload["level"] == "ERROR"`, the test '
        "written inline (no function call per record). The hand-written pipelines test "
        "inline too (a list comprehension over each batch); trio_sink takes the test as "
        "a function, per record (`when=is_error`) or per batch (`when_batch`, the same "
        "list comprehension).",
        "",
        f"N = {n:,} log lines per run, {rounds} rounds; every case runs in a fresh process "
        "per round (rounds interleaved across cases), so peak RSS is per case and includes "
        "the interpreter and the imports of that case. Records/s is N over the CPU time of "
        "the run (`time.process_time`: every thread of the process; imports excluded); "
        "each run of a case is next to a run of the plain loop (before or after it, by "
        'turns), and "x plain loop" is the median of the ratios of the two, given with '
        "their range. All cases count the same totals (checked).",
        "",
        *table,
        "",
        "Hand-written pipelines are source → queue → parse+route → one queue per sink → "
        "sink, with the queues bounded at 128 items (or batches of 128). The end of the "
        "input travels as a sentinel (asyncio) or a channel close (trio): a run to the end "
        "loses nothing, but a Stop means cancelling, and what is queued is lost unreported.",
        "",
        *(["Cases that could not run:", "", *not_run, ""] if not_run else []),
        f"![throughput per case and against batch size]({chart_path.name})",
        "",
        "## Drain cost",
        "",
        "trio_sink with its default settings, an async source that never ends, real time; "
        f"{DRAIN_REPEATS} runs each. With a backlog, the 'all' sink's first write waits on a "
        "gate that opens at Stop, so the rest of the records wait in its channel.",
        "",
        *drain_rows,
        "",
        "## Latency at low load",
        "",
        f"One record every 10 ms for {args.latency_seconds:g} s, real time; each raw item "
        "carries `time.perf_counter()` from its making, read by the 'all' sink on delivery. "
        "With trio_sink's defaults a lone record waits for `batch_timeout` (0.3 s) unless "
        "its batch fills (128 records).",
        "",
        *latency_rows,
        "",
    ]
    if memory_rows:
        doc += ["## Memory", "", "Peak RSS of trio_sink (defaults), one process each.", ""]
        doc += [*memory_rows, ""]
    if instruction_rows:
        doc += [
            "## Instructions per record",
            "",
            "CPU time on a shared machine swings from run to run; instruction counts do not. "
            "`benchmarks/instructions.py` runs each case under callgrind at 20,000 and "
            "60,000 records (`PYTHONHASHSEED=0`) and divides the difference in instructions "
            "by the difference in records: start-up and imports drop out. It sees no cache "
            "misses, so it is a floor for the CPU-time ratio, not a replacement.",
            "",
            *instruction_rows,
            "",
        ]
    if profile_rows:
        doc += [
            "## Profile",
            "",
            f"`benchmarks/hotspots.py`: py-spy samples (1,000 a second) of trio_sink with its "
            f"defaults over N = {n:,}, each charged to the user's `parse` or `when`, else the "
            "deepest line of trio_sink in the stack (the C work a line starts, such as "
            "building Records or freeing a batch, is charged to that line), else Trio. "
            "Sampling slows the run, so ns/record is higher than above; the shares are what "
            "counts. Freeing a batch (`batch, ticket = item`) frees its records, payload "
            "dicts and strings: the plain loop frees the same dicts and strings, one at a "
            "time.",
            "",
            *profile_rows,
            "",
        ]
    write_results(args.out / "RESULTS.md", doc)
    chart(results, chart_path)

    print()
    print("\n".join(table))
    print()
    print("\n".join(drain_rows))
    print()
    print("\n".join(latency_rows))
    if memory_rows:
        print()
        print("\n".join(memory_rows))
    print(f"\nwrote {args.out / 'RESULTS.md'} and {chart_path}")


if __name__ == "__main__":
    main()
