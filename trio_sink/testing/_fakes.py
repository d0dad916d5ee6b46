"""Fake sources and sinks: scripted, recording, flaky, failing to probe, and hanging.

Every time they take or record is on Trio's clock (``trio.current_time()``), so they
work in virtual time (``trio.testing.MockClock``) and a test never really sleeps.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Iterable, Sequence
from typing import Any, Final, final

import attrs
import trio

from .._record import Record
from .._retry import PermanentError
from .._sink import Sink, SinkLike
from .._source import Source
from ..sinks import CollectSink

__all__ = [
    "Fail",
    "FailingProbe",
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


Probe = Callable[[], Awaitable[None]]
"""The type of a sink's optional ``probe``: an async health check, None when it has none."""

WriteRule = Callable[[int, Sequence[Record]], bool]


def _write_rule(arg: str, value: object) -> tuple[WriteRule | None, frozenset[int]]:
    """A rule on (write number, batch), given as a callable or as write numbers."""
    if callable(value):
        return value, frozenset()
    numbers = frozenset(value) if isinstance(value, Iterable) else None
    if numbers is None or not all(
        isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in numbers
    ):
        raise ValueError(f"{arg} must be write numbers (ints >= 0) or a callable, got {value!r}")
    return None, numbers


def _outages(value: object) -> tuple[tuple[float, float], ...]:
    def is_time(t: object) -> bool:
        return isinstance(t, (int, float)) and not isinstance(t, bool) and not math.isnan(t)

    try:
        pairs = tuple((start, end) for start, end in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        pairs = None
    if pairs is None or not all(
        is_time(start) and is_time(end) and math.isfinite(start) and start < end
        for start, end in pairs
    ):
        raise ValueError(
            f"outages must be (start, end) pairs of times on Trio's clock with a finite"
            f" start < end, got {value!r}"
        )
    return pairs


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
    """A sink whose writes fail on purpose: by number, by rule, at random, during
    outages, or for good.

    Write number ``k`` (0-based, counting every call) raises ``error()`` without
    delivering anything when ``k`` is in ``fail_on``, or ``fail_on(k, batch)`` is
    true, or a draw from ``random.Random(seed)`` is below ``probability``, or Trio's
    clock at the call is inside one of the ``outages`` (``start <= now < end``; ``end``
    may be ``math.inf``). One draw is made for every write, so with the same ``seed``
    the same writes fail, whatever the other rules say (``seed=None`` seeds from the
    OS: not reproducible). Otherwise the write goes to ``inner`` (default: a
    :class:`~trio_sink.sinks.CollectSink` with this sink's name).

    A write for which ``permanent`` is true (write numbers, or a rule on ``(k,
    batch)``: a poison record, say) fails whatever the other rules say, and raises
    :class:`~trio_sink.PermanentError` (its ``__cause__`` is ``error()``) instead: a
    failure no retry can help.

    With ``has_probe``, :attr:`probe` is a health check that fails (raises
    ``error()``) during an outage and succeeds otherwise; ``fail_on``, ``probability``
    and ``permanent`` do not affect it. Without, :attr:`probe` is None: the sink has
    no probe, and a trial write is its only health check.

    Its name is ``inner.name`` when ``inner`` is given, else ``name or "flaky"``.

    Attributes:
        inner: The sink that receives the writes that do not fail.
        outages: The outages, as ``(start, end)`` pairs.
        probe: The async health check, or None (see ``has_probe``).
        writes: Calls of :meth:`write`, failed ones included.
        failures: Writes that failed on purpose, permanent ones included.
        permanent_failures: Writes that raised :class:`~trio_sink.PermanentError`.
        records: The records delivered (``inner.write`` returned), in order.
        probes: Trio's clock at each call of :attr:`probe`.
        probe_failures: Probes that failed.
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
        outages: Iterable[tuple[float, float]] = (),
        permanent: Collection[int] | Callable[[int, Sequence[Record]], bool] = (),
        has_probe: bool = False,
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
        self._fail_rule, self._fail_set = _write_rule("fail_on", fail_on)
        self._permanent_rule, self._permanent_set = _write_rule("permanent", permanent)
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
        if not isinstance(has_probe, bool):
            raise ValueError(f"has_probe must be a bool, got {has_probe!r}")
        self.inner: Final[SinkLike] = inner if inner is not None else CollectSink(name or "flaky")
        self.name = self.inner.name
        self.probability: Final = probability
        self.outages: Final = _outages(outages)
        self.probe: Final[Probe | None] = self._probe if has_probe else None
        self._random = random.Random(seed)
        self._error = error
        self.writes = 0
        self.failures = 0
        self.permanent_failures = 0
        self.records: list[Record] = []
        self.probes: list[float] = []
        self.probe_failures = 0

    def in_outage(self, now: float) -> bool:
        """Whether ``now`` (a time on Trio's clock) is inside one of the outages."""
        return any(start <= now < end for start, end in self.outages)

    def _fails(self, k: int, batch: Sequence[Record]) -> bool:
        draw = self._random.random()  # drawn every time, so the sequence is reproducible
        if k in self._fail_set or draw < self.probability:
            return True
        if self.outages and self.in_outage(trio.current_time()):
            return True
        return self._fail_rule is not None and bool(self._fail_rule(k, batch))

    def _permanent(self, k: int, batch: Sequence[Record]) -> bool:
        if k in self._permanent_set:
            return True
        return self._permanent_rule is not None and bool(self._permanent_rule(k, batch))

    async def write(self, batch: Sequence[Record]) -> None:
        """Fail on purpose, or pass the batch on to ``inner``.

        Always a checkpoint (it checkpoints before failing). A failing write raises
        ``error()`` (or :class:`~trio_sink.PermanentError`) and delivers nothing. An
        outage is judged by the clock when the call begins. If cancelled, it raises
        :exc:`trio.Cancelled`; cancelled at its own checkpoint, nothing was delivered
        and no failure is counted; inside ``inner.write``, whatever ``inner`` promises
        holds.
        """
        k = self.writes
        self.writes += 1
        fails = self._fails(k, batch)
        if self._permanent(k, batch):
            await trio.lowlevel.checkpoint()
            self.failures += 1
            self.permanent_failures += 1
            cause = self._error()
            raise PermanentError(str(cause)) from cause
        if fails:
            await trio.lowlevel.checkpoint()
            self.failures += 1
            raise self._error()
        await self.inner.write(batch)
        self.records.extend(batch)

    async def _probe(self) -> None:
        """Raise ``error()`` during an outage (judged when the call begins), else return.

        Always a checkpoint; cancelled there, it raises :exc:`trio.Cancelled` and no
        failure is counted.
        """
        now = trio.current_time()
        self.probes.append(now)
        await trio.lowlevel.checkpoint()
        if self.in_outage(now):
            self.probe_failures += 1
            raise self._error()

    async def flush(self) -> None:
        """Flush ``inner`` (if it has a ``flush``). Never fails on purpose."""
        await _call_optional(self.inner, "flush")

    async def aclose(self) -> None:
        """Close ``inner`` (if it has an ``aclose``). Never fails on purpose."""
        await _call_optional(self.inner, "aclose")


# -- FailingProbe ------------------------------------------------------------------------


def _sink_down() -> Exception:
    return OSError("sink down")


@final
class FailingProbe(Sink):
    """A sink that is down until its :meth:`probe` succeeds, and whose probes fail
    on purpose.

    The model is one flag, :attr:`down` (``down=True`` at the start by default).
    While down, every write raises ``error()`` and delivers nothing; while up, writes
    go to ``inner`` (default: a :class:`~trio_sink.sinks.CollectSink` with this sink's
    name). Probe number ``k`` (0-based, counting every call) fails, raising
    ``error()``, when ``fail_probes`` says so: an int ``n`` fails the first ``n``
    probes, write numbers fail those, a callable ``fail_probes(k)`` decides. The first
    probe that succeeds while down brings the sink up; :meth:`go_down` takes it down
    again (probe numbers go on counting).

    So under a circuit breaker, ``FailingProbe(fail_probes=2)`` fails writes until the
    breaker opens, fails two probes, and takes writes again from the third probe on.

    Its name is ``inner.name`` when ``inner`` is given, else ``name or "failing_probe"``.

    Attributes:
        inner: The sink that receives the writes made while up.
        down: Whether writes fail now.
        writes: Calls of :meth:`write`, failed ones included.
        failures: Writes that failed because the sink was down.
        records: The records delivered (``inner.write`` returned), in order.
        probes: Trio's clock at each call of :meth:`probe`.
        probe_failures: Probes that failed.
        recovered: Trio's clock each time a probe brought the sink up.
    """

    def __init__(
        self,
        inner: SinkLike | None = None,
        *,
        name: str | None = None,
        fail_probes: int | Collection[int] | Callable[[int], bool] = 1,
        down: bool = True,
        error: Callable[[], Exception] = _sink_down,
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
        self._probe_rule: Callable[[int], bool] | None = None
        self._probe_set: frozenset[int] = frozenset()
        if isinstance(fail_probes, int) and not isinstance(fail_probes, bool) and fail_probes >= 0:
            self._probe_set = frozenset(range(fail_probes))
        elif callable(fail_probes):
            self._probe_rule = fail_probes
        else:
            numbers = frozenset(fail_probes) if isinstance(fail_probes, Iterable) else None
            if numbers is None or not all(
                isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in numbers
            ):
                raise ValueError(
                    f"fail_probes must be an int >= 0, probe numbers (ints >= 0) or a"
                    f" callable, got {fail_probes!r}"
                )
            self._probe_set = numbers
        if not isinstance(down, bool):
            raise ValueError(f"down must be a bool, got {down!r}")
        if not callable(error):
            raise ValueError(f"error must be a callable returning an exception, got {error!r}")
        self.inner: Final[SinkLike] = (
            inner if inner is not None else CollectSink(name or "failing_probe")
        )
        self.name = self.inner.name
        self.down = down
        self._error = error
        self.writes = 0
        self.failures = 0
        self.records: list[Record] = []
        self.probes: list[float] = []
        self.probe_failures = 0
        self.recovered: list[float] = []

    def go_down(self) -> None:
        """Take the sink down: writes fail until a probe succeeds. Sync."""
        self.down = True

    async def write(self, batch: Sequence[Record]) -> None:
        """Fail while down, else pass the batch on to ``inner``.

        A failing write is a checkpoint, raises ``error()`` and delivers nothing;
        cancelled at that checkpoint, no failure is counted. Otherwise it is as much a
        checkpoint as ``inner.write``, and whatever ``inner`` promises holds.
        """
        self.writes += 1
        if self.down:
            await trio.lowlevel.checkpoint()
            self.failures += 1
            raise self._error()
        await self.inner.write(batch)
        self.records.extend(batch)

    async def probe(self) -> None:
        """Fail (raise ``error()``) as ``fail_probes`` says; otherwise bring the sink up.

        Always a checkpoint; cancelled there, it raises :exc:`trio.Cancelled`, counts
        no failure and changes nothing.
        """
        k = len(self.probes)
        now = trio.current_time()
        self.probes.append(now)
        await trio.lowlevel.checkpoint()
        if k in self._probe_set or (self._probe_rule is not None and self._probe_rule(k)):
            self.probe_failures += 1
            raise self._error()
        if self.down:
            self.down = False
            self.recovered.append(now)

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

    With ``hang_probe``, :attr:`probe` is a health check that hangs too (until it is
    cancelled); without, :attr:`probe` is None: the sink has no probe, and a trial
    write is its only health check (and hangs once ``after`` writes are done).

    Attributes:
        records: The records delivered by the first ``after`` writes, in order.
        hung: How many writes hung (each ended by a cancellation, or still hanging).
        probe: The hanging health check, or None (see ``hang_probe``).
        probes_hung: How many probes hung.
    """

    def __init__(
        self,
        name: str = "hanging",
        *,
        after: int = 0,
        inner: SinkLike | None = None,
        hang_probe: bool = False,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty str, got {name!r}")
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ValueError(f"after must be an int >= 0, got {after!r}")
        if inner is not None and not isinstance(inner, SinkLike):
            raise ValueError(f"inner must be a sink (a name and an async write), got {inner!r}")
        if not isinstance(hang_probe, bool):
            raise ValueError(f"hang_probe must be a bool, got {hang_probe!r}")
        self.name = name
        self.after: Final = after
        self.inner: Final = inner
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

    async def flush(self) -> None:
        """Flush ``inner`` (if it has a ``flush``). Never hangs."""
        await _call_optional(self.inner, "flush")

    async def aclose(self) -> None:
        """Close ``inner`` (if it has an ``aclose``). Never hangs."""
        await _call_optional(self.inner, "aclose")
