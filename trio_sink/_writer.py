"""The sink writer: one sink's task, from its channel to the outcome of every write.

One loop serves every sink, business and infra alike, with or without fault policies:

    take a batch ──▶ write it (retried per the RetryPolicy) ──▶ delivered | failed
                                                                  │
                          error group copies, rescue store or parking ◀┘

A sink with a circuit breaker also has a :class:`~trio_sink._recovery.Recovery`
(set aside while open, probe, feed back); without, the loop is the plain take-and-
write. :func:`trio_sink.replay` writes through the same writer (:meth:`write_batch`);
so does the routing task's first attempt at a sink that never blocks (``_inline.py``).

Cancelled (drain deadline, immediate stop, from outside) or failing, the task reports
the records in its hands and in its channel (a monitor's are counted as discarded:
not data). ``aclose()`` is awaited exactly once, at the end. The ledger counts all.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Protocol

import trio

from ._batch import Batch
from ._control import Pause, StopControl, take_buffered
from ._exceptions import describe
from ._feeds import SinkBatch
from ._ki import protected
from ._ledger import Ledger, Place, SinkAccount
from ._record import Record, with_error
from ._recovery import Recovery
from ._report import Reason, sink_error, stored_undelivered
from ._rescue import RescueStore
from ._retry import (
    PermanentError,
    RetryPolicy,
    WriteTimeout,
    timed_out,
    write_once,
    write_with_retry,
)
from ._sink import SinkSlot, close_sink
from ._watchdog import BLOCKING, Watchdog

__all__ = ["ErrorHook", "SinkWriter"]

drain_log = logging.getLogger("trio_sink.drain")
sink_log = logging.getLogger("trio_sink.sink")
rescue_log = logging.getLogger("trio_sink.rescue")

MONITOR_GROUP = "monitor"


class ErrorHook(Protocol):
    """Takes the copies of the records of a failed write, each with ``.error`` set
    (:class:`~trio_sink._feeds.ErrorFeed`, the error group's feed): called from the
    sink's task, it must not wait. Closed once, when the task ends."""

    def __call__(self, records: Sequence[Record], /) -> object: ...
    def close(self) -> object: ...


class SinkWriter:
    """One sink's task (see the module documentation).

    ``data``: the sink takes data records (not the monitor's). ``retry``: how a failed
    write is tried again (None: once). ``write_timeout``: seconds after which a write
    is cancelled, a :class:`WriteTimeout` (None: never). ``recovery``: the breaker's
    part. ``rescue``: where failed records are kept (or set aside while the breaker is
    open). ``errors``: the error group's feed, for copies of failed records.

    A write of the main loop is timed by a watchdog task, which cancels the loop's
    ``guard`` scope past the timeout (a scope per write would cost more than a small
    batch's write); retries, replays and trial writes have a scope of their own.
    """

    def __init__(
        self,
        slot: SinkSlot,
        account: SinkAccount,
        ledger: Ledger,
        *,
        control: StopControl | None = None,
        pause: Pause | None = None,
        data: bool = True,
        retry: RetryPolicy | None = None,
        write_timeout: float | None = None,
        recovery: Recovery | None = None,
        rescue: RescueStore | None = None,
        errors: ErrorHook | None = None,
        on_drained: Callable[[], object] | None = None,
    ) -> None:
        self.slot = slot
        self.name = slot.name
        self.account = account
        self.ledger = ledger
        self.control = control
        self.pause = Pause() if pause is None else pause
        self.data = data
        self.policy = retry
        # One generator per sink, seeded by its name: the same delays in every run.
        self.rng = random.Random(f"trio_sink.retry:{slot.name}".encode("utf-8", "surrogatepass"))
        self.rescue = rescue if data else None  # statistics records are not data
        self.busy_seconds = 0.0
        """Wall-clock seconds spent in this task's writes (first attempts)."""
        self.errors = errors
        self.recovery = recovery
        self.on_drained = on_drained
        self.held: list[SinkBatch] = []
        """Batches taken from the channel and not settled: what a cancellation reports."""
        self.write_timeout = write_timeout
        self.watchdog = Watchdog(slot.name, write_timeout)
        self.room: trio.Event | None = None  # set when it takes one (Fanout.record_bound)
        self.inline_failure: tuple[SinkBatch, Exception] | None = None
        """A batch whose write by the routing task raised (a first attempt), and why."""

    # -- the task ----------------------------------------------------------------------

    @protected
    async def run(self, recv: trio.MemoryReceiveChannel[SinkBatch]) -> None:
        """Write every batch of ``recv`` until its input ends (and nothing set aside is
        left to feed back), then flush; report what is left when cancelled."""
        assert self.control is not None
        try:
            await self._guarded(recv)
            if self.recovery is not None:
                await self.recovery.finish()
            await close_sink(self.slot, self.ledger, "flush")
            drain_log.info(
                "drain.complete sink=%s seconds=%.3f delivered=%d",
                self.name,
                self.control.seconds_since_stop(),
                self.account.delivered,
            )
        except BaseException as exc:
            # What it gives up is logged per sink once the run has ended (drain.deadline).
            reason = self.control.reason_for(exc)
            self.give_up_held(reason)
            for batch, ticket in take_buffered(recv):
                self._give_up(batch, "buffered", reason)
                self.ledger.settle(ticket)
            raise
        finally:
            recv.close()
            if self.recovery is not None:
                self.recovery.close()
            if self.errors is not None:
                self.close_errors(self.errors)
            if self.on_drained is not None:
                self.on_drained()
            self.watchdog.scope.cancel()
            await close_sink(self.slot, self.ledger, "aclose")

    async def _guarded(self, recv: trio.MemoryReceiveChannel[SinkBatch]) -> None:
        """The main loop, in the scope the watchdog cancels when a write runs too long;
        the timed-out write counts as a failed attempt, and the loop goes on."""
        watchdog = self.watchdog
        while True:
            watchdog.guard = guard = trio.CancelScope()
            with guard:
                if watchdog.timed_out:
                    watchdog.timed_out = False
                    watchdog.began = None
                    if self.held:
                        timeout = self.write_timeout
                        assert timeout is not None
                        await self._after_failure(WriteTimeout(timed_out(timeout)))
                await self._loop(recv)
                return

    async def _loop(self, recv: trio.MemoryReceiveChannel[SinkBatch]) -> None:
        # The common case (a closed breaker or none, a first write that succeeds) is
        # written out inline: a batch costs one receive, one write and two ledger moves,
        # with no coroutine of its own in between. Retries start from _after_failure.
        account = self.account
        ledger = self.ledger
        pause = self.pause
        held = self.held
        recovery = self.recovery
        write = self.slot.write
        control = self.control
        assert control is not None
        watchdog = self.watchdog
        timed = self.write_timeout is not None
        task = trio.lowlevel.current_task()
        clock = trio.current_time
        ended = False
        while True:
            if pause.resumed is not None:
                await pause.wait()
            if (control.stopping and clock() >= control.scope.deadline) or watchdog.timed_out:
                # A sink that never awaits never lets the deadline (or the watchdog) in:
                # look between batches.
                await trio.lowlevel.checkpoint()
            if recovery is not None:
                if await recovery.step(ended):
                    continue
                if ended:
                    return
            # Take what is buffered without a task switch; wait only when empty (the
            # count says which, and saves a WouldBlock raised per wait).
            try:
                if account.buffered:
                    try:
                        item = recv.receive_nowait()
                    except trio.WouldBlock:
                        item = await recv.receive()
                elif recovery is None:
                    item = await recv.receive()
                else:
                    if recovery.replay_ready():
                        continue
                    got = await recovery.receive(recv)
                    if got is None:  # a probe is due
                        continue
                    item = got
            except trio.EndOfChannel:
                if recovery is None:
                    return
                ended = True
                continue
            batch = item[0]
            held.append(item)
            ledger.take(account, len(batch))
            if self.room is not None:  # the routing task waits for room in the buffer
                self.wake_room()
            if pause.resumed is not None:  # paused while this task waited for it
                await pause.wait()
            failure = self.inline_failure
            if failure is not None and failure[0] is item:
                # Written once already by the routing task, which raised: a failed attempt.
                self.inline_failure = None
                await self._after_failure(failure[1])
                continue
            if recovery is not None and not recovery.closed:
                await recovery.open_breaker(batch, recv)
                continue
            points = task._schedule_points
            began = perf_counter()
            if timed:
                watchdog.begin(clock())
            try:
                await write(batch)
            except Exception as exc:
                watchdog.began = None
                await self._after_failure(exc)
            else:
                watchdog.began = None
                held.clear()
                ledger.deliver(account, len(batch), item[1])
                if recovery is not None:
                    recovery.succeeded()
            took = perf_counter() - began
            self.busy_seconds += took
            if took >= BLOCKING and task._schedule_points == points:
                watchdog.blocked(took)

    def wake_room(self) -> None:  # it took batches: wake the routing task if it waits
        room, self.room = self.room, None
        if room is not None:
            room.set()

    # -- writing -----------------------------------------------------------------------

    async def attempt(self, records: Sequence[Record], failed: Exception | None = None) -> None:
        """Write ``records`` as the retry policy says (once, with none), each attempt
        bounded by ``write_timeout``; after a first attempt that raised ``failed``, from
        its retry. A backoff is not waited for past the drain deadline. Raises the last
        error."""
        records = Batch.of(records)
        policy = self.policy
        if policy is None:
            if failed is not None:
                raise failed
            await write_once(self.slot.write, records, self.write_timeout)
            return
        control = self.control
        await write_with_retry(
            self.slot.write,
            records,
            policy,
            self.rng,
            name=self.name,
            on_retry=self._on_retry,
            write_timeout=self.write_timeout,
            failed=failed,
            deadline=None if control is None else control.deadline,
        )

    async def _after_failure(self, exc: Exception) -> None:
        """The first attempt at the held batch raised ``exc``: retry it as the policy
        says, then count it delivered, or failed."""
        records = [r for batch, _ in self.held for r in batch]
        try:
            await self.attempt(records, exc)
        except Exception as last:
            await self.failed(last)
        else:
            self.delivered()

    def _on_retry(self, attempt: int, delay: float, exc: Exception) -> None:
        self.ledger.retried(self.account)

    async def write_batch(self, records: Sequence[Record]) -> Exception | None:
        """Write records admitted to the sink's account (a replay's): the write, and its
        outcome in the ledger. Returns the exception when it failed, else None."""
        self.ledger.take(self.account, len(records))
        try:
            await self.attempt(records)
        except Exception as exc:
            reason = self.write_failed(records, exc)
            self.ledger.abandon(self.account, "in_flight", "sink", reason, records, exc)
            return exc
        self.ledger.deliver(self.account, len(records))
        return None

    def delivered(self) -> None:
        """The held batches were delivered."""
        ledger = self.ledger
        held = self.held
        for batch, ticket in held:
            ledger.deliver(self.account, len(batch), ticket)
        held.clear()
        if self.recovery is not None:
            self.recovery.succeeded()

    def write_failed(self, records: Sequence[Record], exc: BaseException) -> Reason:
        """Log a failed write of ``records``; its reason."""
        reason = sink_error(exc)
        sink_log.error(
            'sink.write_failed sink=%s records=%d error="%s"',
            self.name,
            len(records),
            describe(exc),
            exc_info=exc,
        )
        return reason

    async def failed(self, exc: Exception, *, counted: bool = False) -> None:
        """The held batches failed for good: report them, with copies to the error
        group, after storing them (parked for replay when the sink has a breaker and a
        store). ``counted``: the breaker knows of this failure already."""
        records = [r for batch, _ in self.held for r in batch]
        reason = self.write_failed(records, exc)
        permanent = isinstance(exc, PermanentError)
        recovery = self.recovery
        if recovery is not None and not permanent:
            recovery.failed(exc, counted=counted)
        self.send_errors(records, exc)
        if recovery is not None and recovery.parking is not None and not permanent:
            await recovery.park(records, reason, exc)
        else:
            await self.give_up(records, reason, exc, store=self.rescue)

    def send_errors(self, records: Sequence[Record], exc: Exception) -> None:
        """Copies of ``records`` with ``.error`` set, to the error group. A hook that
        raises is disabled and logged, never fatal."""
        errors = self.errors
        if errors is None or not records:
            return
        try:
            errors([with_error(r, exc) for r in records])
        except Exception as hook_exc:
            self.errors = None
            sink_log.error(
                'sink.error_hook_failed sink=%s error="%s"; disabled',
                self.name,
                describe(hook_exc),
                exc_info=hook_exc,
            )
            self.close_errors(errors)

    def close_errors(self, errors: ErrorHook) -> None:
        try:
            errors.close()
        except Exception as exc:
            sink_log.error(
                'sink.error_hook_failed sink=%s error="%s"', self.name, describe(exc), exc_info=exc
            )

    async def give_up(
        self,
        records: list[Record],
        reason: Reason,
        error: BaseException | None,
        *,
        store: RescueStore | None,
    ) -> None:
        """Report the held ``records`` undelivered, after writing them to ``store`` when
        there is one; then settle the held batches."""
        ledger = self.ledger
        stored = False
        if store is not None and records:
            try:
                await store.arescue(stored_undelivered(records, self.name, reason, error))
            except Exception as exc:
                self.store_failed(len(records), exc)
            except BaseException:
                # Cancelled before the write began: nothing was stored. Reported with
                # its own reason; the end of the run stores it.
                ledger.abandon(self.account, "in_flight", "sink", reason, records, error)
                self.settle_held()
                raise
            else:
                stored = True
        self._give_up(records, "in_flight", reason, error, stored=stored)
        self.settle_held()

    def _give_up(
        self,
        records: Sequence[Record],
        place: Place,
        reason: Reason,
        error: BaseException | None = None,
        *,
        stored: bool = False,
    ) -> None:
        """Report records the task gives up. A monitor's are its statistics records: not
        data, so they are counted in ``discarded["monitor"]`` instead, and a slow, hung
        or failing monitor sink never makes a run "not ok"."""
        if self.data:
            self.ledger.abandon(self.account, place, "sink", reason, records, error, stored=stored)
        else:
            self.ledger.drop(self.account, place, MONITOR_GROUP, len(records))

    def settle_held(self) -> None:
        settle = self.ledger.settle
        for _, ticket in self.held:
            settle(ticket)
        self.held.clear()

    def give_up_held(self, reason: Reason) -> None:
        """Report the held batches undelivered (the task is ending with an exception)."""
        for batch, _ in self.held:
            self._give_up(batch, "in_flight", reason)
        self.settle_held()

    def store_failed(self, n: int, exc: Exception) -> None:
        """The rescue store failed to keep ``n`` records: logged, and noted in the
        report's ``sink_errors["rescue"]``."""
        text = describe(exc)
        rescue_log.error(
            'rescue.failed sink=%s records=%d error="%s"', self.name, n, text, exc_info=exc
        )
        self.ledger.note_error("rescue", f"rescue store raised {text}")
