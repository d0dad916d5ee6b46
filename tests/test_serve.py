"""serve() and exit_status(): signals sent to this very process, in virtual time."""

from __future__ import annotations

import functools
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from helpers import checked

from trio_sink import (
    ConfigError,
    DeliveryReport,
    ExitStatus,
    Pipeline,
    PipelineHandle,
    Record,
    Route,
    Sink,
    Source,
    SourceError,
    exit_status,
    serve,
)
from trio_sink.sinks import CollectSink, NullSink, SlowSink
from trio_sink.testing import Fail, HangingSink, RecordingSink, ScriptedSource

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

WATCHED = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


@pytest.fixture(autouse=True)
def handlers_restored() -> Iterator[None]:
    """Every test leaves the process's signal handlers as it found them."""
    before = {s: signal.getsignal(s) for s in WATCHED}
    yield
    assert {s: signal.getsignal(s) for s in WATCHED} == before


@pytest.fixture
def serve_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="trio_sink.serve")
    return caplog


def signal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("serve.signal")]


def ticking(interval: float = 0.01) -> ScriptedSource:
    """An endless source: one item every ``interval`` seconds, until stopped."""
    return ScriptedSource(endless=lambda i: i, interval=interval)


async def send(signum: int) -> None:
    """Send ``signum`` to this process, and wait until serve has acted on it."""
    signal.raise_signal(signum)
    await trio.testing.wait_all_tasks_blocked()


async def serve_with(
    pipeline: Pipeline,
    script: Callable[[PipelineHandle], Awaitable[None]],
    **kwargs: Any,
) -> DeliveryReport:
    """``await serve(pipeline, **kwargs)``, with ``script(handle)`` run beside it once
    the pipeline is up; returns what serve returned. Fails after 1000 s of virtual time
    (every run here takes less), rather than hang."""
    returned: list[DeliveryReport] = []

    async def run(
        *, task_status: trio.TaskStatus[PipelineHandle] = trio.TASK_STATUS_IGNORED
    ) -> None:
        returned.append(await serve(pipeline, task_status=task_status, **kwargs))

    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            handle: PipelineHandle = await nursery.start(run)
            await script(handle)
    [report] = returned
    assert report is handle.report
    return report


class SlowCloseSink(Sink):
    """Delivers at once; its aclose() takes ``seconds`` and cannot be cancelled."""

    def __init__(self, name: str, seconds: float) -> None:
        self.name = name
        self.seconds = seconds
        self.records: list[Record] = []

    async def write(self, batch: Sequence[Record]) -> None:
        self.records.extend(batch)
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await trio.sleep(self.seconds)


