"""check_sink: every built-in sink passes; each deliberately broken sink fails its rule."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from trio_sink import Batch, Record, Sink
from trio_sink.sinks import CollectSink, JsonlFileSink, NullSink, SlowSink
from trio_sink.testing import (
    SINK_RULES,
    FlakySink,
    HangingSink,
    RecordingSink,
    SinkConformanceError,
    check_sink,
)

# -- built-in sinks pass -----------------------------------------------------------------


def collected(sink: CollectSink) -> list[Record]:
    return sink.records


def slow_collected(sink: SlowSink) -> list[Record]:
    inner = sink.inner
    assert isinstance(inner, CollectSink)
    return inner.records


async def test_null_sink_conforms(autojump_clock: trio.testing.MockClock) -> None:
    await check_sink(NullSink)


async def test_collect_sink_conforms(autojump_clock: trio.testing.MockClock) -> None:
    await check_sink(CollectSink, delivered=collected)


@pytest.mark.parametrize(("per_record", "per_batch"), [(0.0, 0.0), (0.1, 0.0), (0.1, 0.5)])
async def test_slow_sink_conforms(
    autojump_clock: trio.testing.MockClock, per_record: float, per_batch: float
) -> None:
    await check_sink(
        lambda: SlowSink(CollectSink("slow"), per_record=per_record, per_batch=per_batch),
        delivered=slow_collected,
    )


def read_jsonl(sink: JsonlFileSink) -> list[Record]:
    if not sink.path.exists():
        return []
    lines = sink.path.read_text().splitlines()
    return [Record(d["id"], d["raw"], d["payload"]) for d in map(json.loads, lines)]


async def test_jsonl_file_sink_conforms(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    made: list[JsonlFileSink] = []

    def make() -> JsonlFileSink:
        made.append(JsonlFileSink(tmp_path / f"out{len(made)}.jsonl", name="jsonl"))
        return made[-1]

    await check_sink(make, delivered=read_jsonl)
    assert len(made) > 5  # a fresh file for each rule run
    assert read_jsonl(made[0]) == [Record(i, f"raw-{i}", {"n": i}) for i in range(5)]


async def test_jsonl_file_sink_conforms_appending_to_one_file(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # delivered() is compared from where it stood when each sink was made.
    await check_sink(lambda: JsonlFileSink(tmp_path / "one.jsonl"), delivered=read_jsonl)


async def test_recording_sink_conforms(autojump_clock: trio.testing.MockClock) -> None:
    await check_sink(RecordingSink, delivered=lambda s: s.records)


async def test_recording_sink_around_a_slow_sink_conforms(
    autojump_clock: trio.testing.MockClock,
) -> None:
    await check_sink(
        lambda: RecordingSink(inner=SlowSink(CollectSink(), per_batch=1.0)),
        delivered=lambda s: s.records,
    )


async def test_flaky_and_hanging_sinks_that_never_act_up_conform(
    autojump_clock: trio.testing.MockClock,
) -> None:
    await check_sink(FlakySink, delivered=lambda s: s.records)
    await check_sink(lambda: HangingSink(after=1000), delivered=lambda s: s.records)


async def test_make_sink_may_be_async(autojump_clock: trio.testing.MockClock) -> None:
    made: list[CollectSink] = []

    async def make() -> CollectSink:
        await trio.sleep(1)
        made.append(CollectSink())
        return made[-1]

    await check_sink(make, delivered=collected)
    assert len(made) > 5
    assert all(sink.closed >= 1 for sink in made)  # every sink made is closed


class BareSink:
    """Sink-shaped, without flush or aclose, and not a Sink subclass."""

    def __init__(self) -> None:
        self.name = "bare"
        self.records: list[Record] = []

    async def write(self, batch: Sequence[Record]) -> None:
        await trio.sleep(0.5)
        self.records.extend(batch)


async def test_sink_shaped_object_without_flush_or_aclose_conforms(
    autojump_clock: trio.testing.MockClock,
) -> None:
    await check_sink(BareSink, delivered=lambda s: s.records)


# -- broken sinks fail, naming their rule ------------------------------------------------


async def expect_broken(
    rule: str, message_part: str, check: Awaitable[None]
) -> SinkConformanceError:
    """Await ``check``; it must fail ``rule`` with a message containing ``message_part``."""
    assert rule in SINK_RULES
    with pytest.raises(SinkConformanceError) as info:
        await check
    assert info.value.rule == rule
    assert rule in str(info.value)
    assert message_part in info.value.message
    assert isinstance(info.value, AssertionError)
    return info.value


class BackgroundSink(Sink):
    """Reports delivery before writing: hands the batch to a background task."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.name = "background"
        self.nursery = nursery
        self.records: list[Record] = []

    async def write(self, batch: Sequence[Record]) -> None:
        self.nursery.start_soon(self._write, list(batch))

    async def _write(self, batch: list[Record]) -> None:
        await trio.sleep(0.1)
        self.records.extend(batch)


