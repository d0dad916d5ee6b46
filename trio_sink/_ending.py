"""The end of a run: what is left undelivered goes to the rescue store, the source hears
its last acknowledgement and is closed, and the records a deadline gave up are logged
per sink."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import trio

from ._acks import Acks
from ._control import Pause, StopControl
from ._exceptions import describe
from ._ledger import Ledger
from ._record import Record
from ._report import DEADLINE, IMMEDIATE, Undelivered, kind_of
from ._rescue import RescueStore
from ._rescue_format import PartlyStoredError
from ._source import SourceStage, close_source

__all__ = ["end_run", "log_deadline", "read_back", "store_the_rest"]

KINDS = (DEADLINE.kind, IMMEDIATE.kind)

drain_log = logging.getLogger("trio_sink.drain")
rescue_log = logging.getLogger("trio_sink.rescue")


async def end_run(
    ledger: Ledger,
    control: StopControl,
    rescue: RescueStore | None,
    acks: Acks | None,
    stage: SourceStage,
    source: Any,
) -> None:
    """Once the run's tasks are done: store the rest, make the last acknowledgement,
    then close the source (also when one of them raised)."""
    try:
        if rescue is not None:
            await store_the_rest(ledger, rescue)
        if acks is not None:
            await acks.final(control)
    finally:
        if stage.opened:
            await close_source(source, control)


async def store_the_rest(ledger: Ledger, store: RescueStore) -> None:
    """Write every undelivered record not stored yet to ``store``, then seal it. At the
    end of a run, once its tasks are done: the write runs in a worker thread (a large
    backlog does not hold up the other tasks of the program), shielded from
    cancellation (what is undelivered is kept, also when the run was cancelled). If the
    store fails, the records it could not take stay unstored and the failure is noted
    in ``sink_errors["rescue"]``."""
    places = ledger.unstored()
    undelivered = ledger.undelivered
    with trio.CancelScope(shield=True):
        if places:
            try:
                # In chunks: on a nearly full disk, what fits is stored.
                await store.arescue_some([undelivered[k] for k in places])
            except Exception as exc:
                stored = exc.stored if isinstance(exc, PartlyStoredError) else 0
                ledger.mark_stored(places[:stored])
                _failed(ledger, len(places) - stored, exc)
            else:
                ledger.mark_stored(places)
        # What the run wrote becomes readable (a replay may follow at once); the store
        # object stays usable for another run.
        try:
            await trio.to_thread.run_sync(store.seal)
        except Exception as exc:
            _failed(ledger, 0, exc)


def _failed(ledger: Ledger, n: int, exc: Exception) -> None:
    rescue_log.error('rescue.failed records=%d error="%s"', n, describe(exc), exc_info=exc)
    ledger.note_error("rescue", f"rescue store raised {describe(exc)}")


def read_back(store: RescueStore) -> Iterator[Undelivered]:
    """The undelivered records of ``store``'s run, read back from its entries (for a
    report whose ledger only counted them): their values as the store keeps them, the
    reason as text (``error`` None)."""
    with RescueStore(store.path) as reader:
        for e in reader.entries():
            if e.run == store.run:
                record = Record(e.id, e.raw, e.payload, e.rest)
                yield Undelivered(
                    record, e.sink, e.stage, e.reason, stored=True, kind=kind_of(e.reason)
                )


def log_deadline(ledger: Ledger, pauses: Mapping[str, Pause]) -> None:
    """One ``drain.deadline`` line per sink that lost records to the deadline (or an
    immediate stop), whichever stage gave them up; ``sink=-`` for those before routing.
    From the ledger's counts (a report may hold only some of its records in memory)."""
    if not drain_log.isEnabledFor(logging.WARNING):
        return
    lost: Counter[tuple[str | None, str]] = Counter(
        (u.sink, u.reason) for u in ledger.undelivered if u.sink is None and u.kind in KINDS
    )
    for name, account in ledger.accounts.items():
        for reason in (DEADLINE.text, IMMEDIATE.text):
            if account.by_reason[reason]:
                lost[name, reason] = account.by_reason[reason]
    for (sink, reason), n in lost.items():
        paused = sink is not None and pauses[sink].paused
        drain_log.warning(
            'drain.deadline sink=%s undelivered=%d reason="%s" paused=%s',
            "-" if sink is None else sink,
            n,
            reason,
            paused,
        )
