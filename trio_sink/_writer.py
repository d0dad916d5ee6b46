"""The sink writer: one sink's task, from its channel to the outcome of every write.

One loop serves every sink, business and infra alike, with or without fault policies:

    take a batch ──▶ write it (retried per the RetryPolicy) ──▶ delivered | failed
                                                                  │
                          error group copies, rescue store or parking ◀┘

A sink with a circuit breaker also has a :class:`~trio_sink._recovery.Recovery`,
which sets batches aside while the breaker is open, probes the sink and feeds what it
set aside back into it; with none configured the loop does nothing more than the plain
take-and-write. :func:`trio_sink.replay` writes through the same writer
(:meth:`SinkWriter.write_batch`). Every count moves through the ledger.

When the task is cancelled (drain deadline, immediate stop, cancellation from
outside) or fails, the records in its hands and every batch left in its channel are
reported (a monitor's statistics records are counted as discarded instead: they are
not data). ``aclose()`` is awaited exactly once, at the end.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Protocol

import trio

from ._batch import as_batch
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
from ._sink import SinkSlot
from ._watchdog import BLOCKING, Watchdog

__all__ = ["ErrorHook", "SinkWriter", "close_sink"]

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

    ``data``: the sink takes data records (every sink but the monitor's). ``retry``:
    how a failed write is tried again (None: once). ``write_timeout``: seconds after
    which a write is cancelled and fails with :class:`WriteTimeout` (None: never).
    ``recovery``: what the sink's circuit breaker adds. ``rescue``: where the records of
    failed writes are kept (and set aside while the breaker is open). ``errors``: the
    error group's feed, for the copies of the records of failed writes.

    A write of the main loop is timed by a watchdog task (:meth:`watch`), which cancels
    the loop's ``guard`` scope when the write in progress passes its timeout: a cancel
    scope of its own for every write would cost more than the write of a small batch.
    The other writes (retries, replays, trial writes) have a scope of their own.
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
        self.inline = slot.never_blocks and data and recovery is None
        """Whether the routing task may write this sink's batches itself
        (:meth:`write_inline`); cleared for good after a write of it raised or
        awaited."""
        self.inline_failure: tuple[SinkBatch, Exception] | None = None
        """A batch whose write from the routing task raised, and its exception: the
        first attempt, made before this task took it from its channel."""
        self.inline_watchdog = Watchdog(slot.name, write_timeout)
        """Times the writes made from the routing task; its guard is the routing
        task's (see :class:`~trio_sink._route.Fanout`)."""

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

    # -- writing -----------------------------------------------------------------------

    async def write_inline(self, msg: SinkBatch) -> bool:
        """Write ``msg``'s batch from the routing task, for a sink that never blocks;
        True when it was delivered. False when this task must take it instead: the sink
        is paused or has batches of its own to write first (that keeps the order), or
        the write raised (then the batch goes to the channel as a failed first attempt
        that the retry policy takes on, and every later batch too).

        The batch stays ``waiting`` in the ledger until the write returns: if the write
        is cancelled (it awaited after all), the routing task reports it as it reports
        every sub-batch it has not sent. A write that awaited ends inline writes for the
        rest of the run (logged at WARNING)."""
        account = self.account
        if (
            not self.inline
            or account.buffered
            or account.in_flight
            or self.pause.resumed is not None
        ):
            return False
        batch, ticket = msg
        task = trio.lowlevel.current_task()
        points = task._schedule_points
        watchdog = self.inline_watchdog
        if watchdog.write_timeout is not None:
            watchdog.begin(trio.current_time())
        began = perf_counter()
        try:
            await self.slot.write(batch)
        except Exception as exc:
            self.inline_failed(msg, exc)
            return False
        finally:
            watchdog.began = None
            took = perf_counter() - began
            self.busy_seconds += took
            if task._schedule_points != points:
                self._awaited()
            elif took >= BLOCKING:
                self.watchdog.blocked(took)
        self.ledger.deliver_waiting(account, len(batch), ticket)
        return True

    def inline_failed(self, msg: SinkBatch, exc: Exception) -> None:
        """The write of ``msg`` from the routing task raised ``exc`` (or ran past the
        write timeout): this task takes the batch as a failed first attempt, and every
        later batch."""
        self.inline = False
        self.inline_failure = (msg, exc)

    def inline_timed_out(self, msg: SinkBatch) -> None:
        """The write of ``msg`` from the routing task ran past the write timeout and
        was cancelled by the watchdog (see :meth:`inline_failed`)."""
        watchdog = self.inline_watchdog
        watchdog.timed_out = False
        watchdog.began = None
        timeout = watchdog.write_timeout
        assert timeout is not None
        sink_log.warning(
            "sink.inline_timeout sink=%s seconds=%g: the sink says it never blocks, but its"
            " write ran past its write_timeout; it is written from its own task from now on",
            self.name,
            timeout,
        )
        self.inline_failed(msg, WriteTimeout(timed_out(timeout)))

    def _awaited(self) -> None:
        if self.inline:
            self.inline = False
            sink_log.warning(
                "sink.awaited sink=%s: the sink says it never blocks, but its write"
                " awaited; it is written from its own task from now on",
                self.name,
            )

    async def attempt(self, records: Sequence[Record], failed: Exception | None = None) -> None:
        """Write ``records`` as the retry policy says (once, with none), each attempt
        bounded by ``write_timeout``; after a first attempt that raised ``failed``, from
        its retry. A backoff is not waited for past the drain deadline. Raises the last
        error."""
        records = as_batch(records)
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


async def close_sink(slot: SinkSlot, ledger: Ledger, what: str) -> None:
    """Await the sink's ``flush()`` or ``aclose()``; an exception from it is logged and
    kept in the report's ``sink_errors``: the records it had delivered stay delivered."""
    try:
        await (slot.flush() if what == "flush" else slot.aclose())
    except Exception as exc:
        sink_log.error(
            'sink.%s_failed sink=%s error="%s"', what, slot.name, describe(exc), exc_info=exc
        )
        ledger.note_error(slot.name, f"{what} raised {describe(exc)}")
