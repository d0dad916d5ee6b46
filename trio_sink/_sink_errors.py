"""The errors the built-in network sinks raise, each with the stdlib meaning that decides
whether the pipeline retries it: a :exc:`ConnectionError` or a :exc:`TimeoutError` is
retried by the default policy, a :class:`PermanentError` never."""

from __future__ import annotations

from functools import partial
from typing import Any

from ._exceptions import TrioSinkError
from ._retry import PermanentError

__all__ = ["HttpRejectedError", "SinkConnectionError", "SinkTimeoutError"]


class SinkConnectionError(TrioSinkError, ConnectionError):
    """A sink could not reach its destination, lost its connection during a write, or
    was told to try again later (an HTTP 5xx, 429 or 408 answer).

    The write failed and the pipeline retries it (the default policy retries a
    :exc:`ConnectionError`). It does not mean that nothing arrived: a batch cut short
    may have reached the destination in part, or (HTTP) whole, so a retry can deliver
    some records twice.

    Attributes:
        status: The HTTP status of the answer, or None when there was none.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SinkTimeoutError(TrioSinkError, TimeoutError):
    """A sink's connection or request took longer than the sink's own limit
    (``connect_timeout``, ``timeout``) and was given up.

    Retried by the default policy. As for :class:`SinkConnectionError`, the destination
    may have received the batch, in part or whole: a retry can deliver it twice.
    """


class HttpRejectedError(PermanentError):
    """The HTTP endpoint refused a batch with an answer that a retry cannot change: a
    4xx other than 408 and 429, or a redirect (never followed).

    A :class:`PermanentError`: the batch is reported (or stored) at once, never
    retried. It means the endpoint did not take the batch; it says nothing about the
    sink's health.

    Attributes:
        status: The HTTP status.
        body: The start of the answer's body (at most 200 characters), for the report.
    """

    def __init__(self, message: str, *, status: int, body: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    def __reduce__(self) -> tuple[Any, ...]:
        # Copied or unpickled, it is made again with its keyword arguments.
        return partial(type(self), status=self.status, body=self.body), self.args
