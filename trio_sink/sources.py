"""Built-in sources.

A file object is a sync iterable, and iterating it blocks: a pipe whose writer is slow
would hold the whole pipeline (no batch would move, no signal would be handled). These
sources read off the event loop: a pipe, a socket or a terminal is read once it is
readable (Trio waits for that), a regular file in a worker thread.

- :class:`FileSource`: the lines of a file by its path, acknowledged into a checkpoint so
  that a restart resumes where delivery stopped (at least once); ``follow=True`` tails it
  like ``tail -F``, through rotation and truncation. :class:`FileSourceStatistics` is its
  snapshot.
- :class:`LinesSource`: the lines of an open stream (pipe, socket, terminal, file).
- :class:`StdinSource`: the lines of the standard input.
- :class:`TcpLinesSource`: lines from TCP clients.
- :class:`SyslogSource`: syslog messages over UDP or TCP, parsed by :func:`parse_syslog`.

Only :class:`FileSource` can be acknowledged: what a pipe, a terminal or a socket gave is
gone once read, so a restart cannot read again what a crash lost.
"""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import AsyncIterator
from typing import IO, Any, final

import trio

from ._checks import check_text
from ._exceptions import ConfigError
from ._file_source import FileSource as FileSource
from ._file_source import FileSourceStatistics as FileSourceStatistics
from ._net_server import NetSourceStatistics as NetSourceStatistics
from ._net_sources import SyslogSource as SyslogSource
from ._net_sources import TcpLinesSource as TcpLinesSource
from ._source import Source
from ._syslog import SyslogFormatError as SyslogFormatError
from ._syslog import parse_syslog as parse_syslog

__all__ = [
    "FileSource",
    "FileSourceStatistics",
    "LinesSource",
    "NetSourceStatistics",
    "StdinSource",
    "SyslogFormatError",
    "SyslogSource",
    "TcpLinesSource",
    "off_the_loop",
    "parse_syslog",
]

CHUNK = 64 * 1024
"""The most bytes one read takes."""


class LinesSource(Source[Any]):
    """The lines of a stream: a pipe, a socket's file, a terminal or a regular file.

    Yields ``str`` for a text stream (decoded with its encoding, and ``errors``:
    undecodable bytes become lone surrogates by default, so a bad line never stops the
    run), ``bytes`` for a binary one. Without ``keepends`` the line ending (``\\n`` or
    ``\\r\\n``) is left out; with it, a line is what iterating the text stream gives
    (``\\r\\n`` read as ``\\n``). A last line without a newline is yielded at the end
    of the input.

    The stream is read through its file descriptor, so it must not have been read from
    before (what its buffer holds would be skipped); it is not closed. A read never
    blocks the event loop: at a Stop, a read waiting for input is cancelled and nothing
    read is lost. What the process has not read from a pipe when it stops stays there.
    """

    def __init__(
        self,
        stream: IO[Any] | io.IOBase,
        *,
        keepends: bool = False,
        errors: str = "surrogateescape",
        name: str = "lines",
    ) -> None:
        try:
            stream.fileno()
        except (AttributeError, OSError, ValueError) as exc:
            raise ConfigError(
                f"stream must be a file object with a file descriptor, got {stream!r}"
            ) from exc
        check_text("errors", errors)
        self.stream = stream
        self.keepends = keepends
        self.errors = errors
        self.name = check_text("name", name) or name
        self.text = isinstance(stream, io.TextIOBase)
        self.encoding: str = getattr(stream, "encoding", None) or "utf-8"

    async def __aiter__(self) -> AsyncIterator[Any]:
        fd = self.stream.fileno()
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
        tail = b""
        while True:
            if regular:
                chunk = await trio.to_thread.run_sync(os.read, fd, CHUNK)
            else:
                await trio.lowlevel.wait_readable(fd)
                chunk = os.read(fd, CHUNK)
            if not chunk:
                break
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            for line in lines:
                yield self._item(line)
        if tail:
            yield self._item(tail, last=True)

    def _item(self, line: bytes, *, last: bool = False) -> Any:
        """One line, without its ``\\n``, as the source yields it."""
        if line.endswith(b"\r"):
            line = line[:-1]
            crlf = True
        else:
            crlf = False
        end = b"" if not self.keepends or last else (b"\n" if self.text or not crlf else b"\r\n")
        if self.text:
            return (line + end).decode(self.encoding, self.errors)
        return line + end


def off_the_loop(source: Any) -> Any:
    """``source``, or for a file object given as a source, the same lines as iterating it
    gives, read off the event loop (:class:`LinesSource`)."""
    if isinstance(source, io.IOBase):
        try:
            source.fileno()
        except (OSError, ValueError):  # an in-memory file never blocks
            return source
        errors = getattr(source, "errors", None) or "strict"
        return LinesSource(source, keepends=True, errors=errors)
    return source


@final
class StdinSource(LinesSource):
    """The lines of the process's standard input, read off the event loop (see
    :class:`LinesSource`): ``str`` without their line ending, by default."""

    def __init__(self, *, keepends: bool = False, errors: str = "surrogateescape") -> None:
        stdin = sys.stdin
        if stdin is None:
            raise ConfigError("the process has no standard input (sys.stdin is None)")
        super().__init__(stdin, keepends=keepends, errors=errors, name="stdin")