async def test_sink_that_reports_delivery_before_writing_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        await expect_broken(
            "delivered_on_return",
            "holds ids [], expected [0, 1, 2]",
            check_sink(lambda: BackgroundSink(nursery), delivered=lambda s: s.records),
        )


class SwallowingSink(Sink):
    """Catches Cancelled and returns, as if it had delivered."""

    def __init__(self) -> None:
        self.name = "swallowing"
        self.records: list[Record] = []

    async def write(self, batch: Sequence[Record]) -> None:
        try:
            await trio.sleep(1)
        except trio.Cancelled:
            return
        self.records.extend(batch)


async def test_sink_that_swallows_cancellation_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    await expect_broken(
        "no_swallowed_cancel",
        "returned normally in a cancelled scope",
        check_sink(SwallowingSink, delivered=lambda s: s.records),
    )


class CloseOnceSink(Sink):
    def __init__(self) -> None:
        self.name = "close-once"
        self.closed = False

    async def write(self, batch: Sequence[Record]) -> None:
        pass

    async def aclose(self) -> None:
        if self.closed:
            raise RuntimeError("already closed")
        self.closed = True


async def test_sink_whose_second_aclose_raises_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    await expect_broken("aclose_idempotent", "second aclose()", check_sink(CloseOnceSink))


class RenamingSink(Sink):
    def __init__(self) -> None:
        self.name = "renaming-0"
        self.writes = 0

    async def write(self, batch: Sequence[Record]) -> None:
        self.writes += 1
        self.name = f"renaming-{self.writes}"


async def test_sink_whose_name_changes_fails(autojump_clock: trio.testing.MockClock) -> None:
    await expect_broken(
        "name", "'renaming-0' at creation, 'renaming-1' after write", check_sink(RenamingSink)
    )


class NamelessSink(Sink):
    name = ""

    async def write(self, batch: Sequence[Record]) -> None:
        pass


async def test_sink_with_an_empty_name_fails(autojump_clock: trio.testing.MockClock) -> None:
    await expect_broken("name", "non-empty str", check_sink(NamelessSink))


