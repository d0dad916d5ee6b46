"""``python -m trio_sink``: command-line tools.

``replay DIR [--sink NAME] [--to PATH.jsonl | --sinks MODULE:ATTR] [--list]``
    Deliver what the rescue store ``DIR`` holds (see docs/rescue.md). Exit status 0
    when everything replayed was delivered, 3 when something stayed undelivered, 2 for
    a usage error.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import logging
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

import trio

from ._replay import replay
from ._report import DeliveryReport
from ._rescue import RescueStore
from ._rescue_format import RescueFormatError
from .sinks import JsonlFileSink

__all__ = ["main"]

OK = 0
USAGE = 2
UNDELIVERED = 3


class UsageError(Exception):
    """A command's arguments make no sense: exit status 2."""


def _say(*lines: str, file: TextIO | None = None) -> None:
    for line in lines:
        print(line, file=file or sys.stdout)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else USAGE
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        _say(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return USAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trio_sink", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    p = commands.add_parser(
        "replay",
        help="deliver what a rescue store holds",
        description="Deliver what the rescue store DIR holds, and remove what was delivered.",
    )
    p.add_argument("dir", metavar="DIR", type=Path, help="the rescue store's directory")
    p.add_argument("--sink", metavar="NAME", help="replay only the entries meant for sink NAME")
    target = p.add_mutually_exclusive_group()
    target.add_argument(
        "--to",
        metavar="PATH.jsonl",
        type=Path,
        help="append the records to this JSON-lines file (needs --sink)",
    )
    target.add_argument(
        "--sinks",
        metavar="MODULE:ATTR",
        help="the sinks: a sequence of sinks, or a function of no arguments returning one",
    )
    p.add_argument(
        "--list", action="store_true", help="print what the store holds per sink; replay nothing"
    )
    p.set_defaults(command=_replay_command)
    return parser


def _replay_command(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    if not directory.is_dir():
        raise UsageError(f"{directory}: not a directory")
    try:
        if args.list:
            with RescueStore(directory) as store:
                _print_counts(store, args.sink)
            return OK
        sinks = _load_sinks(args)
        with RescueStore(directory) as store:
            report = trio.run(functools.partial(replay, store, sinks, sink_name=args.sink))
            left = store.pending()
    except RescueFormatError as exc:
        _say(f"error: {exc}", file=sys.stderr)
        return UNDELIVERED
    _print_report(report, left)
    return OK if report.ok else UNDELIVERED


def _load_sinks(args: argparse.Namespace) -> Sequence[object]:
    if args.to is not None:
        if args.sink is None:
            raise UsageError("--to needs --sink NAME: the entries to write to the file")
        return [JsonlFileSink(args.to)]
    if args.sinks is None:
        raise UsageError("give the sinks: --to PATH.jsonl or --sinks MODULE:ATTR (or --list)")
    module_name, _, attr = str(args.sinks).partition(":")
    if not module_name or not attr:
        raise UsageError(f"--sinks must be MODULE:ATTR, got {args.sinks!r}")
    try:
        obj: object = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"--sinks {args.sinks}: {exc}") from exc
    # A sink itself (an object with write, or an async function), a sequence of sinks,
    # or a function of no arguments that returns either.
    if callable(obj) and not hasattr(obj, "write") and not inspect.iscoroutinefunction(obj):
        obj = obj()
    if hasattr(obj, "write") or inspect.iscoroutinefunction(obj):
        return [obj]
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
        return obj
    raise UsageError(f"--sinks {args.sinks}: expected a sequence of sinks, got {obj!r}")


def _name(sink: str | None) -> str:
    return "(not routed)" if sink is None else sink


def _print_counts(store: RescueStore, sink: str | None) -> None:
    counts = store.counts()
    stats = store.read_stats
    shown = {k: v for k, v in counts.items() if sink is None or k == sink}
    for name, n in sorted(shown.items(), key=lambda kv: _name(kv[0])):
        _say(f"{_name(name)}: {n}")
    _say(
        f"total: {sum(shown.values())}",
        f"torn lines: {stats.torn_lines}",
        f"bad lines: {stats.bad_lines}",
    )


def _print_report(report: DeliveryReport, left: int) -> None:
    _say(f"received: {report.received}")
    for name, n in sorted(report.delivered.items()):
        _say(f"delivered to {name}: {n} of {report.routed.get(name, 0)}")
    _say(f"undelivered: {len(report.undelivered)}")
    reasons = Counter((_name(u.sink), u.reason) for u in report.undelivered)
    for (name, reason), n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
        _say(f"  {n} for {name}: {reason}")
    for name, error in sorted(report.sink_errors.items()):
        _say(f"sink {name}: {error}")
    _say(f"left in the store: {left}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
