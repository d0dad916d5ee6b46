"""Small helpers shared by the stage tests."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from trio_sink import DeliveryReport, Record, Sink


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
