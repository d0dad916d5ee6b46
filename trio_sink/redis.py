"""Redis streams: a consumer-group source that acknowledges only what the pipeline is
done with, and a sink that appends to a stream.

Needs the ``redis`` extra (``pip install 'trio_sink[redis]'``, which installs coredis)
and is imported explicitly::

    from trio_sink import Infra, Pipeline, Route
    from trio_sink.redis import RedisStreamSink, RedisStreamSource, entry_parser

    source = RedisStreamSource(url, "events", group="ingest", consumer="worker-1")
    pipeline = Pipeline(
        source,
        parse=entry_parser(to_event),  # a poison entry goes to the error group
        routes=[Route("all", RedisStreamSink(url, "events:clean"))],
        infra=Infra(error=RedisStreamSink(url, "events:dead")),
    )

Together with the pipeline's acknowledgements this is at-least-once end to end: an
entry is acknowledged (``XACK``) once every record made from it was delivered or stored
in the rescue store; until then it stays pending in Redis, and a worker that dies leaves
its entries to the group's other consumers (``claim_idle``). ``docs/scaling.md`` shows
how to run several workers on one stream, and what a crash costs.
"""

from ._redis_entries import EntryItem as EntryItem
from ._redis_entries import PoisonEntry as PoisonEntry
from ._redis_entries import PoisonEntryError as PoisonEntryError
from ._redis_entries import StreamEntry as StreamEntry
from ._redis_entries import entry_parser as entry_parser
from ._redis_entries import fields_of as fields_of
from ._redis_sink import RedisStreamSink as RedisStreamSink
from ._redis_source import RedisStreamSource as RedisStreamSource
from ._redis_source import RedisStreamStatistics as RedisStreamStatistics

__all__ = [
    "EntryItem",
    "PoisonEntry",
    "PoisonEntryError",
    "RedisStreamSink",
    "RedisStreamSource",
    "RedisStreamStatistics",
    "StreamEntry",
    "entry_parser",
    "fields_of",
]
