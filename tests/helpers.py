"""Small helpers shared by the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence

import pytest
import trio

from trio_sink import DeliveryReport, Record, Sink
from trio_sink._ledger import Ledger, Ticket
from trio_sink.testing import RecordingSink


class GatedSink(Sink):
    """Each write waits for one permit from the test; keeps the ids it delivered."""

    def __init__(self, name: str = "gated") -> None:
        self.name = name
        self.permits = trio.Semaphore(0)
        self.delivered: list[int] = []
        self.closed = 0

    async def write(self, batch: Sequence[Record]) -> None:
        await self.permits.acquire()
        self.delivered.extend(r.id for r in batch)

    async def aclose(self) -> None:
        self.closed += 1


def checked(report: DeliveryReport) -> DeliveryReport:
    """``report``, after its accounting invariant was checked."""
    report.check()
    return report


def recs(first: int, n: int) -> list[Record]:
    """Records ``first`` .. ``first + n - 1``, each with ``raw{i}`` and payload ``i``."""
    return [Record(i, f"raw{i}", i) for i in range(first, first + n)]


def ids(records: Iterable[Record]) -> list[int]:
    return [r.id for r in records]


def ended(sink: RecordingSink) -> list[float]:
    """When each delivered write of ``sink`` returned."""
    return [c.ended for c in sink.calls if c.outcome == "delivered"]


def messages(caplog: pytest.LogCaptureFixture, prefix: str) -> list[str]:
    """The logged messages that start with ``prefix``, in order."""
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(prefix)]


class CancelledIntoAnError(Sink):
    """A sink whose write waits until it is cancelled, then raises an error of its own
    instead of ``Cancelled``, as some clients do: the writer takes it for a failed
    write while its task is being cancelled."""

    def __init__(self, name: str = "db") -> None:
        self.name = name
        self.writes = 0

    async def write(self, batch: Sequence[Record]) -> None:
        self.writes += 1
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            raise OSError("connection reset") from None


def open_ticket(ledger: Ledger, ticket: Ticket) -> None:
    """Open ``ticket`` in ``ledger`` as routing does, until each sub-batch is settled."""
    ledger.open_tickets[ticket.first_id] = ticket


async def one_a_second(n: int) -> AsyncIterator[int]:
    """0 .. n-1, each followed by a second of Trio's clock."""
    for i in range(n):
        yield i
        await trio.sleep(1.0)