class LeakySink(Sink):
    """Starts a pump task in the caller's nursery and never stops it."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.name = "leaky"
        self.records: list[Record] = []
        nursery.start_soon(self._pump, name="leaky-pump")

    async def _pump(self) -> None:
        await trio.sleep_forever()

    async def write(self, batch: Sequence[Record]) -> None:
        self.records.extend(batch)


async def test_sink_that_leaves_a_task_behind_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        error = await expect_broken(
            "no_task_left_behind",
            "1 task(s) the sink started are still running: ['leaky-pump']",
            check_sink(lambda: LeakySink(nursery), delivered=lambda s: s.records),
        )
        nursery.cancel_scope.cancel()  # the pump is still there: end it
    assert "after aclose() returned" in str(error)


class TidySink(Sink):
    """Starts a task in its own nursery and ends it in aclose(): no task left behind."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.name = "tidy"
        self.records: list[Record] = []
        self.scope = trio.CancelScope()
        self.done = trio.Event()
        nursery.start_soon(self._pump)

    async def _pump(self) -> None:
        with self.scope:
            await trio.sleep_forever()
        self.done.set()

    async def write(self, batch: Sequence[Record]) -> None:
        self.records.extend(batch)

    async def aclose(self) -> None:
        self.scope.cancel()
        with trio.CancelScope(shield=True):  # forceful close: waiting is quick
            await self.done.wait()


