"""Daemon mode: run a pipeline until a signal, and turn its outcome into an exit status.

    first signal   ──▶ handle.stop()                 graceful: drain, deadline = drain_timeout
    second signal  ──▶ handle.stop(immediate=True)   deadline now: the rest is reported
    later signals  ──▶ logged and ignored

The pipeline runs in the caller's task (so its ``SourceError`` comes out as it is); the
signals are watched by a second task, started once the pipeline is up and cancelled
when the run ends.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import signal
from collections.abc import AsyncIterator, Iterable
from typing import final

import trio

from ._exceptions import ConfigError
from ._handle import PipelineHandle
from ._pipeline import Pipeline
from ._report import DeliveryReport, SourceError

__all__ = ["ExitStatus", "exit_status", "serve"]

log = logging.getLogger("trio_sink.serve")

DEFAULT_SIGNALS: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)

# Signals that no process can catch: asking for them is a configuration mistake.
_UNCATCHABLE = frozenset(
    getattr(signal, name) for name in ("SIGKILL", "SIGSTOP") if hasattr(signal, name)
)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:  # a valid number without a name, such as a real-time signal
        return str(signum)


def _check_signals(signals: object) -> tuple[int, ...]:
    if isinstance(signals, (str, bytes)) or not isinstance(signals, Iterable):
        raise ConfigError(
            f"signals must be a sequence of signal numbers (such as signal.SIGTERM),"
            f" got {signals!r}"
        )
    valid = signal.valid_signals()
    checked: dict[int, None] = {}
    for signum in signals:
        if isinstance(signum, bool) or not isinstance(signum, int) or signum not in valid:
            raise ConfigError(
                f"signals must hold signal numbers (such as signal.SIGTERM), got {signum!r}"
                f" in {signals!r}"
            )
        if signum in _UNCATCHABLE:
            raise ConfigError(
                f"signals must hold signals a process can catch, got {_signal_name(signum)}"
            )
        checked[int(signum)] = None
    return tuple(checked)


@final
class _Relay:
    """The ``task_status`` that :func:`serve` gives ``pipeline.run``: once the pipeline
    is up, it starts the signal watcher and passes the handle on to serve's caller."""

    def __init__(
        self,
        outer: trio.TaskStatus[PipelineHandle],
        nursery: trio.Nursery,
        receiver: AsyncIterator[int] | None,
        signals: _Signals,
    ) -> None:
        self._outer = outer
        self._nursery = nursery
        self._receiver = receiver
        self._signals = signals

    def started(self, value: PipelineHandle | None = None) -> None:
        assert value is not None
        if self._receiver is not None:
            self._nursery.start_soon(
                _watch, self._receiver, value, self._signals, name="trio_sink.serve"
            )
        self._outer.started(value)


class _Signals:
    """What :func:`serve`'s watcher has taken."""

    def __init__(self) -> None:
        self.taken = 0


def _drain(receiver: AsyncIterator[int], signals: _Signals) -> None:
    """Take the signals that arrived as the run ended, before the receiver closes: Trio
    would deliver them again to the handlers of before, and a default handler would end
    the process with the signal's status instead of the report's. They are logged and
    ignored. (Reads the receiver's queue: Trio has no call that takes a signal without
    waiting.)"""
    pending = getattr(receiver, "_pending", None)
    while pending:
        signum, _ = pending.popitem(last=False)
        signals.taken += 1
        log.warning("serve.signal signal=%s action=ignored", _signal_name(signum))


async def _watch(receiver: AsyncIterator[int], handle: PipelineHandle, signals: _Signals) -> None:
    async for signum in receiver:
        signals.taken += 1
        taken = signals.taken
        name = _signal_name(signum)
        if taken == 1:
            log.info("serve.signal signal=%s action=stop", name)
            handle.stop()
        elif taken == 2:
            log.warning("serve.signal signal=%s action=immediate_stop", name)
            handle.stop(immediate=True)
        else:
            log.warning("serve.signal signal=%s action=ignored", name)


