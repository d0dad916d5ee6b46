"""Side feeds: records the pipeline sends to an infra group's sink on the side, never
waiting (the copies of failed records for ``error``, the statistics for ``monitor``).

A feed that finds the sink's channel full (or closed) counts the records as discarded
in that group instead of waiting: a slow or hung infra sink never holds the pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio

from ._batch import Batch
from ._ledger import Ledger, SinkAccount, Ticket
from ._record import Record

__all__ = ["LossyFeed", "SinkBatch"]

log = logging.getLogger("trio_sink.pipeline")

SinkBatch = tuple[Batch, Ticket]
"""What a sink's channel carries: a read-only sub-batch and its source batch's ticket."""


class LossyFeed:
    """Sends batches to one infra group's sink channel with ``send_nowait``; what finds
    no room is counted in ``discarded[group]``, and the first loss of a spell logged
    at WARNING."""

    def __init__(
        self,
        send: trio.MemorySendChannel[SinkBatch],
        account: SinkAccount,
        ledger: Ledger,
        group: str,
    ) -> None:
        self.send = send
        self.account = account
        self.ledger = ledger
        self.group = group
        self.full = False  # the last batch found no room (logged once a spell)

    def offer(self, records: Sequence[Record]) -> bool:
        """Send ``batch`` if its channel has room; else count it as discarded. Sync,
        never a checkpoint. True when it was sent."""
        batch = Batch.of(records)
        n = len(batch)
        try:
            self.send.send_nowait((batch, Ticket(batch.ids[0], n, 1)))
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            self.ledger.discard(self.group, n)
            if not self.full:
                self.full = True
                log.warning(
                    "%s.full sink=%s buffered=%d",
                    self.group,
                    self.account.name,
                    self.account.buffered,
                )
            return False
        self.full = False
        self.ledger.admit(self.account, n)
        return True

    def close(self) -> None:
        self.send.close()


class ErrorFeed(LossyFeed):
    """The ``error`` group's feed, for one sink's task: the copies of the records of its
    failed writes, each with ``.error`` set.

    Give each sink task its own ``send.clone()``: the error sink's input then ends once
    every sink task has ended (each closes its feed), so no late failure finds the
    channel closed. A record that failed at several sinks is sent once (see
    :meth:`Ledger.sent_to_errors`): the error sink must not get one id twice, or a
    deadline could report it twice for that sink.
    """

    def __init__(
        self, send: trio.MemorySendChannel[SinkBatch], account: SinkAccount, ledger: Ledger
    ) -> None:
        super().__init__(send, account, ledger, "error")

    def __call__(self, records: Sequence[Record]) -> None:
        batch = tuple(self.ledger.sent_to_errors(records))
        if batch:
            self.offer(batch)
