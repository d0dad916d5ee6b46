"""HttpSink: each batch POSTed to an HTTP endpoint, with httpx (extra ``trio_sink[http]``).

httpx is imported when a sink is made, never with the package: without it, making an
:class:`HttpSink` raises :class:`ConfigError` saying what to install.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, final

import trio

from ._checks import check_choice, check_seconds, check_text
from ._exceptions import ConfigError, describe
from ._json_lines import JsonLines
from ._record import Record
from ._retry import PermanentError
from ._sink import Sink
from ._sink_errors import HttpRejectedError, SinkConnectionError, SinkTimeoutError

if TYPE_CHECKING:
    import httpx

__all__ = ["HttpSink"]

log = logging.getLogger("trio_sink.sink")

CONTENT_TYPES = {"jsonl": "application/x-ndjson", "json": "application/json"}
RETRIED = frozenset({408, 429})
"""The 4xx answers that say "later", not "never": retried, like a 5xx."""
EXCERPT = 200
"""The most characters of an answer's body in an error."""
CLOSE_GRACE = 5.0
"""The longest :meth:`HttpSink.aclose` waits for the client's connections to close."""


def _require_httpx() -> None:
    try:
        import httpx  # noqa: F401 - imported to find out whether it can be
    except ImportError as exc:
        raise ConfigError(
            "HttpSink needs httpx, which is not installed: pip install 'trio_sink[http]'"
        ) from exc


def _shown(url: httpx.URL) -> str:
    """The URL as messages and the default name show it: without its user, password or
    query, which may hold secrets."""
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"


def _excerpt(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= EXCERPT else text[: EXCERPT - 3] + "..."


@final
class HttpSink(Sink):
    """POSTs each batch to ``url``: as JSON lines (``format="jsonl"``, content type
    ``application/x-ndjson``) or as one JSON array (``format="json"``,
    ``application/json``), each record as :class:`JsonlFileSink` writes it.

    - A 2xx answer: the batch is delivered.
    - A 5xx, 429 or 408 answer, or no answer (the connection failed or broke):
      :class:`SinkConnectionError`; no answer within ``timeout`` seconds (the whole
      request, connecting included): :class:`SinkTimeoutError`. The pipeline retries
      both (see :data:`~trio_sink.DEFAULT_RETRY`).
    - Any other answer (a 4xx, a redirect, which is not followed):
      :class:`HttpRejectedError`, a :class:`PermanentError` with the status and the
      start of the body: the batch is reported, never retried.

    At least once: a request that failed or was cancelled after it was sent may have
    been taken by the endpoint all the same, and a retry sends it again (a record's
    ``id`` tells a repeat within one run).

    ``headers`` are sent with every request (they may replace the content type).
    ``client``: an ``httpx.AsyncClient`` to send with (its own settings apply, and
    ``timeout`` bounds each request as well); it stays open at :meth:`aclose`. Without
    one, the sink makes its own at the first write, and closes it at :meth:`aclose`.
    httpx runs on Trio through anyio.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        format: Literal["jsonl", "json"] = "jsonl",
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        _require_httpx()
        import httpx

        check_text("url", url)
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ConfigError(f"url must be an http:// or https:// URL, got {url!r}") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigError(f"url must be an http:// or https:// URL with a host, got {url!r}")
        check_choice("format", format, tuple(CONTENT_TYPES))
        if headers is not None and (
            not isinstance(headers, Mapping)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
        ):
            raise ConfigError(f"headers must be a mapping of str to str, or None; got {headers!r}")
        if client is not None and not isinstance(client, httpx.AsyncClient):
            raise ConfigError(f"client must be an httpx.AsyncClient or None, got {client!r}")
        self.url = url
        self._shown = _shown(parsed)
        self.name = self._shown if name is None else check_text("name", name) or name
        self.format = format
        self.timeout: float = check_seconds("timeout", timeout, positive=True) or float(timeout)
        self.headers = httpx.Headers({"Content-Type": CONTENT_TYPES[format]})
        """The headers of every request, the content type included."""
        self.headers.update(headers or {})
        self._lines = JsonLines()
        self._client = client
        self._owns_client = client is None

    def _body(self, batch: Sequence[Record]) -> bytes:
        return self._lines.lines(batch) if self.format == "jsonl" else self._lines.array(batch)

    async def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            # Made off the loop: loading the certificates takes a moment.
            self._client = await trio.to_thread.run_sync(
                lambda: httpx.AsyncClient(timeout=self.timeout)
            )
        return self._client

    async def _post(self, body: bytes) -> httpx.Response | None:
        """The answer, or None after ``timeout`` seconds without one."""
        import httpx

        client = await self._get_client()
        with trio.move_on_after(self.timeout):
            try:
                request = client.build_request("POST", self.url, headers=self.headers)
                # The body as a stream that is no async generator: a request cancelled
                # while httpx sends it leaves no generator for the collector to finalize.
                request.stream = _body_type()(body)
                request.headers["Content-Length"] = str(len(body))
                return await client.send(request)
            except httpx.TimeoutException:
                return None
            except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
                raise SinkConnectionError(
                    f"{self.name}: no answer from {self._shown}: {describe(exc)}"
                ) from exc
            except httpx.TransportError as exc:  # an unsupported protocol, a bad header
                raise PermanentError(
                    f"{self.name}: cannot send to {self._shown}: {describe(exc)}"
                ) from exc
        return None

    async def write(self, batch: Sequence[Record]) -> None:
        """POST ``batch`` (nothing for an empty one). A checkpoint. Cancelled, it raises
        :exc:`trio.Cancelled`; the request, if it was sent, may have been taken."""
        if not batch:
            await trio.lowlevel.checkpoint()
            return
        response = await self._post(self._body(batch))
        if response is None:
            raise SinkTimeoutError(
                f"{self.name}: no answer from {self._shown} within {self.timeout:g} s (timeout)"
            )
        status = response.status_code
        if 200 <= status < 300:
            return
        body = _excerpt(response.text)
        said = f"{self.name}: {self._shown} answered {status} {response.reason_phrase}"
        if status >= 500 or status in RETRIED:
            raise SinkConnectionError(f"{said}: {body}" if body else said, status=status)
        raise HttpRejectedError(f"{said}: {body}" if body else said, status=status, body=body)

    async def aclose(self) -> None:
        """Close the client the sink made (not one it was given). Closing takes no time
        on the network but for TLS connections, each given a moment to say goodbye."""
        client = self._client
        if client is not None and self._owns_client:
            self._client = None
            with trio.move_on_after(CLOSE_GRACE, shield=True):
                await client.aclose()
        await trio.lowlevel.checkpoint()


@functools.cache
def _body_type() -> type[Any]:
    """The class of a request body of one piece: an ``httpx.AsyncByteStream`` made of
    plain methods (httpx is imported only once a sink is used)."""
    import httpx

    class Body(httpx.AsyncByteStream):
        def __init__(self, data: bytes) -> None:
            self.data = data
            self.sent = False

        def __aiter__(self) -> Body:
            self.sent = False
            return self

        async def __anext__(self) -> bytes:
            if self.sent:
                raise StopAsyncIteration
            self.sent = True
            return self.data

    return Body
