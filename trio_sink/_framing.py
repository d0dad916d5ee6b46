"""Cutting one connection's bytes into frames: lines, and TCP syslog's two framings.

Pure: a framer is fed the chunks its connection reads, in order, and returns the frames
they complete: ``bytes``, or an :class:`~trio_sink.Undecodable` for a frame over the
size limit (its first ``max_bytes`` bytes kept, the rest dropped as it arrives). What a
framer holds between chunks is bounded by the limit, whatever the input.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from ._record import Undecodable

__all__ = ["Frame", "LineFramer", "SyslogFramer", "Tally"]

Frame = bytes | Undecodable
"""What a framer returns for each frame."""


class Tally(Protocol):
    """Where a framer counts the frames it found over its limit."""

    over_long: int


_COUNT = re.compile(rb"([1-9][0-9]{0,9}) ")
_DIGITS = re.compile(rb"[0-9]+")


class _Framer:
    def __init__(self, max_bytes: int, what: str, tally: Tally) -> None:
        self.max_bytes = max_bytes
        self.tally = tally
        self._reason = (
            f"{what} longer than {max_bytes} bytes: its first {max_bytes} bytes are kept,"
            " the rest dropped"
        )

    def _too_long(self, data: bytes) -> Undecodable:
        self.tally.over_long += 1
        return Undecodable(data[: self.max_bytes], "utf-8", self._reason)


class LineFramer(_Framer):
    """Lines ended by ``\\n``, without it (nor a ``\\r`` before it). A line over
    ``max_bytes`` is an :class:`~trio_sink.Undecodable` of its first ``max_bytes`` bytes;
    the rest of it, up to its ``\\n``, is dropped."""

    def __init__(self, max_bytes: int, tally: Tally, *, what: str = "line") -> None:
        super().__init__(max_bytes, what, tally)
        self._tail = b""
        self._skipping = False  # dropping the rest of an over-long line

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held (an over-long one's dropped rest aside)."""
        return len(self._tail)

    def feed(self, data: bytes) -> Sequence[Frame]:
        if self._skipping:
            newline = data.find(b"\n")
            if newline < 0:
                return []
            data = data[newline + 1 :]
            self._skipping = False
        buf = self._tail + data if self._tail else data
        lines = buf.split(b"\n")
        tail = lines.pop()
        limit = self.max_bytes
        if lines and b"\r" in buf:
            lines = [x[:-1] if x.endswith(b"\r") else x for x in lines]
        out: Sequence[Frame] = lines
        if lines and len(buf) > limit:
            out = [self._too_long(x) if len(x) > limit else x for x in lines]
        if len(tail) > limit + 1:  # over-long even if a "\r" ends it
            out = [*out, self._too_long(tail)]
            tail = b""
            self._skipping = True
        self._tail = tail
        return out

    def end(self) -> list[Frame]:
        """The last line, when the input ends without a ``\\n`` after it."""
        tail, self._tail = self._tail, b""
        self._skipping = False
        if not tail:
            return []
        if tail.endswith(b"\r"):
            tail = tail[:-1]
        return [self._too_long(tail) if len(tail) > self.max_bytes else tail]


class SyslogFramer(_Framer):
    """Syslog messages over TCP (RFC 6587), each framed either way, told apart by its
    first byte: octet counting (``LEN SP MSG``, LEN a decimal without leading zeros) when
    it is a digit followed by a space, else non-transparent framing (``MSG`` ended by
    ``\\n``; a ``\\r`` before it is dropped, and empty lines are skipped).

    A message over ``max_bytes`` is an :class:`~trio_sink.Undecodable` of its first
    ``max_bytes`` bytes; the rest is dropped, up to its end (its length, or its ``\\n``).
    """

    def __init__(self, max_bytes: int, tally: Tally) -> None:
        super().__init__(max_bytes, "message", tally)
        self._buf = b""
        self._skip_bytes = 0  # of an over-long counted message, still to drop
        self._skip_line = False  # dropping the rest of an over-long line

    @property
    def pending(self) -> int:
        """Bytes of an unfinished message held (an over-long one's dropped rest aside)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf + data if self._buf else data
        out: list[Frame] = []
        limit = self.max_bytes
        pos, end = 0, len(buf)
        while pos < end:
            if self._skip_bytes:
                taken = min(self._skip_bytes, end - pos)
                self._skip_bytes -= taken
                pos += taken
                continue
            if self._skip_line:
                newline = buf.find(b"\n", pos)
                if newline < 0:
                    pos = end
                    break
                self._skip_line = False
                pos = newline + 1
                continue
            if 0x31 <= buf[pos] <= 0x39:  # 1-9: octet counting, if a space ends the digits
                count = _COUNT.match(buf, pos)
                if count is not None:
                    size, start = int(count[1]), count.end()
                    if end - start < min(size, limit):
                        break  # the rest is still to come
                    if size > limit:
                        out.append(self._too_long(buf[start : start + limit]))
                        self._skip_bytes = size - limit
                        pos = start + limit
                    else:
                        out.append(buf[start : start + size])
                        pos = start + size
                    continue
                if end - pos <= 10 and _DIGITS.fullmatch(buf, pos):
                    break  # digits so far: maybe a count, maybe a line
            newline = buf.find(b"\n", pos)
            if newline < 0:
                if end - pos > limit + 1:
                    out.append(self._too_long(buf[pos:]))
                    self._skip_line = True
                    pos = end
                break
            line = buf[pos:newline]
            pos = newline + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if line:
                out.append(self._too_long(line) if len(line) > limit else line)
        self._buf = buf[pos:]
        return out

    def end(self) -> list[Frame]:
        """What the input leaves unfinished when it ends: a last message without its
        ``\\n``; an octet-counted message cut short is an
        :class:`~trio_sink.Undecodable` (its bytes so far)."""
        rest, self._buf = self._buf, b""
        self._skip_bytes = 0
        self._skip_line = False
        count = _COUNT.match(rest)
        if count is not None:
            size, body = int(count[1]), rest[count.end() :]
            return [
                Undecodable(
                    body,
                    "utf-8",
                    f"the connection closed {len(body)} bytes into a message of {size} bytes",
                )
            ]
        if rest.endswith(b"\r"):
            rest = rest[:-1]
        if not rest:
            return []
        return [self._too_long(rest) if len(rest) > self.max_bytes else rest]
