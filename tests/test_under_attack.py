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
    RescueStore,
    RetryPolicy,
    Route,
    exit_status,
)
from trio_sink.sinks import CollectSink, JsonlFileSink, SlowSink
from trio_sink.testing import FlakySink, Pause, ScriptedSource

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


# -- 6, 23. hung sinks in batch mode; transient errors retried by default -------------------


class Hung:
    """A sink whose write never returns (a peer that accepted the connection and went
    silent)."""

    name = "hung"

    def __init__(self) -> None:
        self.writes = 0

    async def write(self, batch: Sequence[Record]) -> None:
        self.writes += 1
        await trio.sleep_forever()


async def test_a_hung_sink_in_batch_mode_ends_at_its_write_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # More batches than the channel holds: the source is held by backpressure, so it
    # ends (the Stop of batch mode) only once the sink has taken enough batches.
    sink = Hung()
    report = await Pipeline(
        range(100),
        routes=[Route("r", sink)],
        batch_size=10,
        capacity=2,
        drain_timeout=1.0,
        write_timeout=2.0,
    ).run()
    report.check()
    # Each batch is tried 3 times (a WriteTimeout is retried by default): 2 s, a 0.1 s
    # backoff, 2 s, 0.2 s, 2 s. Once 7 batches failed so, the source has sent its last
    # one and ended; the 8th batch's first attempt is cut by the drain deadline, 1 s on.
    assert sink.writes == 7 * 3 + 1
    timed_out = "sink raised WriteTimeout: the write took longer than 2 s, and was cancelled"
    assert [(u.record.id, u.reason) for u in report.undelivered] == [
        (i, timed_out if i < 70 else "drain deadline") for i in range(100)
    ]
    # (The backoffs' jitter only shortens them.)
    assert 7 * 6.0 + 1.0 < trio.current_time() <= 7 * 6.3 + 1.0


async def test_a_write_timeout_opens_the_breaker_and_the_rest_is_stored(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    sink = Hung()
    with RescueStore(tmp_path) as store:
        report = await Pipeline(
            range(1000),
            routes=[Route("r", sink)],
            write_timeout=2.0,
            retry=None,
            breaker=CircuitBreaker(failures=2, probe_interval=1.0),
            rescue=store,
        ).run()
    report.check()
    assert sink.writes < 8  # the breaker opened after two timeouts
    assert all(u.stored for u in report.undelivered)
    assert len(report.undelivered) == 1000


async def test_a_write_that_returns_in_time_is_not_touched_by_the_watchdog(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = SlowSink(CollectSink("db"), per_batch=1.9)
    report = await Pipeline(range(500), routes=[Route("r", sink)], write_timeout=2.0).run()
    assert report.ok
    assert trio.current_time() == pytest.approx(4 * 1.9)


class FlakyConnection:
    """Refuses the connection at its first write, then takes everything."""

    name = "db"

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.writes = 0
        self.ids: list[int] = []

    async def write(self, batch: Sequence[Record]) -> None:
        self.writes += 1
        if self.writes == 1:
            raise self.error
        self.ids.extend(r.id for r in batch)


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (ConnectionRefusedError("refused"), True),
        (TimeoutError("read timed out"), True),
        (OSError(28, "No space left on device"), False),
        (ValueError("bad row"), False),
    ],
)
async def test_transient_errors_are_retried_by_default(
    autojump_clock: trio.testing.MockClock, error: Exception, retried: bool
) -> None:
    sink = FlakyConnection(error)
    report = await Pipeline(range(10), routes=[Route("r", sink)]).run()
    report.check()
    assert report.ok is retried
    assert sink.ids == (list(range(10)) if retried else [])


async def test_no_retry_turns_the_default_retry_off(autojump_clock: trio.testing.MockClock) -> None:
    from trio_sink import NO_RETRY

    sink = FlakyConnection(ConnectionResetError("reset"))
    report = await Pipeline(range(10), routes=[Route("r", sink)], retry=NO_RETRY).run()
    assert not report.ok
    assert sink.writes == 1


# -- 7. a sink that never awaits --------------------------------------------------------


class BlockingSink:
    """A sink whose write blocks the event loop (a blocking client called from async
    code) and never awaits."""

    name = "blocking"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.writes = 0

    async def write(self, batch: Sequence[Record]) -> None:
        import time

        self.writes += 1
        time.sleep(self.seconds)  # noqa: ASYNC251 - the case under test


def test_a_sink_that_never_awaits_still_ends_at_the_drain_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Real time: the case is about a write that blocks the loop. 50 writes of 0.15 s
    # would take 7.5 s; the drain deadline is 0.3 s after the source's end.
    import time

    caplog.set_level(logging.WARNING, logger="trio_sink")
    sink = BlockingSink(0.15)
    pipeline = Pipeline(range(50), routes=[Route("r", sink)], batch_size=1, drain_timeout=0.3)
    began = time.monotonic()
    report = trio.run(pipeline.run)
    elapsed = time.monotonic() - began
    report.check()
    assert report.timed_out
    assert sink.writes < 50
    assert elapsed < 4.0
    blocking = [r for r in caplog.records if "sink.blocking" in r.getMessage()]
    assert len(blocking) == 1  # once per sink
    assert "trio.to_thread" in blocking[0].getMessage()


