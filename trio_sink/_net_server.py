"""Listening sockets read by the task that pulls from the source, in sweeps.

A source's async iterator runs in the pipeline's pull task, one item at a time, and it
cannot keep a nursery open across its yields: a yield inside a nursery (or any cancel
scope) breaks Trio's scope stack when the consumer is cancelled between two pulls,
which is what a Stop does. So there are no reader tasks. A pull that finds nothing
left to yield makes a *sweep*: it accepts the connections waiting, and reads what the
sockets already hold, without waiting, up to :data:`SWEEP_BYTES`. Only when a sweep
finds nothing does it wait, until any socket is readable. Reads stop when pulls stop:
that is the backpressure, with one sweep's items at most held in between (no queue).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import selectors
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Protocol, final

import attrs
import trio

from ._framing import Frame
from ._record import Undecodable

__all__ = [
    "CHUNK",
    "SWEEP_BYTES",
    "Counts",
    "DatagramServer",
    "NetSourceStatistics",
    "Server",
    "StreamServer",
    "bind",
]

log = logging.getLogger("trio_sink.sources")

CHUNK = 64 * 1024
"""The most bytes one read takes from one socket (a whole datagram fits)."""
SWEEP_BYTES = 64 * 1024
"""The most bytes one sweep reads from TCP connections (UDP: it stops reading after
them, a datagram is read whole): what one sweep holds, and so what a Stop can cut
short, stays small."""
ACCEPT_PAUSE = 0.1
"""Seconds without accepting after the process ran out of file descriptors or memory."""
MAX_DATAGRAMS = 1024
"""The most datagrams one sweep takes (empty ones count towards no byte limit)."""
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_CLIENT_GONE = {
    getattr(errno, name)
    for name in (
        # An accept() error that concerns one client, not the listener (Trio's list).
        "EPERM",
        "ECONNABORTED",
        "EPROTO",
        "ENETDOWN",
        "ENOPROTOOPT",
        "EHOSTDOWN",
        "ENONET",
        "EHOSTUNREACH",
        "EOPNOTSUPP",
        "ENETUNREACH",
        "ENOSR",
        "ESOCKTNOSUPPORT",
        "EPROTONOSUPPORT",
        "ETIMEDOUT",
        "ECONNRESET",
    )
    if hasattr(errno, name)
}


class Counts:
    """What a network source has read and yielded so far (see NetSourceStatistics)."""

    def __init__(self) -> None:
        self.accepted = 0
        self.bytes_read = 0
        self.items_read = 0
        self.undecodable = 0
        self.over_long = 0
        self.not_syslog = 0
        self.lost_items = 0
        self.lost_bytes = 0


@final
@attrs.frozen
class NetSourceStatistics:
    """A snapshot of a network source's counts, from ``statistics()``. They add up
    over the runs the source served."""

    connections: int
    """TCP connections open now (0 for UDP)."""
    accepted: int
    """TCP connections accepted so far."""
    bytes_read: int
    """Bytes read from the sockets (framing included)."""
    items_read: int
    """Items cut from those bytes (lines, messages): decoded, undecodable and over-long."""
    undecodable: int
    """Of those, the items made :class:`~trio_sink.Undecodable` (they go to ``miss``):
    invalid UTF-8, over the size limit, a TCP syslog message cut short by its
    connection's end, and (with ``strict``) not syslog."""
    over_long: int
    """Of those, the items over the size limit (``max_line_bytes``,
    ``max_message_bytes``)."""
    not_syslog: int
    """Syslog texts that were neither RFC 5424 nor RFC 3164 (0 for other sources)."""
    lost_items: int
    """Items read, never yielded: the pull ended (a Stop) while they waited in the
    source's hands. They are in no report."""
    lost_bytes: int
    """Bytes of unfinished lines or messages of the connections the source closed
    itself, at the end of an iteration. They are in no report."""


class Server(Protocol):
    """Bound sockets, read in sweeps."""

    port: int
    """The port of the first socket."""

    def sweep(self) -> list[Frame]:
        """Frames read without waiting; sync, never a checkpoint."""
        ...

    @property
    def idle(self) -> bool:
        """Whether the last sweep read nothing and accepted nothing."""
        ...

    async def wait(self) -> None:
        """Wait until a sweep may find something. Cancelled, nothing was read."""
        ...

    def connections(self) -> int: ...

    def close(self) -> int:
        """Close every socket; the bytes of unfinished frames dropped."""
        ...


