"""FailingProbe: a sink that is down until a probe succeeds, and whose probes fail."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import final

import trio

from .._record import Record
from .._sink import SinkLike
from ._checks import check_bool, check_error_factory, is_write_number, write_numbers
from ._forwarding import Forwarding, inner_named

__all__ = ["FailingProbe"]


def _sink_down() -> Exception:
    return OSError("sink down")


@final
class FailingProbe(Forwarding[SinkLike]):
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
        wrapped = inner_named(inner, name, "failing_probe")
        self._probe_rule: Callable[[int], bool] | None = None
        self._probe_set: frozenset[int] = frozenset()
        if is_write_number(fail_probes):
            self._probe_set = frozenset(range(fail_probes))
        elif callable(fail_probes):
            self._probe_rule = fail_probes
        else:
            numbers = write_numbers(fail_probes)
            if numbers is None:
                raise ValueError(
                    f"fail_probes must be an int >= 0, probe numbers (ints >= 0) or a"
                    f" callable, got {fail_probes!r}"
                )
            self._probe_set = numbers
        check_bool("down", down)
        check_error_factory(error)
        super().__init__(wrapped, wrapped.name)
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