async def serve(
    pipeline: Pipeline,
    *,
    signals: Iterable[int] = DEFAULT_SIGNALS,
    ignore_after_stop: bool = False,
    task_status: trio.TaskStatus[PipelineHandle] = trio.TASK_STATUS_IGNORED,
) -> DeliveryReport:
    """Run ``pipeline`` as a daemon: until a signal stops it, or until its source ends.

    The first of ``signals`` to arrive is a graceful Stop (``handle.stop()``: the
    pipeline drains, with its ``drain_timeout`` as the deadline); the second one an
    immediate stop (``handle.stop(immediate=True)``: everything not yet delivered is
    reported, with reason ``"immediate stop"``); later ones are logged and ignored.
    Each signal is logged on ``trio_sink.serve`` (``serve.signal signal=SIGINT
    action=stop``). While ``serve`` runs, it replaces the handlers of ``signals``
    (so SIGINT raises no ``KeyboardInterrupt``); they are restored when it returns.
    With ``ignore_after_stop=True``, once a signal has stopped the run they are left
    ignored (``SIG_IGN``) instead: for a program that exits with the report's status
    next, so that one more Ctrl-C or SIGTERM cannot end it with the signal's status.
    With ``signals=()`` no handler is touched, and the run ends with its source or
    through the handle.

    ``await nursery.start(serve, pipeline)`` returns the :class:`PipelineHandle` once
    every stage is up; ``handle.stop()`` works as it does without ``serve``.

    Returns the run's :class:`DeliveryReport` (``exit_status(report)`` makes it a
    process exit status). Raises :class:`SourceError` (not in an exception group) if
    the source raised, and whatever else ``pipeline.run()`` raises, as it raises it.
    Raises :class:`ConfigError` before anything runs if ``pipeline`` is not a
    :class:`Pipeline` or ``signals`` holds anything but catchable signal numbers.

    Must be called from the main thread, as Trio receives signals only there
    (:func:`trio.open_signal_receiver` raises ``RuntimeError`` elsewhere), unless
    ``signals=()``.

    A checkpoint. Cancelled from outside, it behaves as ``pipeline.run()``: every
    record not yet delivered is reported, the report is built (``handle.report``), and
    ``Cancelled`` propagates. Trio delivers a signal that arrives again before
    ``serve`` has taken the first one only once; one that arrives as the run ends is
    logged and ignored like the third.
    """
    if not isinstance(pipeline, Pipeline):
        raise ConfigError(f"pipeline must be a trio_sink.Pipeline, got {pipeline!r}")
    signums = _check_signals(signals)
    failure: Exception | None = None
    report: DeliveryReport | None = None
    taken = _Signals()
    with contextlib.ExitStack() as stack:
        # Signals are received from before the pipeline starts: none is missed.
        receiver = stack.enter_context(trio.open_signal_receiver(*signums)) if signums else None
        log.info("serve.start signals=%s", ",".join(map(_signal_name, signums)) or "none")
        async with trio.open_nursery() as nursery:
            try:
                relay = _Relay(task_status, nursery, receiver, taken)
                report = await pipeline.run(task_status=relay)
            except Exception as exc:
                # Kept and raised below, outside the nursery, so that it is not wrapped
                # in an exception group: serve raises what pipeline.run raised.
                failure = exc
            finally:
                nursery.cancel_scope.cancel()  # the run has ended: stop watching signals
        if receiver is not None:
            _drain(receiver, taken)
    if taken.taken and ignore_after_stop:
        # The process was told to stop, and is stopping: a later signal must not end it
        # with the signal's status instead of the report's.
        for signum in signums:
            signal.signal(signum, signal.SIG_IGN)
    if failure is not None:
        raise failure
    assert report is not None
    return report


class ExitStatus(enum.IntEnum):
    """Exit statuses for a program that runs a pipeline, as :func:`exit_status` picks
    them. 1 (an uncaught exception) and 2 (a usage error, as argparse exits) are left
    to their usual meanings.
    """

    OK = 0
    """Every record was delivered (or discarded on purpose, in an infra group without
    a sink)."""
    UNDELIVERED = 3
    """Records were not delivered: the report lists them (a drain deadline, an
    immediate stop, a failing sink). A shutdown that abandoned data does not exit 0."""
    SOURCE_FAILED = 4
    """The source raised (:class:`SourceError`). Wins over ``UNDELIVERED``: its report
    may list undelivered records as well."""
    ERRORS_DISCARDED = 5
    """Every record was delivered or discarded on purpose, but some were discarded from
    the ``error`` group: ``parse`` or a route's ``when`` raised for them (or a failed
    write's copies found the error sink full), and no sink kept them. Bad input is not
    a clean run."""


def exit_status(outcome: DeliveryReport | SourceError) -> ExitStatus:
    """The exit status for the outcome of a run: its report, or the SourceError it raised.

    ``OK`` (0) if the report is ``ok`` and nothing was discarded from the ``error``
    group; ``UNDELIVERED`` (3) if it lists undelivered records; ``ERRORS_DISCARDED`` (5)
    if none is undelivered but ``report.discarded["error"]`` counts some;
    ``SOURCE_FAILED`` (4) for a :class:`SourceError`, whatever its report says. Errors
    of ``flush()`` or ``aclose()`` (``report.sink_errors``) do not change the status:
    the records were delivered. An :class:`ExitStatus` is an ``int``, so
    ``sys.exit(exit_status(report))`` works. Raises :class:`ConfigError` for anything
    else.
    """
    if isinstance(outcome, SourceError):
        return ExitStatus.SOURCE_FAILED
    if isinstance(outcome, DeliveryReport):
        if not outcome.ok:
            return ExitStatus.UNDELIVERED
        if outcome.discarded.get("error", 0):
            return ExitStatus.ERRORS_DISCARDED
        return ExitStatus.OK
    raise ConfigError(
        f"outcome must be a trio_sink.DeliveryReport or a trio_sink.SourceError, got {outcome!r}"
    )