async def bind(host: str, port: int, kind: socket.SocketKind) -> list[socket.socket]:
    """Non-blocking sockets bound to every address of ``host`` (listening, for
    ``SOCK_STREAM``). With port 0, all of them get the port the first one got."""
    infos = await trio.socket.getaddrinfo(host, port, type=kind, flags=socket.AI_PASSIVE)
    socks: list[socket.socket] = []
    seen: set[object] = set()
    try:
        for family, type_, proto, _, address in infos:
            if address in seen:
                continue
            seen.add(address)
            sock = socket.socket(family, type_, proto)
            socks.append(sock)
            sock.setblocking(False)
            if kind == socket.SOCK_STREAM and sys.platform != "win32":
                # As Trio does: a restart can listen at once, past the last run's
                # connections in TIME_WAIT (on Windows it would let two share a port).
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(socks) > 1:
                address = (address[0], socks[0].getsockname()[1], *address[2:])
            sock.bind(address)
            if kind == socket.SOCK_STREAM:
                sock.listen(socket.SOMAXCONN)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def close_socket(sock: socket.socket) -> None:
    """Close ``sock``, waking any task that waits on it."""
    with contextlib.suppress(RuntimeError):  # outside Trio: nobody waits
        trio.lowlevel.notify_closing(sock)
    sock.close()


async def _wake(sock: socket.socket, scope: trio.CancelScope) -> None:
    await trio.lowlevel.wait_readable(sock)
    scope.cancel()


async def wait_any(socks: Sequence[socket.socket], deadline: float = math.inf) -> None:
    """Wait until one of ``socks`` is readable, or ``deadline`` passes."""
    if len(socks) == 1 and deadline == math.inf:
        await trio.lowlevel.wait_readable(socks[0])
        return
    with trio.move_on_at(deadline):
        async with trio.open_nursery() as nursery:
            for sock in socks:
                nursery.start_soon(_wake, sock, nursery.cancel_scope)
            if not socks:
                await trio.sleep_forever()


class Framer(Protocol):
    """What cuts a connection's bytes into frames (see ``_framing``)."""

    @property
    def pending(self) -> int: ...

    def feed(self, data: bytes) -> Sequence[Frame]: ...

    def end(self) -> Sequence[Frame]: ...


@attrs.define(eq=False)
class _Connection:
    sock: socket.socket
    peer: str
    framer: Framer


