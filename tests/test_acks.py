"""Source acknowledgements: in order, only what is safe, batched, and the last one before
the source is closed."""

from __future__ import annotations

import logging
from collections.abc import Sequence
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

    def __init__(self, name: str, bad: set[int]) -> None:
        self.name = name
        self.bad = bad
        self.records: list[Record] = []

    async def write(self, batch: Sequence[Record]) -> None:
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
    source = AckingSource(range(40))
    with RescueStore(tmp_path / "rescue") as store:
        report = await Pipeline(
            source,
            routes=[Route("all", HangingSink("hangs", after=2))],
            batch_size=5,
            capacity=1,
            drain_timeout=10.0,
            rescue=store,
        ).run()
    assert report.timed_out
    assert all(u.stored for u in report.undelivered)
    assert source.acked == list(range(40))
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
    source = AckingSource(range(10))
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
