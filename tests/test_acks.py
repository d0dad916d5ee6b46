"""Source acknowledgements: in order, only what is safe, batched, and the last one before
the source is closed."""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from trio_sink import (
    NO_RETRY,
    Miss,
    PermanentError,
    Pipeline,
    Record,
    RescueStore,
    Route,
    Source,
)
from trio_sink._source import acknowledges
from trio_sink.sinks import CollectSink
from trio_sink.testing import AckingSource, HangingSink, Pause, SlowSink, running


class Refusing:
    """Delivers every record but those of ``bad`` ids: a batch holding one raises
    :class:`PermanentError` (no retry)."""

    def __init__(self, name: str, bad: set[int], delay: float = 0.0) -> None:
        self.name = name
        self.bad = bad
        self.delay = delay
        self.records: list[Record] = []

    async def write(self, batch: Sequence[Record]) -> None:
        if self.delay:
            await trio.sleep(self.delay)
        if any(r.id in self.bad for r in batch):
            raise PermanentError(f"refused {sorted(r.id for r in batch if r.id in self.bad)}")
        self.records.extend(batch)


def acked_ids(source: AckingSource) -> list[int]:
    return [int(x) for x in source.acked]


async def test_every_item_is_acknowledged_in_order_then_the_source_closes() -> None:
    source = AckingSource(range(1000))
    a, b = CollectSink("a"), CollectSink("b")
    report = await Pipeline(source, routes=[Route("all", [a, b])], batch_size=16).run()
    assert report.ok
    assert source.acked == list(range(1000))
    assert report.acknowledged == 1000
    # Consecutive runs: each call begins where the one before ended.
    assert [x for call in source.calls for x in call] == list(range(1000))
    assert source.events[0] == "open"
    assert source.events[-1] == "close"
    assert source.events.count("close") == 1
    assert source.most_in_flight == 1


async def test_a_source_without_ack_gets_no_call_and_the_report_says_none() -> None:
    class Plain(Source[int]):
        async def __aiter__(self) -> Any:
            for i in range(3):
                yield i

    assert not acknowledges(Plain())
    assert acknowledges(AckingSource())
    report = await Pipeline(Plain(), routes=[Route("all", CollectSink("a"))]).run()
    assert report.acknowledged is None


async def test_an_undelivered_unstored_record_stops_the_acknowledged_prefix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = AckingSource(range(100))
    good, refusing = CollectSink("good"), Refusing("refusing", {37})
    report = await Pipeline(
        source, routes=[Route("all", [good, refusing])], batch_size=8, retry=NO_RETRY
    ).run()
    assert [u.record.id for u in report.undelivered] == list(range(32, 40))  # its batch
    # Nothing from the first undelivered record on: not even what was delivered after.
    assert source.acked == list(range(32))
    assert report.acknowledged == 32
    assert "drain.unacknowledged items=68" in caplog.text or "source.acks_ended" in caplog.text


async def test_stored_records_are_safe_and_acknowledged(
    tmp_path: Path, inline_threads: None
) -> None:
    source = AckingSource(range(100))
    refusing = Refusing("refusing", {5, 50, 99})
    with RescueStore(tmp_path / "rescue") as store:
        report = await Pipeline(
            source, routes=[Route("all", refusing)], batch_size=10, retry=NO_RETRY, rescue=store
        ).run()
    assert len(report.undelivered) == 30
    assert all(u.stored for u in report.undelivered)
    assert source.acked == list(range(100))


async def test_records_discarded_by_configuration_are_acknowledged() -> None:
    def parse(raw: int) -> int:
        if raw % 3 == 0:
            raise Miss("no rule")
        return raw

    source = AckingSource(range(60))
    kept = CollectSink("kept")
    report = await Pipeline(
        source, parse=parse, routes=[Route("odd", kept, when=lambda x: x % 2 == 1)]
    ).run()
    assert report.discarded["miss"] == 20
    assert report.discarded["default"] > 0
    assert source.acked == list(range(60))


async def test_a_deadline_acknowledges_what_was_delivered_and_nothing_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    source = AckingSource(range(40))
    hanging = HangingSink("hangs", after=2)
    report = await Pipeline(
        source, routes=[Route("all", hanging)], batch_size=5, capacity=1, drain_timeout=10.0
    ).run()
    assert report.timed_out
    first_lost = min(u.record.id for u in report.undelivered)
    assert source.acked == list(range(first_lost))
    assert source.events[-1] == "close"


async def test_at_a_deadline_the_stored_rest_is_acknowledged_before_close(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, inline_threads: None
) -> None:
    # An ack takes 0.5 s: the last one, past the deadline, has a grace of 2 s.
    source = AckingSource(range(40), ack_delay=0.5)
    with RescueStore(tmp_path / "rescue") as store:
        report = await Pipeline(
            source,
            routes=[Route("all", HangingSink("hangs", after=2))],
            batch_size=5,
            capacity=8,
            drain_timeout=10.0,
            rescue=store,
        ).run()
    assert report.timed_out
    assert sorted(u.record.id for u in report.undelivered) == list(range(10, 40))
    assert all(u.stored for u in report.undelivered)
    assert source.acked == list(range(40))
    assert source.calls[-1] == tuple(range(10, 40))
    assert source.events[-2:] == ["ack", "close"]


