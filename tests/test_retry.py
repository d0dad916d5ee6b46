"""Retry policy, circuit breaker, write_with_retry and probe_sink, in virtual time."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from helpers import ids, recs

from trio_sink import (
    NO_RETRY,
    CircuitBreaker,
    ConfigError,
    PermanentError,
    Record,
    RetryPolicy,
    TrioSinkError,
)
from trio_sink._breaker import BreakerState, find_probe, probe_sink
from trio_sink._retry import write_with_retry
from trio_sink.sinks import CollectSink
from trio_sink.testing import FailingProbe, FlakySink, HangingSink


def messages(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "trio_sink.sink"]


async def cancelled_exception() -> trio.Cancelled:
    """A real trio.Cancelled (it has no public constructor)."""
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            await trio.lowlevel.checkpoint()
        except trio.Cancelled as exc:
            caught = exc
            raise
    assert scope.cancelled_caught
    return caught


# -- PermanentError ----------------------------------------------------------------------


def test_permanent_error_is_a_trio_sink_error() -> None:
    assert issubclass(PermanentError, TrioSinkError)
    assert not issubclass(PermanentError, ValueError)


# -- RetryPolicy: values and validation --------------------------------------------------


def test_retry_policy_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.attempts, policy.initial_backoff, policy.max_backoff) == (3, 0.1, 10.0)
    assert (policy.multiplier, policy.jitter) == (2.0, 0.1)
    assert (policy.retry_on, policy.give_up_on) == ((Exception,), ())
    assert RetryPolicy(attempts=1) == NO_RETRY
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.attempts = 5  # type: ignore[misc]


def test_retry_policy_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        RetryPolicy(3)  # type: ignore[call-arg]


def test_retry_policy_takes_one_exception_class_or_any_iterable_of_them() -> None:
    assert RetryPolicy(retry_on=OSError).retry_on == (OSError,)
    assert RetryPolicy(retry_on=[OSError, TimeoutError]).retry_on == (OSError, TimeoutError)
    assert RetryPolicy(give_up_on={ValueError}).give_up_on == (ValueError,)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("attempts", 0, "an int >= 1"),
        ("attempts", 1.0, "an int >= 1"),
        ("attempts", True, "an int >= 1"),
        ("initial_backoff", -0.1, "a finite number of seconds >= 0"),
        ("initial_backoff", math.inf, "a finite number of seconds >= 0"),
        ("initial_backoff", "1", "a finite number of seconds >= 0"),
        ("max_backoff", math.nan, "a finite number of seconds >= 0"),
        ("max_backoff", False, "a finite number of seconds >= 0"),
        ("multiplier", 0.5, "a finite number >= 1"),
        ("multiplier", math.inf, "a finite number >= 1"),
        ("jitter", 1.5, r"a number in \[0, 1\]"),
        ("jitter", -0.1, r"a number in \[0, 1\]"),
        ("jitter", math.nan, r"a number in \[0, 1\]"),
        ("retry_on", "OSError", "an exception class or a tuple of exception classes"),
        ("retry_on", (OSError, 3), "an exception class or a tuple of exception classes"),
        ("retry_on", int, "an exception class or a tuple of exception classes"),
        ("give_up_on", 5, "an exception class or a tuple of exception classes"),
        ("give_up_on", OSError("x"), "an exception class or a tuple of exception classes"),
    ],
)
def test_retry_policy_validation_names_the_field(field: str, value: Any, expected: str) -> None:
    with pytest.raises(ConfigError, match=rf"^RetryPolicy\.{field} must be {expected}, got"):
        RetryPolicy(**{field: value})


def test_retry_policy_accepts_the_edges() -> None:
    policy = RetryPolicy(attempts=1, initial_backoff=0, max_backoff=0, multiplier=1, jitter=1)
    assert policy.backoff(1, random.Random(0)) == 0
    assert RetryPolicy(jitter=0).jitter == 0


# -- RetryPolicy.backoff -----------------------------------------------------------------


def test_backoff_without_jitter_grows_by_the_multiplier_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_backoff=0.1, multiplier=2, max_backoff=1.0, jitter=0)
    rng = random.Random(0)
    state = rng.getstate()
    delays = [policy.backoff(k, rng) for k in range(1, 8)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    assert rng.getstate() == state  # no jitter, no draw


def test_backoff_with_multiplier_one_is_constant() -> None:
    policy = RetryPolicy(initial_backoff=0.5, multiplier=1, jitter=0)
    assert [policy.backoff(k, random.Random(0)) for k in (1, 2, 50)] == [0.5, 0.5, 0.5]


def test_backoff_with_jitter_is_shortened_by_at_most_the_fraction_and_seeded() -> None:
    policy = RetryPolicy(initial_backoff=1.0, multiplier=2, max_backoff=6.0, jitter=0.5)
    bases = [1.0, 2.0, 4.0, 6.0, 6.0, 6.0]
    rng, twin = random.Random(42), random.Random(42)
    delays = [policy.backoff(k, rng) for k in range(1, 7)]
    # One draw a call: the delay is base * (1 - jitter * u), u uniform in [0, 1).
    assert delays == [b * (1 - 0.5 * twin.random()) for b in bases]
    assert all(b / 2 <= d <= b for d, b in zip(delays, bases, strict=True))
    assert delays != bases
    again = random.Random(42)
    assert [policy.backoff(k, again) for k in range(1, 7)] == delays


def test_backoff_jitter_spreads_delays_and_never_passes_the_cap() -> None:
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=2.0, jitter=1.0)
    rng = random.Random(1)
    delays = [policy.backoff(5, rng) for _ in range(500)]
    assert all(0 < d <= 2.0 for d in delays)
    assert min(delays) < 0.2
    assert max(delays) > 1.8


def test_backoff_of_a_huge_attempt_is_the_cap() -> None:
    rng = random.Random(0)
    assert RetryPolicy(jitter=0).backoff(100_000, rng) == 10.0
    assert RetryPolicy(initial_backoff=0, jitter=0).backoff(100_000, rng) == 0.0


@pytest.mark.parametrize("attempt", [0, -1, 1.0, True])
def test_backoff_rejects_a_bad_attempt(attempt: Any) -> None:
    with pytest.raises(ValueError, match="attempt must be an int >= 1"):
        RetryPolicy().backoff(attempt, random.Random(0))


# -- RetryPolicy.is_retryable ------------------------------------------------------------


class Poison(PermanentError):
    pass


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (OSError("down"), True),
        (TimeoutError(), True),
        (ValueError("bad"), True),
        (PermanentError("rejected"), False),
        (Poison("rejected"), False),
        (KeyboardInterrupt(), False),
        (SystemExit(1), False),
        (GeneratorExit(), False),
        (ExceptionGroup("g", [OSError(), TimeoutError()]), True),
        (ExceptionGroup("g", [OSError(), PermanentError("p")]), False),
        (ExceptionGroup("g", [ExceptionGroup("h", [PermanentError("p")])]), False),
        (BaseExceptionGroup("g", [OSError(), KeyboardInterrupt()]), False),
    ],
)
def test_default_policy_retries_exceptions_but_not_permanent_or_base(
    exc: BaseException, retryable: bool
) -> None:
    assert RetryPolicy().is_retryable(exc) is retryable


async def test_cancelled_is_never_retryable() -> None:
    cancelled = await cancelled_exception()
    assert not RetryPolicy().is_retryable(cancelled)
    assert not RetryPolicy(retry_on=BaseException).is_retryable(cancelled)
    assert not RetryPolicy().is_retryable(BaseExceptionGroup("g", [cancelled]))


def test_retry_on_and_give_up_on_narrow_what_is_retried() -> None:
    policy = RetryPolicy(retry_on=OSError, give_up_on=PermissionError)
    assert policy.is_retryable(ConnectionResetError())
    assert not policy.is_retryable(PermissionError())  # an OSError, but given up on
    assert not policy.is_retryable(ValueError())
    assert policy.is_retryable(ExceptionGroup("g", [ConnectionResetError()]))
    assert not policy.is_retryable(ExceptionGroup("g", [OSError(), ValueError()]))
    assert not RetryPolicy(retry_on=BaseException).is_retryable(KeyboardInterrupt())
    assert not RetryPolicy(retry_on=()).is_retryable(OSError())
    assert not RetryPolicy(give_up_on=ExceptionGroup).is_retryable(ExceptionGroup("g", [OSError()]))


# -- write_with_retry --------------------------------------------------------------------


def steady(initial: float = 1.0, multiplier: float = 3.0, **kwargs: Any) -> RetryPolicy:
    """A policy without jitter: its delays are exact."""
    return RetryPolicy(initial_backoff=initial, multiplier=multiplier, jitter=0, **kwargs)


async def test_write_with_retry_returns_at_once_when_the_write_succeeds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = FlakySink()
    await write_with_retry(sink.write, recs(0, 2), steady(), random.Random(0), name="flaky")
    assert trio.current_time() == 0
    assert (sink.writes, ids(sink.records)) == (1, [0, 1])


async def test_write_with_retry_succeeds_on_the_third_try_after_the_backoffs(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink")
    sink = FlakySink(CollectSink("db"), fail_on={0, 1})
    retries: list[tuple[int, float, str]] = []
    await write_with_retry(
        sink.write,
        recs(0, 3),
        steady(attempts=3),
        random.Random(0),
        name=sink.name,
        on_retry=lambda k, delay, exc: retries.append((k, delay, str(exc))),
    )
    assert trio.current_time() == 1.0 + 3.0
    assert (sink.writes, sink.failures, ids(sink.records)) == (3, 2, [0, 1, 2])
    assert retries == [(1, 1.0, "flaky write"), (2, 3.0, "flaky write")]
    assert messages(caplog) == [
        (logging.WARNING, 'sink.retry sink=db attempt=1 delay=1.000 error="OSError: flaky write"'),
        (logging.WARNING, 'sink.retry sink=db attempt=2 delay=3.000 error="OSError: flaky write"'),
    ]


async def test_write_with_retry_sleeps_the_jittered_backoffs_of_its_rng(
    autojump_clock: trio.testing.MockClock,
) -> None:
    policy = RetryPolicy(attempts=4, initial_backoff=1.0, jitter=0.5)
    sink = FlakySink(fail_on={0, 1, 2})
    await write_with_retry(sink.write, recs(0, 1), policy, random.Random(9), name="flaky")
    twin = random.Random(9)
    assert trio.current_time() == pytest.approx(sum(policy.backoff(k, twin) for k in (1, 2, 3)))
    assert trio.current_time() < 1.0 + 2.0 + 4.0
    assert sink.writes == 4


async def test_write_with_retry_gives_up_after_its_attempts_with_the_last_error(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink")
    errors = iter([OSError("first"), OSError("second"), OSError("third"), OSError("never")])
    sink = FlakySink(probability=1.0, error=lambda: next(errors))
    with pytest.raises(OSError, match="third"):
        await write_with_retry(
            sink.write, recs(0, 1), steady(attempts=3), random.Random(0), name="f"
        )
    assert trio.current_time() == 1.0 + 3.0  # no sleep after the last attempt
    assert (sink.writes, sink.records) == (3, [])
    assert len(messages(caplog)) == 2  # a retry is logged, giving up is the caller's to log


async def test_no_retry_makes_one_attempt(autojump_clock: trio.testing.MockClock) -> None:
    sink = FlakySink(fail_on={0})
    with pytest.raises(OSError, match="flaky write"):
        await write_with_retry(sink.write, recs(0, 1), NO_RETRY, random.Random(0), name="f")
    assert (trio.current_time(), sink.writes) == (0, 1)


@pytest.mark.parametrize(
    ("policy", "error"),
    [
        (steady(), PermanentError("rejected")),
        (steady(give_up_on=ValueError), ValueError("bad row")),
        (steady(retry_on=OSError), KeyError("k")),
    ],
)
async def test_write_with_retry_raises_a_non_retryable_error_at_once(
    autojump_clock: trio.testing.MockClock, policy: RetryPolicy, error: Exception
) -> None:
    calls: list[float] = []

    async def write(batch: Sequence[Record]) -> None:
        calls.append(trio.current_time())
        raise error

    with pytest.raises(type(error)) as info:
        await write_with_retry(write, recs(0, 1), policy, random.Random(0), name="w")
    assert info.value is error
    assert calls == [0]
    assert trio.current_time() == 0


async def test_write_with_retry_stops_when_a_later_attempt_is_not_retryable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = FlakySink(fail_on={0}, permanent={1})
    with pytest.raises(PermanentError, match="flaky write"):
        await write_with_retry(
            sink.write, recs(0, 1), steady(attempts=5), random.Random(0), name="f"
        )
    assert (sink.writes, trio.current_time()) == (2, 1.0)


async def test_cancellation_during_the_backoff_propagates_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = FlakySink(probability=1.0)
    retries: list[int] = []
    with trio.move_on_at(2.5) as scope:
        await write_with_retry(
            sink.write,
            recs(0, 1),
            steady(attempts=10),
            random.Random(0),
            name="f",
            on_retry=lambda k, delay, exc: retries.append(k),
        )
    assert scope.cancelled_caught
    # Failed at 0 and at 1; cancelled at 2.5 inside the 3 s backoff, not at its end.
    assert trio.current_time() == 2.5
    assert (sink.writes, retries) == (2, [1, 2])


async def test_cancellation_during_a_write_is_not_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = HangingSink()
    with trio.move_on_after(7) as scope:
        await write_with_retry(sink.write, recs(0, 1), steady(), random.Random(0), name="h")
    assert scope.cancelled_caught
    assert (trio.current_time(), sink.hung) == (7, 1)


async def test_a_cancelled_exception_raised_by_a_write_is_not_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = 0

    async def write(batch: Sequence[Record]) -> None:
        nonlocal calls
        calls += 1
        await trio.sleep_forever()

    with trio.CancelScope() as scope:
        scope.cancel()
        await write_with_retry(write, recs(0, 1), steady(), random.Random(0), name="w")
    assert scope.cancelled_caught
    assert calls == 1


# -- CircuitBreaker ----------------------------------------------------------------------


def test_circuit_breaker_defaults_and_validation() -> None:
    assert (CircuitBreaker().failures, CircuitBreaker().probe_interval) == (5, 5.0)
    values: tuple[Any, ...] = (0, -1, 1.5, True, "5")
    for value in values:
        with pytest.raises(ConfigError, match=r"^CircuitBreaker\.failures must be an int >= 1"):
            CircuitBreaker(failures=value)
    for seconds in (0, -1.0, math.inf, math.nan, "5", None):
        with pytest.raises(
            ConfigError,
            match=r"^CircuitBreaker\.probe_interval must be a finite number of seconds > 0",
        ):
            CircuitBreaker(probe_interval=seconds)  # type: ignore[arg-type]


def breaker(failures: int = 3, probe_interval: float = 5.0) -> BreakerState:
    return BreakerState(CircuitBreaker(failures=failures, probe_interval=probe_interval), "db")


def test_breaker_opens_after_consecutive_failures(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink")
    state = breaker(failures=3)
    assert (state.state, state.next_probe_at, state.opened_at) == ("closed", None, None)
    assert state.record_failure(1.0, OSError("a")) is False
    assert state.record_failure(2.0, OSError("b")) is False
    assert (state.state, state.consecutive_failures) == ("closed", 2)
    assert state.record_failure(3.0, OSError("c")) is True
    assert state.state == "open"
    assert (state.times_opened, state.consecutive_failures) == (1, 3)
    assert (state.opened_at, state.next_probe_at) == (3.0, 8.0)
    assert state.last_error == "OSError: c"
    # More failures while open are counted, but do not open it again.
    assert state.record_failure(4.0, OSError("d")) is False
    assert (state.times_opened, state.consecutive_failures, state.next_probe_at) == (1, 4, 8.0)
    assert messages(caplog) == [
        (logging.WARNING, 'sink.breaker_open sink=db failures=3 error="OSError: c"')
    ]


def test_a_success_resets_the_failure_count() -> None:
    state = breaker(failures=3)
    state.record_failure(0.0, OSError())
    state.record_failure(0.0, OSError())
    state.record_success()
    assert state.consecutive_failures == 0
    assert not state.record_failure(0.0, OSError())
    assert not state.record_failure(0.0, OSError())
    assert state.state == "closed"
    assert state.record_failure(0.0, OSError())


def test_permanent_errors_do_not_count_toward_the_breaker() -> None:
    state = breaker(failures=2)
    state.record_failure(0.0, OSError("down"))
    for _ in range(5):
        assert state.record_failure(1.0, PermanentError("bad record")) is False
    assert (state.state, state.consecutive_failures, state.last_error) == (
        "closed",
        1,
        "OSError: down",
    )
    assert state.record_failure(2.0, OSError("down")) is True


def test_breaker_with_one_failure_opens_at_once_even_without_an_error() -> None:
    state = breaker(failures=1)
    assert state.record_failure(0.0) is True
    assert (state.state, state.last_error) == ("open", None)


def test_probe_is_due_one_interval_after_opening() -> None:
    state = breaker(failures=1, probe_interval=5.0)
    assert not state.probe_due(100.0)  # closed: never due
    state.record_failure(10.0, OSError())
    assert not state.probe_due(10.0)
    assert not state.probe_due(14.999)
    assert state.probe_due(15.0)
    assert state.probe_due(99.0)


def test_half_open_closes_on_a_successful_probe(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink")
    state = breaker(failures=2)
    state.record_failure(0.0, OSError())
    state.record_failure(0.0, OSError())
    state.begin_probe()
    assert (state.state, state.probes) == ("half-open", 1)
    assert not state.probe_due(100.0)  # a probe is running
    state.probe_succeeded()
    assert (state.state, state.consecutive_failures, state.next_probe_at) == ("closed", 0, None)
    assert state.times_opened == 1
    assert messages(caplog)[-1] == (logging.INFO, "sink.breaker_closed sink=db")
    # Closed again, it takes the full count to open it.
    assert not state.record_failure(1.0, OSError())
    assert state.record_failure(1.0, OSError())
    assert state.times_opened == 2


def test_half_open_opens_again_on_a_failed_probe(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="trio_sink")
    state = breaker(failures=1, probe_interval=5.0)
    state.record_failure(0.0, OSError("a"))
    state.begin_probe()
    state.probe_failed(5.5, ConnectionRefusedError("refused"))
    assert (state.state, state.next_probe_at) == ("open", 10.5)
    assert (state.probes, state.probe_failures, state.times_opened) == (1, 1, 1)
    assert state.last_error == "ConnectionRefusedError: refused"
    assert not state.probe_due(10.0)
    assert state.probe_due(10.5)
    assert messages(caplog)[-1] == (
        logging.INFO,
        'sink.probe_failed sink=db probes=1 next_probe=10.500 error="ConnectionRefusedError:'
        ' refused"',
    )


def test_a_failed_batch_while_half_open_is_a_failed_probe() -> None:
    state = breaker(failures=1, probe_interval=2.0)
    state.record_failure(0.0, OSError())
    state.begin_probe()
    assert state.record_failure(3.0, OSError("trial")) is False
    assert (state.state, state.next_probe_at, state.probe_failures) == ("open", 5.0, 1)
    assert state.times_opened == 1


def test_a_success_while_open_closes_the_breaker() -> None:
    state = breaker(failures=1)
    state.record_failure(0.0, OSError())
    state.record_success()
    assert (state.state, state.next_probe_at) == ("closed", None)


def test_abort_probe_leaves_the_probe_due() -> None:
    state = breaker(failures=1, probe_interval=1.0)
    state.record_failure(0.0, OSError())
    state.begin_probe()
    state.abort_probe()
    assert (state.state, state.probe_due(1.0), state.probe_failures) == ("open", True, 0)


def test_probe_calls_on_a_closed_breaker_change_nothing_but_counts() -> None:
    state = breaker()
    state.begin_probe()
    assert (state.state, state.probes) == ("closed", 0)
    state.probe_failed(1.0, OSError("x"))
    assert (state.state, state.next_probe_at, state.probe_failures) == ("closed", None, 1)
    state.abort_probe()
    state.probe_succeeded()
    assert state.state == "closed"


# -- find_probe and probe_sink -----------------------------------------------------------


def test_find_probe() -> None:
    flaky = FlakySink(has_probe=True)
    assert find_probe(flaky) == flaky.probe
    assert find_probe(FlakySink()) is None  # probe = None: no probe
    assert find_probe(CollectSink()) is None

    async def fn(batch: Sequence[Record]) -> None:
        pass

    assert find_probe(fn) is None

    class NotCallable:
        probe = 3

    assert find_probe(NotCallable()) is None


def opened(failures: int = 1, probe_interval: float = 5.0) -> BreakerState:
    state = breaker(failures=failures, probe_interval=probe_interval)
    for _ in range(failures):
        state.record_failure(trio.current_time(), OSError("down"))
    assert state.state == "open"
    return state


async def test_probe_sink_uses_the_probe_and_leaves_the_batch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = FailingProbe(fail_probes=1)
    state = opened(probe_interval=5.0)
    await trio.sleep(5)
    assert await probe_sink(find_probe(sink), state, sink.write, recs(0, 1)) is False
    assert (state.state, state.next_probe_at, state.probe_failures) == ("open", 10.0, 1)
    await trio.sleep(5)
    assert state.probe_due(trio.current_time())
    assert await probe_sink(find_probe(sink), state, sink.write, recs(0, 1)) is False
    assert state.state == "closed"
    assert (sink.probes, sink.writes, sink.down) == ([5.0, 10.0], 0, False)


async def test_probe_sink_without_a_probe_makes_a_trial_write(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = FlakySink(outages=[(0, 7)])
    state = opened(probe_interval=5.0)
    await trio.sleep(5)
    with pytest.raises(OSError, match="flaky write"):
        await probe_sink(find_probe(sink), state, sink.write, recs(0, 2))
    assert (state.state, state.next_probe_at, state.probe_failures) == ("open", 10.0, 1)
    await trio.sleep(5)
    assert await probe_sink(find_probe(sink), state, sink.write, recs(2, 2)) is True
    assert state.state == "closed"
    assert ids(sink.records) == [2, 3]
    assert sink.writes == 2  # one write a probe, no retry


async def test_a_trial_write_failing_permanently_leaves_the_probe_due(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = FlakySink(permanent=lambda k, batch: 0 in ids(batch))
    state = opened(probe_interval=5.0)
    await trio.sleep(5)
    with pytest.raises(PermanentError):
        await probe_sink(find_probe(sink), state, sink.write, recs(0, 1))
    assert (state.state, state.probe_failures) == ("open", 0)
    assert state.probe_due(trio.current_time())
    assert await probe_sink(find_probe(sink), state, sink.write, recs(1, 1)) is True
    assert state.state == "closed"


async def test_a_cancelled_probe_leaves_the_breaker_open_with_the_probe_due(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = HangingSink(hang_probe=True)
    state = opened(probe_interval=5.0)
    await trio.sleep(5)
    with trio.move_on_after(3) as scope:
        await probe_sink(find_probe(sink), state, sink.write, recs(0, 1))
    assert scope.cancelled_caught
    assert (state.state, state.probe_due(trio.current_time())) == ("open", True)
    assert (sink.probes_hung, sink.hung) == (1, 0)


async def test_breaker_and_retries_ride_out_an_outage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The loop a sink task will run: retries, then the breaker, then probes."""
    sink = FlakySink(CollectSink("db"), outages=[(10, 31)], has_probe=True)
    policy = steady(initial=0.5, multiplier=2, attempts=2)
    state = breaker(failures=2, probe_interval=5.0)
    rng = random.Random(0)
    set_aside: list[int] = []
    for first in range(0, 90, 2):  # a batch about every second
        batch = recs(first, 2)
        now = trio.current_time()
        if state.probe_due(now):
            await probe_sink(find_probe(sink), state, sink.write, batch)
        if state.state == "closed":
            try:
                await write_with_retry(sink.write, batch, policy, rng, name=sink.name)
            except OSError as exc:
                state.record_failure(trio.current_time(), exc)
                set_aside.extend(ids(batch))
            else:
                state.record_success()
        else:
            set_aside.extend(ids(batch))
        await trio.sleep(1)
    assert state.times_opened == 1
    # The batches of t=10 and t=11.5 fail twice each (0.5 s backoff): the breaker opens at
    # 12. The probes at 17, 22 and 27 fail; the one at 32 (outage over) closes it.
    assert state.opened_at == 12.0
    assert sink.probes == [17.0, 22.0, 27.0, 32.0]
    assert (state.probe_failures, state.state) == (3, "closed")
    assert set_aside == list(range(20, 62))  # the batches from t=10 to t=31
    assert sorted(ids(sink.records) + set_aside) == list(range(90))
