"""Replay: deliver what a rescue store holds, and remove it once delivered.

A replay is a run whose source is the store. It reads the store in order, a batch of
``batch_size`` lines at a time, writes each batch's records to their sinks, and only
then records in the store that the batch's lines are consumed (after appending the
entries whose write failed again, with their new reason, and moving the lines it cannot
decode to the quarantine). Entries it does not replay (meant for a sink it does not
have, given up before routing, or left out by ``sink_name``) stay where they are, as
they are. So an interrupted replay (cancelled, or the process killed) leaves every
entry in the store, and a later replay delivers again at most the batch that was in
flight.

Records are numbered as in any run: 0, 1, ... in store order (the report's
:meth:`~trio_sink.DeliveryReport.check` wants ids below ``received``). Each is a
:class:`~trio_sink._record.ReplayedRecord`, which carries its original run and id.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Final

import msgspec
import trio

from ._checks import check_int, check_text
from ._exceptions import ConfigError, describe
from ._ki import protected
from ._ledger import Ledger, SinkAccount, Ticket
from ._progress import Consumed, Range
from ._record import Record, ReplayedRecord
from ._report import DeliveryReport, Reason
from ._rescue import RescueStore
from ._rescue_format import RescueEntry, wall_time
from ._rescue_segments import Item, Segment, Tally, scan
from ._sink import SinkSlot
from ._writer import SinkWriter

__all__ = ["BATCH_SIZE", "replay"]

log = logging.getLogger("trio_sink.rescue")

BATCH_SIZE: Final = 1024
"""Lines a replay reads, delivers and commits at a time, by default: each commit is one
fsync of the segment's progress file."""

NO_ROUTE = Reason("not_routed", "not routed (replay does not route)")


def held_reason(path: Path) -> Reason:
    """Why the entries of a segment a live writer holds were not replayed."""
    return Reason(
        "held",
        f"held by a live writer: {path.name} is still being written; replay once it is sealed",
    )


