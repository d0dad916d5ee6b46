"""The exception hierarchy: one root, with the stdlib meaning mixed in."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._ledger import DeliveryReport


class TrioSinkError(Exception):
    """The root of every error that trio_sink raises on purpose.

    Catching it catches configuration mistakes, failed accounting checks and failed
    sources. It does not cover exceptions raised by user code that the pipeline
    contains and reports (a ``parse`` or ``when`` that raises, a failing sink): those
    are routed to the ``error`` group or listed in the report, never raised.
    """


class ConfigError(TrioSinkError, ValueError):
    """A pipeline, route, sink or option was given an invalid value.

    Raised eagerly, at construction, before any task starts. The message names the
    argument, the value and what was expected. It never means that a record was lost.
    """


class AccountingError(TrioSinkError):
    """:meth:`DeliveryReport.check` found the delivery invariant broken.

    It means a record is unaccounted for (neither delivered, reported nor discarded) or
    counted twice. That is always a bug in trio_sink, never in user code: please report it.
    """


class SourceError(TrioSinkError):
    """The source raised: the run stopped gracefully, drained, and ended with this error.

    ``__cause__`` is the source's exception and :attr:`report` the run's
    :class:`DeliveryReport`: every record the source produced before it failed was
    delivered or reported, as in any other run.
    """

    report: DeliveryReport

    def __init__(self, message: str, report: DeliveryReport) -> None:
        super().__init__(message)
        self.report = report


class UnknownSinkError(TrioSinkError, LookupError):
    """A control call named a sink that the pipeline does not have.

    :attr:`sink` is the name given, :attr:`known` the pipeline's sink names. It changes
    nothing in the run.
    """

    sink: object
    known: tuple[str, ...]

    def __init__(self, sink: object, known: tuple[str, ...]) -> None:
        names = ", ".join(repr(n) for n in known) or "none"
        super().__init__(f"the pipeline has no sink named {sink!r}; its sinks are: {names}")
        self.sink = sink
        self.known = known
