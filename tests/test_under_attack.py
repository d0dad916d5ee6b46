"""Regression tests for the cases an attack on the project found: each test is named after
the case, and fails on the code that had the hole."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from trio_sink import (
    CircuitBreaker,
    ConfigError,
    ExitStatus,
    Infra,
    Pipeline,
    Record,
    RetryPolicy,
    Route,
    exit_status,
)
from trio_sink.sinks import CollectSink, JsonlFileSink, SlowSink

# -- 1. a failure while setting up a sink's fault handling ---------------------------------


class LazyClientSink:
    """A sink whose client connects lazily: reading ``probe`` raises until then."""

    name = "db"

    def __init__(self) -> None:
        self.written: list[int] = []

    async def write(self, batch: Sequence[Record]) -> None:
        self.written.extend(r.id for r in batch)

    @property
    def probe(self) -> Any:
        raise RuntimeError("client not connected")


@pytest.mark.parametrize("breaker", [None, CircuitBreaker()])
async def test_a_sink_whose_probe_raises_when_read_loses_nothing(
    autojump_clock: trio.testing.MockClock,
    breaker: CircuitBreaker | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = LazyClientSink()
    report = await Pipeline(
        range(10), routes=[Route("all", sink)], retry=RetryPolicy(), breaker=breaker
    ).run()
    report.check()
    assert report.ok
    assert sink.written == list(range(10))
    if breaker is not None:
        assert "sink.probe_unreadable" in caplog.text


async def test_a_sink_name_with_a_lone_surrogate_loses_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = CollectSink("db\udc80")
    report = await Pipeline(
        range(10), routes=[Route("all", sink)], retry=RetryPolicy(), breaker=CircuitBreaker()
    ).run()
    report.check()
    assert report.ok
    assert [r.id for r in sink.records] == list(range(10))


# -- 10. parse and route errors are not silent ----------------------------------------------


def _parse(line: str) -> str:
    if line.startswith("bad"):
        raise ValueError(f"cannot parse {line!r}")
    return line


async def test_parse_and_when_errors_are_logged_and_change_the_exit_status(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_sink")
    lines = ["ok 1", "bad 2", "bad 3", "ok 4", "bad 5"]

    def when(payload: str) -> bool:
        if payload == "ok 4":
            raise KeyError("level")
        return True

    report = await Pipeline(
        lines, parse=_parse, routes=[Route("all", CollectSink("all"), when=when)]
    ).run()
    report.check()
    assert report.ok
    assert report.discarded["error"] == 4
    assert exit_status(report) is ExitStatus.ERRORS_DISCARDED
    assert int(ExitStatus.ERRORS_DISCARDED) == 5
    first = [r for r in caplog.records if "pipeline.user_error " in r.getMessage()]
    # The first of each kind, with its traceback; the rest counted, not logged one by one.
    assert [r.getMessage().split('"')[1] for r in first] == ["parse", "when of route 'all'"]
    assert all(r.levelno == logging.WARNING and r.exc_info for r in first)
    counts = [r.getMessage() for r in caplog.records if "pipeline.user_errors " in r.getMessage()]
    assert counts == ['pipeline.user_errors where="parse" count=2 total=3']


async def test_a_clean_run_exits_0_and_errors_kept_by_an_error_sink_do_not_count(
    autojump_clock: trio.testing.MockClock,
) -> None:
    errors = CollectSink("errors")
    report = await Pipeline(
        ["ok", "bad"], parse=_parse, routes=[Route("all", CollectSink())], infra=Infra(error=errors)
    ).run()
    assert [r.id for r in errors.records] == [1]
    assert exit_status(report) is ExitStatus.OK


# -- 11, 12. mistakes refused at construction ------------------------------------------------


def test_a_pipeline_without_routes_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="routes must hold at least one Route"):
        Pipeline(range(3))


@pytest.mark.parametrize(
    "parse",
    [lambda: 1, lambda a, b: a, lambda *, raw: raw],
    ids=["no argument", "two arguments", "keyword only"],
)
def test_a_parse_that_cannot_take_one_argument_is_a_config_error(parse: Any) -> None:
    with pytest.raises(ConfigError, match="parse must take one argument"):
        Pipeline(range(3), parse=parse, routes=[Route("r", CollectSink())])


def test_a_when_that_cannot_take_one_argument_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"Route 'r': when must take one argument"):
        Route("r", CollectSink(), when=lambda a, b: True)  # type: ignore[arg-type,misc]


def test_functions_whose_signature_cannot_be_read_or_that_take_defaults_are_accepted() -> None:
    def parse(raw: object, extra: int = 0) -> object:
        return raw

    Pipeline(range(3), parse=parse, routes=[Route("r", CollectSink(), when=bool)])
    Pipeline(range(3), parse=str, routes=[Route("r", CollectSink())])


class SyncWriteSink:
    name = "sync"

    def write(self, batch: Sequence[Record]) -> None:
        pass


def test_a_sink_whose_write_is_a_plain_def_is_refused_as_not_async() -> None:
    with pytest.raises(ConfigError, match="write must be async"):
        Pipeline(range(3), routes=[Route("r", SyncWriteSink())])


# -- 14, 15. built-in sinks ------------------------------------------------------------------


async def test_slow_sink_takes_a_plain_async_function(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[int] = []

    async def db(batch: Sequence[Record]) -> None:
        got.extend(r.id for r in batch)

    slow = SlowSink(db, per_record=1.0)
    assert slow.name == "db"
    report = await Pipeline(range(3), routes=[Route("r", slow)]).run()
    assert report.ok
    assert got == [0, 1, 2]
    assert trio.current_time() >= 3.0


async def test_jsonl_file_sink_makes_the_folder_it_writes_to(tmp_path: Path) -> None:
    path = tmp_path / "out" / "deeper" / "all.jsonl"
    sink = JsonlFileSink(path)
    report = await Pipeline(range(3), routes=[Route("r", sink)]).run()
    assert report.ok
    assert len(path.read_text().splitlines()) == 3


# -- 21 (the pipeline's part). a run seals the store it wrote ----------------------------------
