"""The exception hierarchy: one root, with the stdlib meaning mixed in."""

from __future__ import annotations


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


def describe(exc: BaseException) -> str:
    """``"TypeName: message"``, also for an exception whose ``str()`` raises."""
    try:
        return f"{type(exc).__name__}: {exc}"
    except Exception:
        return f"{type(exc).__name__}: (str() of the exception raised)"
