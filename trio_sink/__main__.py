"""``python -m trio_sink``: command-line tools.

``replay DIR [--sink NAME] [--to PATH.jsonl | --sinks MODULE:ATTR] [--list]``
    Deliver what the rescue store ``DIR`` holds (see docs/rescue.md). The exit
    statuses are in :data:`EXIT_STATUSES`.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import logging
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, TextIO

import trio

from ._quarantine import QUARANTINE, quarantined_files
from ._replay import replay
from ._report import DeliveryReport
from ._rescue import RescueStore
from ._rescue_format import RescueFormatError
from .sinks import JsonlFileSink

__all__ = ["EXIT_STATUSES", "main"]

OK: Final = 0
USAGE: Final = 2
UNDELIVERED: Final = 3
UNREADABLE: Final = 4
INTERRUPTED: Final = 130
BROKEN_PIPE: Final = 141  # 128 + SIGPIPE, as a shell reports a command that a pipe ended

EXIT_STATUSES: Final = """\
exit status:
  0    everything replayed was delivered, and nothing was left behind
  2    a usage error
  3    entries stayed in the store: their write failed again, no sink was given
       for them, or a live writer still holds their segment (or the store holds
       a newer schema version)
  4    lines no reader can decode were moved, as they were, to DIR/quarantine/
       (what could be read was replayed); they wait for a person
  130  interrupted (Ctrl-C): the store is consistent, replay again to resume
  141  the output was closed early (as by head); the replay itself completed
"""


class UsageError(Exception):
    """A command's arguments make no sense: exit status 2."""


def _say(*lines: str, file: TextIO | None = None) -> None:
    for line in lines:
        print(line, file=file or sys.stdout)


def _printable(text: str) -> str:
    """``text`` with control and other unprintable characters escaped (``\\x1b``), so
    that a name read from a store cannot drive the terminal."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else USAGE
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        status = command(args)
        sys.stdout.flush()  # here, so that a closed pipe is met here
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        _say(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        _say(
            "interrupted: the store is consistent (what was not delivered is still in it);"
            " replay again to resume",
            file=sys.stderr,
        )
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``): say nothing more, and let the interpreter's
        # last flush of stdout go nowhere.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return BROKEN_PIPE
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trio_sink", description="Command-line tools of trio_sink."
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    p = commands.add_parser(
        "replay",
        help="deliver what a rescue store holds",
        description="Deliver what the rescue store DIR holds, and remove what was delivered.",
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
            stats = store.read_stats
            left = store.pending()
    except RescueFormatError as exc:
        _say(f"error: {_printable(str(exc))}", file=sys.stderr)
        return UNDELIVERED
    _print_report(report, left, stats.held, stats.quarantined, directory)
    if stats.quarantined:
        return UNREADABLE
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
    return "(not routed)" if sink is None else _printable(sink)


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
        f"quarantined lines: {quarantined_files(store.path)}",
    )


def _print_report(
    report: DeliveryReport, left: int, held: int, quarantined: int, directory: Path
) -> None:
    _say(f"received: {report.received}")
    for name, n in sorted(report.delivered.items()):
        _say(f"delivered to {_name(name)}: {n} of {report.routed.get(name, 0)}")
    _say(f"undelivered: {len(report.undelivered)}")
    reasons = Counter((_name(u.sink), _printable(u.reason)) for u in report.undelivered)
    for (name, reason), n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
        _say(f"  {n} for {name}: {reason}")
    for name, error in sorted(report.sink_errors.items()):
        _say(f"sink {_name(name)}: {_printable(error)}")
    _say(f"held by live writers: {held}")
    where = f" (moved, as they were, to {_printable(str(directory / QUARANTINE))}/)"
    _say(f"quarantined lines: {quarantined}{where if quarantined else ''}")
    _say(f"left in the store: {left}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
