"""The statistics endpoint of ``trio-sink run --stat-addr``: ``GET /stats`` as JSON.

A small HTTP/1.1 server on Trio, one request a connection (``Connection: close``). It
is an observer: whatever a client sends, or fails to send, is logged at DEBUG and the
connection dropped, and an error of the server itself is logged and ends only the
server, never the run. Each exchange is bounded in time (:data:`CLIENT_SECONDS`), in
size (:data:`MAX_REQUEST_BYTES`) and in number (:data:`MAX_CONNECTIONS` at once).

It answers anyone who can reach it: on loopback (the default) that is this machine's
users; bound to another address, the statistics (sink names and counts) are exposed to
that network, without authentication.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, final
from urllib.parse import urlsplit

import attrs
import msgspec
import trio

from ._checks import check_int, check_seconds
from ._exceptions import TrioSinkError
from ._stat_address import StatAddress
from ._stats import PipelineStatistics

__all__ = [
    "CLIENT_SECONDS",
    "MAX_CONNECTIONS",
    "MAX_REQUEST_BYTES",
    "StatBindError",
    "StatServer",
    "open_stat_server",
    "statistics_document",
]

log = logging.getLogger("trio_sink.stat")

MAX_REQUEST_BYTES = 8192
"""The most bytes a request's line and headers may take; more: 431, and closed."""
CLIENT_SECONDS = 10.0
"""The longest one exchange may take, from accept to the last byte of the answer."""
MAX_CONNECTIONS = 64
"""The most connections served at once; more are closed at once, unanswered."""

LINGER_SECONDS = 1.0
"""The longest the server waits, after its answer, for the client to close."""

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}


class StatBindError(TrioSinkError, OSError):
    """The statistics endpoint could not listen on the address asked for (in use, not
    this machine's, not permitted). Nothing was started."""


def statistics_document(stats: PipelineStatistics, unix_time: float) -> dict[str, Any]:
    """``stats`` as the endpoint's JSON object: every field of the snapshot, nested as
    it is, plus ``unix_time`` (when it was taken, in seconds since the epoch) and the
    totals of all sinks ``delivered`` (a record delivered to two sinks counts twice),
    ``undelivered`` and ``pending`` (each sink has ``pending`` too). ``time`` and the
    drain's times are on the run's Trio clock."""
    return {
        "state": stats.state,
        "time": stats.time,
        "unix_time": unix_time,
        "received": stats.received,
        "delivered": stats.delivered,
        "undelivered": stats.undelivered,
        "pending": stats.pending,
        "source": attrs.asdict(stats.source),
        "sinks": {
            name: {
                **attrs.asdict(s, recurse=False),
                "undelivered_by_reason": dict(s.undelivered_by_reason),
                "pending": s.pending,
            }
            for name, s in stats.sinks.items()
        },
        "discarded": dict(stats.discarded),
        "drain": None if stats.drain is None else attrs.asdict(stats.drain),
    }


class _Refused(Exception):
    """A request not to answer with statistics: its status, and why (for the log)."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


@final
class StatServer:
    """Listening sockets that :meth:`serve` answers on; see :func:`open_stat_server`."""

    def __init__(
        self,
        listeners: list[trio.SocketListener],
        *,
        client_seconds: float = CLIENT_SECONDS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.listeners = listeners
        # A per-connection bound, which no caller's cancel scope could express.
        self.client_seconds = client_seconds
        self.max_connections = max_connections
        self._active = 0
        self._scope = trio.CancelScope()

    @property
    def addresses(self) -> list[StatAddress]:
        """Where it listens (the port chosen, when 0 was asked for)."""
        out = []
        for listener in self.listeners:
            host, port = listener.socket.getsockname()[:2]
            out.append(StatAddress(host, port))
        return out

    async def serve(self, statistics: Callable[[], PipelineStatistics]) -> None:
        """Answer ``GET /stats`` with ``statistics()`` until :meth:`stop` (or
        cancellation). Never raises but ``Cancelled``: an error of the server is
        logged, and ends the server alone."""

        async def exchange(stream: trio.SocketStream) -> None:
            await self._exchange(stream, statistics)

        with self._scope:
            try:
                await trio.serve_listeners(exchange, self.listeners)
            except Exception:
                log.exception("stat.failed: the statistics endpoint stopped; the run goes on")

    def stop(self) -> None:
        """End :meth:`serve`; sync, and harmless when it is not running."""
        self._scope.cancel()

    async def _exchange(
        self, stream: trio.SocketStream, statistics: Callable[[], PipelineStatistics]
    ) -> None:
        peer = _peer(stream)
        if self._active >= self.max_connections:
            log.debug("stat.client_dropped peer=%s reason=too many connections", peer)
            await trio.aclose_forcefully(stream)
            return
        self._active += 1
        try:
            with trio.move_on_after(self.client_seconds) as scope:
                if await self._answer(stream, statistics, peer):
                    await _linger(stream)
            if scope.cancelled_caught:
                log.debug("stat.client_dropped peer=%s reason=too slow", peer)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.debug("stat.client_dropped peer=%s reason=%r", peer, exc)
        except Exception:  # a bug here must not reach serve_listeners' nursery
            log.debug("stat.client_dropped peer=%s reason=error", peer, exc_info=True)
        finally:
            self._active -= 1
            await trio.aclose_forcefully(stream)

    async def _answer(
        self,
        stream: trio.SocketStream,
        statistics: Callable[[], PipelineStatistics],
        peer: str,
    ) -> bool:
        """Answer the request; False when the client left before the end of it."""
        try:
            head = await _read_head(stream)
            method, path = _parse_head(head)
            if path != "/stats":
                raise _Refused(404, f"no such path: {path[:80]!r}")
            if method not in ("GET", "HEAD"):
                raise _Refused(405, f"method {method}")
        except _Refused as refused:
            log.debug(
                "stat.client_refused peer=%s status=%d reason=%s", peer, refused.status, refused
            )
            if refused.status:
                text = f"{refused.status} {_REASONS[refused.status]}: {refused}; try GET /stats\n"
                await stream.send_all(_response(refused.status, "text/plain", text.encode()))
            return bool(refused.status)
        try:
            body = msgspec.json.encode(statistics_document(statistics(), time.time())) + b"\n"
        except Exception:
            log.warning("stat.statistics_failed", exc_info=True)
            await stream.send_all(_response(500, "text/plain", b"statistics failed\n"))
            return True
        await stream.send_all(_response(200, "application/json", body, head=method == "HEAD"))
        return True


async def _read_head(stream: trio.SocketStream) -> bytes:
    """The request's line and headers, up to the blank line; the rest is never read."""
    data = bytearray()
    while True:
        end = _end_of_head(data)
        if end >= 0:
            return bytes(data[:end])
        if len(data) > MAX_REQUEST_BYTES:
            raise _Refused(431, f"more than {MAX_REQUEST_BYTES} bytes without a blank line")
        chunk = await stream.receive_some(MAX_REQUEST_BYTES + 1)
        if not chunk:
            raise _Refused(0, "closed before the end of its request")  # 0: no answer
        data += chunk


