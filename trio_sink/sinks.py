"""Built-in sinks.

Each one passes :func:`trio_sink.testing.check_sink`; docs/sinks.md says what
"delivered" means for each, and which of its errors the pipeline retries.

- :class:`NullSink`: counts and discards.
- :class:`CollectSink`: keeps every delivered record, in order, in memory.
- :class:`SlowSink`: sleeps, then writes to another sink (to model a slow one).
- :class:`JsonlFileSink`: JSON lines appended to a file, rotated by size (gzip if asked).
- :class:`StdoutSink`: JSON lines to the standard output or any stream, off the loop.
- :class:`TcpLinesSink`: JSON lines over a TCP connection, made again after a failure;
  :class:`TcpSinkStatistics` is its snapshot.
- :class:`HttpSink`: each batch POSTed as JSON lines or a JSON array (extra
  ``trio_sink[http]``: httpx).

The errors of the network sinks: :class:`SinkConnectionError` (a :exc:`ConnectionError`)
and :class:`SinkTimeoutError` (a :exc:`TimeoutError`), retried by the default policy;
:class:`HttpRejectedError`, a :class:`~trio_sink.PermanentError`, never retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import final

import trio

from ._checks import check_seconds
from ._file_sinks import JsonlFileSink as JsonlFileSink
from ._http_sink import HttpSink as HttpSink
from ._net_sinks import TcpLinesSink as TcpLinesSink
from ._net_sinks import TcpSinkStatistics as TcpSinkStatistics
from ._record import Record
from ._sink import Sink, SinkArg, SinkSlot
from ._sink_errors import HttpRejectedError as HttpRejectedError
from ._sink_errors import SinkConnectionError as SinkConnectionError
from ._sink_errors import SinkTimeoutError as SinkTimeoutError
from ._stdout_sink import StdoutSink as StdoutSink

__all__ = [
    "CollectSink",
    "HttpRejectedError",
    "HttpSink",
    "JsonlFileSink",
    "NullSink",
    "SinkConnectionError",
    "SinkTimeoutError",
    "SlowSink",
    "StdoutSink",
    "TcpLinesSink",
    "TcpSinkStatistics",
]


@final
class NullSink(Sink):
    """Counts the records it is given, and discards them. Not a checkpoint: it never
    blocks (see :attr:`Sink.never_blocks`)."""

    never_blocks = True

    def __init__(self, name: str = "null") -> None:
        self.name = name
        self.count = 0
        """Records written so far."""
        self.batches = 0
        """Batches written so far."""

    async def write(self, batch: Sequence[Record]) -> None:
        self.count += len(batch)
        self.batches += 1


@final
class CollectSink(Sink):
    """Keeps every delivered record, in order, in :attr:`records`. Not a checkpoint: it
    never blocks (see :attr:`Sink.never_blocks`)."""

    never_blocks = True

    def __init__(self, name: str = "collect") -> None:
        self.name = name
        self.records: list[Record] = []
        self.flushed = 0
        """How many times ``flush()`` was called."""
        self.closed = 0
        """How many times ``aclose()`` was called."""

    async def write(self, batch: Sequence[Record]) -> None:
        self.records.extend(batch)

    async def flush(self) -> None:
        self.flushed += 1

    async def aclose(self) -> None:
        self.closed += 1


@final
class SlowSink(Sink):
    """Sleeps ``per_batch + per_record * len(batch)`` on Trio's clock, then writes to
    ``inner`` (any sink, a plain ``async def f(batch)`` included). Its name is
    ``inner``'s.

    Cancelled while sleeping, nothing was written: the batch is not delivered.
    """

    def __init__(self, inner: SinkArg, *, per_record: float = 0.0, per_batch: float = 0.0) -> None:
        check_seconds("per_record", per_record)
        check_seconds("per_batch", per_batch)
        self.inner = inner
        self._slot = SinkSlot(inner)
        self.name = self._slot.name
        self.per_record = per_record
        self.per_batch = per_batch

    async def write(self, batch: Sequence[Record]) -> None:
        await trio.sleep(self.per_batch + self.per_record * len(batch))
        await self._slot.write(batch)

    async def flush(self) -> None:
        await self._slot.flush()

    async def aclose(self) -> None:
        await self._slot.aclose()
