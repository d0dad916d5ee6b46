"""A fake source that acknowledges: it keeps what the pipeline acknowledged."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from typing import Any, Final, final

import trio

from .._source import Source
from ._checks import check_name, check_seconds
from ._scripted import ScriptedSource

__all__ = ["AckingSource"]


@final
class AckingSource(Source[Any]):
    """A :class:`ScriptedSource` (the same script, ``endless`` and ``interval``) that
    defines :meth:`ack`, for tests of acknowledgements.

    Each ``ack`` call sleeps ``ack_delay`` seconds on Trio's clock first (with 0 it is
    not a checkpoint, so it cannot be cancelled), then raises ``fail_ack`` if given,
    else keeps the items.

    Attributes:
        acked: Every item acknowledged, in the order of the calls.
        calls: The items of each call that returned.
        in_flight: Calls running now (the pipeline makes at most one at a time).
        most_in_flight: The most calls that ever ran at once.
        events: ``"open"``, ``"ack"`` (per call that returned) and ``"close"``, in
            order: the last ``"ack"`` comes before ``"close"``.
    """

    def __init__(
        self,
        script: Iterable[Any] = (),
        *,
        endless: Callable[[int], Any] | None = None,
        interval: float = 0.0,
        ack_delay: float = 0.0,
        fail_ack: Exception | None = None,
        name: str = "acking",
    ) -> None:
        check_seconds("ack_delay", ack_delay)
        check_name(name)
        self.scripted: Final = ScriptedSource(script, endless=endless, interval=interval)
        self.ack_delay: Final = ack_delay
        self.fail_ack: Final = fail_ack
        self.name = name
        self.acked: list[Any] = []
        self.calls: list[tuple[Any, ...]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.events: list[str] = []

    def __aiter__(self) -> AsyncGenerator[Any, None]:
        return self.scripted.__aiter__()

    async def open(self) -> None:
        """Note the call. Not a checkpoint."""
        self.events.append("open")

    async def ack(self, items: Sequence[Any]) -> None:
        """Keep ``items`` (after ``ack_delay``; or raise ``fail_ack``)."""
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.ack_delay:
                await trio.sleep(self.ack_delay)
            if self.fail_ack is not None:
                raise self.fail_ack
            self.calls.append(tuple(items))
            self.acked.extend(items)
            self.events.append("ack")
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        """Note the call. Not a checkpoint."""
        self.events.append("close")