def _peer(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


class _Readiness:
    """Which sockets may have something to read.

    Where the system has an epoll or kqueue selector, it is asked, and waited on as one
    file descriptor: a sweep reads only the sockets that are ready, and a wait is one
    task, however many connections there are. Elsewhere (Windows), every socket is tried
    in turn, and a wait has a task per socket.
    """

    def __init__(self) -> None:
        selector = selectors.DefaultSelector()
        fileno = getattr(selector, "fileno", None)
        self._selector: selectors.BaseSelector | None = selector
        self._fd: int = -1
        if fileno is None:  # a select() or poll() selector: nothing to wait on
            selector.close()
            self._selector = None
        else:
            self._fd = fileno()
        self._all: dict[socket.socket, object] = {}
        self._turn = 0

    def add(self, sock: socket.socket, data: object) -> None:
        self._all[sock] = data
        if self._selector is not None:
            self._selector.register(sock, selectors.EVENT_READ, data)

    def remove(self, sock: socket.socket) -> None:
        del self._all[sock]
        if self._selector is not None:
            self._selector.unregister(sock)

    def ready(self) -> list[object]:
        """The data of the sockets to read, in the order to read them."""
        if self._selector is not None:
            return [key.data for key, _ in self._selector.select(0)]
        items = list(self._all.values())
        self._turn += 1  # each sweep starts one further on: a sweep cut short is fair
        turn = self._turn % len(items) if items else 0
        return items[turn:] + items[:turn]

    async def wait(self, deadline: float) -> None:
        """Until a socket is readable, or ``deadline``."""
        if self._selector is not None:
            with trio.move_on_at(deadline):
                await trio.lowlevel.wait_readable(self._fd)
        else:
            await wait_any(list(self._all), deadline)

    def close(self) -> None:
        for sock in self._all:
            close_socket(sock)
        self._all.clear()
        if self._selector is not None:
            self._selector.close()


class StreamServer:
    """TCP: listening sockets and the connections they accepted, each with its framer."""

    def __init__(
        self, listeners: list[socket.socket], framer: Callable[[], Framer], counts: Counts
    ) -> None:
        self.listeners = listeners
        self.port: int = listeners[0].getsockname()[1]
        self.new_framer = framer
        self.counts = counts
        self.idle = False
        self._open: list[_Connection] = []
        self._readiness = _Readiness()
        self._accept_at = -math.inf  # while paused: when to accept again
        for listener in listeners:
            self._readiness.add(listener, listener)

    def connections(self) -> int:
        return len(self._open)

    def sweep(self) -> list[Frame]:
        if self._accept_at != -math.inf and trio.current_time() >= self._accept_at:
            self._accept_at = -math.inf
            for listener in self.listeners:
                self._readiness.add(listener, listener)
        frames: list[Frame] = []
        got = 0
        accepted = False
        ended: list[_Connection] = []
        for item in self._readiness.ready():
            if not isinstance(item, _Connection):
                if self._accept_at == -math.inf:  # not paused by an earlier listener
                    accepted |= self._accept(item)  # type: ignore[arg-type]
                continue
            try:
                data = item.sock.recv(min(CHUNK, SWEEP_BYTES - got))
            except BlockingIOError:
                continue
            except OSError as exc:  # a reset: the connection is over
                log.info("source.connection_error peer=%s error=%s", item.peer, exc)
                data = b""
            if data:
                got += len(data)
                frames += item.framer.feed(data)
                if got >= SWEEP_BYTES:
                    break
            else:
                frames += item.framer.end()
                ended.append(item)
        for conn in ended:
            self._open.remove(conn)
            self._readiness.remove(conn.sock)
            close_socket(conn.sock)
            log.debug("source.connection_closed peer=%s", conn.peer)
        self.counts.bytes_read += got
        self.idle = not (got or ended or accepted)
        return frames

    def _accept(self, listener: socket.socket) -> bool:
        """Accept every connection waiting; whether there was one."""
        accepted = False
        while True:
            try:
                sock, address = listener.accept()
            except BlockingIOError:
                return accepted
            except OSError as exc:
                if exc.errno in _CLIENT_GONE:
                    continue
                if exc.errno not in _OUT_OF_RESOURCES:
                    raise
                self._accept_at = trio.current_time() + ACCEPT_PAUSE
                for paused in self.listeners:
                    self._readiness.remove(paused)
                log.warning("source.accept_paused seconds=%s error=%s", ACCEPT_PAUSE, exc)
                return accepted
            sock.setblocking(False)
            conn = _Connection(sock, _peer(address), self.new_framer())
            self._open.append(conn)
            self._readiness.add(sock, conn)
            self.counts.accepted += 1
            accepted = True

    async def wait(self) -> None:
        await self._readiness.wait(self._accept_at if self._accept_at != -math.inf else math.inf)

    def close(self) -> int:
        pending = sum(conn.framer.pending for conn in self._open)
        self._open.clear()
        self._readiness.close()
        if self._accept_at != -math.inf:  # paused: the listeners are not in _readiness
            for listener in self.listeners:
                close_socket(listener)
        return pending


class DatagramServer:
    """UDP: bound sockets; one frame a datagram."""

    def __init__(self, socks: list[socket.socket], max_bytes: int, counts: Counts) -> None:
        self.socks = socks
        self.port: int = socks[0].getsockname()[1]
        self.max_bytes = max_bytes
        self.counts = counts
        self.idle = False
        self._reason = (
            f"datagram longer than {max_bytes} bytes: its first {max_bytes} bytes are kept,"
            " the rest dropped"
        )

    def connections(self) -> int:
        return 0

    def sweep(self) -> list[Frame]:
        frames: list[Frame] = []
        got = 0
        limit = self.max_bytes
        for sock in self.socks:
            while got < SWEEP_BYTES and len(frames) < MAX_DATAGRAMS:
                try:
                    data = sock.recv(CHUNK)
                except (BlockingIOError, ConnectionError):
                    # ConnectionError: an ICMP error some systems report on a UDP socket
                    break
                got += len(data)
                if len(data) > limit:
                    self.counts.over_long += 1
                    frames.append(Undecodable(data[:limit], "utf-8", self._reason))
                else:
                    frames.append(data)
        self.counts.bytes_read += got
        self.idle = not frames
        return frames

    async def wait(self) -> None:
        await wait_any(self.socks)

    def close(self) -> int:
        for sock in self.socks:
            close_socket(sock)
        return 0
