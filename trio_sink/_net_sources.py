"""Network sources: lines from TCP clients, syslog messages over UDP or TCP.

Neither can acknowledge: TCP and UDP give a sender no way to learn that what it sent
was delivered downstream. What a Stop or a crash cuts short is told in
``docs/network_sources.md``; the counts are in each source's ``statistics()``.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncGenerator
from functools import partial
from typing import Any, Generic, Literal, TypeVar, final

import trio

from ._checks import check_choice, check_int, check_text
from ._exceptions import ConfigError
from ._framing import Frame, LineFramer, SyslogFramer
from ._net_server import (
    Counts,
    DatagramServer,
    NetSourceStatistics,
    Server,
    StreamServer,
    bind,
)
from ._record import Undecodable
from ._source import Source
from ._syslog import SyslogFormatError, parse_syslog, unparsed_fields

__all__ = ["SyslogSource", "TcpLinesSource"]

log = logging.getLogger("trio_sink.sources")

T = TypeVar("T")

MAX_BYTES = 64 * 1024
"""The default size limit of a line or message."""


class _NetSource(Source[T], Generic[T]):
    """A source that serves sockets bound when it opens (or when iterated, if it was
    not opened) and closed when the iteration ends or the source is closed."""

    def __init__(self, host: str, port: int, name: str) -> None:
        check_text("host", host)
        if check_int("port", port, 0) > 65535:
            raise ConfigError(f"port must be an int from 0 to 65535, got {port!r}")
        self.host = host
        self.port = port
        """The port: the one given, and once listening, the one bound (the port the
        system chose, for port 0)."""
        self.name = check_text("name", name) or name
        self.listening = trio.Event()
        """Set once the sockets are bound (a new, unset Event once they are closed)."""
        self._requested = port
        self._server: Server | None = None
        self._counts = Counts()
        self._at_open = (0, 0)  # items_read and lost_items when the sockets were bound

    async def _bind(self) -> Server:
        raise NotImplementedError

    def _convert(self, frames: list[Frame]) -> list[T]:
        raise NotImplementedError

    async def open(self) -> None:
        """Bind the sockets (listening, for TCP), unless they are bound already. A
        checkpoint: it resolves ``host``. Raises ``OSError`` if they cannot be bound
        (the pipeline's run then fails with :class:`~trio_sink.SourceError`)."""
        if self._server is not None:
            await trio.lowlevel.checkpoint()
            return
        server = await self._bind()
        self._server = server
        self._at_open = (self._counts.items_read, self._counts.lost_items)
        self.port = server.port
        self.listening.set()
        log.info("source.listening name=%s host=%s port=%d", self.name, self.host, self.port)

    async def aclose(self) -> None:
        """Close every socket (clients still connected are hung up on). A checkpoint;
        cancelled, the sockets are closed all the same."""
        self._close()
        await trio.lowlevel.checkpoint()

    def _close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        lost_bytes = server.close()
        self._counts.lost_bytes += lost_bytes
        self.listening = trio.Event()
        items_read = self._counts.items_read - self._at_open[0]
        lost_items = self._counts.lost_items - self._at_open[1]
        log.log(
            logging.WARNING if lost_items or lost_bytes else logging.INFO,
            "source.closed name=%s items_read=%d lost_items=%d lost_bytes=%d",
            self.name,
            items_read,
            lost_items,
            lost_bytes,
        )

    async def __aiter__(self) -> AsyncGenerator[T, None]:
        if self._server is None:
            await self.open()
        server = self._server
        assert server is not None
        counts = self._counts
        items: list[T] = []
        yielded = 0
        try:
            while True:
                frames = server.sweep()
                if not frames:
                    # Nothing read at all: wait for the sockets. Only part of a line or
                    # message read: read on after a checkpoint (a sender of endless
                    # bytes without a newline must not hold the event loop).
                    if server.idle:
                        await server.wait()
                    else:
                        await trio.lowlevel.checkpoint()
                    continue
                items = self._convert(frames)
                counts.items_read += len(items)
                yielded = 0
                for item in items:
                    yielded += 1
                    yield item
        finally:
            counts.lost_items += len(items) - yielded
            self._close()

    def statistics(self) -> NetSourceStatistics:
        """The counts so far. Sync, never a checkpoint."""
        counts = self._counts
        server = self._server
        return NetSourceStatistics(
            connections=0 if server is None else server.connections(),
            accepted=counts.accepted,
            bytes_read=counts.bytes_read,
            items_read=counts.items_read,
            undecodable=counts.undecodable,
            over_long=counts.over_long,
            not_syslog=counts.not_syslog,
            lost_items=counts.lost_items,
            lost_bytes=counts.lost_bytes,
        )


@final
class TcpLinesSource(_NetSource["str | Undecodable"]):
    """The lines that TCP clients send, from any number of connections at once.

    Listens on ``host``:``port`` from :meth:`open` (port 0: any free port; read
    :attr:`port` once :attr:`listening` is set). Each line is a ``str``, decoded as
    UTF-8, without its ``\\n`` (nor a ``\\r`` before it); a line that is not valid UTF-8
    is an :class:`~trio_sink.Undecodable` (it goes to ``miss``, its bytes kept), and so is
    a line over ``max_line_bytes``: its first ``max_line_bytes`` bytes, the rest dropped.
    A client's last line without a ``\\n`` is yielded when it closes the connection.

    Connections are read only while the pipeline pulls: when its buffers are full,
    nothing is read, and TCP's flow control holds the clients back. Lines of different
    connections interleave; the lines of one connection keep their order.

    No acknowledgement: at a Stop, the lines read and not yet yielded (at most what one
    sweep of the sockets read, 64 KiB) and the unfinished lines of connections still open are
    lost, and clients still connected are hung up on at the end of the run. A crash
    loses those and everything in the pipeline. See ``statistics()`` for the counts.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_line_bytes: int = MAX_BYTES,
        name: str = "tcp",
    ) -> None:
        super().__init__(host, port, name)
        self.max_line_bytes = check_int("max_line_bytes", max_line_bytes, 1)

    async def _bind(self) -> Server:
        listeners = await bind(self.host, self._requested, socket.SOCK_STREAM)
        framer = partial(LineFramer, self.max_line_bytes, self._counts)
        return StreamServer(listeners, framer, self._counts)

    def _convert(self, frames: list[Frame]) -> list[str | Undecodable]:
        return [_text(frame, self._counts) for frame in frames]


def _text(frame: Frame, counts: Counts) -> str | Undecodable:
    """A frame as text, or as an Undecodable (counted)."""
    if isinstance(frame, bytes):
        try:
            return frame.decode()
        except UnicodeDecodeError as exc:
            frame = Undecodable(frame, "utf-8", str(exc))
    counts.undecodable += 1
    return frame


@final
class SyslogSource(_NetSource["dict[str, Any] | Undecodable"]):
    """Syslog messages received over UDP or TCP, parsed (RFC 5424 or RFC 3164).

    Each message is a dict of its fields, as :func:`parse_syslog` returns it (``raw`` is
    the message as text, without its framing nor trailing ``\\n``, ``\\r`` or NUL
    bytes). With ``protocol="udp"`` (the default), a datagram is a message; with
    ``"tcp"``, each message of a connection is framed either way RFC 6587 allows:
    ``LEN SP MSG`` (octet counting) or ``MSG`` ended by ``\\n``.

    An :class:`~trio_sink.Undecodable` (it goes to ``miss``, its bytes kept) stands for a
    message that is not valid UTF-8, one over ``max_message_bytes`` (its first
    ``max_message_bytes`` bytes), a TCP message cut short by the end of its connection,
    and, with ``strict`` (the default), a text that is no syslog message. With
    ``strict=False`` such a text is a dict whose ``format`` is None, with ``message``
    and ``raw`` the text, other fields None and ``structured_data`` empty.

    Read only while the pipeline pulls: with TCP, clients are held back by flow control;
    with UDP, datagrams wait in the socket's receive buffer, and once it is full the
    system drops them, with no signal to the sender and no count here.

    No acknowledgement: at a Stop, the messages read and not yet yielded (at most what
    one sweep of the sockets read, about 64 KiB) are lost, and so are unfinished TCP
    messages; a crash loses those and everything in the pipeline. See ``statistics()``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        protocol: Literal["udp", "tcp"] = "udp",
        strict: bool = True,
        max_message_bytes: int = MAX_BYTES,
        name: str = "syslog",
    ) -> None:
        super().__init__(host, port, name)
        check_choice("protocol", protocol, ("udp", "tcp"))
        self.protocol = protocol
        if not isinstance(strict, bool):
            raise ConfigError(f"strict must be a bool, got {strict!r}")
        self.strict = strict
        self.max_message_bytes = check_int("max_message_bytes", max_message_bytes, 1)

    async def _bind(self) -> Server:
        if self.protocol == "udp":
            socks = await bind(self.host, self._requested, socket.SOCK_DGRAM)
            return DatagramServer(socks, self.max_message_bytes, self._counts)
        listeners = await bind(self.host, self._requested, socket.SOCK_STREAM)
        framer = partial(SyslogFramer, self.max_message_bytes, self._counts)
        return StreamServer(listeners, framer, self._counts)

    def _convert(self, frames: list[Frame]) -> list[dict[str, Any] | Undecodable]:
        return [self._fields(frame) for frame in frames]

    def _fields(self, frame: Frame) -> dict[str, Any] | Undecodable:
        counts = self._counts
        decoded = _text(frame, counts)
        if not isinstance(decoded, str):
            return decoded
        text = decoded.rstrip("\r\n\x00")
        try:
            return parse_syslog(text)
        except SyslogFormatError as exc:
            counts.not_syslog += 1
            if not self.strict:
                return unparsed_fields(text)
            counts.undecodable += 1
            data = frame if isinstance(frame, bytes) else frame.data
            return Undecodable(data, "utf-8", f"not a syslog message: {exc.reason}")
