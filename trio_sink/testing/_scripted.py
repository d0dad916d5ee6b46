"""A fake source that plays a script: items, pauses and failures.

Its pauses are on Trio's clock (``trio.sleep``), so it works in virtual time
(``trio.testing.MockClock``) and a test never really sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterable
from typing import Any, Final, final

import attrs
import trio

from .._source import Source
from ._checks import check_name, check_seconds, validate_error, validate_seconds

__all__ = ["Fail", "Pause", "ScriptedSource"]


@final
@attrs.frozen
class Pause:
    """A step of a :class:`ScriptedSource` script: sleep ``seconds`` on Trio's clock
    before the next item. It yields nothing."""

    seconds: float = attrs.field(validator=validate_seconds)


@final
@attrs.frozen
class Fail:
    """A step of a :class:`ScriptedSource` script: raise ``error`` from the pull."""

    error: BaseException = attrs.field(validator=validate_error)


@final
class ScriptedSource(Source[Any]):
    """A source that plays a script: items, :class:`Pause` and :class:`Fail` steps.

    Iterating yields the script's items in order; a ``Pause(s)`` sleeps ``s`` seconds
    on Trio's clock (a checkpoint; cancelled there, the pull raises
    :exc:`trio.Cancelled` and no item is lost: the rest of the script is simply not
    played); a ``Fail(e)`` raises ``e``. After the script, if ``endless`` is given,
    it yields ``endless(i)`` for i = 0, 1, ... forever, sleeping ``interval`` seconds
    before each (``trio.sleep``, so a checkpoint even when ``interval`` is 0): such a
    source ends only when the pipeline is stopped. Under an autojump clock, give it an
    ``interval`` > 0: with 0 the source may never block, and then virtual time never
    advances.

    The script is copied at construction; each ``__aiter__`` plays it from the start
    (``endless`` restarts at 0) and returns an async generator: to stop early outside
    a pipeline, close it (``async with contextlib.aclosing(aiter(source))``).

    Attributes:
        opened: How many times :meth:`open` was awaited.
        closed: How many times :meth:`aclose` was awaited.
        pulled: How many items were yielded, over every iteration.
    """

    def __init__(
        self,
        script: Iterable[Any] = (),
        *,
        endless: Callable[[int], Any] | None = None,
        interval: float = 0.0,
        name: str = "scripted",
    ) -> None:
        if endless is not None and not callable(endless):
            raise ValueError(f"endless must be a callable taking an int or None, got {endless!r}")
        check_seconds("interval", interval)
        check_name(name)
        self.script: Final[tuple[Any, ...]] = tuple(script)
        self.endless: Final = endless
        self.interval: Final = interval
        self.name = name
        self.opened = 0
        self.closed = 0
        self.pulled = 0

    async def __aiter__(self) -> AsyncGenerator[Any, None]:
        for step in self.script:
            if isinstance(step, Pause):
                await trio.sleep(step.seconds)
            elif isinstance(step, Fail):
                raise step.error
            else:
                self.pulled += 1
                yield step
        if self.endless is not None:
            i = 0
            while True:
                await trio.sleep(self.interval)
                item = self.endless(i)
                self.pulled += 1
                yield item
                i += 1

    async def open(self) -> None:
        """Count the call. Not a checkpoint."""
        self.opened += 1

    async def aclose(self) -> None:
        """Count the call. Not a checkpoint, so it completes even under cancellation."""
        self.closed += 1
