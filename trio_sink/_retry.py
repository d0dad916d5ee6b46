"""Retrying failed writes: :class:`RetryPolicy` (exponential backoff with jitter), the
:class:`PermanentError` a sink raises to say a retry cannot help, and
:func:`write_with_retry`, the call a sink's writer makes. (A sink whose batches keep
failing after their retries is taken out of service by its circuit breaker: see
``_breaker``.)
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar, final

import attrs
import trio

from ._checks import (
    ExceptionTypes,
    at_least,
    exception_types,
    fraction,
    multiplier,
    seconds,
    to_types,
)
from ._exceptions import ConfigError, TrioSinkError, describe

__all__ = [
    "DEFAULT_RETRY",
    "NO_RETRY",
    "PermanentError",
    "RetryPolicy",
    "WriteTimeout",
    "timed_out",
    "write_once",
    "write_with_retry",
]

log = logging.getLogger("trio_sink.sink")

B = TypeVar("B")


class WriteTimeout(TrioSinkError, TimeoutError):
    """A sink's write ran longer than its ``write_timeout`` (``Pipeline(write_timeout=...)``)
    and was cancelled. It counts as a failed attempt: retried (the default policy retries
    it), counted by the circuit breaker, then stored or reported. A sink that is not
    atomic may have written part of the batch: delivery is then at-least-once, as at the
    drain deadline."""


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

    attempts: int = attrs.field(default=3, validator=at_least(1))
    initial_backoff: float = attrs.field(default=0.1, validator=seconds)
    max_backoff: float = attrs.field(default=10.0, validator=seconds)
    multiplier: float = attrs.field(default=2.0, validator=multiplier)
    jitter: float = attrs.field(default=0.1, validator=fraction)
    retry_on: ExceptionTypes = attrs.field(
        default=(Exception,), converter=to_types, validator=exception_types
    )
    give_up_on: ExceptionTypes = attrs.field(
        default=(), converter=to_types, validator=exception_types
    )

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """The delay in seconds before retry number ``attempt`` (1-based).

        Draws one number from ``rng`` when ``jitter`` is above 0, none otherwise; a
        seeded ``rng`` gives the same delays every time.
        """
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise ConfigError(f"attempt must be an int >= 1, got {attempt!r}")
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

DEFAULT_RETRY: Final = RetryPolicy(retry_on=(ConnectionError, TimeoutError))
"""The policy of a sink given none: errors of a peer that is briefly away
(:exc:`ConnectionError`, :exc:`TimeoutError`, and so a :class:`WriteTimeout`) are
retried, 3 attempts in all with 0.1 s then 0.2 s of backoff; anything else (a full disk
is an ``OSError``, not transient) is reported at once."""


# -- the async calls -----------------------------------------------------------------------


async def write_with_retry(
    write: Callable[[B], Awaitable[object]],
    batch: B,
    policy: RetryPolicy,
    rng: random.Random,
    *,
    name: str,
    on_retry: Callable[[int, float, Exception], object] | None = None,
    write_timeout: float | None = None,
    failed: Exception | None = None,
    deadline: float | None = None,
) -> None:
    """Write ``batch`` with ``write``, retrying under ``policy``.

    After attempt ``k`` raised a retryable exception (:meth:`RetryPolicy.is_retryable`)
    and attempts are left, it logs ``sink.retry`` (WARNING), calls
    ``on_retry(k, delay, exc)`` (for statistics; what it raises propagates), sleeps
    ``policy.backoff(k, rng)`` seconds on Trio's clock and tries again. Returns when a
    write returns; raises the last exception when it is not retryable or no attempt is
    left.

    ``write_timeout``: an attempt still running after this many seconds is cancelled and
    fails with :class:`WriteTimeout`. ``failed``: the exception of a first attempt the
    caller made itself; the loop starts with its retry. ``deadline``: a backoff that
    would end at or past this time (on Trio's clock: the drain deadline) is not waited
    for; the last exception is raised at once.

    A checkpoint whenever it retries (the backoff sleep), and as often as ``write`` is.
    Cancellation is never retried: :exc:`trio.Cancelled` from a write or from the
    backoff sleep propagates at once, and the batch is then not delivered (unless the
    cancelled write itself delivered it, as for any write).
    """
    attempt = 1
    exc = failed
    while True:
        if exc is None:
            try:
                await write_once(write, batch, write_timeout)
            except Exception as error:
                exc = error
            else:
                return
        if attempt >= policy.attempts or not policy.is_retryable(exc):
            raise exc
        delay = policy.backoff(attempt, rng)
        if deadline is not None and trio.current_time() + delay >= deadline:
            raise exc
        log.warning(
            'sink.retry sink=%s attempt=%d delay=%.3f error="%s"',
            name,
            attempt,
            delay,
            describe(exc),
        )
        if on_retry is not None:
            on_retry(attempt, delay, exc)
        await trio.sleep(delay)
        attempt += 1
        exc = None


async def write_once(
    write: Callable[[B], Awaitable[object]], batch: B, write_timeout: float | None
) -> None:
    """``await write(batch)``; with a ``write_timeout``, cancelled past it, raising
    :class:`WriteTimeout`. (A failed attempt, not a cancellation: hence a limit passed
    in, where a caller would otherwise use a cancel scope of its own.)"""
    if write_timeout is None:
        await write(batch)
        return
    with trio.move_on_after(write_timeout) as scope:
        await write(batch)
    if scope.cancelled_caught:
        raise WriteTimeout(timed_out(write_timeout))


def timed_out(write_timeout: float) -> str:
    """The message of a :class:`WriteTimeout`."""
    return f"the write took longer than {write_timeout:g} s, and was cancelled"
