"""The watchdog of a sink's writes (``_watchdog.py``, and the writer's guarded loop): a
write of the main loop that runs past ``write_timeout`` is cancelled and fails with a
WriteTimeout, timed from its own beginning; whatever else the writer does meanwhile
(a retry's backoff, waiting for input) is left alone. In virtual time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import trio
import trio.testing
from helpers import checked

from trio_sink import CircuitBreaker, Pipeline, Record, RescueStore, RetryPolicy, Route
from trio_sink._watchdog import Watchdog
from trio_sink.testing import Pause, ScriptedSource

TIMED_OUT = "sink raised WriteTimeout: the write took longer than 5 s, and was cancelled"

Step = float | Exception | None


class Timed:
    """A sink whose writes, in turn, take the given seconds (None: until cancelled) or
    raise the given exception; it notes when each began and how it ended."""

    name = "db"

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.writes: list[tuple[float, float, str]] = []  # began, ended, how
        self.ids: list[int] = []

    async def write(self, batch: Sequence[Record]) -> None:
        step = self.steps.pop(0) if self.steps else 0.0
        began = trio.current_time()
        try:
            if isinstance(step, Exception):
                raise step
            if step is None:
                await trio.sleep_forever()
            else:
                await trio.sleep(step)
        except trio.Cancelled:
            self.writes.append((began, trio.current_time(), "cancelled"))
            raise
        except Exception:
            self.writes.append((began, trio.current_time(), "raised"))
            raise
        self.writes.append((began, trio.current_time(), "done"))
        self.ids.extend(r.id for r in batch)


def _one_at_a_time(*items: int | float) -> ScriptedSource:
    """Each int an item (a batch of its own); each float a pause of that many seconds."""
    return ScriptedSource([Pause(x) if isinstance(x, float) else x for x in items])


def _pipeline(source: ScriptedSource, sink: Timed, retry: RetryPolicy | None) -> Pipeline:
    return Pipeline(
        source,
        routes=[Route("r", sink)],
        batch_size=1,
        batch_timeout=0,
        write_timeout=5.0,
        retry=retry,
    )


async def test_the_watchdog_ends_with_its_writer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Waiting for a next write that never comes would hold the run open for good.
    sink = Timed(1.0)
    with trio.fail_after(100):
        report = checked(await _pipeline(_one_at_a_time(0), sink, retry=None).run())
    assert report.ok
    assert trio.current_time() == 1.0


async def test_a_write_that_hangs_after_an_idle_spell_is_timed_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The watchdog waits without a deadline while no write runs; the next write wakes it.
    sink = Timed(0.5, None)
    report = checked(await _pipeline(_one_at_a_time(0, 20.0, 1), sink, retry=None).run())
    assert sink.writes == [(0.0, 0.5, "done"), (20.0, 25.0, "cancelled")]
    assert [(u.record.id, u.reason) for u in report.undelivered] == [(1, TIMED_OUT)]
    assert report.delivered == {"db": 1}


async def test_a_write_is_timed_from_its_own_beginning(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The watchdog slept for the first write (until 5); the second began at 3: it is
    # cancelled at 8, neither at 5 nor later.
    sink = Timed(1.0, None)
    report = checked(await _pipeline(_one_at_a_time(0, 3.0, 1), sink, retry=None).run())
    assert sink.writes == [(0.0, 1.0, "done"), (3.0, 8.0, "cancelled")]
    assert [(u.record.id, u.reason) for u in report.undelivered] == [(1, TIMED_OUT)]


async def test_the_backoff_of_a_retry_is_not_cut_by_the_watchdog(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The first attempt fails at once; the retry waits 10 s, past the write timeout,
    # while no write runs: nothing is cancelled, and the retry delivers the batch.
    sink = Timed(ConnectionResetError("reset"), 0.0)
    policy = RetryPolicy(attempts=2, initial_backoff=10.0, jitter=0)
    pipeline = _pipeline(_one_at_a_time(0), sink, retry=policy)
    report = checked(await pipeline.run())
    assert sink.writes == [(0.0, 0.0, "raised"), (10.0, 10.0, "done")]
    assert report.ok
    assert sink.ids == [0]


async def test_after_a_timed_out_write_a_later_write_that_hangs_is_timed_out_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The third write begins while the watchdog sleeps for the second (done at 6.5,
    # watched until 11): it is watched in turn, and cancelled at 13.
    sink = Timed(None, 0.5, None)
    source = _one_at_a_time(0, 6.0, 1, 2.0, 2)
    report = checked(await _pipeline(source, sink, retry=None).run())
    assert sink.writes == [(0.0, 5.0, "cancelled"), (6.0, 6.5, "done"), (8.0, 13.0, "cancelled")]
    assert [(u.record.id, u.reason) for u in report.undelivered] == [
        (0, TIMED_OUT),
        (2, TIMED_OUT),
    ]
    assert sink.ids == [1]


async def test_a_timed_out_write_is_retried_as_a_failed_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The timeout is the first attempt's failure: the retry policy goes on from it, and
    # the batch is delivered by its second attempt.
    sink = Timed(None, 0.5)
    policy = RetryPolicy(attempts=2, initial_backoff=1.0, jitter=0)
    report = checked(await _pipeline(_one_at_a_time(0), sink, retry=policy).run())
    assert sink.writes == [(0.0, 5.0, "cancelled"), (6.0, 6.5, "done")]
    assert report.ok


async def test_a_watchdog_without_a_write_timeout_has_nothing_to_watch() -> None:
    watchdog = Watchdog("db", None)
    await watchdog.watch()  # returns at once
    assert not watchdog.timed_out


async def test_a_replay_after_a_delivered_write_is_not_cut_by_the_watchdog(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, inline_threads: None
) -> None:
    # Two batches fail and are parked; the third is delivered at 1, and the parked ones
    # are replayed one after the other (3 s each: from 1, then from 4). The watchdog,
    # which watched the write of 1 until 6, finds no write of the main loop running
    # then: the replay in progress is left alone.
    sink = Timed(OSError("down"), OSError("down"), 0.0, 3.0, 3.0)
    with RescueStore(tmp_path, fsync="never") as store:
        pipeline = Pipeline(
            _one_at_a_time(0, 0.5, 1, 0.5, 2),
            routes=[Route("r", sink)],
            batch_size=1,
            batch_timeout=0,
            write_timeout=5.0,
            retry=None,
            breaker=CircuitBreaker(failures=3, probe_interval=1.0),
            rescue=store,
        )
        report = checked(await pipeline.run())
    assert sink.writes == [
        (0.0, 0.0, "raised"),
        (0.5, 0.5, "raised"),
        (1.0, 1.0, "done"),
        (1.0, 4.0, "done"),
        (4.0, 7.0, "done"),
    ]
    assert sink.ids == [2, 0, 1]
    assert report.ok
