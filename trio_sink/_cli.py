"""The ``trio-sink`` command: run a pipeline from a config file (extra ``trio_sink[cli]``).

``trio-sink run CONFIG``, ``validate CONFIG``, ``test CONFIG CASES``, ``schema``,
``replay DIR``, ``top ADDR``, ``demo``. The library itself never imports this module (nor cyclopts
or rich).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import trio

from ._checks import check_int, check_seconds
from ._config import ConfigFileError, load_config
from ._config_types import Config
from ._exceptions import ConfigError
from ._progress_view import ProgressView, report_lines
from ._report import DeliveryReport, SourceError
from ._serve import exit_status
from ._stat_address import StatAddress, parse_stat_address
from ._stat_server import StatBindError, open_stat_server

try:
    import cyclopts
except ImportError:  # pragma: no cover - the extra is missing
    cyclopts = None  # type: ignore[assignment]

__all__ = ["main"]

USAGE = 2
SOURCE_FAILED = 4
INTERRUPTED = 130

log = logging.getLogger("trio_sink.cli")


def _app() -> Any:
    app = cyclopts.App(
        name="trio-sink",
        help="Record pipelines on Trio that never lose a record: run them from a config file.",
        backend="trio",
        result_action="return_value",
        version_flags=[],
    )
    app.command(run)
    app.command(validate)
    app.command(test)
    app.command(schema)
    app.command(replay)
    app.command(top)
    app.command(demo)
    return app


async def run(
    config: Path,
    /,
    *,
    report: Annotated[Path | None, cyclopts.Parameter(name="--report")] = None,
    quiet: bool = False,
    watch: bool = False,
    log_format: Literal["text", "json"] = "text",
    stat_addr: Annotated[str | None, cyclopts.Parameter(name="--stat-addr")] = None,
) -> int:
    """Run the pipeline CONFIG describes: until its source ends (batch mode) or a signal
    stops it (SIGINT or SIGTERM: drain; a second one: stop at once). SIGHUP reloads
    CONFIG: if it is valid, the running pipeline drains and the new one starts where
    its source's acknowledgements got to; if not, every error is logged and the running
    one goes on.

    Exit status: 0 everything delivered, 2 a bad config, 3 records undelivered (listed,
    and kept in the rescue store if there is one), 4 the source failed, 5 records were
    discarded from the error group.

    Parameters
    ----------
    config
        The pipeline's TOML file (docs/config.md).
    report
        Also write the report as JSON to this file.
    quiet
        No progress and no report table: the exit status says it all.
    watch
        Also reload when CONFIG changes (its modification time, looked at each second).
    log_format
        How log lines look on standard error: text, or one JSON object a line.
    stat_addr
        Serve the run's statistics as JSON at http://HOST:PORT/stats while it lasts,
        for `trio-sink top` (HOST:PORT, :PORT or PORT; host 127.0.0.1; port 0: a free
        one, logged as stat.listening). Anyone who can reach the address can read them.
    """
    from ._config_build import build_pipeline  # the sinks and sources it needs
    from ._reload import Reloader

    stat_address: StatAddress | None = None
    try:
        loaded = load_config(config)
        if stat_addr is not None:
            stat_address = parse_stat_address(stat_addr)
    except ConfigFileError as exc:
        print(exc, file=sys.stderr)
        return USAGE
    except ConfigError as exc:
        print(f"--stat-addr: {exc}", file=sys.stderr)
        return USAGE
    _configure_logging(log_format, quiet)
    view = ProgressView(sys.stderr, enabled=not quiet)
    reloader = Reloader(config, loaded)
    failures: list[SourceError] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            stat = None
            if stat_address is not None:  # first: an address in use starts nothing
                stat = await stack.enter_async_context(open_stat_server(stat_address))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reloader.signals)
                if watch:
                    nursery.start_soon(reloader.watch)
                if stat is not None:
                    nursery.start_soon(stat.serve, reloader.statistics)

                def on_start(handle: Any) -> None:
                    view.stop()
                    nursery.start_soon(view.follow, handle)

                try:
                    reports = await reloader.run(build_pipeline, on_start, failures)
                finally:
                    view.stop()
                    nursery.cancel_scope.cancel()
    except StatBindError as exc:
        print(f"--stat-addr: {exc}", file=sys.stderr)
        return USAGE
    except (ConfigError, OSError) as exc:
        print(f"{config}: {exc}", file=sys.stderr)
        return USAGE
    result = reports[-1]
    statuses = {int(exit_status(r)) for r in reports}
    status = next((s for s in (SOURCE_FAILED, 3, 5) if s in statuses), 0)
    if failures:
        status = SOURCE_FAILED
        print(f"the source failed: {failures[-1].__cause__!r}", file=sys.stderr)
    if not quiet:
        if len(reports) > 1:
            print(f"generation {len(reports)} of {len(reports)} (after reloads):", file=sys.stderr)
        for line in report_lines(result, status):
            print(line, file=sys.stderr)
    if report is not None:
        out = _report_json(result, status)
        out["generations"] = len(reports)
        report.write_bytes(msgspec.json.encode(out) + b"\n")
    return status


def validate(config: Path, /) -> int:
    """Check CONFIG without running it: every error at once (exit 2), or "ok" (exit 0).

    Parameters
    ----------
    config
        The pipeline's TOML file.
    """
    try:
        loaded = load_config(config)
    except ConfigFileError as exc:
        print(exc, file=sys.stderr)
        return USAGE
    c = loaded.config
    rules = loaded.rules
    n = 0 if rules is None else len(rules) if isinstance(rules, tuple) else 1
    print(
        f"{config}: ok: a {type(c.source).__name__.removesuffix('SourceConfig').lower()}"
        f" source, {n} parse rule{'s' if n != 1 else ''}, {len(c.routes)} route"
        f"{'s' if len(c.routes) != 1 else ''}, {len(c.sinks)} sinks"
    )
    return 0


def test(config: Path, cases: Path, /) -> int:
    """Test CONFIG's parse rules and route conditions on the lines of CASES, without
    running a source or a sink: "ok" or "FAIL" for each case, then a count. Exit
    status: 0 every case passed, 1 some failed, 2 a bad config or cases file.

    Parameters
    ----------
    config
        The pipeline's TOML file.
    cases
        A TOML file of [[cases]]: input lines and where each must go (docs/config.md).
    """
    from ._config_cases import case_lines, load_cases, load_config_for_test, run_cases

    try:
        loaded = load_config_for_test(config)
        suite = load_cases(cases, [r.name for r in loaded.config.routes])
    except ConfigFileError as exc:
        print(exc, file=sys.stderr)
        return USAGE
    results = run_cases(loaded, suite)
    for line in case_lines(results):
        print(line)
    return 0 if all(r.passed for r in results) else 1


def schema() -> int:
    """Print the JSON Schema of the config file (generated from the same types that
    check it)."""
    print(json.dumps(msgspec.json.schema(Config), indent=2))
    return 0


def replay(*args: str) -> int:
    """Deliver what a rescue store holds: ``trio-sink replay DIR [--sink NAME] [--to
    PATH.jsonl | --sinks MODULE:ATTR] [--list]`` (as ``python -m trio_sink replay``).

    Parameters
    ----------
    args
        The arguments of ``python -m trio_sink replay``.
    """
    from .__main__ import main as replay_main

    return replay_main(["replay", *args])


async def top(
    address: str,
    /,
    *,
    once: bool = False,
    interval: float = 1.0,
) -> int:
    """Watch a running pipeline: its sinks' figures, read every second from the
    statistics that `trio-sink run CONFIG --stat-addr HOST:PORT` serves.

    Exit status: 0 when the run has ended (its endpoint went away), 1 when nothing
    answers at the start (or not with a run's statistics), 2 a bad address.

    Parameters
    ----------
    address
        The run's statistics: HOST:PORT, :PORT, PORT or http://HOST:PORT.
    once
        Print one plain-text table (two readings apart, for the rates) and exit.
    interval
        Seconds between two readings.
    """
    from ._top import top as follow

    return await follow(address, once=once, interval=interval, out=sys.stdout, err=sys.stderr)


def demo(
    *,
    count: int = 10_000,
    drain_timeout: float | None = None,
    quiet: bool = False,
) -> int:
    """Run the seed scenario in virtual time (a Trio MockClock): COUNT log lines, Stop at
    once, a sink that takes 100 ms a record. Every record is delivered (1,000 s of sink
    time for 10,000, in a fraction of a second); with --drain-timeout 60, 512 are, and
    the rest are listed by id.

    Exit status: 0 everything delivered, 2 a bad option, 3 records undelivered.

    Parameters
    ----------
    count
        Log lines to send.
    drain_timeout
        Seconds of virtual time the sink may drain after Stop (default: no limit).
    quiet
        No drain progress on standard error (warnings only): the summary alone.
    """
    import time

    import trio.testing

    from ._demo import heading, run_demo, summarize

    try:
        check_int("count", count, 0)
        check_seconds("drain_timeout", drain_timeout, optional=True)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return USAGE
    _configure_logging("text", quiet)
    print(heading(count, drain_timeout))
    clock = trio.testing.MockClock(autojump_threshold=0)
    start = time.perf_counter()
    result = trio.run(run_demo, count, drain_timeout, 100.0, clock=clock)
    print(summarize(result, time.perf_counter() - start, virtual=True))
    return int(exit_status(result))


def _configure_logging(fmt: str, quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("trio_sink")
    root.addHandler(handler)
    root.setLevel(logging.WARNING if quiet else logging.INFO)


_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message"}
_EVENT = re.compile(r"^([a-z_]+\.[a-z_]+)\b")
_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


class _JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message; the event and the
    ``key=value`` fields of trio_sink's messages (``drain.complete sink=db ...``); and
    any ``extra=`` fields a caller logged with."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        out: dict[str, Any] = {
            "time": record.created,
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        event = _EVENT.match(message)
        if event:
            out["event"] = event[1]
            for key, value in _FIELD.findall(message):
                out.setdefault(key, value[1:-1] if value.startswith('"') else value)
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value if isinstance(value, (str, int, float, bool)) else repr(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def _report_json(report: DeliveryReport, status: int) -> dict[str, Any]:
    return {
        "exit_status": status,
        "received": report.received,
        "acknowledged": report.acknowledged,
        "routed": dict(report.routed),
        "delivered": dict(report.delivered),
        "discarded": dict(report.discarded),
        "undelivered": [
            {
                "id": u.record.id,
                "sink": u.sink,
                "stage": u.stage,
                "reason": u.reason,
                "kind": u.kind,
                "stored": u.stored,
            }
            for u in report.undelivered
        ],
        "timed_out": report.timed_out,
        "drain_seconds": report.drain_seconds,
        "sink_errors": dict(report.sink_errors),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: parse ``argv`` (default: the process's), run the command,
    return its exit status."""
    if cyclopts is None:  # pragma: no cover - the extra is missing
        print("trio-sink needs its extra: pip install 'trio_sink[cli]'", file=sys.stderr)
        return USAGE
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["replay"]:
        # Its own options, as python -m trio_sink replay takes them.
        return replay(*args[1:])
    try:
        result = _app()(args, exit_on_error=False)
    except cyclopts.CycloptsError:
        return USAGE
    except KeyboardInterrupt:
        return INTERRUPTED
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
