"""HangingSink: a sink that takes a few writes, then stops answering."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, final, overload

import trio

from .._record import Record
from .._sink import SinkLike
from ._checks import check_bool, check_inner, check_name, is_write_number
from ._forwarding import Forwarding, Probe

__all__ = ["HangingSink"]


@final
class HangingSink(Forwarding[SinkLike | None]):
    """A sink that takes ``after`` writes, then hangs: every later write blocks until
    it is cancelled (``trio.sleep_forever()``), and so delivers nothing.

    The first ``after`` writes go to ``inner`` when given. It proves that a drain
    deadline (or an immediate stop) reports the hung batch instead of waiting forever.

    ``inner`` comes first, as for :class:`~trio_sink.testing.FlakySink` and
    :class:`~trio_sink.testing.FailingProbe`:
    ``HangingSink(CollectSink("db"), after=2)``. A str in its place is the name, the
    order of earlier versions, which still works: ``HangingSink("stuck", after=2)``.
    Its name is ``name`` when given (it may differ from ``inner.name``), else
    ``inner.name`` when ``inner`` is given, else ``"hanging"``.

    With ``hang_probe``, :attr:`probe` is a health check that hangs too (until it is
    cancelled); without, :attr:`probe` is None: the sink has no probe, and a trial
    write is its only health check (and hangs once ``after`` writes are done).

    Attributes:
        inner: The sink that receives the first ``after`` writes, or None.
        records: The records delivered by the first ``after`` writes, in order.
        hung: How many writes hung (each ended by a cancellation, or still hanging).
        probe: The hanging health check, or None (see ``hang_probe``).
        probes_hung: How many probes hung.
    """

    @overload
    def __init__(
        self,
        inner: SinkLike | None = None,
        *,
        name: str | None = None,
        after: int = 0,
        hang_probe: bool = False,
    ) -> None: ...

    @overload  # the name first, as in earlier versions
    def __init__(
        self,
        name: str,
        /,
        *,
        after: int = ...,
        inner: SinkLike | None = ...,
        hang_probe: bool = ...,
    ) -> None: ...

    def __init__(
        self,
        *args: SinkLike | str | None,
        inner: SinkLike | None = None,
        name: str | None = None,
        after: int = 0,
        hang_probe: bool = False,
    ) -> None:
        if len(args) > 1:
            raise TypeError(
                f"HangingSink takes one positional argument (inner, or its name), got {args!r}"
            )
        first = args[0] if args else None
        if isinstance(first, str):  # the name first: the order of earlier versions
            if name is not None:
                raise TypeError(f"HangingSink got its name twice: {first!r} and name={name!r}")
            first, name = None, first
        elif first is not None and inner is not None:
            raise TypeError(f"HangingSink got inner twice: {first!r} and inner={inner!r}")
        inner = inner if first is None else first
        check_name(name, optional=True)
        if not is_write_number(after):
            raise ValueError(f"after must be an int >= 0, got {after!r}")
        check_inner(inner)
        check_bool("hang_probe", hang_probe)
        super().__init__(inner, name or (inner.name if inner is not None else "hanging"))
        self.after: Final = after
        self.probe: Final[Probe | None] = self._hang if hang_probe else None
        self.records: list[Record] = []
        self.hung = 0
        self.probes_hung = 0
        self._writes = 0

    async def write(self, batch: Sequence[Record]) -> None:
        """Deliver (one of the first ``after`` writes), or block until cancelled.

        A checkpoint. A hanging write always ends by raising :exc:`trio.Cancelled`,
        having delivered nothing.
        """
        k = self._writes
        self._writes += 1
        if k >= self.after:
            self.hung += 1
            await trio.sleep_forever()
        if self.inner is None:
            await trio.lowlevel.checkpoint()
        else:
            await self.inner.write(batch)
        self.records.extend(batch)

    async def _hang(self) -> None:
        """Block until cancelled; it always ends by raising :exc:`trio.Cancelled`."""
        self.probes_hung += 1
        await trio.sleep_forever()
