"""RedisStreamSource: one consumer of a Redis stream's consumer group, acknowledging
entries only through :meth:`Source.ack`.

An entry read with ``XREADGROUP`` stays in the group's pending entries list (PEL), owned
by this consumer, until it is acknowledged (``XACK``). The pipeline acknowledges an item
once every record made from it is delivered or stored in the rescue store; so whatever
happens to a run, an entry it read and did not finish stays pending. It is read again by
a consumer that starts under the same name (its own pending entries come first), or taken
over (``XAUTOCLAIM``) by any consumer of the group once it has been idle ``claim_idle``
seconds. Nothing read is lost; what was in flight when a worker died may be delivered
twice.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from functools import partial
from types import TracebackType
from typing import Any, final

import attrs
import trio

from ._checks import check_int, check_seconds, check_text
from ._exceptions import TrioSinkError, describe
from ._record import Undecodable
from ._redis_client import Client, GroupExists, RedisAccess
from ._redis_entries import EntryItem, PoisonEntry, decode_entry
from ._source import Source

__all__ = ["RedisStreamSource", "RedisStreamStatistics"]

log = logging.getLogger("trio_sink.redis")


@final
@attrs.frozen
class RedisStreamStatistics:
    """A snapshot of one :class:`RedisStreamSource`'s counts since it was made."""

    yielded: int
    """Items yielded, of every kind (entries, poison entries, undecodable entries)."""
    reread: int
    """Of those, this consumer's own pending entries, read again at the start."""
    claimed: int
    """Of those, entries taken over from idle consumers (``XAUTOCLAIM``)."""
    poison: int
    """Of those, :class:`PoisonEntry` items (delivered more than ``max_deliveries``)."""
    undecodable: int
    """Of those, entries whose names or values are not valid UTF-8."""
    acknowledged: int
    """Entries acknowledged (``XACK``) through :meth:`RedisStreamSource.ack`."""
    unacknowledged: int
    """Items yielded and not acknowledged yet: in flight in the pipeline."""
    gone: int
    """Pending entries found deleted from the stream (trimmed), so never yielded; each
    was logged (``redis.entry_gone``)."""


