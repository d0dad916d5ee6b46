"""Sinks that never block, written by the routing task: the same accounting, the same
retries, the same order; and a sink that says so falsely is caught."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import pytest
import trio
import trio.testing
from helpers import GatedSink, checked, messages

from trio_sink import (
    NO_RETRY,
    CircuitBreaker,
    Infra,
    Pipeline,
    PipelineHandle,
    Record,
    RetryPolicy,
    Route,
    Sink,
)
from trio_sink.sinks import CollectSink, NullSink


class Tasks(Sink):
    """Never blocks (it says); notes the task of each write and the ids written."""

    never_blocks = True

    def __init__(self, name: str = "tasks") -> None:
        self.name = name
        self.tasks: list[str] = []
        self.ids: list[int] = []

    async def write(self, batch: Sequence[Record]) -> None:
        self.tasks.append(trio.lowlevel.current_task().name)
        self.ids.extend(batch.ids)  # type: ignore[attr-defined]


class FailsAt(Tasks):
    """Raises ``error`` at the writes whose first id is in ``at`` (each once)."""

    def __init__(self, at: set[int], error: Exception, name: str = "fails") -> None:
        super().__init__(name)
        self.at = set(at)
        self.error = error
        self.attempts: list[int] = []

    async def write(self, batch: Sequence[Record]) -> None:
        first = batch[0].id
        self.attempts.append(first)
        if first in self.at:
            self.at.discard(first)
            raise self.error
        await super().write(batch)


class Liar(Tasks):
    """Says it never blocks, and awaits (``hang``: forever) at its ``at``-th write."""

    def __init__(self, at: int = 2, *, hang: bool = False) -> None:
        super().__init__("liar")
        self.at = at
        self.hang = hang
        self.calls = 0

    async def write(self, batch: Sequence[Record]) -> None:
        self.calls += 1
        if self.calls == self.at:
            if self.hang:
                await trio.sleep_forever()
            await trio.sleep(0.5)
        await super().write(batch)


SOURCE_TASK = "trio_sink.source"


async def test_a_sink_that_never_blocks_is_written_by_the_source_task() -> None:
    inline, own = Tasks("inline"), Tasks("own")
    own.never_blocks = False
    report = checked(
        await Pipeline(range(50), routes=[Route("all", [inline, own])], batch_size=10).run()
    )
    assert report.ok
    assert report.delivered == {"inline": 50, "own": 50}
    assert set(inline.tasks) == {SOURCE_TASK}
    assert set(own.tasks) == {"trio_sink.sink:own"}
    assert inline.ids == own.ids == list(range(50))


async def test_built_in_memory_sinks_never_block() -> None:
    assert NullSink.never_blocks is True
    assert CollectSink.never_blocks is True
    assert Sink.never_blocks is False


async def test_only_true_counts_as_a_declaration() -> None:
    sink = Tasks()
    sink.never_blocks = 1  # type: ignore[assignment]
    await Pipeline(range(3), routes=[Route("all", sink)]).run()
    assert set(sink.tasks) == {"trio_sink.sink:tasks"}


@pytest.mark.parametrize("retry", [None, NO_RETRY])
async def test_a_failed_inline_write_is_the_first_attempt_of_the_retry_policy(
    retry: RetryPolicy | None, autojump_clock: trio.testing.MockClock
) -> None:
    sink = FailsAt({20}, ConnectionError("refused"))
    errors = CollectSink("errors")
    settings = {} if retry is None else {"retry": retry}
    report = checked(
        await Pipeline(
            range(50),
            routes=[Route("all", sink)],
            infra=Infra(error=errors),
            batch_size=10,
            **settings,  # type: ignore[arg-type]
        ).run()
    )
    if retry is None:  # the default policy retries a ConnectionError: once more, then taken
        assert report.ok
        assert sink.attempts == [0, 10, 20, 20, 30, 40]
        assert sink.ids == list(range(50))
        assert report.delivered["fails"] == 50
    else:  # tried once, inline, and never again
        assert sink.attempts == [0, 10, 20, 30, 40]
        assert [u.record.id for u in report.undelivered] == list(range(20, 30))
        assert {u.reason for u in report.undelivered} == {"sink raised ConnectionError: refused"}
        assert sink.ids == [*range(20), *range(30, 50)]
        assert [r.id for r in errors.records] == list(range(20, 30))
    # Written inline until the failure, by the sink's own task from then on, in order.
    assert sink.tasks[:2] == [SOURCE_TASK, SOURCE_TASK]
    assert set(sink.tasks[2:]) == {"trio_sink.sink:fails"}


async def test_a_sink_that_awaits_after_saying_it_never_blocks_is_logged_and_moved(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    liar = Liar(at=2)
    report = checked(await Pipeline(range(40), routes=[Route("all", liar)], batch_size=10).run())
    assert report.ok
    assert liar.ids == list(range(40))
    assert liar.tasks == [SOURCE_TASK, SOURCE_TASK, "trio_sink.sink:liar", "trio_sink.sink:liar"]
    (warning,) = messages(caplog, "sink.awaited")
    assert "sink=liar" in warning


@pytest.mark.parametrize("retry", [None, NO_RETRY])
async def test_a_hung_inline_write_is_cut_at_the_write_timeout(
    retry: RetryPolicy | None,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    liar, other = Liar(at=2, hang=True), CollectSink("other")
    settings = {} if retry is None else {"retry": retry}
    began = trio.current_time()
    report = checked(
        await Pipeline(
            range(40),
            routes=[Route("all", [liar, other])],
            batch_size=10,
            write_timeout=5.0,
            **settings,  # type: ignore[arg-type]
        ).run()
    )
    assert trio.current_time() - began >= 5.0
    assert not report.timed_out
    assert report.delivered["other"] == 40
    if retry is None:  # a WriteTimeout is retried: by the sink's own task, which delivers
        assert report.ok
        assert liar.ids == list(range(40))
    else:
        assert [u.record.id for u in report.undelivered] == list(range(10, 20))
        (reason,) = {u.reason for u in report.undelivered}
        assert reason.startswith("sink raised WriteTimeout: the write took longer than 5 s")
        assert liar.ids == [*range(10), *range(20, 40)]
    assert liar.tasks[0] == SOURCE_TASK
    assert set(liar.tasks[1:]) == {"trio_sink.sink:liar"}
    assert messages(caplog, "sink.inline_timeout sink=liar seconds=5")


async def test_a_hung_inline_write_without_a_timeout_ends_at_the_drain_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    liar, other = Liar(at=2, hang=True), CollectSink("other")
    async with trio.open_nursery() as nursery:
        handle: PipelineHandle = await nursery.start(
            Pipeline(
                range(40),
                routes=[Route("all", [liar, other])],
                batch_size=10,
                write_timeout=None,
                drain_timeout=3.0,
            ).run
        )
        await trio.sleep(100)
        assert liar.calls == 2  # the source's task waits in the hung write
        handle.stop()
        report = checked(await handle.wait())
    assert report.timed_out
    assert report.delivered == {"liar": 10, "other": 10}
    # The hung batch for both sinks (it was routed; the source's task was writing it to
    # the liar, and had not sent it to the other), and the rest of the source not yet
    # pulled: the source's task was stuck in the write.
    assert report.received == 20
    lost = sorted((u.record.id, u.sink or "") for u in report.undelivered)
    assert lost == sorted((i, s) for i in range(10, 20) for s in ("liar", "other"))


async def test_a_paused_sink_is_written_by_its_own_task_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = Tasks()
    source_send, source_recv = trio.open_memory_channel[int](100)
    async with trio.open_nursery() as nursery:
        handle: PipelineHandle = await nursery.start(
            Pipeline(source_recv, routes=[Route("all", sink)], batch_size=5).run
        )
        for i in range(5):
            source_send.send_nowait(i)
        await trio.sleep(1)
        handle.pause("tasks")
        for i in range(5, 15):
            source_send.send_nowait(i)
        await trio.sleep(1)
        assert sink.ids == list(range(5))
        handle.resume("tasks")
        await trio.sleep(1)
        for i in range(15, 20):
            source_send.send_nowait(i)
        await trio.sleep(1)
        source_send.close()
        report = checked(await handle.wait())
    assert report.ok
    assert sink.ids == list(range(20))
    assert sink.tasks == [SOURCE_TASK, "trio_sink.sink:tasks", "trio_sink.sink:tasks", SOURCE_TASK]


async def test_a_sink_with_a_breaker_and_the_error_sink_have_their_own_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    guarded, errors = Tasks("guarded"), Tasks("errors")

    def boom(payload: int) -> bool:
        if payload == 3:
            raise ValueError(payload)
        return True

    report = checked(
        await Pipeline(
            range(10),
            routes=[Route("all", guarded, when=boom)],
            infra=Infra(error=errors),
            breaker={"guarded": CircuitBreaker()},
        ).run()
    )
    assert report.delivered == {"guarded": 9, "errors": 1}
    assert set(guarded.tasks) == {"trio_sink.sink:guarded"}
    assert set(errors.tasks) == {"trio_sink.sink:errors"}


async def test_an_inline_sink_counts_its_busy_time_and_a_write_that_blocks_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Sleeper(Tasks):
        async def write(self, batch: Sequence[Record]) -> None:
            time.sleep(0.15)  # noqa: ASYNC251 (holds the event loop: what the log reports)
            await super().write(batch)

    sink = Sleeper("sleeper")
    caplog.set_level(logging.WARNING)
    async with trio.open_nursery() as nursery:
        handle: PipelineHandle = await nursery.start(
            Pipeline(range(2), routes=[Route("all", sink)], batch_size=1).run
        )
        report = checked(await handle.wait())
        stats = handle.statistics().sinks["sleeper"]
    assert report.ok
    assert set(sink.tasks) == {SOURCE_TASK}
    assert stats.busy_seconds >= 0.3
    (warning,) = messages(caplog, "sink.blocking")
    assert "sink=sleeper" in warning


async def test_an_inline_write_that_raises_a_base_exception_is_reported() -> None:
    class Fatal(BaseException):
        pass

    class Dies(Tasks):
        async def write(self, batch: Sequence[Record]) -> None:
            if batch[0].id == 10:
                raise Fatal
            await super().write(batch)

    sink = Dies("dies")
    handles: list[PipelineHandle] = []
    with pytest.raises(BaseExceptionGroup) as caught:
        async with trio.open_nursery() as nursery:
            handles.append(
                await nursery.start(
                    Pipeline(range(30), routes=[Route("all", sink)], batch_size=10).run
                )
            )
    assert caught.group_contains(Fatal)
    report = checked(await handles[0].wait())
    assert report.received == 20  # the source was not pulled again
    assert report.delivered == {"dies": 10}
    assert sorted(u.record.id for u in report.undelivered) == list(range(10, 20))


async def test_a_sink_with_another_write_timeout_is_written_by_its_own_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    same1, same2, other = Tasks("same1"), Tasks("same2"), Tasks("other")
    await Pipeline(
        range(20),
        routes=[Route("all", [same1, same2, other])],
        write_timeout={"same1": 5.0, "same2": 5.0, "other": None},
    ).run()
    assert set(same1.tasks) == set(same2.tasks) == {SOURCE_TASK}
    assert set(other.tasks) == {"trio_sink.sink:other"}


async def test_a_hung_inline_sink_with_no_write_timeout_is_never_cut(
    autojump_clock: trio.testing.MockClock,
) -> None:
    liar = Liar(at=2, hang=True)
    async with trio.open_nursery() as nursery:
        handle: PipelineHandle = await nursery.start(
            Pipeline(range(40), routes=[Route("all", liar)], batch_size=10, write_timeout=None).run
        )
        await trio.sleep(10_000)
        assert liar.calls == 2
        assert liar.tasks == [SOURCE_TASK]
        handle.stop(immediate=True)
        report = checked(await handle.wait())
    assert report.delivered == {"liar": 10}


async def test_the_watchdog_of_inline_writes_leaves_a_wait_for_room_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Regression: the watchdog's timer ran on while the routing task waited for room in
    another sink's buffer, and cut that wait short at the write timeout."""

    class SourceSteps(trio.abc.Instrument):
        def __init__(self) -> None:
            self.at: list[float] = []

        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            if task.name == SOURCE_TASK:
                self.at.append(trio.current_time())

    inline, gated = Tasks("inline"), GatedSink()
    steps = SourceSteps()
    async with trio.open_nursery() as nursery:
        handle: PipelineHandle = await nursery.start(
            Pipeline(
                range(10),
                routes=[Route("all", [inline, gated])],
                batch_size=1,
                capacity=1,
                write_timeout={"inline": 5.0, "gated": None},
            ).run
        )
        await trio.sleep(1)  # the routing task now waits for room in the gated sink's buffer
        trio.lowlevel.add_instrument(steps)
        await trio.sleep(100)
        trio.lowlevel.remove_instrument(steps)
        assert steps.at == []
        for _ in range(10):
            gated.permits.release()
        report = checked(await handle.wait())
    assert report.ok
    assert set(inline.tasks) == {SOURCE_TASK}


