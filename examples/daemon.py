"""A log collector daemon: log lines from stdin or TCP clients, to JSONL files, until a signal.

    python examples/daemon.py --out all.jsonl < app.log          # ends with stdin
    python examples/daemon.py --tcp 0 --out all.jsonl            # prints the port
    echo '2026-11-28 12:00:00 ERROR user=7 msg=boom' | nc -q0 127.0.0.1 PORT

Every record goes to --out, ERROR records also to --errors-out. The first Ctrl-C (or
SIGTERM) stops and drains; a second one stops at once and reports what was left. The exit
status is 0 when everything was delivered, 3 when records were not, 4 when the source failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from trio_sink import DeliveryReport, Miss, Pipeline, Route, Source, SourceError, exit_status, serve
from trio_sink.sinks import JsonlFileSink

log = logging.getLogger("daemon")

LINE = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) ([A-Z]+)((?: \w+=\S*)*)")


def parse(line: str) -> dict[str, str]:
    """``2026-11-28 12:00:00 INFO user=42 msg=hello`` -> {"time", "level", "user", "msg"}."""
    match = LINE.fullmatch(line)
    if match is None:
        raise Miss("not a log line")
    time, level, pairs = match.groups()
    return {"time": time, "level": level, **dict(p.split("=", 1) for p in pairs.split())}


class LineSplitter:
    """Cuts a stream of bytes into lines; a line split across reads waits for its end."""

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, data: bytes) -> list[str]:
        *lines, self._partial = (self._partial + data).split(b"\n")
        return [line.rstrip(b"\r").decode(errors="replace") for line in lines]

    def end(self) -> list[str]:
        """The last line, when the stream ended without a newline."""
        rest, self._partial = self._partial, b""
        return [rest.rstrip(b"\r").decode(errors="replace")] if rest else []


class StdinLines(Source[str]):
    """Lines from standard input, until it ends.

    Each read runs in a worker thread (a pipe, a terminal and a file all work), and a Stop
    abandons the read that waits: the rest of the input is left unread.
    """

    name = "stdin"

    async def __aiter__(self) -> AsyncIterator[str]:
        splitter = LineSplitter()
        fd = sys.stdin.fileno()
        while data := await trio.to_thread.run_sync(os.read, fd, 65536, abandon_on_cancel=True):
            for line in splitter.feed(data):
                yield line
        for line in splitter.end():
            yield line


class TcpLines(Source[str]):
    """Lines from any number of TCP clients, merged through a memory channel.

    Its listeners and client tasks run in the nursery of :func:`open_tcp_lines`; at the end
    of the run, ``aclose()`` closes the listeners and hangs up on the clients.
    """

    name = "tcp"

    def __init__(self) -> None:
        self._send, self._recv = trio.open_memory_channel[str](0)
        self._serving = trio.CancelScope()

    def __aiter__(self) -> AsyncIterator[str]:
        return self._recv

    async def listen(
        self, port: int, *, task_status: trio.TaskStatus[list[trio.SocketListener]]
    ) -> None:
        with self._serving:
            await trio.serve_tcp(self._client, port, host="127.0.0.1", task_status=task_status)

    async def _client(self, stream: trio.SocketStream) -> None:
        peer = stream.socket.getpeername()
        splitter, lines = LineSplitter(), 0
        async with stream:
            try:
                while data := await stream.receive_some():
                    for line in splitter.feed(data):
                        await self._send.send(line)  # returns once the pipeline took it
                        lines += 1
                for line in splitter.end():
                    await self._send.send(line)
                    lines += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the client reset, or the source was closed: we are stopping
        log.info("client.closed peer=%s:%d lines=%d", *peer[:2], lines)

    async def aclose(self) -> None:
        self._serving.cancel()
        self._recv.close()
        await trio.lowlevel.checkpoint()


@asynccontextmanager
async def open_tcp_lines(port: int) -> AsyncIterator[TcpLines]:
    async with trio.open_nursery() as nursery:
        source = TcpLines()
        listeners = await nursery.start(source.listen, port)
        print(f"listening on 127.0.0.1:{listeners[0].socket.getsockname()[1]}", flush=True)
        yield source
        nursery.cancel_scope.cancel()


async def run(args: argparse.Namespace) -> DeliveryReport | SourceError:
    if args.tcp is None:
        return await serve_lines(StdinLines(), args)
    async with open_tcp_lines(args.tcp) as source:
        return await serve_lines(source, args)


async def serve_lines(
    source: Source[str], args: argparse.Namespace
) -> DeliveryReport | SourceError:
    pipeline = Pipeline(
        source,
        parse=parse,
        routes=[
            Route("all", JsonlFileSink(args.out, name="all")),
            Route(
                "errors",
                JsonlFileSink(args.errors_out, name="errors"),
                when=lambda fields: fields["level"] == "ERROR",
            ),
        ],
        drain_timeout=args.drain_timeout,
    )
    try:
        # Until SIGINT / SIGTERM, or the end of the source; the process exits next, so a
        # later signal is ignored rather than ending it with the signal's status.
        return await serve(pipeline, ignore_after_stop=True)
    except SourceError as exc:
        return exc  # its report is in exc.report


def summary(report: DeliveryReport) -> str:
    out = [f"received     {report.received}"]
    out += [f"delivered    {n}  ({sink})" for sink, n in report.delivered.items()]
    out.append(f"undelivered  {len(report.undelivered)}")
    out.append(f"not parsed   {report.discarded.get('miss', 0)}")
    out.append(f"drain        {report.drain_seconds:.3f} s")
    for u in report.undelivered[:5]:
        out.append(f"  record {u.record.id} not delivered to {u.sink}: {u.reason}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tcp", type=int, metavar="PORT", help="listen on 127.0.0.1:PORT")
    parser.add_argument("--out", type=Path, required=True, help="JSONL file for every record")
    parser.add_argument(
        "--errors-out", type=Path, help="JSONL file for ERROR records (OUT's name .errors.jsonl)"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=60.0, help="seconds to drain after a stop (60)"
    )
    args = parser.parse_args()
    if args.errors_out is None:
        args.errors_out = args.out.with_suffix(".errors.jsonl")
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s", stream=sys.stderr)

    outcome = trio.run(run, args)
    if isinstance(outcome, SourceError):
        print(f"source failed: {outcome.__cause__!r}")
        report = outcome.report
    else:
        report = outcome
    print(summary(report), flush=True)
    sys.exit(exit_status(outcome))


if __name__ == "__main__":
    main()