@final
class RedisStreamSource(Source[EntryItem]):
    """Reads ``stream`` at ``url`` as ``consumer`` of the consumer group ``group``.

    ``open()`` creates the group (``XGROUP CREATE ... MKSTREAM``, from the id
    ``group_start``: ``"0"`` the whole stream, ``"$"`` only entries added later) if it
    does not exist; an existing group is used as it is. Then the source yields:

    1. this consumer's own pending entries, read before and never acknowledged
       (``XREADGROUP ... 0``, until there are none);
    2. new entries (``XREADGROUP ... >``, at most ``batch`` a read, waiting up to
       ``block`` seconds for one); and every ``claim_idle / 2`` seconds, the entries of
       any consumer of the group that were pending longer than ``claim_idle`` seconds
       (``XAUTOCLAIM``), which are then this consumer's.

    Each entry is a :class:`StreamEntry`; one delivered more than ``max_deliveries``
    times (None: no limit) is a :class:`PoisonEntry`, which the parse
    :func:`entry_parser` makes sends to the ``error`` group; one that is not valid
    UTF-8 is an :class:`~trio_sink.Undecodable` (the ``miss`` group). :meth:`ack`
    acknowledges (``XACK``) the entries the pipeline is done with, one command per call;
    nothing else does. A pending entry that was deleted from the stream meanwhile is
    acknowledged, logged (``redis.entry_gone``) and counted, as there is nothing left to
    deliver.

    ``claim_idle`` must be longer than an entry may take from its read to its
    acknowledgement in a live worker (its wait in the buffers, retries, a drain): an
    entry idle that long is taken over, and delivered twice. A consumer takes back its
    own idle entries too (such as those of a read cancelled at a Stop), except those in
    flight in its pipeline. Consumer names must differ between live workers.

    A Stop cancels a read in progress; the entries Redis had already handed over stay
    pending for this consumer (read again at its next start, or taken over). A Redis
    error ends the source (the pipeline stops and drains); so does a failed :meth:`ack`,
    after which nothing more could be acknowledged in the run.

    ``cluster=True``: ``url`` names a node of a Redis Cluster; the source reads from the
    node that holds the stream's slot, and follows it through a resharding or a
    failover (see ``docs/scaling.md`` on hash tags).

    Each read, claim and acknowledgement connects for itself and closes its connection
    when done. To keep one connection pool for the whole run instead (much cheaper under
    load), enter the source around the run, in a task that outlives it::

        async with source:
            report = await Pipeline(source, ...).run()

    ``aclose()`` (the run's end) then closes the pool's connections, and leaving the
    ``async with`` closes the pool.
    """

    def __init__(
        self,
        url: str,
        stream: str,
        *,
        group: str,
        consumer: str,
        batch: int = 128,
        block: float = 1.0,
        claim_idle: float = 60.0,
        max_deliveries: int | None = 10,
        group_start: str = "0",
        cluster: bool = False,
        name: str | None = None,
    ) -> None:
        self.stream = check_text("stream", stream) or stream
        self.group = check_text("group", group) or group
        self.consumer = check_text("consumer", consumer) or consumer
        self.batch = check_int("batch", batch, 1)
        self.block = check_seconds("block", block, positive=True) or 0.0
        self.claim_idle = check_seconds("claim_idle", claim_idle, positive=True) or 0.0
        self.max_deliveries = (
            None if max_deliveries is None else check_int("max_deliveries", max_deliveries, 1)
        )
        self.group_start = check_text("group_start", group_start) or group_start
        self.name = check_text("name", name, optional=True) or f"redis:{stream}"
        self._redis = RedisAccess(url, cluster)
        # What was yielded and not acknowledged, in order (ack() takes from the left),
        # and their ids: entries a claim must not yield a second time.
        self._unacked: deque[tuple[EntryItem, str]] = deque()
        self._held: set[str] = set()
        self._ack_error: BaseException | None = None
        self._counts = dict.fromkeys(
            ("yielded", "reread", "claimed", "poison", "undecodable", "acknowledged", "gone"),
            0,
        )

    def statistics(self) -> RedisStreamStatistics:
        """The counts so far. Sync, never a checkpoint."""
        return RedisStreamStatistics(**self._counts, unacknowledged=len(self._unacked))

    async def __aenter__(self) -> RedisStreamSource:
        """Keep one connection pool until ``__aexit__``, for every read and
        acknowledgement (otherwise each one connects for itself). Connects nothing
        yet; leaving closes the pool and its connections."""
        await self._redis.enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._redis.exit()

    async def open(self) -> None:
        """Create the group if it does not exist. Raises the Redis error if that fails
        (the run then ends). A checkpoint; if cancelled, the group may or may not have
        been created."""
        if await self._redis.call(self._create_group):
            log.info(
                "redis.group_created stream=%s group=%s start=%s",
                self.stream,
                self.group,
                self.group_start,
            )

    async def _create_group(self, client: Client) -> bool:
        try:
            await client.xgroup_create(self.stream, self.group, self.group_start, mkstream=True)
        except GroupExists:
            return False
        return True

    async def aclose(self) -> None:
        """Close the connections of the pool entered with ``async with``, if any (each
        operation closes its own otherwise). Not a checkpoint."""
        self._redis.disconnect()

    async def ack(self, items: Sequence[EntryItem]) -> None:
        """Acknowledge the entries of ``items`` (``XACK``, one command), which must be
        the oldest items yielded and not acknowledged yet, in order. A checkpoint. If it
        raises or is cancelled, the entries may or may not have been acknowledged (those
        that were not stay pending, to be delivered again), and the source ends at its
        next read."""
        unacked = self._unacked
        ids: list[str] = []
        for item in items:
            if not unacked or unacked[0][0] is not item:
                error = TrioSinkError(
                    f"ack() was given {item!r}, which is not the next item this source"
                    " yielded and that was not acknowledged yet"
                )
                self._ack_error = error
                raise error
            ids.append(unacked.popleft()[1])
        if not ids:
            return
        try:
            await self._redis.call(lambda client: client.xack(self.stream, self.group, ids))
        except BaseException as exc:
            self._ack_error = exc
            raise
        self._held.difference_update(ids)
        self._counts["acknowledged"] += len(ids)

    # -- reading -------------------------------------------------------------------------

    async def __aiter__(self) -> AsyncIterator[EntryItem]:
        # A new run: what an earlier one left unacknowledged is pending in Redis, and
        # comes first below.
        self._unacked.clear()
        self._held.clear()
        self._ack_error = None
        after = b"0"
        while True:  # this consumer's own pending entries, read again
            self._check_acks()
            after, items = await self._redis.call(partial(self._reread, after=after))
            if not items:
                break
            for item, ident in items:
                self._give(item, ident, "reread")
                yield item
        claim_at = trio.current_time()
        while True:
            self._check_acks()
            if trio.current_time() >= claim_at:
                start = b"0-0"
                while True:
                    start, items = await self._redis.call(partial(self._claim, start=start))
                    for item, ident in items:
                        self._give(item, ident, "claimed")
                        yield item
                    if start == b"0-0":
                        break
                claim_at = trio.current_time() + self.claim_idle / 2
            wait = min(self.block, claim_at - trio.current_time())
            reply = await self._redis.call(partial(self._read_new, block=wait))
            for raw in _entries(reply):
                item = decode_entry(raw, 1, self.max_deliveries)
                self._give(item, raw[0].decode(), None)
                yield item

    async def _read_new(self, client: Client, block: float) -> Any:
        """``XREADGROUP ... >``: entries no consumer of the group has read yet."""
        return await client.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: ">"},
            count=self.batch,
            block=max(1, round(block * 1000)),
        ).raw()

    def _check_acks(self) -> None:
        if self._ack_error is not None:
            raise TrioSinkError(
                f"{self.name}: acknowledging entries failed ({describe(self._ack_error)}),"
                " so nothing more could be acknowledged in this run; the source ends, and"
                " what it read stays pending (read again at the next start, or taken over)"
            ) from self._ack_error

    def _give(self, item: EntryItem, ident: str, how: str | None) -> None:
        """Note ``item`` as yielded, and not acknowledged."""
        self._unacked.append((item, ident))
        self._held.add(ident)
        counts = self._counts
        counts["yielded"] += 1
        if how is not None:
            counts[how] += 1
        if type(item) is PoisonEntry:
            counts["poison"] += 1
            log.warning(
                "redis.poison stream=%s id=%s deliveries=%d: delivered more than"
                " max_deliveries=%d times, for the error group",
                self.stream,
                ident,
                item.deliveries,
                item.max_deliveries,
            )
        elif type(item) is Undecodable:
            counts["undecodable"] += 1

    async def _reread(
        self, client: Client, after: bytes
    ) -> tuple[bytes, list[tuple[EntryItem, str]]]:
        """This consumer's own pending entries after ``after``, one read's worth: where
        the next read starts, and the items (none: there are no more)."""
        while True:
            reply = await client.xreadgroup(
                self.group, self.consumer, {self.stream: after}, count=self.batch
            ).raw()
            raws = _entries(reply)
            if not raws:
                return after, []
            after = raws[-1][0]
            items = await self._redelivered(client, raws)
            if items:  # else all of them were deleted from the stream: read on
                return after, items

    async def _claim(
        self, client: Client, start: bytes
    ) -> tuple[bytes, list[tuple[EntryItem, str]]]:
        """One ``XAUTOCLAIM`` from ``start``: the next start (``0-0`` at the end of the
        pending entries list), and the items of the entries it took over, but those in
        flight here."""
        reply: Any = await client.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            round(self.claim_idle * 1000),
            start,
            count=self.batch,
        ).raw()
        raws = [raw for raw in reply[1] if raw[0].decode() not in self._held]
        deleted = list(reply[2]) if len(reply) > 2 else []
        if deleted:
            self._gone(deleted)
        return reply[0], await self._redelivered(client, raws)

    async def _redelivered(self, client: Client, raws: list[Any]) -> list[tuple[EntryItem, str]]:
        """The items of entries delivered again, with their delivery counts; entries no
        longer in the stream (no fields) are acknowledged."""
        gone = [raw[0] for raw in raws if raw[1] is None]
        if gone:
            await client.xack(self.stream, self.group, gone)
            self._gone(gone)
        live = [raw for raw in raws if raw[1] is not None]
        if not live:
            return []
        async with client.pipeline(transaction=False) as pipe:
            requests = [pipe.xpending(self.stream, self.group, r[0], r[0], 1) for r in live]
        counts: dict[bytes, int] = {}
        for request in requests:
            found: Any = await request
            for pending in found:
                counts[pending.identifier] = pending.delivered
        # An entry another consumer took meanwhile has no count here: at least 2.
        return [
            (decode_entry(raw, counts.get(raw[0], 2), self.max_deliveries), raw[0].decode())
            for raw in live
        ]

    def _gone(self, ids: list[bytes]) -> None:
        self._counts["gone"] += len(ids)
        for ident in ids:
            log.warning(
                "redis.entry_gone stream=%s group=%s id=%s: pending, but deleted from the"
                " stream (trimmed?) before it was delivered again; nothing to deliver",
                self.stream,
                self.group,
                ident.decode(),
            )


def _entries(reply: Any) -> list[Any]:
    """The entries of an ``XREADGROUP`` reply for one stream (none: None or empty)."""
    if not reply:
        return []
    (entries,) = reply.values()
    return list(entries)
