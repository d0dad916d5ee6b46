"""RedisStreamSink: each record appended to a Redis stream (``XADD``), a batch at a time,
whole or not at all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, final

from ._checks import check_int, check_text
from ._record import Record
from ._redis_client import Client, PureToken, RedisAccess, RedisConnectionError
from ._redis_entries import fields_of
from ._sink import Sink

__all__ = ["RedisStreamSink"]


@final
class RedisStreamSink(Sink):
    """Appends an entry to ``stream`` at ``url`` for each record (``XADD``); its fields
    are made from the record's payload by :func:`fields_of` (a dict: its items; anything
    else: one field ``data`` with its JSON text).

    A batch is one transaction (``MULTI``, an ``XADD`` per record, ``EXEC``): written
    whole, or not at all and ``write`` raises; only when the connection is lost after
    ``EXEC`` was sent can a batch that raised have been written (then a retry writes it
    twice: at-least-once). A lost or refused connection raises the builtin
    ``ConnectionError`` (which the pipeline's default retry policy retries); a payload
    that cannot be made into fields raises ``TypeError`` before anything is sent; an
    error reply raises coredis's ``ResponseError``.

    ``cluster=True``: ``url`` names a node of a Redis Cluster, and the sink writes to
    the node that holds the stream's slot (following redirections).

    ``maxlen``: trim the stream to about that many entries as it grows (``MAXLEN ~``);
    None (the default) never trims. Trimming deletes the oldest entries whether a
    consumer group has read them or not.

    Each write connects for itself, and closes its connection when it returns. To keep
    one connection pool for a whole run instead, enter the sink around the run
    (``async with sink: await pipeline.run()``), in a task that outlives the run; its
    ``aclose()`` then closes the connections, and leaving the ``async with`` closes the
    pool.
    """

    def __init__(
        self,
        url: str,
        stream: str,
        *,
        maxlen: int | None = None,
        cluster: bool = False,
        name: str | None = None,
    ) -> None:
        self._redis = RedisAccess(url, cluster)
        self.url = url
        self.stream = check_text("stream", stream) or stream
        self.maxlen = None if maxlen is None else check_int("maxlen", maxlen, 1)
        self.name = check_text("name", name, optional=True) or f"redis:{stream}"

    async def __aenter__(self) -> RedisStreamSink:
        """Keep one connection pool until ``__aexit__``, for every write."""
        await self._redis.enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._redis.exit()

    async def write(self, batch: Sequence[Record]) -> None:
        """Append one entry per record, in one transaction. A checkpoint. If cancelled,
        nothing was written, or (``EXEC`` sent) everything."""
        entries = [fields_of(record.payload) for record in batch]
        if not entries:
            return
        try:
            await self._redis.call(lambda client: self._append(client, entries))
        except RedisConnectionError as exc:
            raise ConnectionError(f"{self.name}: {exc}") from exc

    async def _append(self, client: Client, entries: Sequence[Mapping[str | bytes, Any]]) -> None:
        async with client.pipeline(transaction=True) as pipe:
            if self.maxlen is None:
                for fields in entries:
                    pipe.xadd(self.stream, fields)
            else:
                for fields in entries:
                    pipe.xadd(
                        self.stream,
                        fields,
                        trim_strategy=PureToken.MAXLEN,
                        threshold=self.maxlen,
                        trim_operator=PureToken.APPROXIMATELY,
                    )

    async def aclose(self) -> None:
        """Close the connections of the pool entered with ``async with``, if any (each
        write closes its own otherwise). Not a checkpoint."""
        self._redis.disconnect()
