"""Surviving sink faults: a retry policy, a circuit breaker, and the calls that use them.

A failed write is retried with exponential backoff (:class:`RetryPolicy`); a sink
whose batches keep failing after their retries is taken out of service by a circuit
breaker (:class:`CircuitBreaker`) and probed until it answers again. The breaker is a
plain state machine (:class:`BreakerState`) that is told the time, so it is tested
without a clock; :func:`write_with_retry` and :func:`probe_sink` are the async calls a
sink's task makes.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, Literal, TypeVar, final

import attrs
import trio

from ._exceptions import ConfigError, TrioSinkError, describe

__all__ = [
    "NO_RETRY",
    "BreakerState",
    "CircuitBreaker",
    "PermanentError",
    "RetryPolicy",
    "find_probe",
    "probe_sink",
    "write_with_retry",
]

log = logging.getLogger("trio_sink.sink")

B = TypeVar("B")

ExceptionTypes = tuple[type[BaseException], ...]


class PermanentError(TrioSinkError):
    """A sink raises it to say that a write failed for good: retrying cannot help.

    Typical causes are about the data, not about the sink: a record the destination
    rejects, a payload that cannot be encoded. The batch is never retried, and the
    failure does not count toward the sink's circuit breaker (the sink itself may be
    healthy). Chain the original exception (``raise PermanentError("...") from exc``)
    to keep it; subclass it to tell permanent failures apart.

    It does not mean that a record was lost: the batch is reported like any other
    batch its sink could not take.
    """


# -- validation ----------------------------------------------------------------------------


def _number(
    inst: object, attribute: attrs.Attribute[Any], value: object, expected: str, ok: bool
) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok:
        raise ConfigError(
            f"{type(inst).__name__}.{attribute.name} must be {expected}, got {value!r}"
        )


def _int_at_least_1(inst: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"{type(inst).__name__}.{attribute.name} must be an int >= 1, got {value!r}"
        )


def _seconds(inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
    _number(inst, attribute, value, "a finite number of seconds >= 0", ok)


def _positive_seconds(inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value) and value > 0
    _number(inst, attribute, value, "a finite number of seconds > 0", ok)


def _multiplier(inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value) and value >= 1
    _number(inst, attribute, value, "a finite number >= 1", ok)


def _fraction(inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    ok = isinstance(value, (int, float)) and 0 <= value <= 1
    _number(inst, attribute, value, "a number in [0, 1]", ok)


def _to_types(value: type[BaseException] | Iterable[type[BaseException]]) -> ExceptionTypes:
    """One exception class, or any iterable of them, as a tuple (checked by the validator)."""
    if isinstance(value, (type, str, bytes)) or not hasattr(value, "__iter__"):
        return (value,)  # type: ignore[return-value]  # a bad value, for the validator
    return tuple(value)


def _exception_types(inst: object, attribute: attrs.Attribute[ExceptionTypes], value: Any) -> None:
    if not all(isinstance(t, type) and issubclass(t, BaseException) for t in value):
        raise ConfigError(
            f"{type(inst).__name__}.{attribute.name} must be an exception class or a tuple"
            f" of exception classes, got {value!r}"
        )


# -- RetryPolicy ---------------------------------------------------------------------------


@final
@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How often, and after what delays, a failed write of one batch is tried again.

    The delay before retry number ``k`` (1-based: the delay after the ``k``-th failed
    attempt) is ``initial_backoff * multiplier ** (k - 1)``, capped at ``max_backoff``,
    then shortened by a random fraction of at most ``jitter``: the delay is drawn
    uniformly from ``[base * (1 - jitter), base]``. ``jitter=1`` is the "full jitter"
    of exponential backoff, ``0.5`` the "equal jitter"; the jitter only ever shortens
    a delay, so ``max_backoff`` is a hard cap. It spreads the retries of sinks that
    failed together, so they do not hit a recovering destination all at once.

    The defaults (3 attempts, 0.1 s then 0.2 s, 10% jitter) ride out a blip of a
    fraction of a second and add at most 0.3 s to a batch that fails for good.

    Attributes:
        attempts: Total tries of one batch, the first included; ``1`` never retries.
        initial_backoff: Seconds before the first retry.
        max_backoff: The longest delay before any retry, in seconds.
        multiplier: Each delay is this many times the one before (>= 1).
        jitter: The largest fraction by which a delay is shortened at random, in [0, 1].
        retry_on: Exception classes worth a retry.
        give_up_on: Exception classes never retried, even when in ``retry_on``.
    """

    attempts: int = attrs.field(default=3, validator=_int_at_least_1)
    initial_backoff: float = attrs.field(default=0.1, validator=_seconds)
    max_backoff: float = attrs.field(default=10.0, validator=_seconds)
    multiplier: float = attrs.field(default=2.0, validator=_multiplier)
    jitter: float = attrs.field(default=0.1, validator=_fraction)
    retry_on: ExceptionTypes = attrs.field(
        default=(Exception,), converter=_to_types, validator=_exception_types
    )
    give_up_on: ExceptionTypes = attrs.field(
        default=(), converter=_to_types, validator=_exception_types
    )

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """The delay in seconds before retry number ``attempt`` (1-based).

        Draws one number from ``rng`` when ``jitter`` is above 0, none otherwise; a
        seeded ``rng`` gives the same delays every time.
        """
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise ValueError(f"attempt must be an int >= 1, got {attempt!r}")
        try:
            base = self.initial_backoff * float(self.multiplier) ** (attempt - 1)
        except OverflowError:
            base = math.inf if self.initial_backoff > 0 else 0.0
        base = min(base, self.max_backoff)
        if self.jitter > 0:
            base *= 1.0 - self.jitter * rng.random()
        return base

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether a write that raised ``exc`` is worth another attempt.

        Never for a :class:`PermanentError`, for an exception in ``give_up_on``, for
        one not in ``retry_on``, or for anything that is not an :exc:`Exception`
        (:exc:`trio.Cancelled`, :exc:`KeyboardInterrupt`, a group holding them). An
        :exc:`ExceptionGroup` (from a nursery inside the write) is retryable when it is
        not itself in ``give_up_on`` and every exception it holds is retryable.
        """
        if not isinstance(exc, Exception) or isinstance(exc, PermanentError):
            return False
        if isinstance(exc, self.give_up_on):
            return False
        if isinstance(exc, ExceptionGroup):
            return all(self.is_retryable(e) for e in exc.exceptions)
        return isinstance(exc, self.retry_on)


NO_RETRY: Final = RetryPolicy(attempts=1)
"""A policy that never retries: each batch gets one attempt."""


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

    failures: int = attrs.field(default=5, validator=_int_at_least_1)
    probe_interval: float = attrs.field(default=5.0, validator=_positive_seconds)


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


# -- the async calls -----------------------------------------------------------------------


async def write_with_retry(
    write: Callable[[B], Awaitable[object]],
    batch: B,
    policy: RetryPolicy,
    rng: random.Random,
    *,
    name: str,
    on_retry: Callable[[int, float, Exception], object] | None = None,
) -> None:
    """Write ``batch`` with ``write``, retrying under ``policy``.

    After attempt ``k`` raised a retryable exception (:meth:`RetryPolicy.is_retryable`)
    and attempts are left, it logs ``sink.retry`` (WARNING), calls
    ``on_retry(k, delay, exc)`` (for statistics; what it raises propagates), sleeps
    ``policy.backoff(k, rng)`` seconds on Trio's clock and tries again. Returns when a
    write returns; raises the last exception when it is not retryable or no attempt is
    left.

    A checkpoint whenever it retries (the backoff sleep), and as often as ``write`` is.
    Cancellation is never retried: :exc:`trio.Cancelled` from a write or from the
    backoff sleep propagates at once, and the batch is then not delivered (unless the
    cancelled write itself delivered it, as for any write).
    """
    attempt = 1
    while True:
        try:
            await write(batch)
        except Exception as exc:
            if attempt >= policy.attempts or not policy.is_retryable(exc):
                raise
            delay = policy.backoff(attempt, rng)
            log.warning(
                'sink.retry sink=%s attempt=%d delay=%.3f error="%s"',
                name,
                attempt,
                delay,
                describe(exc),
            )
            if on_retry is not None:
                on_retry(attempt, delay, exc)
        else:
            return
        await trio.sleep(delay)
        attempt += 1


def find_probe(sink: object) -> Callable[[], Awaitable[object]] | None:
    """The sink's ``probe`` if it has a callable one, else None.

    A sink may offer ``async def probe(self) -> None``: a cheap health check (a ping,
    a ``SELECT 1``) that returns when the sink can take writes and raises when it
    cannot. A sink can also set ``probe = None`` to say it has none.
    """
    probe = getattr(sink, "probe", None)
    return probe if callable(probe) else None


async def probe_sink(
    sink: object,
    breaker: BreakerState,
    write: Callable[[B], Awaitable[object]],
    batch: B,
) -> bool:
    """Probe a sink whose breaker is open, and tell the breaker what came of it.

    Call it when ``breaker.probe_due(trio.current_time())`` is true, with the batch
    at hand. If the sink has a ``probe()`` (:func:`find_probe`), that is the probe:
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
    probe = find_probe(sink)
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