async def test_an_ack_that_raises_ends_acknowledgements_and_delivery_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "trio_sink")
    source = AckingSource(range(300), fail_ack=OSError("offset file is read-only"))
    sink = CollectSink("a")
    report = await Pipeline(source, routes=[Route("all", sink)], batch_size=10).run()
    assert report.ok
    assert len(sink.records) == 300
    assert source.acked == []
    assert report.acknowledged == 0
    assert "source.acks_ended" in caplog.text
    assert "offset file is read-only" in caplog.text
    assert source.events == ["open", "close"]


async def test_a_slow_ack_never_holds_the_data_path_and_calls_are_batched(
    autojump_clock: trio.testing.MockClock,
) -> None:
    source = AckingSource(range(2000), ack_delay=5.0)
    sink = CollectSink("a")
    start = trio.current_time()
    async with running(
        Pipeline(source, routes=[Route("all", sink)], batch_size=10, drain_timeout=None)
    ) as handle:
        while len(sink.records) < 2000:  # noqa: ASYNC110
            await trio.sleep(0.01)
        # Every record was delivered long before the first ack call returned.
        assert trio.current_time() - start < 5.0
        await handle.wait()
    assert source.acked == list(range(2000))
    assert source.most_in_flight == 1
    assert len(source.calls) < 10  # 200 batches, a few calls


