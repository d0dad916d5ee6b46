"""Helpers of the sink tests: reading back what the file sinks wrote, and servers on
127.0.0.1 that the network sinks write to, each in a thread of its own (a server task in
the test's run would count as a task the sink left behind, for ``check_sink``)."""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs

from trio_sink import Record

HOST = "127.0.0.1"
WAIT = 30.0
"""The longest a helper waits for a condition: long enough that only a bug reaches it."""


def recs(first: int, n: int) -> list[Record]:
    """Records ``first`` .. ``first + n - 1``, JSON-friendly: raw ``raw{i}``, payload
    ``{"i": i}``."""
    return [Record(i, f"raw{i}", {"i": i}) for i in range(first, first + n)]


def as_records(objects: Sequence[dict[str, Any]]) -> list[Record]:
    """The records that JSON objects written by a sink stand for."""
    return [Record(d["id"], d["raw"], d["payload"]) for d in objects]


def parse_lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line]


# -- files --------------------------------------------------------------------------------


def rotated(path: Path) -> list[Path]:
    """The rotated files of ``path`` as a reader takes them: oldest first, each number
    once (its ``.gz`` when there is one: a ``.gz`` is complete once it has its name)."""
    pattern = re.compile(re.escape(path.name) + r"\.([0-9]+)(\.gz)?")
    by_number: dict[int, Path] = {}
    if not path.parent.exists():
        return []
    for candidate in sorted(path.parent.iterdir()):
        match = pattern.fullmatch(candidate.name)
        if match is not None:
            number = int(match.group(1))
            if match.group(2) or number not in by_number:
                by_number[number] = candidate
    return [by_number[n] for n in sorted(by_number, reverse=True)]


def read_file(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def read_all(path: Path) -> list[dict[str, Any]]:
    """Every line of ``path`` and of its rotated files, oldest first."""
    files = [*rotated(path), *([path] if path.exists() else [])]
    return [obj for f in files for obj in parse_lines(read_file(f))]


def ids_of(objects: Sequence[dict[str, Any]]) -> list[int]:
    return [obj["id"] for obj in objects]


# -- a TCP server that collects lines -----------------------------------------------------


class LineServer:
    """Accepts connections on 127.0.0.1 and collects the lines they send, in a thread
    a connection; :meth:`wait_bytes` waits until so many bytes have arrived."""

    def __init__(self) -> None:
        self.listener = socket.create_server((HOST, 0))
        self.port: int = self.listener.getsockname()[1]
        self.changed = threading.Condition()
        self.data = b""
        """Every byte received, across connections, complete lines only per connection."""
        self.received = 0
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._closing = False
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            conn, _ = self.listener.accept()
            if self._closing:  # the connection close() makes to wake this thread
                conn.close()
                return
            self._conns.append(conn)
            thread = threading.Thread(target=self._read, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _read(self, conn: socket.socket) -> None:
        tail = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                chunk = b""
            with self.changed:
                self.received += len(chunk)
                lines, _, tail = (tail + chunk).rpartition(b"\n")
                if lines:
                    self.data += lines + b"\n"
                self.changed.notify_all()
            if not chunk:
                return

    def records(self) -> list[Record]:
        with self.changed:
            return as_records(parse_lines(self.data))

    def wait_bytes(self, n: int) -> None:
        """Wait until ``n`` bytes (in all) have arrived."""
        with self.changed:
            assert self.changed.wait_for(lambda: self.received >= n, WAIT), (
                f"{self.received} bytes arrived, {n} expected"
            )

    def close(self) -> None:
        self._closing = True
        socket.create_connection((HOST, self.port)).close()  # wakes the accepting thread
        self._accepting.join(WAIT)
        self.listener.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):  # closed by the client already
                conn.shutdown(socket.SHUT_RDWR)  # wakes its thread (a close would not)
            conn.close()
        for thread in self._threads:
            thread.join(WAIT)


@contextmanager
def line_server() -> Iterator[LineServer]:
    server = LineServer()
    try:
        yield server
    finally:
        server.close()


# -- an HTTP server with scripted answers -------------------------------------------------


class QuietServer(ThreadingHTTPServer):
    """A thread a connection, every one of them joined by ``server_close()`` (no thread,
    and no socket, outlives the server); see :meth:`HttpServer.close`."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: list[socket.socket] = []

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections.append(request)
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a held answer: expected, and not worth a traceback


@attrs.frozen
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


@attrs.frozen
class Answer:
    status: int = 200
    body: bytes = b""
    hold: bool = False
    """Answer only once the server is released (:meth:`HttpServer.release`)."""


class HttpServer:
    """An HTTP/1.1 server on 127.0.0.1 (``http.server``, a thread a connection) that
    answers each POST with the next scripted :class:`Answer` (200 once they run out). It
    keeps every request, and the records of each request answered 2xx (before it
    answers), as an endpoint that took them would."""

    def __init__(self, answers: Sequence[Answer] = ()) -> None:
        self.answers = list(answers)
        self.requests: list[Request] = []
        self.taken: list[Record] = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with server.lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    server.requests.append(Request(self.path, headers, body))
                    answer = server.answers.pop(0) if server.answers else Answer()
                    if 200 <= answer.status < 300:
                        server.taken.extend(server.records_of(headers, body))
                if answer.hold:
                    server.released.wait(WAIT)
                self.send_response(answer.status)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

        self.httpd = QuietServer((HOST, 0), Handler)
        self.port: int = self.httpd.server_address[1]
        self.url = f"http://{HOST}:{self.port}/ingest"
        # A short poll: shutdown() waits for the loop to see it (only the end waits on it).
        serve = partial(self.httpd.serve_forever, poll_interval=0.01)
        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()

    @staticmethod
    def records_of(headers: dict[str, str], body: bytes) -> list[Record]:
        if headers.get("content-type") == "application/json":
            return as_records(json.loads(body))
        return as_records(parse_lines(body))

    def taken_records(self) -> list[Record]:
        with self.lock:
            return list(self.taken)

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.release()
        self.httpd.shutdown()
        self._thread.join(WAIT)
        for conn in self.httpd.connections:
            with contextlib.suppress(OSError):  # closed already
                conn.shutdown(socket.SHUT_RDWR)  # wakes a thread waiting for a request
        self.httpd.server_close()  # joins every connection's thread


@contextmanager
def http_server(answers: Sequence[Answer] = ()) -> Iterator[HttpServer]:
    server = HttpServer(answers)
    try:
        yield server
    finally:
        server.close()