async def test_a_timeout_that_lands_outside_the_hung_write_blames_no_other_sink(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Regression: a write that turned the watchdog's Cancelled into an error of its
    own let the cancellation land in another sink's wait for room, which was then
    handed a WriteTimeout for a batch it was never given."""

    class Absorbs(Tasks):
        async def write(self, batch: Sequence[Record]) -> None:
            if batch[0].id == 3:
                try:
                    await trio.sleep_forever()
                except trio.Cancelled:
                    raise ConnectionError("aborted") from None  # as some clients do
            await super().write(batch)

    a, b = Absorbs("a"), Tasks("b")
    send, recv = trio.open_memory_channel[int](100)
    async with trio.open_nursery() as nursery:
        handle: PipelineHandle = await nursery.start(
            Pipeline(
                recv,
                routes=[Route("all", [a, b])],
                batch_size=1,
                capacity=2,
                write_timeout=5.0,
                retry=NO_RETRY,
            ).run
        )
        handle.pause("b")
        for i in range(6):
            send.send_nowait(i)
            await trio.sleep(1)
        await trio.sleep(30)
        handle.resume("b")
        await trio.sleep(5)
        send.close()
        report = checked(await handle.wait())
    assert b.ids == list(range(6))
    assert report.delivered == {"a": 5, "b": 6}
    assert [(u.record.id, u.sink) for u in report.undelivered] == [(3, "a")]
