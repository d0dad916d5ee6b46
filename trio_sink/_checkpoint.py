"""The checkpoint of a :class:`~trio_sink.sources.FileSource`: which file, and how far
into it every line was acknowledged. Blocking calls only: the source makes them in a
worker thread.

A checkpoint is one small JSON file, replaced atomically (a temporary file in the same
folder, written, fsynced, renamed over the checkpoint, the folder fsynced): a crash at
any moment leaves the old checkpoint or the new one, never a torn one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Final

import msgspec

from ._exceptions import ConfigError

__all__ = [
    "HEAD_BYTES",
    "Checkpoint",
    "FileId",
    "head_digest",
    "load_checkpoint",
    "make_checkpoint",
    "read_head",
    "temporary_of",
    "write_checkpoint",
]

VERSION: Final = 1
HEAD_BYTES: Final = 4096
"""How many of a file's first bytes its fingerprint covers (fewer while it is shorter)."""


class Checkpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a checkpoint file holds (its JSON object has these keys).

    ``offset`` is the byte offset just after the last acknowledged line of the file
    identified by ``device`` and ``inode`` (``os.stat``) and by the SHA-256 of its first
    ``head_size`` bytes (``head_size`` is ``min(offset, 4096)``). ``path`` is the
    absolute path the source reads, where that file was found.
    """

    version: int
    path: str
    device: int
    inode: int
    offset: int
    head_size: int
    head_sha256: str


class FileId(msgspec.Struct, frozen=True):
    """A file as the system names it: its device and inode numbers."""

    device: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileId:
        return cls(st.st_dev, st.st_ino)


def head_digest(head: bytes) -> str:
    return hashlib.sha256(head).hexdigest()


def read_head(fd: int, size: int) -> bytes:
    """The first ``size`` bytes of the open file ``fd`` (fewer if it is shorter)."""
    parts: list[bytes] = []
    got = 0
    while got < size:
        data = os.pread(fd, size - got, got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def load_checkpoint(checkpoint: Path, path: str) -> Checkpoint | None:
    """The checkpoint kept in ``checkpoint`` for the source that reads ``path``, or
    None when there is no such file yet.

    Raises :class:`ConfigError` naming the file when it cannot be read, is not a
    checkpoint, or is the checkpoint of another path.
    """
    advice = f"delete it to read {path} from its start"
    try:
        data = checkpoint.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"checkpoint {str(checkpoint)!r} cannot be read ({exc})") from exc
    try:
        point = msgspec.json.decode(data, type=Checkpoint)
    except msgspec.ValidationError as exc:
        raise ConfigError(
            f"checkpoint {str(checkpoint)!r} is not a FileSource checkpoint ({exc}); {advice}"
        ) from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(
            f"checkpoint {str(checkpoint)!r} is not valid JSON ({exc}); {advice}"
        ) from exc
    if point.version != VERSION:
        raise ConfigError(
            f"checkpoint {str(checkpoint)!r} has version {point.version}, expected {VERSION}"
        )
    if point.offset < 0 or not 0 <= point.head_size <= min(point.offset, HEAD_BYTES):
        raise ConfigError(
            f"checkpoint {str(checkpoint)!r} is inconsistent (offset {point.offset},"
            f" head_size {point.head_size}); {advice}"
        )
    if point.path != path:
        raise ConfigError(
            f"checkpoint {str(checkpoint)!r} belongs to a FileSource of {point.path!r},"
            f" not of {path!r}"
        )
    return point


def make_checkpoint(path: str, file: FileId, offset: int, head: bytes) -> Checkpoint:
    """The checkpoint of ``offset`` into ``file``, whose first bytes are ``head`` (at
    least ``min(offset, HEAD_BYTES)`` of them)."""
    size = min(offset, HEAD_BYTES)
    assert len(head) >= size, (len(head), size)
    return Checkpoint(
        version=VERSION,
        path=path,
        device=file.device,
        inode=file.inode,
        offset=offset,
        head_size=size,
        head_sha256=head_digest(head[:size]),
    )


def temporary_of(checkpoint: Path) -> Path:
    """The temporary file a new checkpoint is written to before it replaces the old."""
    return checkpoint.with_name(f".{checkpoint.name}.tmp")


def write_checkpoint(checkpoint: Path, point: Checkpoint) -> None:
    """Replace ``checkpoint`` with ``point``, atomically and durably."""
    data = msgspec.json.encode(point) + b"\n"
    temporary = temporary_of(checkpoint)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, checkpoint)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    folder = os.open(checkpoint.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
