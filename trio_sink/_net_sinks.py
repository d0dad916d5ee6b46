"""TcpLinesSink: JSON lines over a TCP connection, made when needed and made again after
a failure."""

from __future__ import annotations

import logging
import select
from collections.abc import Sequence
from typing import final

import attrs
import trio

from ._checks import check_int, check_seconds, check_text
from ._exceptions import ConfigError, describe
from ._json_lines import JsonLines
from ._record import Record
from ._sink import Sink
from ._sink_errors import SinkConnectionError, SinkTimeoutError

__all__ = ["TcpLinesSink", "TcpSinkStatistics"]

log = logging.getLogger("trio_sink.sink")

READ = 64 * 1024
"""The most bytes one read of what the peer sent takes."""
READS = 16
"""The most reads of what the peer sent before a write (or a close): a peer that keeps
talking cannot hold the sink."""


def _readable(fd: int) -> bool:
    """Whether ``fd`` has something to read (data, the end, an error), without waiting."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    ready, _, _ = select.select([fd], [], [], 0)  # Windows: no poll, and no fd limit
    return bool(ready)


@final
@attrs.frozen
class TcpSinkStatistics:
    """A snapshot of a :class:`TcpLinesSink`'s counts (:meth:`TcpLinesSink.statistics`)."""

    connected: bool
    """Whether the sink holds a connection now."""
    connects: int
    """Connections made so far."""
    batches: int
    """Writes that returned: batches sent whole."""
    bytes_sent: int
    """The bytes of those writes."""
    failures: int
    """Writes that raised (a connection not made, or broken during the write)."""


@final
class TcpLinesSink(Sink):
    """Sends each record as a line of JSON (as :class:`JsonlFileSink` writes it) over a
    TCP connection to ``host``:``port``.

    The connection is made by the first write, and made again by the write after a
    failure: a write that cannot connect raises :class:`SinkConnectionError` (or
    :class:`SinkTimeoutError` after ``connect_timeout`` seconds), one whose connection
    breaks raises :class:`SinkConnectionError`; the pipeline retries both (see
    :data:`~trio_sink.DEFAULT_RETRY`). Before each write the sink checks, without
    waiting, whether the peer closed the connection since the last one, and if so
    connects again first; anything the peer sends is read and dropped.

    Returning means the whole batch was handed to the operating system's TCP stack on
    an open connection; TCP has no answer that says the peer read it, so a peer that
    crashes (or closes) before reading loses what was in flight. At least once: a batch
    cut short by a broken connection (or by a cancellation, which drops the connection)
    may have reached the peer in part, ending with a cut line; the retry sends it whole
    again, on a new connection.
    """

    def __init__(
        self, host: str, port: int, *, name: str | None = None, connect_timeout: float = 10.0
    ) -> None:
        check_text("host", host)
        if check_int("port", port, 1) > 65535:
            raise ConfigError(f"port must be an int from 1 to 65535, got {port!r}")
        self.host = host
        self.port = port
        self.name = f"tcp:{host}:{port}" if name is None else check_text("name", name) or name
        self.connect_timeout: float = check_seconds(
            "connect_timeout", connect_timeout, positive=True
        ) or float(connect_timeout)
        self._lines = JsonLines()
        self._stream: trio.SocketStream | None = None
        self._connects = 0
        self._batches = 0
        self._bytes = 0
        self._failures = 0

    def statistics(self) -> TcpSinkStatistics:
        """The counts so far. Not a checkpoint."""
        return TcpSinkStatistics(
            connected=self._stream is not None,
            connects=self._connects,
            batches=self._batches,
            bytes_sent=self._bytes,
            failures=self._failures,
        )

    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    def _drop(self, why: str) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.socket.close()
            log.info('sink.disconnected sink=%s peer=%s reason="%s"', self.name, self._where(), why)

    async def _peer_left(self, stream: trio.SocketStream) -> bool:
        """Whether the peer closed or reset the connection; what it sent is dropped."""
        for _ in range(READS):
            if not _readable(stream.socket.fileno()):
                return False
            try:
                if not await stream.receive_some(READ):
                    return True
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return True
        return False

    async def _connection(self) -> trio.SocketStream:
        if self._stream is not None and await self._peer_left(self._stream):
            self._drop("the peer closed the connection")
        if self._stream is not None:
            return self._stream
        stream: trio.SocketStream | None = None
        with trio.move_on_after(self.connect_timeout):
            try:
                stream = await trio.open_tcp_stream(self.host, self.port)
            except OSError as exc:
                raise SinkConnectionError(
                    f"{self.name}: cannot connect to {self._where()}: {describe(exc)}"
                ) from exc
        if stream is None:
            raise SinkTimeoutError(
                f"{self.name}: no connection to {self._where()} within"
                f" {self.connect_timeout:g} s (connect_timeout)"
            )
        self._stream = stream
        self._connects += 1
        log.info("sink.connected sink=%s peer=%s", self.name, self._where())
        return stream

    async def write(self, batch: Sequence[Record]) -> None:
        """Send ``batch``, connecting first if there is no connection (or the peer
        closed it). A checkpoint. Cancelled, it raises :exc:`trio.Cancelled` and drops
        the connection: nothing was sent, or a first part of the batch."""
        data = self._lines.lines(batch)
        if not data:
            await trio.lowlevel.checkpoint()
            return
        try:
            stream = await self._connection()
        except (SinkConnectionError, SinkTimeoutError):
            self._failures += 1
            raise
        try:
            await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._failures += 1
            self._drop(describe(exc))
            raise SinkConnectionError(
                f"{self.name}: the connection to {self._where()} broke during a write:"
                f" {describe(exc.__cause__ or exc)}"
            ) from exc
        except BaseException:
            self._drop("the write was cancelled")  # the stream's state is unknown
            raise
        self._batches += 1
        self._bytes += len(data)

    async def aclose(self) -> None:
        """Close the connection, after reading what the peer sent (which would have the
        system reset the connection, and drop what is still in flight to the peer)."""
        stream = self._stream
        if stream is not None:
            with trio.CancelScope(shield=True):  # reads what is there: never waits
                await self._peer_left(stream)
            self._drop("closed")
        await trio.lowlevel.checkpoint()
