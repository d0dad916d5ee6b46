"""Replay: deliver what a rescue store holds, and remove it once delivered.

A replay is a run whose source is the store. It reads the store in order, a batch of
``batch_size`` entries at a time, writes each batch's records to their sinks, and only
then moves the store's consumed offset past the batch (after appending what stays:
entries whose write failed again, and entries for no sink of this replay). So an
interrupted replay (cancelled, or the process killed) leaves every entry in the store,
and a later replay delivers again at most the batch that was in flight.

Records are numbered as in any run: 0, 1, ... in store order. The original ids repeat
across runs (and :meth:`DeliveryReport.check` wants ids below ``received``), so they
stay in the store: an entry that stays keeps its original ``id`` and ``run``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial

import msgspec
import trio

from ._checks import check_int, check_text
from ._exceptions import ConfigError, describe
from ._ki import protected
from ._ledger import Ledger, SinkAccount, Ticket
from ._record import Record
from ._report import DeliveryReport, Reason
from ._rescue import RescueStore
from ._rescue_format import RescueEntry, wall_time
from ._rescue_segments import Chunk, Segment, Tally
from ._sink import SinkSlot
from ._writer import SinkWriter

__all__ = ["replay"]

log = logging.getLogger("trio_sink.rescue")

NO_ROUTE = Reason("not_routed", "not routed (replay does not route)")


@protected
async def replay(
    store: RescueStore,
    sinks: Sequence[object],
    *,
    sink_name: str | None = None,
    batch_size: int = 128,
) -> DeliveryReport:
    """Deliver the entries of ``store`` to ``sinks``; remove each once delivered.

    Each entry goes to the sink of ``sinks`` whose name is its ``sink``. With
    ``sink_name``, only the entries for that name are replayed (the others are not
    read into the report and stay as they are); and when ``sinks`` holds one sink,
    those entries go to it whatever its name (a replay to another target).

    The report counts the replayed entries as ``received``, numbered 0, 1, ... in
    store order. A write that raises reports its batch undelivered (``"sink raised
    T: msg"``) and keeps the entries in the store with that reason. An entry whose
    sink is not among ``sinks`` stays too, reported undelivered with stage
    ``"replay"``; so does an entry given up before routing (``sink`` None), reported
    with sink None. Each sink is flushed once after the last write and closed once
    at the end (closed also when the replay fails or is cancelled).

    Cancellation (or a crash) leaves every entry not yet consumed in the store;
    the records of the batch in flight may have reached their sinks, and are
    delivered again by the next replay. Raises :class:`trio.BusyResourceError` when
    another replay runs on the same directory, and
    :class:`~trio_sink.RescueFormatError` at a line of a newer schema
    version (what came before it was replayed; it and the rest stay).
    """
    if isinstance(sinks, (str, bytes)) or not isinstance(sinks, Sequence):
        raise ConfigError(f"sinks must be a sequence of sinks, got {sinks!r}")
    if not sinks:
        raise ConfigError("sinks must hold at least one sink, got an empty sequence")
    check_text("sink_name", sink_name, optional=True)
    check_int("batch_size", batch_size, 1)
    slots = [SinkSlot(s) for s in sinks]
    by_name: dict[str, SinkSlot] = {}
    for slot in slots:
        if slot.name in by_name:
            raise ConfigError(f"sink names must be unique, {slot.name!r} appears twice")
        by_name[slot.name] = slot
    ledger = Ledger(by_name)
    run = _Replay(store, ledger, by_name, sink_name, batch_size)
    if sink_name is not None and len(slots) == 1:
        run.redirect = slots[0]

    segment_log = store.segment_log
    # Cancelled while the thread runs, the lock is taken all the same, and let go below.
    lock = await trio.to_thread.run_sync(segment_log.lock_replay)
    try:
        try:
            segments = await trio.to_thread.run_sync(segment_log.replay_segments, run.tally)
            log.info(
                "replay.started dir=%s segments=%d sink=%s", store.path, len(segments), sink_name
            )
            for segment in segments:
                await run.segment(segment)
            ended = trio.current_time()
            for slot in slots:
                try:
                    await slot.flush()
                except Exception as exc:
                    _closing_failed(ledger, slot.name, "flush", exc)
            # What stayed becomes readable, under its final name.
            await trio.to_thread.run_sync(store.seal)
        finally:
            for slot in slots:
                try:
                    await slot.aclose()
                except Exception as exc:
                    _closing_failed(ledger, slot.name, "aclose", exc)
        report = ledger.report(trio.current_time() - ended)
    finally:
        # What this replay read, even when it stopped early.
        segment_log.end_read(run.tally)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(lock.close)
    log.info(
        "replay.complete received=%d delivered=%d undelivered=%d",
        report.received,
        sum(report.delivered.values()),
        len(report.undelivered),
    )
    return report


def _closing_failed(ledger: Ledger, name: str, what: str, exc: Exception) -> None:
    log.error('replay.%s_failed sink=%s error="%s"', what, name, describe(exc), exc_info=exc)
    ledger.note_error(name, f"{what} raised {describe(exc)}")


class _Nowhere:
    """The destination of entries for a sink this replay does not have."""

    def __init__(self, account: SinkAccount) -> None:
        self.account = account


class _Replay:
    """The state of one replay: the ledger, the routing, the next record id."""

    def __init__(
        self,
        store: RescueStore,
        ledger: Ledger,
        by_name: dict[str, SinkSlot],
        sink_name: str | None,
        batch_size: int,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.by_name = by_name
        self.sink_name = sink_name
        self.batch_size = batch_size
        self.redirect: SinkSlot | None = None
        self.writers: dict[str, SinkWriter] = {}
        self.tally = Tally()
        """What this replay read: its own, so that reads at once do not mix in."""

    def writer(self, slot: SinkSlot) -> SinkWriter:
        writer = self.writers.get(slot.name)
        if writer is None:
            account = self.ledger.account(slot.name)
            writer = self.writers[slot.name] = SinkWriter(slot, account, self.ledger)
        return writer

    async def segment(self, segment: Segment) -> None:
        """Replay one segment, a batch at a time, from its consumed offset."""
        segment_log = self.store.segment_log
        offset = segment.start
        # Start of entries that stay, not yet copied: the offset waits before them
        # until an entry after them is consumed.
        waiting: int | None = None
        while True:
            chunk = await trio.to_thread.run_sync(
                segment_log.read_chunk, segment.path, offset, self.batch_size, self.tally
            )
            if chunk.end <= chunk.start:
                return
            keep = await self.deliver(chunk)
            staying = [k for k in keep if k is not None]
            consumed = len(staying) < len(keep)
            failed = any(isinstance(k, RescueEntry) for k in staying)
            if consumed or failed or (waiting is None and not staying):
                moved = None if waiting is None else (waiting, chunk.start)
                commit = partial(segment_log.commit, moved=moved, keep=staying)
                await trio.to_thread.run_sync(commit, segment.path, chunk.end, chunk.size)
                waiting = None
            elif waiting is None:
                waiting = chunk.start
            offset = chunk.end
            if offset >= chunk.size:
                return

    async def deliver(self, chunk: Chunk) -> list[bytes | RescueEntry | None]:
        """Write the chunk's records to their sinks. Per line, in order: None when it
        was consumed (delivered), else what stays in the store (its line as it is, or
        the entry with its new reason)."""
        ledger = self.ledger
        keep: list[bytes | RescueEntry | None] = []
        # Per sink: its slot, its records, and each record's place in keep and entry.
        groups: dict[str, tuple[SinkSlot, list[Record], list[tuple[int, RescueEntry]]]] = {}
        nowhere: dict[str, list[Record]] = {}  # for sinks this replay does not have
        first: int | None = None
        dispatched = 0
        for item in chunk.items:
            entry = item.entry
            if self.sink_name is not None and entry.sink != self.sink_name:
                keep.append(item.line)
                continue
            rid = ledger.receive(1)
            record = Record(rid, entry.raw, entry.payload, entry.rest)
            keep.append(item.line)
            if entry.sink is None:
                ledger.abandon(None, None, "replay", NO_ROUTE, (record,))
                continue
            if first is None:
                first = rid
            dispatched += 1
            slot = self.redirect or self.by_name.get(entry.sink)
            if slot is None:
                nowhere.setdefault(entry.sink, []).append(record)
                continue
            group = groups.get(slot.name)
            if group is None:
                group = groups[slot.name] = (slot, [], [])
            group[1].append(record)
            group[2].append((len(keep) - 1, entry))
            keep[-1] = None
        if first is None:
            return keep
        ticket = Ticket(first, dispatched, 0)
        writers = {name: self.writer(slot) for name, (slot, _, _) in groups.items()}
        lost = {name: _Nowhere(ledger.account(name)) for name in nowhere}
        ledger.dispatch(
            ticket,
            [(writers[name], (records, ticket)) for name, (_, records, _) in groups.items()]
            + [(lost[name], (records, ticket)) for name, records in nowhere.items()],
        )
        for name, records in nowhere.items():
            reason = Reason("no_sink", f"no sink named {name!r}")
            ledger.abandon(lost[name].account, "waiting", "replay", reason, records)
            ledger.settle(ticket)
        for name, (_, records, places) in groups.items():
            writer = writers[name]
            ledger.send(writer.account, len(records))
            exc = await writer.write_batch(records)
            ledger.settle(ticket)
            if exc is not None:
                now = wall_time()
                error = describe(exc)
                for place, entry in places:
                    keep[place] = msgspec.structs.replace(
                        entry, stage="sink", reason=f"sink raised {error}", error=error, time=now
                    )
        return keep