async def test_a_replay_right_after_a_run_in_the_same_process_delivers_what_it_stored(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    from trio_sink import replay

    async def down(batch: Sequence[Record]) -> None:
        raise OSError("down")

    store = RescueStore(tmp_path)
    report = await Pipeline(range(5), routes=[Route("db", down)], rescue=store, retry=None).run()
    assert [u.stored for u in report.undelivered] == [True] * 5
    # The run sealed its segment: a replay at once (the same store object, or another)
    # takes the entries, and the store goes on taking writes.
    target = CollectSink("down")
    again = await replay(RescueStore(tmp_path), sinks=[target])
    assert again.ok
    assert [r.raw for r in target.records] == [0, 1, 2, 3, 4]
    report = await Pipeline(range(2), routes=[Route("db", down)], rescue=store, retry=None).run()
    assert all(u.stored for u in report.undelivered)
    store.close()


# -- 18. a nearly full disk -----------------------------------------------------------------


class DiskFull:
    """The segment log's writes on a disk with ``free`` bytes left."""

    def __init__(self, free: int) -> None:
        from trio_sink._rescue_files import write_file

        self.free = free
        self.write_all = write_file

    def __call__(self, f: Any, data: bytes | bytearray) -> None:
        import errno

        if len(data) > self.free:
            self.write_all(f, bytes(data[: self.free]))
            self.free = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.free -= len(data)
        self.write_all(f, data)


async def test_at_the_end_of_a_run_a_nearly_full_disk_stores_what_fits(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("trio_sink._segment_log._write_all", DiskFull(200_000))
    store = RescueStore(tmp_path)

    async def down(batch: Sequence[Record]) -> None:
        await trio.sleep_forever()

    handle_reports = []
    pipeline = Pipeline(range(3000), routes=[Route("db", down)], rescue=store)
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(pipeline.run)
        await trio.testing.wait_all_tasks_blocked()
        handle.stop(immediate=True)
        handle_reports.append(await handle.wait())
    report = handle_reports[0]
    report.check()
    stored = [u.record.id for u in report.undelivered if u.stored]
    # All or nothing, 64 of 3,000 records were stored; in chunks, most of the free space
    # is used, and only the rest is reported unstored.
    assert 1000 < len(stored) < 3000
    assert "No space left" in report.sink_errors["rescue"]
    monkeypatch.undo()
    with RescueStore(tmp_path) as reader:
        assert sorted(e.id for e in reader.entries()) == sorted(stored)
    store.close()


async def test_a_breaker_parking_on_a_nearly_full_disk_parks_what_fits(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(batch: Sequence[Record]) -> None:
        raise ConnectionError("down")

    store = RescueStore(tmp_path)
    monkeypatch.setattr("trio_sink._segment_log._write_all", DiskFull(100_000))
    report = await Pipeline(
        range(3000),
        routes=[Route("db", down)],
        rescue=store,
        retry=None,
        breaker=CircuitBreaker(failures=1, probe_interval=1000.0),
        drain_timeout=5.0,
    ).run()
    report.check()
    stored = [u for u in report.undelivered if u.stored]
    assert 200 < len(stored) < 3000  # what fitted is parked or stored; the rest reported
    assert len(report.undelivered) == 3000
    store.close()


# -- 17. memory while a sink keeps failing, with a store ------------------------------------


async def test_stored_undelivered_records_past_a_sample_are_read_back_from_the_store(
    autojump_clock: trio.testing.MockClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    inline_threads: None,
) -> None:
    from trio_sink import _ledger

    monkeypatch.setattr(_ledger, "KEEP_STORED", 100)

    async def down(batch: Sequence[Record]) -> None:
        raise OSError("down")

    with RescueStore(tmp_path) as store:
        handles = []
        # No drain deadline: the store's writes run in threads, and the autojump clock
        # would jump to a deadline while one runs.
        pipeline = Pipeline(
            range(3000), routes=[Route("db", down)], rescue=store, retry=None, drain_timeout=None
        )
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(pipeline.run)
            handles.append(handle)
        report = handles[0].report
        assert report is not None
        undelivered = report.undelivered
        assert type(undelivered).__name__ == "UndeliveredView"  # not 3,000 objects in memory
        assert len(undelivered) == 3000
        assert not report.ok
        report.check()  # reads them back
        assert sorted(u.record.id for u in undelivered) == list(range(3000))
        assert {(u.sink, u.reason, u.kind, u.stored) for u in undelivered} == {
            ("down", "sink raised OSError: down", "sink_error", True)
        }
        assert undelivered[2999].stored
        assert [u.record.id for u in undelivered[:3]] == [0, 1, 2]
        stats = handles[0].statistics().sinks["down"]
        assert (stats.undelivered, stats.stored) == (3000, 3000)


async def test_parked_records_past_the_sample_are_counted_and_replayed(
    autojump_clock: trio.testing.MockClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    inline_threads: None,
) -> None:
    from trio_sink import _ledger

    monkeypatch.setattr(_ledger, "KEEP_STORED", 50)
    # Down for the first 30 s of a source that gives 10 records a second for 60 s: its
    # batches are parked (most of them only counted), then fed back once it answers.
    sink = FlakySink(name="db", fail_on=lambda k, batch: trio.current_time() < 30)
    source = ScriptedSource(
        [x for i in range(600) for x in (i, *([Pause(1.0)] if i % 10 == 9 else []))]
    )
    with RescueStore(tmp_path) as store:
        report = await Pipeline(
            source,
            routes=[Route("db", sink)],
            rescue=store,
            retry=None,
            breaker=CircuitBreaker(failures=1, probe_interval=5.0),
            batch_size=10,
        ).run()
        assert store.pending() == 0
    report.check()
    assert report.ok
    assert sorted(r.id for r in sink.records) == list(range(600))
    assert report.delivered["db"] == 600
