"""Sinks that never block, written by the routing task: the same accounting, the same
retries, the same order; and a sink that says so falsely is caught."""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Sequence

import pytest
import trio
import trio.testing
from helpers import GatedSink, checked, messages, one_a_second

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
from trio_sink._control import StopControl
from trio_sink._dest import Dest
from trio_sink._fanout import Fanout
from trio_sink._feeds import SinkBatch
from trio_sink._ledger import Ledger
from trio_sink._route import INFRA_GROUPS, Router
from trio_sink._sink import SinkSlot
from trio_sink._writer import SinkWriter
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
    """Says it never blocks, and awaits ``seconds`` (``hang``: forever) at its ``at``-th
    write."""

    def __init__(self, at: int = 2, *, hang: bool = False, seconds: float = 0.5) -> None:
        super().__init__("liar")
        self.at = at
        self.hang = hang
        self.seconds = seconds
        self.calls = 0

    async def write(self, batch: Sequence[Record]) -> None:
        self.calls += 1
        if self.calls == self.at:
            if self.hang:
                await trio.sleep_forever()
            await trio.sleep(self.seconds)
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


async def test_after_a_failed_inline_write_the_sink_has_its_own_task_for_good(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # An item a second: the sink's task is done with the failed batch long before the
    # next one comes, and still takes it (and every later one).
    sink = FailsAt({2}, ConnectionError("refused"))
    report = checked(
        await Pipeline(one_a_second(6), routes=[Route("all", sink)], batch_size=1).run()
    )
    assert report.ok
    assert sink.attempts == [0, 1, 2, 2, 3, 4, 5]
    assert sink.tasks == [SOURCE_TASK] * 2 + ["trio_sink.sink:fails"] * 4


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
    with trio.fail_after(100):  # a write never cut hangs the run
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


async def test_a_second_hung_write_in_the_same_batch_is_cut_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The watchdog cuts the first sink's write of batch [10, 20); the routing task goes
    # on with that batch, and the second sink's write of it hangs as well: timed too.
    first, second = Liar(at=2, hang=True), Liar(at=2, hang=True)
    second.name = "second"
    began = trio.current_time()
    with trio.fail_after(100):
        report = checked(
            await Pipeline(
                range(40), routes=[Route("all", [first, second])], batch_size=10, write_timeout=5.0
            ).run()
        )
    assert 10.0 <= trio.current_time() - began < 11.0  # each cut at 5 s, then retried
    assert report.ok
    assert first.ids == second.ids == list(range(40))
    for liar in (first, second):
        assert liar.tasks[0] == SOURCE_TASK
        assert set(liar.tasks[1:]) == {f"trio_sink.sink:{liar.name}"}


async def test_a_write_after_one_that_awaited_gets_its_whole_write_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The first sink's write of [10, 20) awaits 4 s (within its 5 s), then the second
    # sink's write of the same batch hangs: it is cut 5 s after it began, not 5 s after
    # the first write began.
    first, second = Liar(at=2, seconds=4.0), Liar(at=2, hang=True)
    second.name = "second"
    began = trio.current_time()
    with trio.fail_after(100):
        report = checked(
            await Pipeline(
                range(40), routes=[Route("all", [first, second])], batch_size=10, write_timeout=5.0
            ).run()
        )
    assert 9.0 <= trio.current_time() - began < 10.0  # cut at 4 + 5 s, then retried
    assert report.ok
    assert first.ids == second.ids == list(range(40))
    assert first.tasks[:2] == [SOURCE_TASK] * 2  # the write that awaited ended there
    assert set(first.tasks[2:]) == {"trio_sink.sink:liar"}


async def test_after_a_write_was_cut_a_later_hung_write_is_cut_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # An item a second. The first sink's write of [1] is cut at 6 s; the second sink's
    # writes go on, by the routing task, until one hangs: that one is cut as well.
    first, second = Liar(at=2, hang=True), Liar(at=5, hang=True)
    second.name = "second"
    with trio.fail_after(100):
        report = checked(
            await Pipeline(
                one_a_second(12),
                routes=[Route("all", [first, second])],
                batch_size=1,
                write_timeout=5.0,
            ).run()
        )
    assert report.ok
    assert first.ids == second.ids == list(range(12))
    assert first.tasks[0] == SOURCE_TASK
    assert set(first.tasks[1:]) == {"trio_sink.sink:liar"}
    assert second.tasks[:4] == [SOURCE_TASK] * 4
    assert set(second.tasks[4:]) == {"trio_sink.sink:second"}


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


class Routing:
    """One sink, outside a pipeline: the routing task's Fanout, the sink's channel and
    its writer (not running until :meth:`run_writer`), for tests that need an exact
    state of the two tasks."""

    def __init__(self, sink: Tasks) -> None:
        slot = SinkSlot(sink)
        self.ledger = ledger = Ledger([slot.name])
        self.account = account = ledger.accounts[slot.name]
        send, self.recv = trio.open_memory_channel[SinkBatch](math.inf)
        dest = Dest(account, send)
        router = Router(None, [(None, [dest])], dict.fromkeys(INFRA_GROUPS), ledger)
        self.fanout = Fanout(router, [dest])
        self.writer = SinkWriter(slot, account, ledger, control=StopControl(None, ledger))
        self.fanout.connect([self.writer], None, None)
        self.pause = self.writer.pause

    async def ship(self, first: int, n: int) -> None:
        assert self.ledger.receive(n) == first
        await self.fanout.ship(first, list(range(first, first + n)))

    async def run_writer(self, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await self.writer.run(self.recv)


async def test_a_batch_waits_behind_those_in_its_sinks_buffer() -> None:
    # Batches sent while the sink was paused are still in its buffer when it is resumed:
    # the next batch goes after them, through the channel, not written ahead of them.
    sink = Tasks("s")
    routing = Routing(sink)
    routing.pause.pause()
    await routing.ship(0, 2)
    await routing.ship(2, 2)
    routing.pause.resume()
    await routing.ship(4, 2)
    assert (routing.account.buffered, sink.ids) == (6, [])
    async with trio.open_nursery() as nursery:
        await nursery.start(routing.run_writer)
        routing.fanout.close()
    assert sink.ids == list(range(6))
    routing.ledger.report(0.0).check()


async def test_a_batch_waits_behind_the_one_in_its_sinks_hands() -> None:
    # The sink's task took a batch and waits, paused; resumed, it has not run yet when
    # the next batch is shipped: that one goes through the channel, after it.
    sink = Tasks("s")
    routing = Routing(sink)
    async with trio.open_nursery() as nursery:
        await nursery.start(routing.run_writer)
        await trio.testing.wait_all_tasks_blocked()
        routing.pause.pause()
        await routing.ship(0, 2)
        await trio.testing.wait_all_tasks_blocked()
        assert (routing.account.buffered, routing.account.in_flight) == (0, 2)
        routing.pause.resume()
        await routing.ship(2, 2)
        assert sink.ids == []
        await trio.testing.wait_all_tasks_blocked()
        await routing.ship(4, 2)  # all caught up: written by this task
        routing.fanout.close()
    assert sink.ids == list(range(6))
    assert sink.tasks[-1] == trio.lowlevel.current_task().name
    routing.ledger.report(0.0).check()


async def test_the_routing_task_writing_every_batch_still_lets_others_run() -> None:
    # Small batches, every one written by the routing task itself: it must still switch
    # tasks now and then, or nothing else (a Stop included) would ever run.
    sink = NullSink("null")
    async with trio.open_nursery() as nursery:
        handle: PipelineHandle = await nursery.start(
            Pipeline(itertools.count(), routes=[Route("all", sink)], batch_size=4).run
        )
        await trio.sleep(0.05)
        handle.stop()
        report = checked(await handle.wait())
    assert report.received > 0
    assert report.delivered == {"null": report.received}
