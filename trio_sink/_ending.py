"""The end of a run: what is left undelivered goes to the rescue store, and the records a
deadline gave up are logged per sink."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping

import trio

from ._control import Pause
from ._exceptions import describe
from ._ledger import Ledger
from ._report import DEADLINE, IMMEDIATE, DeliveryReport
from ._rescue import RescueStore

__all__ = ["log_deadline", "store_the_rest"]

drain_log = logging.getLogger("trio_sink.drain")
rescue_log = logging.getLogger("trio_sink.rescue")


async def store_the_rest(ledger: Ledger, store: RescueStore) -> None:
    """Write every undelivered record not stored yet to ``store``. At the end of a run,
    once its tasks are done: the write runs in a worker thread (a large backlog does not
    hold up the other tasks of the program), shielded from cancellation (what is
    undelivered is kept, also when the run was cancelled). If the store fails, the
    records stay unstored and the failure is noted in ``sink_errors["rescue"]``."""
    places = ledger.unstored()
    if not places:
        return
    undelivered = ledger.undelivered
    try:
        with trio.CancelScope(shield=True):
            await store.arescue([undelivered[k] for k in places])
    except Exception as exc:
        rescue_log.error(
            'rescue.failed records=%d error="%s"', len(places), describe(exc), exc_info=exc
        )
        ledger.note_error("rescue", f"rescue store raised {describe(exc)}")
        return
    ledger.mark_stored(places)


def log_deadline(report: DeliveryReport, pauses: Mapping[str, Pause]) -> None:
    """One ``drain.deadline`` line per sink that lost records to the deadline (or an
    immediate stop), whichever stage gave them up; ``sink=-`` for those before routing."""
    if not drain_log.isEnabledFor(logging.WARNING):
        return
    lost: Counter[tuple[str | None, str]] = Counter(
        (u.sink, u.reason) for u in report.undelivered if u.kind in (DEADLINE.kind, IMMEDIATE.kind)
    )
    for (sink, reason), n in lost.items():
        paused = sink is not None and pauses[sink].paused
        drain_log.warning(
            'drain.deadline sink=%s undelivered=%d reason="%s" paused=%s',
            "-" if sink is None else sink,
            n,
            reason,
            paused,
        )
