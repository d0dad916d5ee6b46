"""trio_sink.testing.running: a pipeline in daemon mode for one ``async with`` block."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing
from helpers import checked

from trio_sink import Pipeline, PipelineHandle, Route, SourceError
from trio_sink.testing import HangingSink, Pause, RecordingSink, ScriptedSource, running


def paced(n: int) -> ScriptedSource:
    """Items 0 .. n-1, one a second, then a long pause: the run goes on until stopped."""
    return ScriptedSource([step for i in range(n) for step in (Pause(1), i)] + [Pause(1000)])


async def test_the_block_gets_the_handle_and_the_run_ends_with_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = RecordingSink("a")
    pipeline = Pipeline(paced(3), routes=[Route("r", sink)], batch_timeout=0)
    start = trio.current_time()
    async with running(pipeline) as handle:
        assert isinstance(handle, PipelineHandle)
        await trio.sleep(3.5)
        assert handle.report is None
        handle.stop()
    assert handle.report is not None  # the run has ended when the block is left
    assert await handle.wait() is handle.report
    report = checked(handle.report)
    assert report.ok
    assert [r.id for r in sink.records] == [0, 1, 2]
    assert trio.current_time() - start == 3.5
    assert sink.closes == [start + 3.5]


async def test_leaving_the_block_waits_for_a_source_to_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = RecordingSink("a")
    source = ScriptedSource([step for i in range(4) for step in (Pause(1), i)])
    start = trio.current_time()
    async with running(Pipeline(source, routes=[Route("r", sink)], batch_timeout=0)) as handle:
        pass
    assert trio.current_time() - start == 4.0
    assert checked(await handle.wait()).delivered == {"a": 4}


async def test_an_exception_in_the_block_cancels_the_run_and_propagates_as_itself(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = HangingSink(name="stuck")
    pipeline = Pipeline(paced(2), routes=[Route("r", sink)], batch_timeout=0, drain_timeout=None)
    handles: list[PipelineHandle] = []

    async def block_fails() -> None:
        async with running(pipeline) as handle:
            handles.append(handle)
            await trio.sleep(2.5)
            raise KeyError("in the block")

    start = trio.current_time()
    with pytest.raises(KeyError, match="in the block") as info:
        await block_fails()
    assert info.value.__context__ is None
    assert trio.current_time() - start == 2.5  # no drain: the hung write was cancelled
    report = checked(await handles[0].wait())
    assert {(u.record.id, u.reason) for u in report.undelivered} == {
        (0, "cancelled"),
        (1, "cancelled"),
    }


async def test_a_source_error_propagates_as_itself_with_its_report(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = RecordingSink("a")
    source = ScriptedSource([0, 1, Pause(1)], name="s")

    async def failing() -> AsyncIterator[int]:
        async for item in source:
            yield item
        raise OSError("gone")

    pipeline = Pipeline(failing(), routes=[Route("r", sink)])
    handles: list[PipelineHandle] = []

    async def block() -> None:
        async with running(pipeline) as handle:
            handles.append(handle)
            await trio.sleep(100)  # cancelled when the run raises, at t=1

    with pytest.raises(SourceError) as info:
        await block()
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.report is handles[0].report
    assert checked(info.value.report).delivered == {"a": 2}
    assert trio.current_time() == 1.0


async def test_when_the_block_and_the_run_both_raise_both_propagate_in_a_group(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def failing() -> AsyncIterator[int]:
        yield 0
        await trio.sleep(1)
        raise OSError("gone")

    pipeline = Pipeline(failing(), routes=[Route("r", RecordingSink("a"))])

    async def block() -> None:
        async with running(pipeline):
            try:
                await trio.sleep(100)
            finally:  # cancelled by the run's failure, the block fails too
                raise ValueError("the block")

    with pytest.RaisesGroup(SourceError, ValueError):
        await block()


async def test_cancelled_from_outside_the_run_is_cancelled_and_reports(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pipeline = Pipeline(paced(5), routes=[Route("r", HangingSink(name="stuck"))], batch_timeout=0)
    handles: list[PipelineHandle] = []
    with trio.move_on_after(2.5) as scope:
        async with running(pipeline) as handle:
            handles.append(handle)
            await trio.sleep_forever()
    assert scope.cancelled_caught
    report = checked(await handles[0].wait())
    assert {u.reason for u in report.undelivered} == {"cancelled"}
    assert report.received == 2


async def test_cancelled_while_waiting_for_the_end_the_run_is_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pipeline = Pipeline(paced(5), routes=[Route("r", RecordingSink("a"))], batch_timeout=0)
    with trio.move_on_after(2.5) as scope:
        async with running(pipeline) as handle:
            pass  # not stopped: leaving waits for the end
    assert scope.cancelled_caught
    report = checked(await handle.wait())
    assert report.delivered == {"a": 2}
    assert trio.current_time() == 2.5


async def test_a_pipeline_that_ran_already_raises_as_it_would_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pipeline = Pipeline(range(3), routes=[Route("r", RecordingSink("a"))])
    checked(await pipeline.run())
    entered: list[PipelineHandle] = []

    async def block() -> None:
        async with running(pipeline) as handle:
            entered.append(handle)

    with pytest.raises(RuntimeError, match="runs once"):
        await block()
    assert entered == []


async def test_cancelled_while_entering_the_block_never_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = RecordingSink("a")
    pipeline = Pipeline(range(5), routes=[Route("r", sink)])
    entered: list[PipelineHandle] = []
    with trio.CancelScope() as scope:
        scope.cancel()
        async with running(pipeline) as handle:
            entered.append(handle)
    assert scope.cancelled_caught
    assert entered == []
    assert len(sink.closes) == 1  # the run was cancelled, and still closed its sink
