"""The circuit breaker: when to take a failing sink out of service, and probing it.

:class:`CircuitBreaker` holds the settings; :class:`BreakerState` is the state machine
of one sink's breaker, told the time by its caller, so it is tested without a clock;
:func:`probe_sink` is the async call a sink's writer makes when a probe is due.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar, final

import attrs
import trio

from ._checks import at_least, positive_seconds
from ._exceptions import describe
from ._retry import PermanentError

__all__ = ["BreakerState", "BreakerStatus", "CircuitBreaker", "find_probe", "probe_sink"]

log = logging.getLogger("trio_sink.sink")

B = TypeVar("B")


# -- the circuit breaker -------------------------------------------------------------------


@final
@attrs.frozen(kw_only=True)
class CircuitBreaker:
    """When to take a failing sink out of service, and how often to probe it.

    After ``failures`` consecutive batches failed (each after its retries), the breaker
    opens: the sink's batches no longer go to the sink. Every ``probe_interval``
    seconds the sink is probed (its ``probe()``, or a trial write of one batch); the
    first probe that succeeds closes the breaker. A :class:`PermanentError` never
    counts as a failure.

    Attributes:
        failures: Consecutive failed batches that open the breaker (>= 1).
        probe_interval: Seconds between probes while the breaker is open (> 0).
    """

    failures: int = attrs.field(default=5, validator=at_least(1))
    probe_interval: float = attrs.field(default=5.0, validator=positive_seconds)


BreakerStatus = Literal["closed", "open", "half-open"]


class BreakerState:
    """The circuit breaker of one sink: a state machine told the time by its caller.

    ``"closed"``: healthy, batches are written. ``"open"``: unhealthy, batches go
    elsewhere until a probe is due (:meth:`probe_due`). ``"half-open"``: a probe is
    running (:meth:`begin_probe`); it ends with :meth:`probe_succeeded` (closed),
    :meth:`probe_failed` (open, next probe one interval later) or :meth:`abort_probe`
    (open, probe still due). Times are values of Trio's clock. Not thread-safe; no
    method is a checkpoint.

    Read the attributes; change them only through the methods.

    Attributes:
        name: The sink's name, for the log.
        config: The :class:`CircuitBreaker` settings.
        state: ``"closed"``, ``"open"`` or ``"half-open"``.
        consecutive_failures: Failed batches since the last success.
        times_opened: How many times the breaker went from closed to open.
        probes: Probes begun. probe_failures: Probes that failed.
        last_error: ``"TypeName: message"`` of the last failure (batch or probe), or None.
        opened_at: When the breaker last opened, or None if it never did.
        next_probe_at: When the next probe is due while open or half-open; None when closed.
    """

    __slots__ = (
        "config",
        "consecutive_failures",
        "last_error",
        "name",
        "next_probe_at",
        "opened_at",
        "probe_failures",
        "probes",
        "state",
        "times_opened",
    )

    def __init__(self, config: CircuitBreaker, name: str) -> None:
        self.config = config
        self.name = name
        self.state: BreakerStatus = "closed"
        self.consecutive_failures = 0
        self.times_opened = 0
        self.probes = 0
        self.probe_failures = 0
        self.last_error: str | None = None
        self.opened_at: float | None = None
        self.next_probe_at: float | None = None

    def record_success(self) -> None:
        """A batch was delivered: the failure count starts again from 0.

        Outside the closed state (a write that succeeded while open), it closes the
        breaker as a successful probe does.
        """
        self.consecutive_failures = 0
        if self.state != "closed":
            self._close()

    def record_failure(self, now: float, error: BaseException | None = None) -> bool:
        """A batch failed for good (after its retries). True when this failure opened
        the breaker.

        A :class:`PermanentError` changes nothing (it is about the data). While
        half-open, a failure is a failed probe (:meth:`probe_failed`); while open, it
        is only counted.
        """
        if isinstance(error, PermanentError):
            return False
        if self.state == "half-open":
            self.probe_failed(now, error)
            return False
        self.consecutive_failures += 1
        if error is not None:
            self.last_error = describe(error)
        if self.state == "open" or self.consecutive_failures < self.config.failures:
            return False
        self.state = "open"
        self.times_opened += 1
        self.opened_at = now
        self.next_probe_at = now + self.config.probe_interval
        log.warning(
            'sink.breaker_open sink=%s failures=%d error="%s"',
            self.name,
            self.consecutive_failures,
            self.last_error,
        )
        return True

    def probe_due(self, now: float) -> bool:
        """Whether the breaker is open and its next probe is due at ``now``."""
        return self.state == "open" and self.next_probe_at is not None and now >= self.next_probe_at

    def begin_probe(self) -> None:
        """A probe starts: open becomes half-open. Does nothing in another state."""
        if self.state == "open":
            self.state = "half-open"
            self.probes += 1

    def probe_succeeded(self) -> None:
        """The probe succeeded: the breaker closes and the failure count is reset."""
        self.consecutive_failures = 0
        if self.state != "closed":
            self._close()

    def probe_failed(self, now: float, error: BaseException | None = None) -> None:
        """The probe failed: the breaker is open, the next probe one interval after ``now``.

        A closed breaker (no probe was begun) stays closed; the failure is only counted.
        """
        self.probe_failures += 1
        if error is not None:
            self.last_error = describe(error)
        if self.state == "closed":  # no probe was begun: only counted
            return
        self.state = "open"
        self.next_probe_at = now + self.config.probe_interval
        log.info(
            'sink.probe_failed sink=%s probes=%d next_probe=%.3f error="%s"',
            self.name,
            self.probes,
            self.next_probe_at,
            self.last_error,
        )

    def abort_probe(self) -> None:
        """The probe gave no answer (cancelled, or a trial write failed permanently):
        back to open, with the probe still due."""
        if self.state == "half-open":
            self.state = "open"

    def _close(self) -> None:
        self.state = "closed"
        self.next_probe_at = None
        log.info("sink.breaker_closed sink=%s", self.name)


# -- probing


def find_probe(sink: object) -> Callable[[], Awaitable[object]] | None:
    """The sink's ``probe`` if it has a callable one, else None.

    A sink may offer ``async def probe(self) -> None``: a cheap health check (a ping,
    a ``SELECT 1``) that returns when the sink can take writes and raises when it
    cannot. A sink can also set ``probe = None`` to say it has none. A ``probe``
    attribute that raises when read (a lazily connected client's) counts as none: it is
    logged at WARNING, and trial writes probe the sink instead.
    """
    try:
        probe = getattr(sink, "probe", None)
    except Exception as exc:
        log.warning(
            'sink.probe_unreadable sink=%r error="%s"; trial writes probe it instead',
            getattr(sink, "name", sink),
            describe(exc),
        )
        return None
    return probe if callable(probe) else None


async def probe_sink(
    probe: Callable[[], Awaitable[object]] | None,
    breaker: BreakerState,
    write: Callable[[B], Awaitable[object]],
    batch: B,
) -> bool:
    """Probe a sink whose breaker is open, and tell the breaker what came of it.

    Call it when ``breaker.probe_due(trio.current_time())`` is true, with the batch
    at hand. If the sink has a ``probe()`` (``probe``, from :func:`find_probe`), that is the probe:
    the breaker closes when it returns and stays open when it raises, and ``batch``
    is not touched: it returns False, and the caller writes the batch (breaker
    closed) or sends it elsewhere (still open). Without a ``probe()``, one write of
    ``batch`` is the probe (no retry): it returns True when the write returned (the
    batch is delivered, the breaker closed); when the write raised, the exception
    propagates with the breaker open again, and the batch is not delivered.

    A trial write that raises :class:`PermanentError` proves nothing about the sink:
    the breaker goes back to open with the probe still due, so the next batch is the
    next trial. If cancelled, :exc:`trio.Cancelled` propagates and the breaker is
    back to open with the probe still due. A checkpoint as often as the probe or the
    write is.
    """
    breaker.begin_probe()
    try:
        if probe is not None:
            try:
                await probe()
            except Exception as exc:
                breaker.probe_failed(trio.current_time(), exc)
            else:
                breaker.probe_succeeded()
            return False
        try:
            await write(batch)
        except PermanentError:
            breaker.abort_probe()
            raise
        except Exception as exc:
            breaker.probe_failed(trio.current_time(), exc)
            raise
        breaker.probe_succeeded()
        return True
    finally:
        breaker.abort_probe()  # only cancellation leaves it half-open here