async def test_an_ack_still_running_at_the_deadline_is_cancelled(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    source = AckingSource(range(20), ack_delay=1000.0)
    report = await Pipeline(
        source, routes=[Route("all", CollectSink("a"))], drain_timeout=3.0
    ).run()
    # Delivered at once; the run then waits for the ack call until the drain deadline.
    assert report.ok
    assert report.drain_seconds == pytest.approx(3.0)
    assert source.acked == []
    assert report.acknowledged == 0
    assert "acknowledgement was cancelled" in caplog.text
    assert source.events == ["open", "close"]


async def test_cancelled_from_outside_the_stored_rest_is_still_acknowledged(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, inline_threads: None
) -> None:
    source = AckingSource(range(10), ack_delay=0.5)
    slow = SlowSink(CollectSink("slow"), per_batch=1.0)
    with RescueStore(tmp_path / "rescue") as store, trio.move_on_after(0.5):
        await Pipeline(source, routes=[Route("all", slow)], batch_size=5, rescue=store).run()
    # Nothing was delivered; all was stored at the end, then acknowledged by the last
    # call (shielded from the cancellation, within its grace).
    assert source.acked == list(range(10))
    assert source.events[-2:] == ["ack", "close"]


async def test_the_statistics_show_acknowledged_and_the_oldest_unacknowledged_age(
    autojump_clock: trio.testing.MockClock,
) -> None:
    source = AckingSource([0, 1, Pause(1.0)], endless=lambda i: 100 + i, interval=1.0)
    hanging = HangingSink("hangs", after=1)
    async with running(
        Pipeline(
            source, routes=[Route("all", hanging)], batch_size=2, capacity=4, drain_timeout=1.0
        )
    ) as handle:
        await trio.sleep(5.5)
        stats = handle.statistics().source
        assert stats.acknowledged == 2  # the first batch only: the rest hangs
        assert stats.unacknowledged_age is not None
        assert stats.unacknowledged_age >= 3.0
        handle.stop()
    plain = Pipeline(range(3), routes=[Route("all", CollectSink("a"))])
    async with running(plain) as handle:
        stats = handle.statistics().source
        assert stats.acknowledged is None
        assert stats.unacknowledged_age is None


async def test_without_a_store_a_failure_while_running_ends_acknowledgements(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing after an unsafe record can be acknowledged in this run: the items are no
    longer held (a long run would keep them all)."""
    source = AckingSource(endless=lambda i: i, interval=0.01)
    refusing = Refusing("r", {30})
    async with running(
        Pipeline(source, routes=[Route("all", refusing)], batch_size=10, retry=NO_RETRY)
    ) as handle:
        while len(refusing.records) < 200:  # noqa: ASYNC110
            await trio.sleep(0.1)
        assert handle._source.acks is not None
        assert handle._source.acks.ended
        assert not handle._source.acks.held
        handle.stop()
    assert source.acked == list(range(30))
    assert "record 30 was neither delivered nor stored" in caplog.text


async def test_a_frontier_inside_a_batch_acknowledges_the_items_before_it() -> None:
    source = AckingSource(range(10))
    good, refusing = CollectSink("good"), Refusing("refusing", set(range(10)))
    report = await Pipeline(
        source,
        routes=[Route("all", good), Route("big", refusing, when=lambda x: x >= 5)],
        batch_size=10,
        retry=NO_RETRY,
    ).run()
    assert [u.record.id for u in report.undelivered] == [5, 6, 7, 8, 9]
    assert source.acked == [0, 1, 2, 3, 4]


async def test_items_given_up_before_routing_are_not_acknowledged_unless_stored(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, inline_threads: None
) -> None:
    for store in (None, RescueStore(tmp_path / "rescue")):
        # Delivered: 0, 1, 2. Then 3, 4, 5 wait for the batch timeout in the source's
        # hands when the immediate stop comes.
        source = AckingSource([0, 1, 2, Pause(1.0), 3, 4, 5, Pause(10.0)])
        async with running(
            Pipeline(
                source, routes=[Route("all", CollectSink("a"))], batch_timeout=0.5, rescue=store
            )
        ) as handle:
            await trio.sleep(1.2)
            handle.stop(immediate=True)
            report = await handle.wait()
        assert [(u.record.id, u.sink) for u in report.undelivered] == [
            (3, None),
            (4, None),
            (5, None),
        ]
        assert source.acked == ([0, 1, 2] if store is None else [0, 1, 2, 3, 4, 5])
        if store is not None:
            store.close()


async def test_a_store_that_fails_in_the_drain_and_works_at_the_end_gets_all_acknowledged(
    autojump_clock: trio.testing.MockClock,
    tmp_path: Path,
    inline_threads: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = AckingSource(range(10))
    refusing = Refusing("r", {7}, delay=1.0)
    with RescueStore(tmp_path / "rescue") as store:
        calls = 0
        arescue = store.arescue

        async def fails_once(undelivered: Any) -> int:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise OSError("disk full")
            return await arescue(undelivered)

        monkeypatch.setattr(store, "arescue", fails_once)
        slower = SlowSink(CollectSink("slower"), per_batch=5.0)  # the drain goes on
        report = await Pipeline(
            source,
            routes=[Route("all", [refusing, slower])],
            batch_size=5,
            retry=NO_RETRY,
            rescue=store,
        ).run()
    # The source ended at once: the failure came in the drain, and the end of the run
    # stored the batch after all.
    assert report.drain_seconds >= 10.0
    assert all(u.stored for u in report.undelivered)
    assert source.acked == list(range(10))


async def test_a_failure_while_running_waits_for_the_slower_sinks_before_acks_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    source = AckingSource(endless=lambda i: i, interval=0.01)
    refusing = Refusing("fast", {30})
    behind = CollectSink("slow")
    slow = SlowSink(behind, per_batch=0.5)
    async with running(
        Pipeline(
            source,
            routes=[Route("all", [refusing, slow])],
            batch_size=10,
            retry=NO_RETRY,
            drain_timeout=None,
        )
    ) as handle:
        while len(refusing.records) < 100:  # noqa: ASYNC110
            await trio.sleep(0.1)
        # The slow sink has not delivered 0-29 yet: they are not acknowledged yet.
        assert len(source.acked) < 30
        while len(behind.records) < 100:  # noqa: ASYNC110
            await trio.sleep(0.1)
        handle.stop()
    assert source.acked == list(range(30))


async def test_calls_begin_at_least_the_sources_ack_interval_apart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    source = AckingSource(endless=lambda i: i, interval=0.01)
    source.ack_interval = 1.0
    began: list[float] = []
    ack = source.ack

    async def timed(items: Sequence[Any]) -> None:
        began.append(trio.current_time())
        await ack(items)

    source.ack = timed  # type: ignore[method-assign]
    pipeline = Pipeline(source, routes=[Route("all", CollectSink("a"))], batch_size=1)
    async with running(pipeline) as handle:
        await trio.sleep(5.05)
        handle.stop()
    assert len(began) >= 5
    # The last call, at the end of the run, is not paced.
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(began[:-1]))
    # Every item was acknowledged all the same, the last ones by the call at the end.
    assert source.acked == list(range(len(source.acked)))
    assert len(source.acked) >= 500


async def test_the_pause_between_calls_never_holds_up_the_end_of_a_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    source = AckingSource([*range(50), Pause(0.5), *range(50, 100)])
    source.ack_interval = 100.0
    report = await Pipeline(source, routes=[Route("all", CollectSink("a"))]).run()
    assert trio.current_time() < 1.0
    assert report.acknowledged == 100
    assert len(source.calls) == 2  # one while running, then the last one


async def test_an_ack_that_raises_keyboard_interrupt_loses_no_record() -> None:
    class Interrupting(Source[int]):
        async def __aiter__(self) -> AsyncIterator[int]:
            for i in range(1000):
                yield i

        async def ack(self, items: Sequence[int]) -> None:
            raise KeyboardInterrupt

    pipeline = Pipeline(Interrupting(), routes=[Route("all", CollectSink("a"))], batch_size=10)
    handle = None

    async def main(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal handle
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(pipeline.run)

    with pytest.RaisesGroup(KeyboardInterrupt, flatten_subgroups=True, allow_unwrapped=True):
        await main()
    assert handle is not None
    report = handle.report
    assert report is not None
    report.check()
    assert report.acknowledged == 0
