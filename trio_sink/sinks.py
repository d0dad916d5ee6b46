"""Built-in sinks."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, final

import msgspec
import trio

from ._checks import check_seconds
from ._record import Record
from ._sink import Sink, SinkArg, SinkSlot

__all__ = ["CollectSink", "JsonlFileSink", "NullSink", "SlowSink"]


@final
class NullSink(Sink):
    """Counts the records it is given, and discards them. Not a checkpoint."""

    def __init__(self, name: str = "null") -> None:
        self.name = name
        self.count = 0
        """Records written so far."""
        self.batches = 0
        """Batches written so far."""

    async def write(self, batch: Sequence[Record]) -> None:
        self.count += len(batch)
        self.batches += 1


@final
class CollectSink(Sink):
    """Keeps every delivered record, in order, in :attr:`records`. Not a checkpoint."""

    def __init__(self, name: str = "collect") -> None:
        self.name = name
        self.records: list[Record] = []
        self.flushed = 0
        """How many times ``flush()`` was called."""
        self.closed = 0
        """How many times ``aclose()`` was called."""

    async def write(self, batch: Sequence[Record]) -> None:
        self.records.extend(batch)

    async def flush(self) -> None:
        self.flushed += 1

    async def aclose(self) -> None:
        self.closed += 1


@final
class SlowSink(Sink):
    """Sleeps ``per_batch + per_record * len(batch)`` on Trio's clock, then writes to
    ``inner`` (any sink, a plain ``async def f(batch)`` included). Its name is
    ``inner``'s.

    Cancelled while sleeping, nothing was written: the batch is not delivered.
    """

    def __init__(self, inner: SinkArg, *, per_record: float = 0.0, per_batch: float = 0.0) -> None:
        check_seconds("per_record", per_record)
        check_seconds("per_batch", per_batch)
        self.inner = inner
        self._slot = SinkSlot(inner)
        self.name = self._slot.name
        self.per_record = per_record
        self.per_batch = per_batch

    async def write(self, batch: Sequence[Record]) -> None:
        await trio.sleep(self.per_batch + self.per_record * len(batch))
        await self._slot.write(batch)

    async def flush(self) -> None:
        await self._slot.flush()

    async def aclose(self) -> None:
        await self._slot.aclose()


def _json_fallback(obj: Any) -> Any:
    if isinstance(obj, BaseException):
        return f"{type(obj).__name__}: {obj}"
    if isinstance(obj, Mapping):  # e.g. the read-only mappings of a statistics record
        return dict(obj)
    return repr(obj)


@final
class JsonlFileSink(Sink):
    """Appends one JSON object a line to ``path``: ``id``, ``raw``, ``payload``, and
    ``rest`` / ``error`` when set. Values are encoded by msgspec (so bytes become
    base64 and NaN or infinity ``null``); objects it cannot encode are written as their
    repr, exceptions as ``"TypeName: message"``.

    A write encodes the whole batch, then appends it in one call in a worker thread; a
    cancellation waits for that call, so a batch is either written whole (delivered)
    or not at all. ``flush()`` asks the OS to put the file on disk (fsync). The file's
    folder is made, with its parents, if it does not exist.
    """

    def __init__(self, path: str | os.PathLike[str], *, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name if name is not None else self.path.name
        self._encoder = msgspec.json.Encoder(enc_hook=_json_fallback)
        self._file: IO[bytes] | None = None

    def _encode(self, batch: Sequence[Record]) -> bytes:
        buf = bytearray()
        encode_into = self._encoder.encode_into
        for r in batch:
            obj: dict[str, Any] = {"id": r.id, "raw": r.raw, "payload": r.payload}
            if r.rest is not None:
                obj["rest"] = r.rest
            if r.error is not None:
                obj["error"] = r.error
            encode_into(obj, buf, -1)
            buf += b"\n"
        return bytes(buf)

    def _append(self, data: bytes) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 - closed in aclose()
        self._file.write(data)
        self._file.flush()

    async def write(self, batch: Sequence[Record]) -> None:
        data = self._encode(batch)
        await trio.to_thread.run_sync(self._append, data)

    async def flush(self) -> None:
        f = self._file
        if f is not None:
            await trio.to_thread.run_sync(os.fsync, f.fileno())

    async def aclose(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            f.close()
        await trio.lowlevel.checkpoint()
