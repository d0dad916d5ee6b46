"""StdoutSink: JSON lines to the standard output, or to any stream, off the event loop."""

from __future__ import annotations

import io
import os
import select
import stat
import sys
from collections.abc import Sequence
from typing import IO, Any, Literal, final

import trio

from ._checks import check_text
from ._exceptions import ConfigError
from ._json_lines import JsonLines
from ._record import Record
from ._retry import PermanentError
from ._sink import Sink

__all__ = ["StdoutSink"]

CHUNK = getattr(select, "PIPE_BUF", 512)
"""The most bytes one write to a pipe takes: a pipe that is writable at all takes this
many without blocking."""

Mode = Literal["poll", "thread", "memory"]

_FD_LOCKS: trio.lowlevel.RunVar[dict[int, trio.Lock]] = trio.lowlevel.RunVar("fd_locks")


def _fd_lock(fd: int) -> trio.Lock:
    """One lock a file descriptor in this run: sinks sharing an output write a batch at a
    time, so their lines never mix (and Trio lets one task at a time wait on an fd)."""
    try:
        locks = _FD_LOCKS.get()
    except LookupError:
        locks = {}
        _FD_LOCKS.set(locks)
    return locks.setdefault(fd, trio.Lock())


def _mode(stream: Any) -> tuple[Mode, int]:
    """How to write to ``stream`` without blocking the event loop, and its fd (-1 for
    none): a pipe, a socket or a terminal once it is writable, a file (or a device that
    never blocks, like /dev/null) in a worker thread, an in-memory stream directly."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return "memory", -1
    if not isinstance(fd, int):
        return "memory", -1
    st = os.fstat(fd).st_mode
    if sys.platform == "win32" or stat.S_ISREG(st) or stat.S_ISBLK(st):
        return "thread", fd
    if stat.S_ISCHR(st) and not os.isatty(fd):
        return "thread", fd
    return "poll", fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@final
class StdoutSink(Sink):
    """Writes each record as a line of JSON (as :class:`JsonlFileSink` does) to the
    standard output, or to ``stream``: a binary or text stream, whose file descriptor is
    written to when it has one.

    A write never blocks the event loop: to a pipe, a socket or a terminal it writes
    once the output is writable, in pieces that cannot block; to a regular file in a
    worker thread (a cancellation waits for it); to an in-memory stream (no file
    descriptor) directly. Returning means every line was handed to the operating system
    (or to the in-memory stream); for a pipe, its reader may not have read them yet.

    Cancelled while a pipe is full (its reader is slow), the write raises
    :exc:`trio.Cancelled` having written nothing, or only the first part of the batch
    (the pipeline reports the whole batch: at least once); the next write then starts
    with a newline, so the cut line stands alone and the lines after it are whole.

    A closed pipe (its reader is gone: ``EPIPE``) raises :class:`PermanentError`: the
    batch is reported, not retried. That needs ``SIGPIPE`` ignored, as Python does at
    startup; a program that restores its default dies of it instead.

    The stream is not closed by :meth:`aclose`. Its own buffer is flushed once, before
    the first write; what the program prints between writes lands where it falls.
    Several sinks on one output (in one run) write one batch at a time.
    """

    def __init__(self, *, name: str = "stdout", stream: IO[Any] | io.IOBase | None = None) -> None:
        self.name = check_text("name", name) or name
        if stream is None:
            stream = sys.stdout
            if stream is None:
                raise ConfigError("the process has no standard output (sys.stdout is None)")
        if not callable(getattr(stream, "write", None)):
            raise ConfigError(f"stream must be a file object, got {stream!r}")
        self.stream = stream
        self._text = isinstance(stream, io.TextIOBase)
        self._mode, self._fd = _mode(stream)
        self._lines = JsonLines()
        self._flushed = False
        self._cut = False  # a cancelled write stopped in the middle of a line

    def _flush_stream(self) -> None:
        if not self._flushed:
            self._flushed = True
            self.stream.flush()

    def _write_memory(self, data: bytes) -> None:
        out: Any = self.stream
        out.write(data.decode() if self._text else data)
        out.flush()

    def _write_thread(self, data: bytes) -> None:
        self._flush_stream()
        _write_all(self._fd, data)

    async def _write_poll(self, data: bytes) -> None:
        fd, view, written = self._fd, memoryview(data), 0
        try:
            while written < len(data):
                await trio.lowlevel.wait_writable(fd)
                self._flush_stream()
                try:
                    written += os.write(fd, view[written : written + CHUNK])
                except BlockingIOError:  # O_NONBLOCK set by someone, and another writer was first
                    continue
        finally:
            if written:
                self._cut = data[written - 1] != ord("\n")

    async def _write(self, data: bytes) -> None:
        if self._mode == "memory":
            await trio.lowlevel.checkpoint_if_cancelled()
            self._write_memory(data)
            self._cut = False
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        async with _fd_lock(self._fd):
            if self._mode == "poll":
                await self._write_poll(data)
            else:
                await trio.to_thread.run_sync(self._write_thread, data)
                self._cut = False

    async def write(self, batch: Sequence[Record]) -> None:
        """Write ``batch``'s lines. A checkpoint. Cancelled, it raises
        :exc:`trio.Cancelled` having written nothing, or (to a pipe, a socket or a
        terminal that stopped taking them) the first part of the lines."""
        data = self._lines.lines(batch)
        if self._cut:
            data = b"\n" + data
        if not data:
            await trio.lowlevel.checkpoint()
            return
        try:
            await self._write(data)
        except BrokenPipeError as exc:
            raise PermanentError(
                f"{self.name}: the output is closed (broken pipe: its reader is gone)"
            ) from exc

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()