async def _linger(stream: trio.SocketStream) -> None:
    """Close the sending side, then read what the client still sends (a body, the
    rest of a long header) until it closes: closing a socket with unread bytes
    resets the connection, and the client could lose the answer (RFC 9112, 9.6)."""
    await stream.send_eof()
    unread = 0
    with trio.move_on_after(LINGER_SECONDS):
        while unread <= MAX_REQUEST_BYTES * 8 and (chunk := await stream.receive_some()):
            unread += len(chunk)


def _end_of_head(data: bytearray) -> int:
    ends = [i for i in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if i >= 0]
    return min(ends, default=-1)


def _parse_head(head: bytes) -> tuple[str, str]:
    """The method and the path of a request line and headers (RFC 9112)."""
    lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise _Refused(400, f"not a request line: {lines[0][:80]!r}")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise _Refused(400, f"not HTTP/1.x: {version[:20]!r}")
    for line in lines[1:]:
        name, colon, _ = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise _Refused(400, f"not a header: {line[:80]!r}")
    if target.startswith(("http://", "https://")):
        return method, urlsplit(target).path or "/"
    if not target.startswith("/"):
        raise _Refused(400, f"not a path: {target[:80]!r}")
    return method, target.partition("?")[0]


def _response(status: int, content_type: str, body: bytes, *, head: bool = False) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-store",
        "Connection: close",
    ]
    if status == 405:
        lines.append("Allow: GET, HEAD")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else body)


def _peer(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "?"
    return str(StatAddress(host, port))


@contextlib.asynccontextmanager
async def open_stat_server(
    address: StatAddress,
    *,
    client_seconds: float = CLIENT_SECONDS,
    max_connections: int = MAX_CONNECTIONS,
) -> AsyncIterator[StatServer]:
    """Listen on ``address`` and yield the :class:`StatServer`; close it on exit.

    It only listens: call :meth:`StatServer.serve` in a task to answer. Logs
    ``stat.listening addr=HOST:PORT`` for each socket (with the port chosen when 0 was
    asked for: then only the first address the host resolves to is kept, so that
    there is one port). Raises :class:`StatBindError` when it cannot listen.
    """
    check_seconds("client_seconds", client_seconds, positive=True)
    check_int("max_connections", max_connections, 1)
    try:
        listeners = await trio.open_tcp_listeners(address.port, host=address.host)
    except OSError as exc:
        error = StatBindError(f"cannot listen on {address} for statistics: {exc.strerror or exc}")
        error.errno = exc.errno
        raise error from exc
    if address.port == 0:
        for extra in listeners[1:]:
            await extra.aclose()
        listeners = listeners[:1]
    server = StatServer(listeners, client_seconds=client_seconds, max_connections=max_connections)
    try:
        for where in server.addresses:
            log.info("stat.listening addr=%s", where)
        yield server
    finally:
        server.stop()
        for listener in listeners:
            await trio.aclose_forcefully(listener)
