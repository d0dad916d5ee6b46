"""The coredis client, as trio_sink's Redis source and sink use it (:class:`RedisAccess`).

coredis runs on Trio through anyio. A client's connection pool owns a task group (its
connections' reader and writer tasks), entered with ``async with client``: whoever enters
it must also leave it, in the same task, with everything opened since closed. A pipeline
calls a source's and a sink's methods from several tasks (a source is opened in the
source stage's task, read in another, acknowledged in a third and closed in the run's
own; a sink's ``write`` runs inside its writer's cancel scopes), so none of them can
hold a pool open for the others. Either each operation enters a client of its own
(:func:`with_client`: one connection per operation), or the caller enters the source or
sink (``async with``) around the whole run, in a task that outlives it, and every
operation uses that client's pool.

An exception raised inside ``async with client`` comes out of the task group wrapped in an
``ExceptionGroup``; :func:`with_client` raises it as it was.

A coredis connection that fails to connect leaves its anyio memory streams unclosed
(each warns when collected: ``ResourceWarning: Unclosed <MemoryObjectSendStream>``); the
clients made here use connections that close them when they end.
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

try:
    import coredis
    import coredis.exceptions
    from anyio import TASK_STATUS_IGNORED
    from anyio.abc import TaskStatus
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
    from coredis.commands.script import Script
    from coredis.connection import BaseConnection
    from coredis.pool import ClusterConnectionPool
except ImportError as exc:  # pragma: no cover - the extra is part of the test install
    raise ImportError("trio_sink.redis needs coredis: pip install 'trio_sink[redis]'") from exc

from ._checks import check_text
from ._exceptions import ConfigError

__all__ = [
    "Client",
    "GroupExists",
    "RedisAccess",
    "RedisConnectionError",
    "RedisError",
    "Script",
    "make_client",
    "with_client",
]

T = TypeVar("T")

Client = coredis.Redis[bytes] | coredis.RedisCluster[bytes]
RedisError = coredis.exceptions.RedisError
RedisConnectionError = coredis.exceptions.ConnectionError
"""coredis's own: not a subclass of the builtin ``ConnectionError``."""
GroupExists = coredis.exceptions.StreamDuplicateConsumerGroupError
"""``XGROUP CREATE``'s BUSYGROUP reply."""


def make_client(url: str, cluster: bool = False) -> Client:
    """A client for ``url`` (``redis://``, ``rediss://``, or ``unix://`` but for a
    cluster) that returns bytes; with ``cluster``, a Redis Cluster client that takes
    the cluster's layout from the node ``url`` names and follows its redirections. No
    connection is made until it is used. A bad URL raises :class:`ConfigError`."""
    check_text("url", url)
    schemes = ("redis", "rediss") if cluster else ("redis", "rediss", "unix")
    expected = f"url must be a {', '.join(s + '://' for s in schemes)} URL, got {url!r}"
    if cluster:
        expected += " (cluster=True)"
    if urlsplit(url).scheme not in schemes:
        raise ConfigError(expected)
    client: Client
    try:
        if cluster:
            with warnings.catch_warnings():
                # coredis 6.9's own from_url passes its startup node in the form it
                # deprecates, and warns about it (DeprecationWarning).
                warnings.simplefilter("ignore", DeprecationWarning)
                client = coredis.RedisCluster.from_url(url, decode_responses=False)
        else:
            client = coredis.Redis.from_url(url, decode_responses=False)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{expected}: {exc}") from exc
    pool = client.connection_pool
    if not (pool.startup_nodes if isinstance(pool, ClusterConnectionPool) else pool.location):
        raise ConfigError(f"{expected}: it names no host or socket")
    pool.connection_class = _closing(pool.connection_class)
    return client


_CLOSING: dict[type[BaseConnection], Any] = {}


def _close_streams(obj: object) -> None:
    """Close the anyio memory streams among ``obj``'s attributes (a pair in a tuple
    too)."""
    for value in vars(obj).values():
        for stream in value if isinstance(value, tuple) else (value,):
            if isinstance(stream, (MemoryObjectSendStream, MemoryObjectReceiveStream)):
                stream.close()


def _close_layout(client: Client) -> None:
    """Once ``client`` was left: a cluster client's layout keeps a pair of memory
    streams that coredis never closes."""
    layout = getattr(client.connection_pool, "cluster_layout", None)
    if layout is not None:
        _close_streams(layout)


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
            _close_streams(self)

    closing = _CLOSING[cls] = type(f"Closing{cls.__name__}", (cls,), {"run": run})
    return closing


async def with_client(url: str, cluster: bool, fn: Callable[[Client], Awaitable[T]]) -> T:
    """``await fn(client)`` with a client of its own for ``url``, entered and closed
    around the call. ``fn``'s exception comes out as it was raised (not in a group).

    Cancellation closes the client's connections: a command in flight may or may not
    have been carried out.
    """
    failure: Exception | None = None
    client = make_client(url, cluster)
    try:
        async with client:
            try:
                return await fn(client)
            except Exception as exc:
                failure = exc
    finally:
        _close_layout(client)
    assert failure is not None
    try:
        raise failure
    finally:
        failure = None  # no cycle through this frame


class RedisAccess:
    """How a source or a sink reaches the server (or cluster) at ``url``: through the
    client entered by :meth:`enter` (the caller's ``async with``), or else a client per
    operation."""

    def __init__(self, url: str, cluster: bool) -> None:
        if not isinstance(cluster, bool):
            raise ConfigError(f"cluster must be a bool, got {cluster!r}")
        _close_layout(make_client(url, cluster))  # checks the URL now
        self.url = url
        self.cluster = cluster
        self.client: Client | None = None
        """The client entered around the run, if any."""

    async def call(self, fn: Callable[[Client], Awaitable[T]]) -> T:
        """``await fn(client)``, with the entered client or one of its own."""
        if self.client is not None:
            return await fn(self.client)
        return await with_client(self.url, self.cluster, fn)

    async def enter(self) -> None:
        if self.client is not None:
            raise RuntimeError(f"already entered: {self.url}")
        client = make_client(self.url, self.cluster)
        await client.__aenter__()
        self.client = client

    async def exit(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                await client.__aexit__(None, None, None)
            finally:
                _close_layout(client)

    def disconnect(self) -> None:
        """Close the entered client's connections (a later operation opens new ones)."""
        if self.client is not None:
            self.client.connection_pool.disconnect()
