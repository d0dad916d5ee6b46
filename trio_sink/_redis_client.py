"""The coredis client, as trio_sink's Redis source and sink use it.

coredis runs on Trio through anyio. A client's connection pool owns a task group (its
connections' reader and writer tasks), entered with ``async with client``: whoever enters
it must also leave it, from the same task and with nothing opened in between left open.
The source enters it in ``open()`` and leaves it in ``aclose()`` (both run in the source
stage's task, around the whole pull); a sink's ``write()`` runs inside the writer's
cancel scopes, so a sink enters a client for one write (:func:`with_client`), or uses
one its caller entered around the run.

An exception raised inside ``async with client`` comes out of the task group wrapped in an
``ExceptionGroup``; :func:`with_client` raises it as it was.

A coredis connection that fails to connect leaves its anyio memory streams unclosed
(each warns when collected: ``ResourceWarning: Unclosed <MemoryObjectSendStream>``); the
clients made here use connections that close them when they end.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

try:
    import coredis
    import coredis.exceptions
    from anyio import TASK_STATUS_IGNORED
    from anyio.abc import TaskStatus
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
    from coredis.connection import BaseConnection
    from coredis.tokens import PureToken
except ImportError as exc:  # pragma: no cover - the extra is part of the test install
    raise ImportError("trio_sink.redis needs coredis: pip install 'trio_sink[redis]'") from exc

from ._checks import check_text
from ._exceptions import ConfigError

__all__ = [
    "Client",
    "GroupExists",
    "PureToken",
    "RedisConnectionError",
    "RedisError",
    "make_client",
    "with_client",
]

T = TypeVar("T")

Client = coredis.Redis[bytes]
RedisError = coredis.exceptions.RedisError
RedisConnectionError = coredis.exceptions.ConnectionError
"""coredis's own: not a subclass of the builtin ``ConnectionError``."""
GroupExists = coredis.exceptions.StreamDuplicateConsumerGroupError
"""``XGROUP CREATE``'s BUSYGROUP reply."""


def make_client(url: str) -> Client:
    """A client for ``url`` (``redis://``, ``rediss://`` or ``unix://``) that returns
    bytes; no connection is made until it is used. A bad URL raises
    :class:`ConfigError`."""
    check_text("url", url)
    expected = f"url must be a redis://, rediss:// or unix:// URL, got {url!r}"
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(expected)
    try:
        client = coredis.Redis.from_url(url, decode_responses=False)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{expected}: {exc}") from exc
    pool = client.connection_pool
    if pool.location is None:
        raise ConfigError(f"{expected}: it names no host or socket")
    pool.connection_class = _closing(pool.connection_class)
    return client


_CLOSING: dict[type[BaseConnection], Any] = {}


def _closing(cls: type[BaseConnection]) -> Any:
    """``cls``, with a ``run()`` that closes the connection's memory streams when it
    ends (coredis leaves them open when the connection attempt fails)."""
    if cls in _CLOSING or cls in _CLOSING.values():
        return _CLOSING.get(cls, cls)

    async def run(
        self: BaseConnection, *, task_status: TaskStatus[None] = TASK_STATUS_IGNORED
    ) -> None:
        try:
            await cls.run(self, task_status=task_status)
        finally:
            for value in vars(self).values():
                if isinstance(value, (MemoryObjectSendStream, MemoryObjectReceiveStream)):
                    value.close()

    closing = _CLOSING[cls] = type(f"Closing{cls.__name__}", (cls,), {"run": run})
    return closing


async def with_client(url: str, fn: Callable[[Client], Awaitable[T]]) -> T:
    """``await fn(client)`` with a client of its own for ``url``, entered and closed
    around the call. ``fn``'s exception comes out as it was raised (not in a group).

    Cancellation closes the client's connections: a command in flight may or may not
    have been carried out.
    """
    failure: Exception | None = None
    async with make_client(url) as client:
        try:
            return await fn(client)
        except Exception as exc:
            failure = exc
    assert failure is not None
    try:
        raise failure
    finally:
        failure = None  # no cycle through this frame
