"""RedisStreamSink: each record appended to a Redis stream (``XADD``), a batch at a time,
whole or not at all.

A batch is one call of a Lua script that runs an ``XADD`` per record: one round trip,
and the server runs it whole, with no other command in between. (A ``MULTI``/``EXEC``
transaction of ``XADD`` commands gives the same guarantee, but costs a reply per command
to read and match: three times the time per batch with coredis.)
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, final

from ._batch import payloads_of
from ._checks import check_int, check_text
from ._record import Record
from ._redis_client import RedisAccess, RedisConnectionError, Script
from ._redis_entries import fields_of
from ._sink import Sink

__all__ = ["RedisStreamSink"]

_APPEND: Any = Script(
    script="""
local maxlen = tonumber(ARGV[1])
local added = 0
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local entry = {}
  for j = 1, 2 * n do
    entry[j] = ARGV[i + j]
  end
  if maxlen > 0 then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', unpack(entry))
  else
    redis.call('XADD', KEYS[1], '*', unpack(entry))
  end
  added = added + 1
  i = i + 1 + 2 * n
end
return added
"""
)
"""``KEYS[1]`` the stream; ``ARGV``: maxlen (0: none), then for each entry its number
of fields and its names and values."""


@final
class RedisStreamSink(Sink):
    """Appends an entry to ``stream`` at ``url`` for each record (``XADD``); its fields
    are made from the record's payload by :func:`fields_of` (a dict: its items; anything
    else: one field ``data`` with its JSON text).

    A batch is one call of a Lua script (``EVALSHA``) that runs an ``XADD`` per record,
    which the server runs whole, with nothing in between: the batch is written whole, or
    not at all and ``write`` raises; only when the connection is lost after the call was
    sent can a batch that raised have been written (then a retry writes it twice:
    at-least-once). A lost or refused connection raises the builtin ``ConnectionError``
    (which the pipeline's default retry policy retries); a payload that cannot be made
    into fields raises ``TypeError`` before anything is sent; an error reply raises
    coredis's ``ResponseError`` (such as ``WRONGTYPE`` when the key is not a stream: then
    nothing was written). The server must allow scripts (``EVALSHA``, ``SCRIPT LOAD``).

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
        """Append one entry per record, in one script call. A checkpoint. If cancelled,
        nothing was written, or (the call sent) everything."""
        args: list[str | bytes | int] = [self.maxlen or 0]
        for payload in payloads_of(batch):  # a Batch's column: no record built
            fields = fields_of(payload)
            args.append(len(fields))
            for name, value in fields.items():
                args += (name, value)
        if len(args) == 1:
            return
        try:
            added = await self._redis.call(
                lambda client: _APPEND(keys=[self.stream], args=args, client=client)
            )
        except RedisConnectionError as exc:
            raise ConnectionError(f"{self.name}: {exc}") from exc
        if added != len(batch):  # pragma: no cover - the script adds one per record
            raise RuntimeError(f"{self.name}: {len(batch)} records, {added!r} entries added")

    async def aclose(self) -> None:
        """Close the connections of the pool entered with ``async with``, if any (each
        write closes its own otherwise). Not a checkpoint."""
        self._redis.disconnect()
