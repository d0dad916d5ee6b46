"""Fake sources and sinks: scripted, recording, flaky and hanging.

Every time they take or record is on Trio's clock (``trio.current_time()``), so they
work in virtual time (``trio.testing.MockClock``) and a test never really sleeps.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncGenerator, Callable, Collection, Iterable, Sequence
from typing import Any, Final, final

import attrs
import trio

from .._record import Record
from .._sink import Sink, SinkLike
from .._source import Source
from ..sinks import CollectSink

__all__ = [
    "Fail",
    "FlakySink",
    "HangingSink",
    "Pause",
    "RecordingSink",
    "ScriptedSource",
    "WriteCall",
]


def _check_seconds(arg: str, value: object) -> None:
    if isinstance(value, bool) or not (
        isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
    ):
        raise ValueError(f"{arg} must be a finite number of seconds >= 0, got {value!r}")


def _validate_seconds(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    _check_seconds(attribute.name, value)


def _validate_error(
    _inst: object, attribute: attrs.Attribute[BaseException], value: object
) -> None:
    if not isinstance(value, BaseException):
        raise TypeError(f"{attribute.name} must be an exception instance, got {value!r}")


async def _call_optional(obj: object, method: str) -> None:
    """Await ``obj.method()`` if ``obj`` has it (``flush`` and ``aclose`` are optional)."""
    fn = getattr(obj, method, None)
    if fn is not None:
        await fn()


# -- ScriptedSource ----------------------------------------------------------------------


@final
@attrs.frozen
class Pause:
    """A step of a :class:`ScriptedSource` script: sleep ``seconds`` on Trio's clock
    before the next item. It yields nothing."""

    seconds: float = attrs.field(validator=_validate_seconds)


@final
@attrs.frozen
class Fail:
    """A step of a :class:`ScriptedSource` script: raise ``error`` from the pull."""

    error: BaseException = attrs.field(validator=_validate_error)


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
        _check_seconds("interval", interval)
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty str, got {name!r}")
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


# -- RecordingSink -----------------------------------------------------------------------


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


@final
class RecordingSink(Sink):
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
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty str, got {name!r}")
        if inner is not None and not isinstance(inner, SinkLike):
            raise ValueError(f"inner must be a sink (a name and an async write), got {inner!r}")
        self.name = name
        self.inner: Final = inner
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
        await _call_optional(self.inner, "flush")

    async def aclose(self) -> None:
        """Record the time, then close ``inner`` (if it has an ``aclose``)."""
        self.closes.append(trio.current_time())
        await _call_optional(self.inner, "aclose")


# -- FlakySink ---------------------------------------------------------------------------


def _flaky_write() -> Exception:
    return OSError("flaky write")


@final
class FlakySink(Sink):
    """A sink whose writes fail on purpose: by number, by rule, or at random.

    Write number ``k`` (0-based, counting every call) raises ``error()`` without
    delivering anything when ``k`` is in ``fail_on``, or ``fail_on(k, batch)`` is
    true, or a draw from ``random.Random(seed)`` is below ``probability``. One draw is
    made for every write, so with the same ``seed`` the same writes fail, whatever
    ``fail_on`` says (``seed=None`` seeds from the OS: not reproducible). Otherwise the
    write goes to ``inner`` (default: a :class:`~trio_sink.sinks.CollectSink` with this
    sink's name).

    Its name is ``inner.name`` when ``inner`` is given, else ``name or "flaky"``.

    Attributes:
        inner: The sink that receives the writes that do not fail.
        writes: Calls of :meth:`write`, failed ones included.
        failures: Writes that failed on purpose.
        records: The records delivered (``inner.write`` returned), in order.
    """

    def __init__(
        self,
        inner: SinkLike | None = None,
        *,
        name: str | None = None,
        fail_on: Collection[int] | Callable[[int, Sequence[Record]], bool] = (),
        probability: float = 0.0,
        seed: int | None = 0,
        error: Callable[[], Exception] = _flaky_write,
    ) -> None:
        if inner is not None and not isinstance(inner, SinkLike):
            raise ValueError(f"inner must be a sink (a name and an async write), got {inner!r}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"name must be a non-empty str or None, got {name!r}")
        if inner is not None and name is not None and name != inner.name:
            raise ValueError(
                f"name must be None or inner's name {inner.name!r} when inner is given,"
                f" got {name!r}"
            )
        if callable(fail_on):
            self._fail_rule: Callable[[int, Sequence[Record]], bool] | None = fail_on
            self._fail_set: frozenset[int] = frozenset()
        else:
            numbers = frozenset(fail_on)
            if not all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in numbers):
                raise ValueError(
                    f"fail_on must be write numbers (ints >= 0) or a callable, got {fail_on!r}"
                )
            self._fail_rule = None
            self._fail_set = numbers
        if (
            isinstance(probability, bool)
            or not isinstance(probability, (int, float))
            or not 0.0 <= probability <= 1.0
        ):
            raise ValueError(f"probability must be a number in [0, 1], got {probability!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an int or None, got {seed!r}")
        if not callable(error):
            raise ValueError(f"error must be a callable returning an exception, got {error!r}")
        self.inner: Final[SinkLike] = inner if inner is not None else CollectSink(name or "flaky")
        self.name = self.inner.name
        self.probability: Final = probability
        self._random = random.Random(seed)
        self._error = error
        self.writes = 0
        self.failures = 0
        self.records: list[Record] = []

    def _fails(self, k: int, batch: Sequence[Record]) -> bool:
        draw = self._random.random()  # drawn every time, so the sequence is reproducible
        if k in self._fail_set or draw < self.probability:
            return True
        return self._fail_rule is not None and bool(self._fail_rule(k, batch))

    async def write(self, batch: Sequence[Record]) -> None:
        """Fail on purpose, or pass the batch on to ``inner``.

        Always a checkpoint (it checkpoints before failing). A failing write raises
        ``error()`` and delivers nothing. If cancelled, it raises
        :exc:`trio.Cancelled`; cancelled at its own checkpoint, nothing was delivered;
        inside ``inner.write``, whatever ``inner`` promises holds.
        """
        k = self.writes
        self.writes += 1
        if self._fails(k, batch):
            await trio.lowlevel.checkpoint()
            self.failures += 1
            raise self._error()
        await self.inner.write(batch)
        self.records.extend(batch)

    async def flush(self) -> None:
        """Flush ``inner`` (if it has a ``flush``). Never fails on purpose."""
        await _call_optional(self.inner, "flush")

    async def aclose(self) -> None:
        """Close ``inner`` (if it has an ``aclose``). Never fails on purpose."""
        await _call_optional(self.inner, "aclose")


# -- HangingSink -------------------------------------------------------------------------


@final
class HangingSink(Sink):
    """A sink that takes ``after`` writes, then hangs: every later write blocks until
    it is cancelled (``trio.sleep_forever()``), and so delivers nothing.

    The first ``after`` writes go to ``inner`` when given. It proves that a drain
    deadline (or an immediate stop) reports the hung batch instead of waiting forever.

    Attributes:
        records: The records delivered by the first ``after`` writes, in order.
        hung: How many writes hung (each ended by a cancellation, or still hanging).
    """

    def __init__(
        self, name: str = "hanging", *, after: int = 0, inner: SinkLike | None = None
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty str, got {name!r}")
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ValueError(f"after must be an int >= 0, got {after!r}")
        if inner is not None and not isinstance(inner, SinkLike):
            raise ValueError(f"inner must be a sink (a name and an async write), got {inner!r}")
        self.name = name
        self.after: Final = after
        self.inner: Final = inner
        self.records: list[Record] = []
        self.hung = 0
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

    async def flush(self) -> None:
        """Flush ``inner`` (if it has a ``flush``). Never hangs."""
        await _call_optional(self.inner, "flush")

    async def aclose(self) -> None:
        """Close ``inner`` (if it has an ``aclose``). Never hangs."""
        await _call_optional(self.inner, "aclose")