async def test_sink_that_ends_its_task_in_aclose_conforms(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        await check_sink(lambda: TidySink(nursery), delivered=lambda s: s.records)


class TricklingSink(Sink):
    """Delivers a batch one record at a time: a cancellation leaves a prefix."""

    def __init__(self) -> None:
        self.name = "trickling"
        self.records: list[Record] = []

    async def write(self, batch: Sequence[Record]) -> None:
        for record in batch:
            await trio.sleep(1)
            self.records.append(record)


async def test_sink_that_delivers_a_prefix_when_cancelled_fails_exactly_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    await expect_broken(
        "cancel_during_write",
        "raised Cancelled, but delivered(sink) holds ids [0]",
        check_sink(TricklingSink, delivered=lambda s: s.records),
    )


async def test_sink_that_delivers_a_prefix_when_cancelled_passes_at_least_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    await check_sink(TricklingSink, delivered=lambda s: s.records, at_least_once=True)


class ScramblingSink(Sink):
    """Writes each batch in reverse order, and delivers a suffix when cancelled."""

    def __init__(self) -> None:
        self.name = "scrambling"
        self.records: list[Record] = []

    async def write(self, batch: Sequence[Record]) -> None:
        self.records.extend(reversed(batch))


async def test_sink_that_reorders_a_batch_fails(autojump_clock: trio.testing.MockClock) -> None:
    await expect_broken(
        "delivered_on_return",
        "holds ids [2, 1, 0], expected [0, 1, 2]",
        check_sink(ScramblingSink, delivered=lambda s: s.records),
    )


class SuffixSink(Sink):
    """Delivers a batch back to front, one record at a time: a cancellation leaves a
    suffix, which is not at-least-once either. (``delivered`` sorts by id, so a whole
    batch reads back in order.)"""

    def __init__(self) -> None:
        self.name = "suffix"
        self.by_id: dict[int, Record] = {}

    async def write(self, batch: Sequence[Record]) -> None:
        for record in reversed(batch):
            await trio.sleep(1)
            self.by_id[record.id] = record


def sorted_by_id(sink: SuffixSink) -> list[Record]:
    return [sink.by_id[i] for i in sorted(sink.by_id)]


async def test_at_least_once_still_needs_all_or_a_prefix(
    autojump_clock: trio.testing.MockClock,
) -> None:
    await expect_broken(
        "cancel_during_write",
        "holds ids [2]; a cancelled write must have delivered nothing or a prefix of the batch",
        check_sink(SuffixSink, delivered=sorted_by_id, at_least_once=True),
    )


class ConvertingSink(Sink):
    """Turns a cancellation into its own error."""

    def __init__(self) -> None:
        self.name = "converting"

    async def write(self, batch: Sequence[Record]) -> None:
        try:
            await trio.sleep(1)
        except trio.Cancelled:
            raise OSError("write interrupted") from None


async def test_sink_that_turns_cancelled_into_another_error_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    error = await expect_broken(
        "cancel_before_write", "must raise Cancelled", check_sink(ConvertingSink)
    )
    assert isinstance(error.__cause__, OSError)


class FailingFlushSink(Sink):
    name = "failing-flush"

    async def write(self, batch: Sequence[Record]) -> None:
        pass

    async def flush(self) -> None:
        raise OSError("disk full")


async def test_sink_whose_flush_raises_fails(autojump_clock: trio.testing.MockClock) -> None:
    await expect_broken(
        "write_flush_aclose", "flush() raised OSError", check_sink(FailingFlushSink)
    )


async def test_sink_whose_aclose_raises_under_cancellation_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Sink2(Sink):
        name = "cancel-close"

        async def write(self, batch: Sequence[Record]) -> None:
            pass

        async def aclose(self) -> None:
            try:
                await trio.lowlevel.checkpoint()
            except trio.Cancelled:
                raise RuntimeError("cannot close now") from None

    await expect_broken("aclose_cancelled", "aclose() raised RuntimeError", check_sink(Sink2))


def test_sink_conformance_error_carries_rule_and_message() -> None:
    error = SinkConformanceError("name", "it changed")
    assert (error.rule, error.message) == ("name", "it changed")
    assert str(error) == "sink conformance rule 'name' broken: it changed"
    assert isinstance(error, AssertionError)


# -- never_blocks ------------------------------------------------------------------------


def test_null_and_collect_sinks_declare_never_blocks() -> None:
    # ... and so are held to it by check_sink, in the tests of them above.
    assert NullSink.never_blocks is True
    assert CollectSink.never_blocks is True


class LiarSink(Sink):
    """Declares that it never blocks, and awaits at its ``at``-th write."""

    never_blocks = True

    def __init__(self, at: int = 1) -> None:
        self.name = "liar"
        self.at = at
        self.writes = 0
        self.records: list[Record] = []

    async def write(self, batch: Sequence[Record]) -> None:
        self.writes += 1
        if self.writes == self.at:
            await trio.sleep(0.1)
        self.records.extend(batch)


@pytest.mark.parametrize(("at", "ids"), [(1, "[0, 1, 2]"), (2, "[3, 4]")])
async def test_sink_that_says_it_never_blocks_and_awaits_fails(
    autojump_clock: trio.testing.MockClock, at: int, ids: str
) -> None:
    error = await expect_broken(
        "never_blocks",
        f"sink 'liar' declares never_blocks = True, but its write of ids {ids} reached a"
        " checkpoint",
        check_sink(lambda: LiarSink(at), delivered=lambda s: s.records),
    )
    assert "drop never_blocks" in error.message


class CheckingSink(Sink):
    """Checks for cancellation, and does nothing else: a checkpoint once cancelled."""

    name = "checking"

    async def write(self, batch: Sequence[Record]) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()


class CheckingLiarSink(CheckingSink):
    """The same, declaring that it never blocks: a write that never blocks does not
    reach a checkpoint even when cancelled."""

    never_blocks = True


async def test_sink_that_says_it_never_blocks_is_held_to_it_when_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    await check_sink(CheckingSink)  # without the claim, a fine sink
    await expect_broken(
        "never_blocks", "write of ids [0, 1, 2] reached a checkpoint", check_sink(CheckingLiarSink)
    )


class ColumnSink:
    """Sink-shaped, never blocks: keeps the rows of each batch's columns, building no
    record (check_sink gives a Batch, as a pipeline does)."""

    never_blocks = True

    def __init__(self) -> None:
        self.name = "columns"
        self.rows: list[tuple[int, Any, Any]] = []

    async def write(self, batch: Sequence[Record]) -> None:
        assert isinstance(batch, Batch)
        self.rows.extend(zip(batch.ids, batch.raws, batch.payloads, strict=True))


def column_rows(sink: ColumnSink) -> list[Record]:
    return [Record(*row) for row in sink.rows]


async def test_sink_that_reads_columns_and_never_blocks_conforms(
    autojump_clock: trio.testing.MockClock,
) -> None:
    await check_sink(ColumnSink, delivered=column_rows)
