"""A sink's faults, in its own task: retries, the circuit breaker, the rescue store, replay.

:class:`SinkFaults` runs a sink's task when the pipeline has a retry policy, a circuit
breaker, a rescue store or an error hook for it. Per batch taken from the sink's
channel:

- **closed breaker** (or none): the batch is written with :func:`write_with_retry`.
  Delivered, it is counted; failed (after its retries), it is reported undelivered
  (``"sink raised T: msg"``), sent to the ``error`` group (a copy of each record with
  ``.error`` set) and stored: set aside for replay (below) when the sink has a breaker,
  else written to the rescue store. A :class:`PermanentError` is never retried, never
  counts toward the breaker and is never replayed: it goes to the rescue store.
- **open breaker**: the batch is not written. With a rescue store it is set aside
  ("parked", reason ``"sink unhealthy: <last error>"``), with every batch waiting in
  the channel behind it, in one write; without, it is reported at once. Either way
  the channel keeps moving, so a sink that is down never holds the others back. Every
  ``probe_interval`` the sink is probed: its ``probe()``, or a trial write of the
  oldest parked batch (of the next batch, when nothing is parked). A probe that has
  not answered after ``probe_interval`` counts as failed.

**Parking and replay.** Parked batches go to a writer of their own on the store's
directory (:class:`Parking`), whose segments hold that sink's entries only. Once the
sink takes writes again (the breaker closed, or a batch delivered after a failure),
they are read back in order, a chunk at a time, and written to the sink, taking turns
with new batches: one parked chunk, then one new batch if one waits. After each chunk
the sink took, the segment's consumed offset is committed (the store's ``.done`` files)
and the records move from undelivered to delivered. A process that dies leaves the
parked segments as ordinary segments of the store: ``replay()`` delivers them, and at
most the chunk in flight twice. At the end of the run, what is still parked stays in
the store and is reported with ``Undelivered.stored``.

**Cancellation.** Whatever the task holds when it is cancelled (the batch being
written or retried, the batches being set aside) is reported by the sink stage, and
the end of the run stores it. A store write in a worker thread either did not start
(nothing stored) or completes; the commit of a replayed chunk is shielded, so a chunk
is never counted delivered and kept in the store at once.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence

import trio

from ._exceptions import describe
from ._ledger import Ledger, SinkAccount, Ticket
from ._parking import Parking
from ._record import Record, with_error
from ._report import Undelivered
from ._rescue import RescueStore
from ._rescue_format import RescueEntry
from ._rescue_segments import _Chunk
from ._retry import (
    NO_RETRY,
    BreakerState,
    CircuitBreaker,
    PermanentError,
    RetryPolicy,
    find_probe,
    probe_sink,
    write_with_retry,
)
from ._route import SinkBatch
from ._sink import SinkSlot

__all__ = ["ErrorFeed", "ErrorHook", "SinkFaults"]

sink_log = logging.getLogger("trio_sink.sink")
rescue_log = logging.getLogger("trio_sink.rescue")

ErrorHook = Callable[[Sequence[Record]], object]
"""Receives copies of the records of a failed write, each with ``.error`` set. Called
synchronously from the failing sink's task; it must not wait. If it has a ``close()``,
the sink's task calls it once when it ends."""

PARK_BATCHES = 64
"""The most batches set aside in one store write while a breaker is open."""

ERROR_GROUP = "error"


class ErrorFeed:
    """An :data:`ErrorHook` that sends the copies to the ``error`` group's sink channel,
    without ever waiting: when that channel is full (or closed), the copies are counted
    in the report's ``discarded["error"]`` instead.

    Give each sink stage its own ``send.clone()``: the error sink's input then ends
    once every sink stage has ended (each closes its feed), so no late failure finds
    the channel closed. A record that failed at several sinks is sent once (see
    :meth:`Ledger.sent_to_errors`): the error sink must not get one id twice, or a
    deadline could report it twice for that sink.
    """

    def __init__(
        self,
        send: trio.MemorySendChannel[SinkBatch],
        account: SinkAccount,
        ledger: Ledger,
    ) -> None:
        self.send = send
        self.account = account
        self.ledger = ledger
        self.full = False  # the last copies found no room (logged once a spell)

    def __call__(self, records: Sequence[Record]) -> None:
        batch = tuple(self.ledger.sent_to_errors(records))
        if not batch:
            return
        n = len(batch)
        account = self.account
        try:
            self.send.send_nowait((batch, Ticket(batch[0].id, n, 1)))
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            self.ledger.discarded[ERROR_GROUP] += n
            if not self.full:
                self.full = True
                sink_log.warning(
                    "sink.error_group_full sink=%s records=%d", account.name, account.buffered
                )
        else:
            self.full = False
            account.routed += n
            account.add_buffered(n)

    def close(self) -> None:
        self.send.close()


