"""The accounts the ledger keeps: one :class:`SinkAccount` per sink, one :class:`Ticket`
per source batch. Read them anywhere; only :class:`~trio_sink._ledger.Ledger` changes
them."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from ._record import Record

__all__ = [
    "ERROR_IDS_AT_LEAST",
    "NO_ID",
    "STRICT",
    "ErrorIds",
    "Place",
    "Routed",
    "SinkAccount",
    "Ticket",
    "strict_from_environment",
]

NO_ID = 2**63
"""Past every id: no record is unsafe."""


def strict_from_environment() -> bool:
    """Whether ``TRIO_SINK_STRICT_LEDGER`` asks for strict ledgers (set, and not 0)."""
    return os.environ.get("TRIO_SINK_STRICT_LEDGER", "") not in ("", "0")


STRICT = strict_from_environment()
"""Whether ledgers check their accounts after every move unless told otherwise."""


Place = Literal["waiting", "buffered", "in_flight"]
"""Where records were when a sink gave them up."""


class Routed(Protocol):
    """A destination of the route stage: it knows its sink's account."""

    @property
    def account(self) -> SinkAccount: ...


class Ticket:
    """One source batch, owing one outcome per destination sub-batch.

    When every sub-batch has reached delivered or undelivered, the source batch is
    settled: the hook for source acknowledgements.
    """

    __slots__ = ("count", "first_id", "pending")

    def __init__(self, first_id: int, count: int, pending: int) -> None:
        self.first_id = first_id
        self.count = count
        self.pending = pending


class SinkAccount:
    """The counts of one sink. Read them; only the :class:`Ledger` changes them."""

    __slots__ = (
        "buffered",
        "by_reason",
        "delivered",
        "in_flight",
        "name",
        "peak_buffered",
        "replayed",
        "retries",
        "routed",
        "stored",
        "undelivered",
        "waiting",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.routed = 0
        self.waiting = 0  # routed, not yet in its channel (the channel is full)
        self.buffered = 0  # in its channel
        self.in_flight = 0  # in its task's hands
        self.delivered = 0
        self.undelivered = 0
        self.peak_buffered = 0
        self.by_reason: Counter[str] = Counter()  # undelivered, by statistics key
        self.retries = 0  # writes retried after a failure
        self.stored = 0  # undelivered records kept in the rescue store
        self.replayed = 0  # records delivered from the rescue store during the run

    @property
    def pending(self) -> int:
        """Records routed to it and not settled yet."""
        return self.waiting + self.buffered + self.in_flight

    def problem(self) -> str | None:
        """What is wrong with the counts, or None when they add up."""
        parts = (self.waiting, self.buffered, self.in_flight, self.delivered, self.undelivered)
        if min(parts) < 0 or self.stored < 0 or self.stored > self.undelivered:
            return f"sink {self.name!r}: a negative count or stored > undelivered: {self._text()}"
        if self.routed != sum(parts):
            return f"sink {self.name!r}: routed != the sum of its places: {self._text()}"
        if sum(self.by_reason.values()) != self.undelivered:
            return f"sink {self.name!r}: by reason {dict(self.by_reason)} != {self._text()}"
        return None

    def _text(self) -> str:
        return ", ".join(f"{k}={getattr(self, k)}" for k in self.__slots__ if k != "by_reason")


ERROR_IDS_AT_LEAST = 4096
"""The size from which the ledger forgets the ids of settled error records."""


class ErrorIds:
    """The ids of the records sent to the error group, while they can still fail.

    A record that failed at several sinks (or again, when replayed) goes there once: the
    error sink must not get one id twice. An id is remembered only while the record can
    still fail somewhere: its source batch is not settled, or it is parked for replay.
    The rest are forgotten from time to time (the limit doubles with what is kept, so
    each id is looked at a bounded number of times), so a long run with steady failures
    keeps a bounded set.
    """

    def __init__(self) -> None:
        self.ids: set[int] = set()
        self.limit = ERROR_IDS_AT_LEAST

    def fresh(
        self,
        records: Iterable[Record],
        open_tickets: Mapping[int, object],
        parked: Mapping[str, Mapping[int, object]],
        received: int,
    ) -> list[Record]:
        """The records of ``records`` not sent yet, now marked sent."""
        ids = self.ids
        fresh = [r for r in records if r.id not in ids]
        ids.update(r.id for r in fresh)
        if len(ids) >= self.limit:
            floor = min(open_tickets, default=received)
            kept_parked = set().union(*parked.values())
            self.ids = {i for i in ids if i >= floor or i in kept_parked}
            self.limit = max(ERROR_IDS_AT_LEAST, 2 * len(self.ids))
        return fresh