class SignalOnOpen(Source[int]):
    """An endless source that sends ``signum`` to this process from its ``open()``:
    serve is listening by then, and the pipeline not up yet."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    async def open(self) -> None:
        signal.raise_signal(self.signum)
        await trio.lowlevel.checkpoint()

    async def __aiter__(self) -> AsyncIterator[int]:
        i = 0
        while True:
            await trio.sleep(0.01)
            yield i
            i += 1


# -- signals -----------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_first_signal_stops_gracefully_and_the_backlog_drains(
    signum: int, autojump_clock: trio.testing.MockClock, serve_log: pytest.LogCaptureFixture
) -> None:
    # 100 items a second into a sink that takes 20 ms a record: a backlog builds up.
    collect = CollectSink("slow")
    pipeline = Pipeline(
        ticking(), routes=[Route("all", SlowSink(collect, per_record=0.02))], drain_timeout=60.0
    )
    stopped_at: list[float] = []

    async def script(handle: PipelineHandle) -> None:
        await trio.sleep(1.0)
        stopped_at.append(trio.current_time())
        await send(signum)

    report = checked(await serve_with(pipeline, script))
    assert report.ok
    assert not report.timed_out
    assert report.received > 50
    assert report.delivered["slow"] == report.received == len(collect.records)
    # There was a backlog to drain, and it drained well before the deadline.
    assert 0.5 < report.drain_seconds < 60.0
    assert trio.current_time() == pytest.approx(stopped_at[0] + report.drain_seconds)
    name = signal.Signals(signum).name
    assert signal_lines(serve_log) == [f"serve.signal signal={name} action=stop"]
    assert exit_status(report) is ExitStatus.OK


async def test_second_signal_while_draining_stops_at_once_and_reports_the_rest(
    autojump_clock: trio.testing.MockClock, serve_log: pytest.LogCaptureFixture
) -> None:
    # A sink that takes 1 s a record: the backlog would take minutes to drain.
    collect = CollectSink("slow")
    pipeline = Pipeline(
        ticking(), routes=[Route("all", SlowSink(collect, per_record=1.0))], drain_timeout=600.0
    )

    async def script(handle: PipelineHandle) -> None:
        await trio.sleep(1.0)
        await send(signal.SIGINT)
        await trio.sleep(2.0)
        await send(signal.SIGINT)

    report = checked(await serve_with(pipeline, script))
    assert not report.ok
    assert report.timed_out
    assert report.drain_seconds == pytest.approx(2.0)
    assert report.undelivered
    assert {u.reason for u in report.undelivered} == {"immediate stop"}
    assert {u.sink for u in report.undelivered} == {"slow"}
    assert report.delivered["slow"] + len(report.undelivered) == report.received
    assert report.delivered["slow"] == len(collect.records)
    assert signal_lines(serve_log) == [
        "serve.signal signal=SIGINT action=stop",
        "serve.signal signal=SIGINT action=immediate_stop",
    ]
    assert exit_status(report) is ExitStatus.UNDELIVERED


async def test_a_different_second_signal_also_stops_at_once(
    autojump_clock: trio.testing.MockClock, serve_log: pytest.LogCaptureFixture
) -> None:
    hanging = HangingSink("hanging")
    pipeline = Pipeline(ticking(), routes=[Route("all", hanging)], drain_timeout=600.0)

    async def script(handle: PipelineHandle) -> None:
        await trio.sleep(1.0)
        await send(signal.SIGTERM)
        await trio.sleep(5.0)
        await send(signal.SIGINT)

    report = checked(await serve_with(pipeline, script))
    assert report.drain_seconds == pytest.approx(5.0)
    assert {u.reason for u in report.undelivered} == {"immediate stop"}
    assert len(report.undelivered) == report.received
    assert signal_lines(serve_log) == [
        "serve.signal signal=SIGTERM action=stop",
        "serve.signal signal=SIGINT action=immediate_stop",
    ]


async def test_signals_after_the_second_are_logged_and_ignored(
    autojump_clock: trio.testing.MockClock, serve_log: pytest.LogCaptureFixture
) -> None:
    # The sink's aclose() takes 10 s even after an immediate stop: the run goes on
    # for that long, and the signals that arrive meanwhile change nothing.
    sink = SlowCloseSink("closing", seconds=10.0)
    pipeline = Pipeline(ticking(), routes=[Route("all", sink)], drain_timeout=600.0)
    ends: list[float] = []

    async def script(handle: PipelineHandle) -> None:
        await trio.sleep(1.0)
        await send(signal.SIGINT)
        await send(signal.SIGINT)
        start = trio.current_time()
        await trio.sleep(4.0)
        await send(signal.SIGTERM)
        await send(signal.SIGINT)
        assert handle.report is None  # still closing
        await handle.wait()
        ends.append(trio.current_time() - start)

    report = checked(await serve_with(pipeline, script))
    assert ends == [pytest.approx(10.0)]
    assert report.delivered["closing"] == len(sink.records)
    assert signal_lines(serve_log) == [
        "serve.signal signal=SIGINT action=stop",
        "serve.signal signal=SIGINT action=immediate_stop",
        "serve.signal signal=SIGTERM action=ignored",
        "serve.signal signal=SIGINT action=ignored",
    ]


async def test_custom_signals_replace_the_default_ones(
    autojump_clock: trio.testing.MockClock, serve_log: pytest.LogCaptureFixture
) -> None:
    collect = CollectSink()
    pipeline = Pipeline(ticking(), routes=[Route("all", collect)])
    sigint_handler = signal.getsignal(signal.SIGINT)

    async def script(handle: PipelineHandle) -> None:
        assert signal.getsignal(signal.SIGINT) is sigint_handler  # left alone
        assert signal.getsignal(signal.SIGUSR1) is not signal.SIG_DFL
        await trio.sleep(1.0)
        await send(signal.SIGUSR1)

    report = checked(await serve_with(pipeline, script, signals=[signal.SIGUSR1]))
    assert report.ok
    assert report.received == len(collect.records) > 0
    assert signal_lines(serve_log) == ["serve.signal signal=SIGUSR1 action=stop"]


async def test_a_signal_that_arrives_while_the_pipeline_starts_is_not_lost(
    autojump_clock: trio.testing.MockClock, serve_log: pytest.LogCaptureFixture
) -> None:
    source = SignalOnOpen(signal.SIGTERM)
    pipeline = Pipeline(source, routes=[Route("all", NullSink())])
    with trio.fail_after(10):
        report = checked(await serve(pipeline))
    assert report.ok
    assert signal_lines(serve_log) == ["serve.signal signal=SIGTERM action=stop"]


# -- ending without a signal -------------------------------------------------------------


async def test_serve_returns_when_the_source_ends(
    autojump_clock: trio.testing.MockClock, serve_log: pytest.LogCaptureFixture
) -> None:
    recording = RecordingSink()
    pipeline = Pipeline(ScriptedSource(["a", "b", "c"]), routes=[Route("all", recording)])
    report = checked(await serve(pipeline))
    assert report.received == 3
    assert [r.raw for r in recording.records] == ["a", "b", "c"]
    assert recording.closes  # closed: the run went to its end
    assert signal_lines(serve_log) == []
    assert exit_status(report) is ExitStatus.OK


async def test_stop_through_the_handle_from_nursery_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    collect = CollectSink()
    pipeline = Pipeline(ticking(), routes=[Route("all", collect)])

    async def script(handle: PipelineHandle) -> None:
        assert isinstance(handle, PipelineHandle)
        assert handle.report is None
        await trio.sleep(1.0)
        handle.stop()

    report = checked(await serve_with(pipeline, script))
    assert report.ok
    assert report.received == len(collect.records) > 0


async def test_no_signals_leaves_the_handlers_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    before = {s: signal.getsignal(s) for s in WATCHED}
    pipeline = Pipeline(ticking(), routes=[Route("all", NullSink())])

    async def script(handle: PipelineHandle) -> None:
        assert {s: signal.getsignal(s) for s in WATCHED} == before
        await trio.sleep(1.0)
        handle.stop(immediate=True)

    report = checked(await serve_with(pipeline, script, signals=()))
    assert report.received > 0


async def test_cancelled_from_outside_builds_the_report_and_propagates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hanging = HangingSink("hanging")
    pipeline = Pipeline(ticking(), routes=[Route("all", hanging)])
    handles: list[PipelineHandle] = []
    with trio.move_on_after(1.0) as scope:
        async with trio.open_nursery() as nursery:
            handles.append(await nursery.start(serve, pipeline))
    assert scope.cancelled_caught
    report = handles[0].report
    assert report is not None
    checked(report)
    assert report.received > 0
    assert {u.reason for u in report.undelivered} == {"cancelled"}


# -- failures ----------------------------------------------------------------------------


async def test_a_source_error_comes_out_plain_with_its_report(
    autojump_clock: trio.testing.MockClock,
) -> None:
    collect = CollectSink()
    pipeline = Pipeline(
        ScriptedSource(["a", "b", Fail(OSError("disk gone"))]), routes=[Route("all", collect)]
    )
    with pytest.raises(SourceError) as info:
        await serve(pipeline)
    assert type(info.value) is SourceError  # not an exception group
    assert isinstance(info.value.__cause__, OSError)
    report = checked(info.value.report)
    assert report.ok
    assert report.received == 2 == len(collect.records)
    assert exit_status(info.value) is ExitStatus.SOURCE_FAILED


async def test_a_source_error_wins_over_undelivered_records(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pipeline = Pipeline(
        ScriptedSource(["a", "b", Fail(OSError("disk gone"))]),
        routes=[Route("all", HangingSink())],
        drain_timeout=1.0,
    )
    with pytest.raises(SourceError) as info:
        await serve(pipeline)
    assert not checked(info.value.report).ok
    assert exit_status(info.value.report) is ExitStatus.UNDELIVERED
    assert exit_status(info.value) is ExitStatus.SOURCE_FAILED


async def test_a_pipeline_that_already_ran_raises_as_run_does() -> None:
    pipeline = Pipeline([1], routes=[Route("all", NullSink())])
    await pipeline.run()
    with pytest.raises(RuntimeError, match="runs once"):
        await serve(pipeline)


async def test_serve_outside_the_main_thread_needs_signals_off() -> None:
    source = ScriptedSource(["a"])
    pipeline = Pipeline(source, routes=[Route("all", NullSink())])
    with pytest.raises(RuntimeError, match="main thread"):
        await trio.to_thread.run_sync(functools.partial(trio.run, serve, pipeline))
    assert source.opened == 0  # nothing ran
    report = await trio.to_thread.run_sync(
        functools.partial(trio.run, functools.partial(serve, pipeline, signals=()))
    )
    assert report.received == 1


# -- arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signals",
    [
        signal.SIGINT,  # one signal, not a sequence of them
        "SIGINT",
        ["SIGINT"],
        [0],
        [-1],
        [100_000],
        [True],
        [2.0],
        [None],
        [signal.SIGKILL],
        [signal.SIGINT, signal.SIGSTOP],
    ],
)
async def test_invalid_signals_raise_config_error_before_anything_runs(signals: Any) -> None:
    source = ScriptedSource(["a"])
    pipeline = Pipeline(source, routes=[Route("all", NullSink())])
    with pytest.raises(ConfigError, match="signals must"):
        await serve(pipeline, signals=signals)
    assert source.opened == 0
    checked(await pipeline.run())  # the pipeline was not used up


async def test_serve_takes_only_a_pipeline() -> None:
    with pytest.raises(ConfigError, match=r"pipeline must be a trio_sink\.Pipeline"):
        await serve([1, 2, 3])  # type: ignore[arg-type]


async def test_serve_logs_the_signals_it_watches_once_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink.serve")
    pipeline = Pipeline(["a"], routes=[Route("all", NullSink())])
    report = await serve(pipeline, signals=[signal.SIGTERM, signal.SIGTERM, signal.SIGINT])
    assert report.received == 1
    assert "serve.start signals=SIGTERM,SIGINT" in caplog.messages


# -- exit statuses -----------------------------------------------------------------------


def test_exit_status_values_are_distinct_and_clear_of_1_and_2() -> None:
    assert int(ExitStatus.OK) == 0
    assert int(ExitStatus.UNDELIVERED) == 3
    assert int(ExitStatus.SOURCE_FAILED) == 4
    assert {int(s) for s in ExitStatus}.isdisjoint({1, 2})
    assert len({int(s) for s in ExitStatus}) == len(ExitStatus)


async def test_exit_status_of_reports(autojump_clock: trio.testing.MockClock) -> None:
    ok = await Pipeline(["a", "b"], routes=[Route("all", NullSink())]).run()
    assert exit_status(ok) == 0
    # Records discarded on purpose (an infra group without a sink) are not undelivered.
    discarded = await Pipeline(
        ["a"], routes=[Route("none", NullSink(), when=lambda p: False)]
    ).run()
    assert discarded.ok
    assert discarded.discarded == {"default": 1}
    assert exit_status(discarded) is ExitStatus.OK
    lost = await Pipeline(["a"], routes=[Route("all", HangingSink())], drain_timeout=1.0).run()
    assert not lost.ok
    assert exit_status(lost) == 3


@pytest.mark.parametrize("outcome", [None, 0, "ok", ValueError("x"), ExitStatus.OK])
def test_exit_status_of_anything_else_is_a_config_error(outcome: Any) -> None:
    with pytest.raises(ConfigError, match="outcome must be"):
        exit_status(outcome)


# -- docs/daemon.md ----------------------------------------------------------------------


async def test_the_code_in_the_docs_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    doc = Path(__file__).parent.parent / "docs" / "daemon.md"
    [block] = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
    namespace: dict[str, Any] = {"__name__": "docs"}
    exec(compile(block, str(doc), "exec"), namespace)
    monkeypatch.chdir(tmp_path)
    assert await namespace["main"](["a", "b"]) == 0
    assert len((tmp_path / "all.jsonl").read_text().splitlines()) == 2
    assert await namespace["main"](ScriptedSource(["c", Fail(OSError("gone"))])) == 4


SERVE_CHILD = Path(__file__).with_name("serve_child.py")


@pytest.mark.parametrize(("mode", "status"), [("ignore", 3), ("restore", -signal.SIGTERM)])
def test_a_third_signal_after_serve_returned_keeps_the_report_status(
    mode: str, status: int
) -> None:
    # Real processes and real signals: SIGTERM (a Stop), SIGINT (an immediate stop: the
    # slow sink's backlog is reported), then, once serve() has returned and the program
    # winds down, a third SIGTERM. With ignore_after_stop the process still exits with
    # the report's status (3); without, the signal's default handler ends it.
    project = Path(__file__).parent.parent
    path = os.pathsep.join(filter(None, [str(project), os.environ.get("PYTHONPATH")]))
    with subprocess.Popen(
        [sys.executable, str(SERVE_CHILD), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdin is not None
        try:
            assert proc.stdout.readline() == "ready\n"
            # Two different signals: Trio takes a signal that comes again before it was
            # taken only once.
            proc.send_signal(signal.SIGTERM)
            proc.send_signal(signal.SIGINT)
            assert proc.stdout.readline() == "returned\n"
            # The kernel acts on it at once: a default handler ends the process, SIG_IGN
            # discards the signal; only then is the line below written.
            proc.send_signal(signal.SIGTERM)
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert proc.wait(30) == status
        finally:
            proc.kill()
