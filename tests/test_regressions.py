"""Regression tests for edge cases of the core: base exceptions, self-iterating sources,
cancelled cleanups, outside cancellation, exceptions whose str() fails."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence

import pytest
import trio
import trio.testing

from trio_sink import Infra, Pipeline, PipelineHandle, Record, Route, Sink, Source
from trio_sink.sinks import CollectSink, SlowSink
from trio_sink.testing import running


class _Abort(BaseException):
    """A BaseException from user code, like KeyboardInterrupt or SystemExit."""


async def test_sync_source_base_exception_reports_items_already_pulled() -> None:
    # _source.py pull_sync: raws.extend(islice(...)) keeps items 0..2 in a local list,
    # but only `except Exception` handles the failure; a BaseException leaves them
    # neither counted in `received` nor reported (the async path reports its buffer).
    def gen() -> Iterator[int]:
        yield 0
        yield 1
        yield 2
        raise _Abort

    pipeline = Pipeline(gen(), routes=[Route("r", CollectSink())], batch_size=10)
    handle: PipelineHandle | None = None
    with pytest.raises(BaseExceptionGroup):
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(pipeline.run)
    assert handle is not None
    report = handle.report
    assert report is not None
    report.check()
    assert report.received == 3
    assert sorted(u.record.id for u in report.undelivered) == [0, 1, 2]


class _SelfIteratingSource(Source[int]):
    """A Source that is its own async iterator (``__aiter__`` returns self)."""

    def __init__(self) -> None:
        self.left = 3
        self.closed = 0

    def __aiter__(self) -> _SelfIteratingSource:
        return self

    async def __anext__(self) -> int:
        await trio.lowlevel.checkpoint()
        if not self.left:
            raise StopAsyncIteration
        self.left -= 1
        return self.left

    async def aclose(self) -> None:
        self.closed += 1


async def test_source_that_is_its_own_iterator_is_aclosed_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # _source.py run_source_stage: `closers` gets the Source, then aiter(source) (the
    # same object, it has aclose) is inserted too, so Source.aclose() runs twice.
    source = _SelfIteratingSource()
    report = await Pipeline(source, routes=[Route("r", CollectSink())]).run()
    report.check()
    assert source.closed == 1


class _GeneratorSource(Source[int]):
    """A Source whose generator awaits in its cleanup (as ``async with conn:`` does)."""

    def __init__(self) -> None:
        self.closed = 0

    async def __aiter__(self) -> AsyncIterator[int]:
        try:
            for i in range(100):
                yield i
        finally:
            await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self.closed += 1


async def test_source_aclose_runs_even_if_generator_cleanup_is_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # _source.py run_source_stage finally: the closers loop catches only Exception;
    # after an immediate stop the generator's aclose() raises Cancelled out of the
    # loop, and Source.aclose() (promised exactly once) is never called.
    source = _GeneratorSource()
    sink = SlowSink(CollectSink(), per_batch=1.0)
    pipeline = Pipeline(source, routes=[Route("r", sink)], batch_size=2, capacity=1)
    async with running(pipeline) as handle:
        await trio.sleep(3)
        handle.stop(immediate=True)
    report = await handle.wait()
    report.check()
    assert source.closed == 1


class _CleanupSink(Sink):
    """On cancellation, cleans up under a shield (a short rollback), then re-raises."""

    def __init__(self) -> None:
        self.name = "cleanup"

    async def write(self, batch: Sequence[Record]) -> None:
        try:
            await trio.sleep(10)
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                await trio.sleep(0.01)
            raise


async def test_outside_cancellation_is_not_reported_as_drain_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # _source.py run_source_stage finally calls control.stop("cancelled") on an
    # outside cancellation, which arms the drain deadline; with drain_timeout=0 it has
    # passed when the sink reports, so _drain.py reason_for says "drain deadline" and
    # timed_out is True, though nobody stopped the run: it was cancelled.
    async def source() -> AsyncIterator[int]:
        yield 0
        await trio.sleep_forever()

    pipeline = Pipeline(
        source(), routes=[Route("r", _CleanupSink())], batch_timeout=0.0, drain_timeout=0.0
    )
    handle: PipelineHandle | None = None
    with trio.move_on_after(1):
        async with running(pipeline) as handle:
            pass
    assert handle is not None
    report = handle.report
    assert report is not None
    report.check()
    assert [(u.record.id, u.reason) for u in report.undelivered] == [(0, "cancelled")]
    assert not report.timed_out


class _BadStrError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message")


async def test_sink_exception_with_failing_str_does_not_stop_the_pipeline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # _sink_stage.py: the reason f-string calls str(exc); if that raises, the sink's
    # task crashes and takes the whole run down ("a buggy user function never stops
    # the pipeline"), instead of reporting the batch and going on.
    calls = 0

    async def flaky(batch: Sequence[Record]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise _BadStrError

    collect = CollectSink()
    pipeline = Pipeline(range(4), routes=[Route("r", flaky), Route("all", collect)], batch_size=2)
    report = await pipeline.run()
    report.check()
    assert report.delivered["flaky"] == 2
    assert [u.record.id for u in report.undelivered] == [0, 1]


async def test_record_whose_only_route_when_raised_also_goes_to_default(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Contract: "A record that no route accepts goes to the infra group default";
    # _route.py Router.route excludes errored records from default (design.md lists it
    # as an open point: a deviation from the binding contract's text).
    def when(payload: int) -> bool:
        raise ValueError("bad rule")

    default = CollectSink("default")
    error = CollectSink("error")
    pipeline = Pipeline(
        [0],
        routes=[Route("r", CollectSink(), when=when)],
        infra=Infra(default=default, error=error),
    )
    report = await pipeline.run()
    report.check()
    assert [r.id for r in error.records] == [0]
    assert [r.id for r in default.records] == [0]


async def test_sync_generator_source_is_closed_when_the_run_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    closed: list[int] = []

    def numbers() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.append(i)

    # A slow sink and no buffer: the endless source waits on it, so time moves.
    pipeline = Pipeline(
        numbers(),
        routes=[Route("r", SlowSink(CollectSink("c"), per_batch=1.0))],
        batch_size=4,
        capacity=0,
    )
    async with running(pipeline) as handle:
        await trio.sleep(2.5)
        handle.stop()
    report = await handle.wait()
    report.check()
    assert report.ok
    assert report.received > 0
    assert closed == [report.received - 1]  # closed while suspended at its last yield


async def test_memory_channel_source_is_left_open_for_its_owner() -> None:
    send, recv = trio.open_memory_channel[int](10)
    for i in range(3):
        send.send_nowait(i)
    send.close()
    collect = CollectSink("c")
    report = await Pipeline(recv, routes=[Route("r", collect)]).run()
    report.check()
    assert [r.raw for r in collect.records] == [0, 1, 2]
    # Not closed by the pipeline: receiving still reports the end, not a closed channel.
    with pytest.raises(trio.EndOfChannel):
        recv.receive_nowait()