class _ProbeTimeout(Exception):
    """A probe (or trial write) that gave no answer within the probe interval."""


class SinkFaults:
    """One sink's task when it has a retry policy, a breaker, a rescue store or an
    error hook (see the module documentation).

    :meth:`run` takes batches from the channel until its input ends and nothing is
    left to replay; :meth:`finish` closes the parking writer. When the task is
    cancelled, :meth:`abandon_held` reports what it holds, and :meth:`close` closes
    what is still open.
    """

    def __init__(
        self,
        slot: SinkSlot,
        account: SinkAccount,
        ledger: Ledger,
        *,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        rescue: RescueStore | None = None,
        report_error: ErrorHook | None = None,
    ) -> None:
        self.slot = slot
        self.name = slot.name
        self.account = account
        self.ledger = ledger
        self.policy = NO_RETRY if retry is None else retry
        # One generator per sink, seeded by its name: the same delays in every run.
        self.rng = random.Random(f"trio_sink.retry:{slot.name}")
        self.breaker = None if breaker is None else BreakerState(breaker, slot.name)
        account.breaker = self.breaker
        self.rescue = rescue
        self.parking = None if breaker is None or rescue is None else Parking(rescue)
        self.report_error = report_error
        self._hook_close = getattr(report_error, "close", None)
        self.probe = find_probe(slot.obj)
        self.held: list[SinkBatch] = []
        """Batches taken from the channel and not settled: what a cancellation reports."""
        self.healthy = True
        """No batch failed since the last one delivered: parked batches may be replayed."""
        self.replay_turn = True
        self.replaying = False
        self.parking_since: int | None = None  # times_opened when parking was last logged

    # -- the loop ----------------------------------------------------------------------

    async def run(self, recv: trio.MemoryReceiveChannel[SinkBatch]) -> None:
        """Take and handle batches until the input ends and nothing is left to
        replay (or the sink cannot take it: breaker open, last batch failed)."""
        account = self.account
        ended = False
        while True:
            if account.paused:
                await account.wait_resumed()
            breaker = self.breaker
            if breaker is not None and breaker.state != "closed":
                if not ended and self._can_probe_idle() and breaker.probe_due(trio.current_time()):
                    await self._probe_idle(breaker)
                    continue
            elif self._replay_ready() and (self.replay_turn or ended):
                self.replay_turn = False
                await self._replay_next(trial=False)
                continue
            if ended:
                return
            self.replay_turn = True
            try:
                item = recv.receive_nowait()
            except trio.WouldBlock:
                if self._replay_ready():
                    continue
                try:
                    got = await self._receive(recv)
                except trio.EndOfChannel:
                    ended = True
                    continue
                if got is None:  # a probe is due
                    continue
                item = got
            except trio.EndOfChannel:
                ended = True
                continue
            await self._take(item, recv)

    async def _receive(self, recv: trio.MemoryReceiveChannel[SinkBatch]) -> SinkBatch | None:
        """Wait for the next batch; None when a probe falls due first."""
        breaker = self.breaker
        if (
            breaker is None
            or breaker.state == "closed"
            or breaker.next_probe_at is None
            or not self._can_probe_idle()
        ):
            return await recv.receive()  # no cancel scope on the common path
        with trio.move_on_at(breaker.next_probe_at):
            return await recv.receive()
        return None

    def _replay_ready(self) -> bool:
        parking = self.parking
        return (
            parking is not None
            and parking.pending > 0
            and self.healthy
            and (self.breaker is None or self.breaker.state == "closed")
        )

    def _can_probe_idle(self) -> bool:
        """A probe needs no new batch: the sink has a probe(), or parked batches."""
        return self.probe is not None or (self.parking is not None and self.parking.pending > 0)

    async def _take(self, item: SinkBatch, recv: trio.MemoryReceiveChannel[SinkBatch]) -> None:
        batch, ticket = item
        self.held.append(item)
        account = self.account
        account.buffered -= len(batch)
        if account.paused:  # paused while this task waited for the batch
            account.in_flight = len(batch)
            await account.wait_resumed()
        breaker = self.breaker
        if breaker is None or breaker.state == "closed":
            await self._write(batch, ticket)
        elif breaker.probe_due(trio.current_time()) and not self._can_probe_idle():
            await self._trial(breaker, batch, ticket)
        else:
            await self._divert(breaker, recv)

    # -- writing -----------------------------------------------------------------------

    def _on_retry(self, attempt: int, delay: float, exc: Exception) -> None:
        self.account.retries += 1

    async def _write_with_retry(self, batch: Sequence[Record]) -> None:
        """One write of ``batch`` under the sink's retry policy, counting retries."""
        await write_with_retry(
            self.slot.write, batch, self.policy, self.rng, name=self.name, on_retry=self._on_retry
        )

    async def _write(self, batch: Sequence[Record], ticket: Ticket) -> None:
        account = self.account
        account.in_flight = len(batch)
        try:
            await self._write_with_retry(batch)
        except Exception as exc:
            await self._failed(exc, counted=False)
            return
        self._delivered(ticket, len(batch))

    def _delivered(self, ticket: Ticket, n: int) -> None:
        self.account.delivered += n
        self.account.in_flight = 0
        self.held.clear()
        self.ledger.settle(ticket)
        if self.breaker is not None:
            self.breaker.record_success()
        self.healthy = True

    async def _trial(self, breaker: BreakerState, batch: Sequence[Record], ticket: Ticket) -> None:
        """The breaker is open and a probe is due, with nothing but this batch to try."""
        account = self.account
        account.in_flight = len(batch)
        interval = breaker.config.probe_interval
        with trio.move_on_after(interval) as scope:
            try:
                await probe_sink(self.slot.obj, breaker, self.slot.write, batch)
            except Exception as exc:
                await self._failed(exc, counted=True)
                return
        if scope.cancelled_caught:
            breaker.probe_failed(trio.current_time(), _timeout(interval))
            await self._divert(breaker, None)
            return
        self._delivered(ticket, len(batch))

    async def _failed(self, exc: Exception, *, counted: bool) -> None:
        """The held batch failed for good. ``counted``: the breaker knows already."""
        records = [r for batch, _ in self.held for r in batch]
        text = describe(exc)
        reason = f"sink raised {text}"
        sink_log.error(
            'sink.write_failed sink=%s records=%d error="%s"',
            self.name,
            len(records),
            text,
            exc_info=exc,
        )
        permanent = isinstance(exc, PermanentError)
        if not permanent:
            self.healthy = False
            if not counted and self.breaker is not None:
                self.breaker.record_failure(trio.current_time(), exc)
        self._send_errors(records, exc)
        if permanent or self.parking is None:
            await self._give_up(records, reason, exc, store=self.rescue)
        else:
            await self._give_up(records, reason, exc, park=True)

    async def _divert(
        self, breaker: BreakerState, recv: trio.MemoryReceiveChannel[SinkBatch] | None
    ) -> None:
        """The breaker is open: set the held batch aside unwritten, with the batches
        waiting behind it in the channel."""
        held = self.held
        account = self.account
        if recv is not None:
            while len(held) < PARK_BATCHES:
                try:
                    item = recv.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                held.append(item)
                account.buffered -= len(item[0])
        records = [r for batch, _ in held for r in batch]
        reason = f"sink unhealthy: {breaker.last_error}"
        if self.parking is None:
            self.ledger.abandon(account, "sink", reason, records)
            self._settle_held()
            await trio.lowlevel.checkpoint()  # a checkpoint per batch, as a write is
            return
        if self.parking_since != breaker.times_opened:
            self.parking_since = breaker.times_opened
            sink_log.info(
                "sink.parking sink=%s store=%s next_probe=%.3f",
                self.name,
                self.parking.store.path,
                breaker.next_probe_at or 0.0,
            )
        await self._give_up(records, reason, None, park=True)

    async def _give_up(
        self,
        records: list[Record],
        reason: str,
        error: BaseException | None,
        *,
        store: RescueStore | None = None,
        park: bool = False,
    ) -> None:
        """Report the held batches' ``records`` undelivered, after storing them: parked
        for replay, or in ``store``. Then settle the held batches."""
        ledger = self.ledger
        account = self.account
        parking = self.parking
        # Held until reported: counted in flight meanwhile, as statistics want.
        account.in_flight = len(records)
        if park and parking is not None:
            largest = max(len(batch) for batch, _ in self.held)
            parking.chunk_size = max(parking.chunk_size, largest)
        elif store is None:
            ledger.abandon(account, "sink", reason, records, error)
            self._settle_held()
            return
        undelivered = [Undelivered(r, self.name, "sink", reason, error, True) for r in records]
        try:
            if park and parking is not None:
                await parking.park(undelivered)
            else:
                assert store is not None
                await store.arescue(undelivered)
        except Exception as exc:
            self._store_failed(len(records), exc)
            ledger.abandon(account, "sink", reason, records, error)
        except BaseException:
            # Cancelled before the write began: nothing was stored. Reported with its
            # own reason; the end of the run stores it.
            ledger.abandon(account, "sink", reason, records, error)
            self._settle_held()
            raise
        else:
            ledger.abandon(account, "sink", reason, records, error, stored=True, parked=park)
        self._settle_held()

    def _settle_held(self) -> None:
        settle = self.ledger.settle
        for _, ticket in self.held:
            settle(ticket)
        self.held.clear()
        self.account.in_flight = 0

    def _send_errors(self, records: Sequence[Record], exc: Exception) -> None:
        hook = self.report_error
        if hook is None or not records:
            return
        try:
            hook([with_error(r, exc) for r in records])
        except Exception as hook_exc:
            # An observer that raises is disabled, never fatal.
            self.report_error = None
            sink_log.error(
                'sink.error_hook_failed sink=%s error="%s"; disabled',
                self.name,
                describe(hook_exc),
                exc_info=hook_exc,
            )

    def _store_failed(self, n: int, exc: Exception) -> None:
        text = describe(exc)
        rescue_log.error(
            'rescue.failed sink=%s records=%d error="%s"', self.name, n, text, exc_info=exc
        )
        note = f"rescue store raised {text}"
        errors = self.ledger.sink_errors
        old = errors.get("rescue")
        if old is None:
            errors["rescue"] = note
        elif note not in old:
            errors["rescue"] = f"{old}; {note}"

    # -- probes and replay -------------------------------------------------------------

    async def _probe_idle(self, breaker: BreakerState) -> None:
        """A probe is due and needs no new batch: the probe(), or a trial write of the
        oldest parked chunk."""
        if self.probe is None:
            await self._replay_next(trial=True)
            return
        interval = breaker.config.probe_interval
        with trio.move_on_after(interval) as scope:
            await probe_sink(self.slot.obj, breaker, self.slot.write, ())
        if scope.cancelled_caught:
            breaker.probe_failed(trio.current_time(), _timeout(interval))
        elif breaker.state == "closed":
            self.healthy = True
            self.replay_turn = True

    async def _replay_next(self, *, trial: bool) -> None:
        """Write the oldest parked chunk to the sink (as a probe's trial write when
        ``trial``); once it is taken, consume it and count it delivered."""
        parking = self.parking
        breaker = self.breaker
        assert parking is not None
        assert breaker is not None
        chunk = await parking.next_chunk()
        if chunk is None:
            return
        ids = [item.entry.id for item in chunk.items]
        box = self.ledger.parked.get(self.name, {})
        records = [
            box[i].record if i in box else _record_of(item.entry)
            for i, item in zip(ids, chunk.items, strict=True)
        ]
        if not trial:
            self._replay_started()
        try:
            if trial:
                interval = breaker.config.probe_interval
                with trio.move_on_after(interval) as scope:
                    await probe_sink(self.slot.obj, breaker, self.slot.write, records)
                if scope.cancelled_caught:
                    breaker.probe_failed(trio.current_time(), _timeout(interval))
                    return
            else:
                await self._write_with_retry(records)
        except PermanentError as exc:
            await self._replay_gave_up(chunk, ids, records, exc)
            return
        except Exception as exc:
            self.healthy = False
            if not trial:  # a failed trial write is a failed probe, logged as such
                breaker.record_failure(trio.current_time(), exc)
                sink_log.warning(
                    'sink.replay_failed sink=%s records=%d error="%s"',
                    self.name,
                    len(records),
                    describe(exc),
                )
            return
        if trial:
            self._replay_started()
        await self._consume(chunk)
        account = self.account
        n = len(self.ledger.unpark(account, ids))
        account.delivered += n
        account.replayed += n
        breaker.record_success()
        self.healthy = True
        if parking.pending == 0:
            self.replaying = False
            sink_log.info("sink.replay_complete sink=%s replayed=%d", self.name, account.replayed)

    def _replay_started(self) -> None:
        if not self.replaying:
            self.replaying = True
            assert self.parking is not None
            sink_log.info("sink.replay_started sink=%s parked=%d", self.name, self.parking.pending)

    async def _replay_gave_up(
        self, chunk: _Chunk, ids: list[int], records: list[Record], exc: PermanentError
    ) -> None:
        """A replayed chunk failed for good: it moves from the parked entries to the
        store's ordinary ones, with its new reason; the replay goes on past it."""
        text = describe(exc)
        reason = f"sink raised {text}"
        sink_log.error(
            'sink.write_failed sink=%s records=%d error="%s"',
            self.name,
            len(records),
            text,
            exc_info=exc,
        )
        self._send_errors(records, exc)
        store = self.rescue
        assert store is not None
        try:
            await store.arescue(
                [Undelivered(r, self.name, "sink", reason, exc, True) for r in records]
            )
        except Exception as store_exc:
            # They stay parked; the replay waits for the next sign of health, and no
            # sooner than the next probe (a store that keeps failing must not spin).
            self._store_failed(len(records), store_exc)
            self.healthy = False
            if self.breaker is not None:
                self.breaker.probe_failed(trio.current_time(), store_exc)
            return
        await self._consume(chunk)
        back = self.ledger.unpark(self.account, ids)
        self.ledger.abandon(
            self.account, "sink", reason, [u.record for u in back], exc, stored=True
        )

    async def _consume(self, chunk: _Chunk) -> None:
        assert self.parking is not None
        try:
            await self.parking.consume(chunk)
        except Exception as exc:
            # The records reached the sink: a later replay may write them again.
            self._store_failed(len(chunk.items), exc)

    # -- the end -----------------------------------------------------------------------

    def abandon_held(self, reason: str) -> int:
        """Report the held batches undelivered (the task is ending with an exception)."""
        lost = 0
        for batch, ticket in self.held:
            lost += self.ledger.abandon(self.account, "sink", reason, batch)
            self.ledger.settle(ticket)
        self.held.clear()
        self.account.in_flight = 0
        return lost

    async def finish(self) -> None:
        """The input has ended: seal what is parked (in a worker thread)."""
        if self.parking is not None:
            try:
                await self.parking.aclose()
            except Exception as exc:
                self._store_failed(self.parking.pending, exc)

    def close(self) -> None:
        """Close the parking writer (blocking, if :meth:`finish` did not) and the error
        hook. Sync: it runs at the end of the task, cancelled or not."""
        if self.parking is not None:
            try:
                self.parking.close()
            except Exception as exc:
                self._store_failed(self.parking.pending, exc)
        close, self._hook_close = self._hook_close, None
        if callable(close):
            try:
                close()
            except Exception as exc:
                sink_log.error(
                    'sink.error_hook_failed sink=%s error="%s"',
                    self.name,
                    describe(exc),
                    exc_info=exc,
                )


def _timeout(interval: float) -> _ProbeTimeout:
    return _ProbeTimeout(f"no answer within {interval:g} s")


def _record_of(entry: RescueEntry) -> Record:
    return Record(entry.id, entry.raw, entry.payload, entry.rest)
