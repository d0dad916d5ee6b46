"""FlakySink: a sink whose writes fail on purpose, reproducibly."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Final, final

import trio

from .._record import Record
from .._retry import PermanentError
from .._sink import SinkLike
from ._checks import check_bool, check_error_factory, write_numbers
from ._forwarding import Forwarding, Probe, inner_named

__all__ = ["FlakySink"]

WriteRule = Callable[[int, Sequence[Record]], bool]


def _write_rule(arg: str, value: object) -> tuple[WriteRule | None, frozenset[int]]:
    """A rule on (write number, batch), given as a callable or as write numbers."""
    if callable(value):
        return value, frozenset()
    numbers = write_numbers(value)
    if numbers is None:
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


def _flaky_write() -> Exception:
    return OSError("flaky write")


@final
class FlakySink(Forwarding[SinkLike]):
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
        wrapped = inner_named(inner, name, "flaky")
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
        check_error_factory(error)
        check_bool("has_probe", has_probe)
        super().__init__(wrapped, wrapped.name)
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