@protected
async def replay(
    store: RescueStore,
    sinks: Sequence[object],
    *,
    sink_name: str | None = None,
    batch_size: int = BATCH_SIZE,
) -> DeliveryReport:
    """Deliver the entries of ``store`` to ``sinks``; remove each once delivered.

    Each entry goes to the sink of ``sinks`` whose name is its ``sink``, as a
    :class:`~trio_sink._record.ReplayedRecord` (its original run and id, its error
    text, whether a value is only a ``repr()``). With ``sink_name``, only the entries
    for that name are replayed (the others are not read into the report and stay as
    they are); and when ``sinks`` holds one sink, those entries go to it whatever its
    name (a replay to another target).

    The report counts the replayed entries as ``received``, numbered 0, 1, ... in
    store order. A write that raises reports its batch undelivered (``"sink raised
    T: msg"``) and keeps the entries in the store with that reason. An entry whose
    sink is not among ``sinks`` stays where it is, reported undelivered with stage
    ``"replay"``; so does an entry given up before routing (``sink`` None), reported
    with sink None, and each entry of a segment that a live writer still holds
    (reason ``"held by a live writer: ..."``), which this replay does not touch. So
    the report is ``ok`` only when nothing it found was left behind. Lines that cannot
    be decoded are moved, byte for byte, to the store's ``quarantine/`` directory,
    never deleted; the store's :attr:`~trio_sink.RescueStore.read_stats` counts them
    (``quarantined``) and the held entries (``held``). Each sink is flushed once after
    the last write and closed once at the end (closed also when the replay fails or
    is cancelled).

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
            segments, held_by_writers = await trio.to_thread.run_sync(
                segment_log.replay_segments, run.tally
            )
            log.info(
                "replay.started dir=%s segments=%d sink=%s", store.path, len(segments), sink_name
            )
            for segment in segments:
                await run.segment(segment)
            for path in held_by_writers:
                await run.held(path)
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
        "replay.complete received=%d delivered=%d undelivered=%d quarantined=%d held=%d",
        report.received,
        sum(report.delivered.values()),
        len(report.undelivered),
        run.tally.quarantined,
        run.tally.held,
    )
    return report


def _closing_failed(ledger: Ledger, name: str, what: str, exc: Exception) -> None:
    log.error('replay.%s_failed sink=%s error="%s"', what, name, describe(exc), exc_info=exc)
    ledger.note_error(name, f"{what} raised {describe(exc)}")


def replayed_record(rid: int, entry: RescueEntry) -> ReplayedRecord:
    """The record a replay delivers for ``entry``, numbered ``rid``."""
    return ReplayedRecord(
        rid,
        entry.raw,
        entry.payload,
        entry.rest,
        origin_run=entry.run,
        origin_id=entry.id,
        error_text=entry.record_error,
        repr_only=entry.repr_only,
    )


class _Nowhere:
    """The destination of entries this replay does not write: for a sink it does not
    have, or held by a live writer."""

    def __init__(self, account: SinkAccount) -> None:
        self.account = account


class _Replay:
    """The state of one replay: the ledger, the routing, what it read."""

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

    def wanted(self, entry: RescueEntry) -> bool:
        return self.sink_name is None or entry.sink == self.sink_name

    async def segment(self, segment: Segment) -> None:
        """Replay one segment, a batch at a time, from its consumed prefix; delete it
        once every line of it is consumed."""
        segment_log = self.store.segment_log
        offset = segment.start
        left = 0  # lines this replay leaves in the segment
        while True:
            chunk = await trio.to_thread.run_sync(
                segment_log.read_chunk,
                segment.path,
                offset,
                self.batch_size,
                segment.consumed,
                self.tally,
            )
            keep, consumed, stayed = await self.deliver(chunk.items)
            left += stayed
            last = chunk.end >= chunk.size
            finished = last and left == 0
            if consumed or chunk.bad or finished:
                commit = partial(segment_log.commit, bad=chunk.bad, keep=keep, finished=finished)
                await trio.to_thread.run_sync(commit, segment.path, consumed)
                self.tally.quarantined += len(chunk.bad)
            if last:
                return
            offset = chunk.end

    async def deliver(self, items: list[Item]) -> tuple[list[RescueEntry], list[Range], int]:
        """Write the records of ``items`` to their sinks. Returns the entries to keep
        (their write failed), the byte ranges consumed (delivered, or kept), and how
        many lines stay where they are."""
        ledger = self.ledger
        # Per sink: its slot, its records, and the item of each.
        groups: dict[str, tuple[SinkSlot, list[Record], list[Item]]] = {}
        nowhere: dict[str, list[Record]] = {}  # for sinks this replay does not have
        left = 0
        first: int | None = None
        for item in items:
            entry = item.entry
            if not self.wanted(entry):
                left += 1
                continue
            record = replayed_record(ledger.receive(1), entry)
            sink = entry.sink
            if sink is None:
                ledger.abandon(None, None, "replay", NO_ROUTE, (record,))
                left += 1
                continue
            if first is None:
                first = record.id
            slot = self.redirect or self.by_name.get(sink)
            if slot is None:
                nowhere.setdefault(sink, []).append(record)
                left += 1
                continue
            group = groups.get(slot.name)
            if group is None:
                group = groups[slot.name] = (slot, [], [])
            group[1].append(record)
            group[2].append(item)
        keep: list[RescueEntry] = []
        consumed: list[Range] = []
        if first is None:
            return keep, consumed, left
        dispatched = sum(len(g[1]) for g in groups.values()) + sum(map(len, nowhere.values()))
        ticket = Ticket(first, dispatched, 0)
        writers = {name: self.writer(slot) for name, (slot, _, _) in groups.items()}
        self._dispatch(
            ticket,
            [(writers[name], records) for name, (_, records, _) in groups.items()],
            {name: (records, _no_sink(name)) for name, records in nowhere.items()},
        )
        for name, (_, records, its) in groups.items():
            writer = writers[name]
            ledger.send(writer.account, len(records))
            exc = await writer.write_batch(records)
            ledger.settle(ticket)
            consumed.extend((i.start, i.end) for i in its)
            if exc is not None:
                now = wall_time()
                error = describe(exc)
                reason = f"sink raised {error}"
                keep.extend(
                    msgspec.structs.replace(
                        i.entry, stage="sink", reason=reason, error=error, time=now
                    )
                    for i in its
                )
        return keep, consumed, left

    def _dispatch(
        self,
        ticket: Ticket,
        written: list[tuple[SinkWriter, list[Record]]],
        unsent: dict[str, tuple[list[Record], Reason]],
    ) -> None:
        """Dispatch ``ticket``'s records: those ``written`` wait for their writer; the
        ``unsent`` ones, per sink name, are reported undelivered at once."""
        ledger = self.ledger
        lost = {name: _Nowhere(ledger.account(name)) for name in unsent}
        ledger.dispatch(
            ticket,
            [(w, (records, ticket)) for w, records in written]
            + [(lost[name], (records, ticket)) for name, (records, _) in unsent.items()],
        )
        for name, (records, reason) in unsent.items():
            ledger.abandon(lost[name].account, "waiting", "replay", reason, records)
            ledger.settle(ticket)

    async def held(self, path: Path) -> None:
        """Report the entries of segment ``path``, which a live writer holds, as
        undelivered: read as they are now, left as they are."""
        items = await trio.to_thread.run_sync(_entries_now, path)
        entries = [e for e in items if self.wanted(e)]
        if not entries:
            return
        ledger = self.ledger
        reason = held_reason(path)
        records = [replayed_record(ledger.receive(1), e) for e in entries]
        self.tally.held += len(records)
        log.warning("replay.held segment=%s entries=%d", path.name, len(records))
        by_sink: dict[str, list[Record]] = {}
        unrouted: list[Record] = []
        for entry, record in zip(entries, records, strict=True):
            if entry.sink is None:
                unrouted.append(record)
                continue
            slot = self.redirect or self.by_name.get(entry.sink)
            by_sink.setdefault(entry.sink if slot is None else slot.name, []).append(record)
        if unrouted:
            ledger.abandon(None, None, "replay", reason, unrouted)
        if by_sink:
            dispatched = sum(map(len, by_sink.values()))
            first = min(r.id for rs in by_sink.values() for r in rs)
            ticket = Ticket(first, dispatched, 0)
            self._dispatch(ticket, [], {n: (rs, reason) for n, rs in by_sink.items()})


def _no_sink(name: str) -> Reason:
    return Reason("no_sink", f"no sink named {name!r}")


def _entries_now(path: Path) -> list[RescueEntry]:
    """The entries segment ``path`` holds now; a line being written is not one."""
    return [i.entry for i in scan(path, 0, Consumed(), None) if isinstance(i, Item)]
