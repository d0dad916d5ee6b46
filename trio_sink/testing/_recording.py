"""A sink that records every call made to it, with times on Trio's clock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import final

import attrs
import trio

from .._record import Record
from .._sink import SinkLike
from ._checks import check_inner, check_name
from ._forwarding import Forwarding

__all__ = ["RecordingSink", "WriteCall"]


@final
@attrs.frozen
class WriteCall:
    """One call to :meth:`RecordingSink.write`, as it was seen.

    Attributes:
        started: Trio's clock when the call began.
        ended: Trio's clock when it returned or raised.
        batch: The batch, copied.
        outcome: ``"delivered"`` (it returned), ``"raised"`` (it raised anything but
            :exc:`trio.Cancelled`) or ``"cancelled"`` (it raised :exc:`trio.Cancelled`).
        error: The exception for ``"raised"`` and ``"cancelled"``; None when delivered.
    """

    started: float
    ended: float
    batch: tuple[Record, ...]
    outcome: str
    error: BaseException | None = None

    @property
    def ids(self) -> list[int]:
        """The ids of the batch's records, in order."""
        return [r.id for r in self.batch]


@final
class RecordingSink(Forwarding[SinkLike | None]):
    """A sink that records every call made to it, with times on Trio's clock.

    Alone, it keeps the records it is given. With ``inner``, it passes each call on
    to ``inner`` and records what came of it: a write is ``"delivered"`` only if
    ``inner.write`` returned. Its name is ``name`` in both cases.

    Attributes:
        calls: One :class:`WriteCall` per write, in call order, whatever its outcome.
        records: The delivered records, in order.
        flushes: Trio's clock at each call of :meth:`flush`.
        closes: Trio's clock at each call of :meth:`aclose`.
    """

    def __init__(self, name: str = "recording", *, inner: SinkLike | None = None) -> None:
        check_name(name)
        check_inner(inner)
        super().__init__(inner, name)
        self.calls: list[WriteCall] = []
        self.records: list[Record] = []
        self.flushes: list[float] = []
        self.closes: list[float] = []

    async def write(self, batch: Sequence[Record]) -> None:
        """Record the call and pass it on to ``inner``.

        Always a checkpoint (alone, it checkpoints before keeping the batch). If
        cancelled, it raises :exc:`trio.Cancelled`; alone, nothing was delivered then;
        with ``inner``, whatever ``inner`` did before the cancellation stands, and the
        call is recorded as ``"cancelled"``.
        """
        started = trio.current_time()
        copy = tuple(batch)
        try:
            if self.inner is None:
                await trio.lowlevel.checkpoint()
            else:
                await self.inner.write(batch)
        except trio.Cancelled as exc:
            self.calls.append(WriteCall(started, trio.current_time(), copy, "cancelled", exc))
            raise
        except BaseException as exc:
            self.calls.append(WriteCall(started, trio.current_time(), copy, "raised", exc))
            raise
        self.records.extend(copy)
        self.calls.append(WriteCall(started, trio.current_time(), copy, "delivered"))

    async def flush(self) -> None:
        """Record the time, then flush ``inner`` (if it has a ``flush``)."""
        self.flushes.append(trio.current_time())
        await super().flush()

    async def aclose(self) -> None:
        """Record the time, then close ``inner`` (if it has an ``aclose``)."""
        self.closes.append(trio.current_time())
        await super().aclose()
