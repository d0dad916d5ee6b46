"""Recovery: the part of a sink's writer that its circuit breaker adds.

Per batch taken from the sink's channel:

- **closed breaker**: the writer writes it (retried per the policy). Failed for good,
  it is reported, its copies go to the ``error`` group, and it is set aside for replay
  ("parked") when there is a rescue store. A :class:`PermanentError` is never retried,
  never counts toward the breaker and is never replayed: it goes to the store.
- **open breaker**: the batch is not written. With a rescue store it is parked
  (reason ``"sink unhealthy: <last error>"``), with every batch waiting in the channel
  behind it, in one write; without, it is reported at once. Either way the channel
  keeps moving, so a sink that is down never holds the others back. Every
  ``probe_interval`` the sink is probed: its ``probe()``, or a trial write of the
  oldest parked batch (of the next batch, when nothing is parked). A probe that has
  not answered after ``probe_interval`` counts as failed.

**Parking and replay.** Parked batches go to a writer of their own on the store's
directory (:class:`~trio_sink._parking.Parking`). Once the sink takes writes again
(the breaker closed, or a batch delivered after a failure), they are read back in
order, a chunk at a time, and written to the sink, taking turns with new batches: one
parked chunk, then one new batch if one waits. After each chunk the sink took, its
progress is committed in the store and the records move from undelivered to
delivered. A process that dies leaves the parked segments as ordinary segments of the
store: ``replay()`` delivers them, and at most the chunk in flight twice. At the end of
the run, what is still parked stays in the store and is reported as stored.

**Cancellation.** What the writer holds when it is cancelled is reported by the
writer, and the end of the run stores it. A store write in a worker thread either did
not start (nothing stored) or completes; the commit of a replayed chunk is shielded,
so a chunk is never counted delivered and kept in the store at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import trio

from ._batch import Batch
from ._breaker import BreakerState, CircuitBreaker, find_probe, probe_sink
from ._exceptions import describe
from ._feeds import SinkBatch
from ._ki import unprotect
from ._ledger import Ledger, SinkAccount
from ._parking import Parking
from ._record import Record
from ._report import Reason, stored_undelivered, unhealthy
from ._rescue import RescueStore
from ._rescue_format import PartlyStoredError, RescueEntry
from ._rescue_segments import Chunk
from ._retry import PermanentError
from ._sink import SinkSlot

__all__ = ["PARK_BATCHES", "Recovery"]

sink_log = logging.getLogger("trio_sink.sink")

PARK_BATCHES = 64
"""The most batches set aside in one store write while a breaker is open."""


class Writer(Protocol):
    """What recovery uses of the sink's writer (:class:`~trio_sink._writer.SinkWriter`)."""

    name: str
    slot: SinkSlot
    account: SinkAccount
    ledger: Ledger
    held: list[SinkBatch]
    rescue: RescueStore | None

    async def attempt(self, records: Sequence[Record]) -> None: ...
    def wake_room(self) -> None: ...
    async def failed(self, exc: Exception, *, counted: bool = False) -> None: ...
    def delivered(self) -> None: ...
    def settle_held(self) -> None: ...
    def give_up_held(self, reason: Reason) -> None: ...
    def send_errors(self, records: Sequence[Record], exc: Exception) -> None: ...
    def write_failed(self, records: Sequence[Record], exc: BaseException) -> Reason: ...
    def store_failed(self, n: int, exc: Exception) -> None: ...


class _ProbeTimeout(Exception):
    """A probe (or trial write) that gave no answer within the probe interval."""


