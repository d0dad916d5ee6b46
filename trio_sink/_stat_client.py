"""Reading the statistics endpoint: one ``GET /stats`` on a fresh connection.

A raw client on Trio's sockets, made for the server of :mod:`._stat_server` (one
request a connection, ``Content-Length`` given, closed after): ``trio-sink top`` then
needs nothing beyond the ``cli`` extra.
"""

from __future__ import annotations

from typing import Any

import msgspec
import trio

from ._exceptions import TrioSinkError
from ._stat_address import StatAddress

__all__ = ["MAX_RESPONSE_BYTES", "EndpointError", "EndpointGone", "read_statistics"]

MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""The most bytes an answer may take (a run with thousands of sinks fits)."""

_KEYS = ("state", "time", "received", "source", "sinks", "drain")


class EndpointGone(TrioSinkError, ConnectionError):
    """Nothing answers at the address: refused, reset, or closed before an answer."""


class EndpointError(TrioSinkError):
    """Something answers, but not with a run's statistics (not HTTP, not 200, not the
    JSON document of ``GET /stats``)."""


async def read_statistics(address: StatAddress) -> dict[str, Any]:
    """One reading of ``http://ADDRESS/stats``: the endpoint's JSON object.

    A checkpoint; bound it with a cancel scope. Raises :class:`EndpointGone` when
    nothing listens there (or the connection breaks), :class:`EndpointError` when the
    answer is not the statistics.
    """
    try:
        stream = await trio.open_tcp_stream(address.host, address.port)
    except OSError as exc:
        raise EndpointGone(f"cannot connect to {address}: {exc.strerror or exc}") from exc
    async with stream:
        request = (
            f"GET /stats HTTP/1.1\r\nHost: {address}\r\nAccept: application/json\r\n"
            "User-Agent: trio-sink-top\r\nConnection: close\r\n\r\n"
        )
        try:
            await stream.send_all(request.encode("latin-1"))
            answer = bytearray()
            while chunk := await stream.receive_some(65536):
                answer += chunk
                if len(answer) > MAX_RESPONSE_BYTES:
                    raise EndpointError(f"{address}: an answer over {MAX_RESPONSE_BYTES} bytes")
        except (OSError, trio.BrokenResourceError) as exc:
            raise EndpointGone(f"{address}: the connection broke: {exc}") from exc
    if not answer:
        raise EndpointGone(f"{address} closed the connection without an answer")
    return _document(address, bytes(answer))


def _document(address: StatAddress, answer: bytes) -> dict[str, Any]:
    head, sep, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    parts = status_line.split(" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise EndpointError(f"{address} does not answer HTTP: {status_line[:80]!r}")
    if parts[1] != "200":
        raise EndpointError(
            f"{address} answers {status_line[9:][:80]!r} to GET /stats:"
            " is it `trio-sink run --stat-addr`?"
        )
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            body = body[: int(value)]
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise EndpointError(f"{address}: GET /stats is not JSON ({exc})") from None
    if not isinstance(doc, dict) or any(k not in doc for k in _KEYS):
        raise EndpointError(f"{address}: GET /stats is not a run's statistics")
    if not isinstance(doc["sinks"], dict) or not all(
        isinstance(s, dict) for s in doc["sinks"].values()
    ):
        raise EndpointError(f"{address}: GET /stats is not a run's statistics")
    return doc