class Recovery:
    """One sink's breaker, parking and replay (see the module documentation)."""

    def __init__(self, config: CircuitBreaker, name: str, rescue: RescueStore | None) -> None:
        self.breaker = BreakerState(config, name)
        self.parking = None if rescue is None else Parking(rescue)
        self.healthy = True
        """No batch failed since the last one delivered: parked batches may be replayed."""
        self.replay_turn = True
        self.replaying = False
        self.parking_since: int | None = None  # times_opened when parking was last logged
        self.writer: Writer | None = None
        self.probe: Callable[[], Awaitable[object]] | None = None

    def bind(self, writer: Writer) -> None:
        """Work for ``writer``'s sink."""
        self.writer = writer
        self.probe = find_probe(writer.slot.obj)
        unprotect(self.probe)

    def _w(self) -> Writer:
        assert self.writer is not None
        return self.writer

    @property
    def closed(self) -> bool:
        return self.breaker.state == "closed"

    # -- the writer's loop -------------------------------------------------------------

    async def step(self, ended: bool) -> bool:
        """Before the writer takes a batch: probe the sink, or replay a parked chunk, if
        it is time. True when it did (the writer looks again)."""
        breaker = self.breaker
        if breaker.state != "closed":
            if not ended and self._can_probe_idle() and breaker.probe_due(trio.current_time()):
                await self._probe_idle()
                return True
        elif self.replay_ready() and (self.replay_turn or ended):
            self.replay_turn = False
            await self._replay_next(trial=False)
            return True
        if not ended:
            self.replay_turn = True
        return False

    def replay_ready(self) -> bool:
        parking = self.parking
        return (
            parking is not None
            and parking.pending > 0
            and self.healthy
            and self.breaker.state == "closed"
        )

    def _can_probe_idle(self) -> bool:
        """A probe needs no new batch: the sink has a probe(), or parked batches."""
        return self.probe is not None or (self.parking is not None and self.parking.pending > 0)

    async def receive(self, recv: trio.MemoryReceiveChannel[SinkBatch]) -> SinkBatch | None:
        """Wait for the next batch; None when a probe falls due first."""
        breaker = self.breaker
        if breaker.state == "closed" or breaker.next_probe_at is None or not self._can_probe_idle():
            return await recv.receive()  # no cancel scope on the common path
        with trio.move_on_at(breaker.next_probe_at):
            return await recv.receive()
        return None

    async def open_breaker(
        self, batch: Sequence[Record], recv: trio.MemoryReceiveChannel[SinkBatch]
    ) -> None:
        """The writer holds ``batch`` and the breaker is not closed: a trial write of it
        when a probe is due and there is nothing else to try, else set it aside."""
        breaker = self.breaker
        if breaker.probe_due(trio.current_time()) and not self._can_probe_idle():
            await self._trial(batch)
        else:
            await self._divert(recv)

    def failed(self, exc: Exception, *, counted: bool) -> None:
        """A write failed for good (not permanently). ``counted``: the breaker knows."""
        self.healthy = False
        if not counted:
            self.breaker.record_failure(trio.current_time(), exc)

    def succeeded(self) -> None:
        self.breaker.record_success()
        self.healthy = True

    # -- an open breaker ---------------------------------------------------------------

    async def _trial(self, batch: Sequence[Record]) -> None:
        """A probe is due, with nothing but the held batch to try."""
        w = self._w()
        breaker = self.breaker
        interval = breaker.config.probe_interval
        with trio.move_on_after(interval) as scope:
            try:
                await probe_sink(self.probe, breaker, w.slot.write, Batch.of(batch))
            except Exception as exc:
                await w.failed(exc, counted=True)
                return
        if scope.cancelled_caught:
            breaker.probe_failed(trio.current_time(), _timeout(interval))
            await self._divert(None)
            return
        w.delivered()

    async def _divert(self, recv: trio.MemoryReceiveChannel[SinkBatch] | None) -> None:
        """Set the held batch aside unwritten, with the batches waiting behind it."""
        w = self._w()
        held = w.held
        if recv is not None:
            while len(held) < PARK_BATCHES:
                try:
                    item = recv.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                held.append(item)
                w.ledger.take(w.account, len(item[0]))
            w.wake_room()
        records = [r for batch, _ in held for r in batch]
        reason = unhealthy(self.breaker.last_error)
        if self.parking is None:
            w.give_up_held(reason)  # (a monitor's records are discarded, not reported)
            await trio.lowlevel.checkpoint()  # a checkpoint per batch, as a write is
            return
        breaker = self.breaker
        if self.parking_since != breaker.times_opened:
            self.parking_since = breaker.times_opened
            sink_log.info(
                "sink.parking sink=%s store=%s next_probe=%.3f",
                w.name,
                self.parking.store.path,
                breaker.next_probe_at or 0.0,
            )
        await self.park(records, reason, None)

    async def park(
        self, records: list[Record], reason: Reason, error: BaseException | None
    ) -> None:
        """Report the held ``records`` undelivered, parked in the store for replay (or
        not stored, if the store fails); then settle the held batches."""
        w = self._w()
        parking = self.parking
        assert parking is not None
        ledger, account = w.ledger, w.account
        largest = max(len(batch) for batch, _ in w.held)
        parking.chunk_size = max(parking.chunk_size, largest)
        try:
            await parking.park(stored_undelivered(records, w.name, reason, error))
        except PartlyStoredError as exc:
            # A nearly full disk: the first ones are parked, the rest are not stored.
            k = exc.stored
            w.store_failed(len(records) - k, exc)
            ledger.abandon(account, "in_flight", "sink", reason, records[:k], error, parked=True)
            ledger.abandon(account, "in_flight", "sink", reason, records[k:], error)
        except Exception as exc:
            w.store_failed(len(records), exc)
            ledger.abandon(account, "in_flight", "sink", reason, records, error)
        except BaseException:
            # Cancelled before the write began: nothing was stored. Reported with its
            # own reason; the end of the run stores it.
            ledger.abandon(account, "in_flight", "sink", reason, records, error)
            w.settle_held()
            raise
        else:
            ledger.abandon(account, "in_flight", "sink", reason, records, error, parked=True)
        w.settle_held()

    # -- probes and replay -------------------------------------------------------------

    async def _probe_idle(self) -> None:
        """A probe is due and needs no new batch: the probe(), or a trial write of the
        oldest parked chunk."""
        if self.probe is None:
            await self._replay_next(trial=True)
            return
        w = self._w()
        breaker = self.breaker
        interval = breaker.config.probe_interval
        with trio.move_on_after(interval) as scope:
            await probe_sink(self.probe, breaker, w.slot.write, ())
        if scope.cancelled_caught:
            breaker.probe_failed(trio.current_time(), _timeout(interval))
        elif breaker.state == "closed":
            self.healthy = True
            self.replay_turn = True

    async def _replay_next(self, *, trial: bool) -> None:
        """Write the oldest parked chunk to the sink (as a probe's trial write when
        ``trial``); once it is taken, consume it and count it delivered."""
        w = self._w()
        parking = self.parking
        breaker = self.breaker
        assert parking is not None
        chunk = await parking.next_chunk()
        if chunk is None:
            return
        ids = [item.entry.id for item in chunk.items]
        box = w.ledger.parked.get(w.name, {})
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
                    await probe_sink(self.probe, breaker, w.slot.write, Batch.of(records))
                if scope.cancelled_caught:
                    breaker.probe_failed(trio.current_time(), _timeout(interval))
                    return
            else:
                await w.attempt(records)
        except PermanentError as exc:
            await self._replay_gave_up(chunk, ids, records, exc)
            return
        except Exception as exc:
            self.healthy = False
            if not trial:  # a failed trial write is a failed probe, logged as such
                breaker.record_failure(trio.current_time(), exc)
                sink_log.warning(
                    'sink.replay_failed sink=%s records=%d error="%s"',
                    w.name,
                    len(records),
                    describe(exc),
                )
            return
        if trial:
            self._replay_started()
        await self._consume(chunk)
        w.ledger.replayed(w.account, ids)
        breaker.record_success()
        self.healthy = True
        if parking.pending == 0:
            self.replaying = False
            sink_log.info("sink.replay_complete sink=%s replayed=%d", w.name, w.account.replayed)

    def _replay_started(self) -> None:
        if not self.replaying:
            self.replaying = True
            assert self.parking is not None
            sink_log.info(
                "sink.replay_started sink=%s parked=%d", self._w().name, self.parking.pending
            )

    async def _replay_gave_up(
        self, chunk: Chunk, ids: list[int], records: list[Record], exc: PermanentError
    ) -> None:
        """A replayed chunk failed for good: it moves from the parked entries to the
        store's ordinary ones, with its new reason; the replay goes on past it."""
        w = self._w()
        reason = w.write_failed(records, exc)
        w.send_errors(records, exc)
        store = w.rescue
        assert store is not None
        try:
            await store.arescue(stored_undelivered(records, w.name, reason, exc))
        except Exception as store_exc:
            # They stay parked; the replay waits for the next sign of health, and no
            # sooner than the next probe (a store that keeps failing must not spin).
            w.store_failed(len(records), store_exc)
            self.healthy = False
            self.breaker.probe_failed(trio.current_time(), store_exc)
            return
        await self._consume(chunk)
        w.ledger.repark(w.account, ids, reason, exc)

    async def _consume(self, chunk: Chunk) -> None:
        assert self.parking is not None
        try:
            await self.parking.consume(chunk)
        except Exception as exc:
            # The records reached the sink: a later replay may write them again.
            self._w().store_failed(len(chunk.items), exc)

    # -- the end -----------------------------------------------------------------------

    async def finish(self) -> None:
        """The input has ended: seal what is parked (in a worker thread)."""
        if self.parking is not None:
            try:
                await self.parking.aclose()
            except Exception as exc:
                self._w().store_failed(self.parking.pending, exc)

    def close(self) -> None:
        """Close the parking writer (blocking, if :meth:`finish` did not). Sync: it runs
        at the end of the task, cancelled or not. Idempotent."""
        if self.parking is not None:
            try:
                self.parking.close()
            except Exception as exc:
                self._w().store_failed(self.parking.pending, exc)


def _timeout(interval: float) -> _ProbeTimeout:
    return _ProbeTimeout(f"no answer within {interval:g} s")


def _record_of(entry: RescueEntry) -> Record:
    return Record(entry.id, entry.raw, entry.payload, entry.rest)
