"""The blocking half of :class:`~trio_sink.sources.FileSource`: open the file where the
checkpoint says, read lines in chunks, notice rotation and truncation. Every method that
touches the disk is called in a worker thread, one call at a time.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import IO, Any

from ._checkpoint import HEAD_BYTES, Checkpoint, FileId, head_digest, read_head
from ._record import Undecodable

__all__ = ["FileReader", "OpenFile", "ReadItem"]

log = logging.getLogger("trio_sink.source")


class OpenFile:
    """One file being read, from the offset where reading began. A truncated file is
    read on as a new OpenFile (the same file object): positions in the two differ."""

    def __init__(self, name: str, fobj: IO[bytes], file: FileId, pos: int, head: bytes) -> None:
        self.name = name
        self.fobj = fobj
        self.file = file
        self.pos = pos
        """The offset just after the last byte read (the partial line included)."""
        self.head = head
        """The file's first bytes, up to HEAD_BYTES (all of them up to ``pos``)."""

    def note(self, data: bytes, start: int) -> None:
        """Keep the part of ``data``, read at ``start``, that lies in the head."""
        if start < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - start]

    def truncated(self) -> OpenFile:
        self.fobj.seek(0)
        return OpenFile(self.name, self.fobj, self.file, 0, b"")


def open_at(name: str, offset: int = 0) -> OpenFile:
    """``name`` opened for reading at ``offset``, whose first bytes are read."""
    fobj = open(name, "rb")  # noqa: SIM115 - the reader closes it when done with the file
    try:
        file = FileId.of(os.fstat(fobj.fileno()))
        head = read_head(fobj.fileno(), min(offset, HEAD_BYTES)) if offset else b""
        fobj.seek(offset)
    except BaseException:
        fobj.close()
        raise
    return OpenFile(name, fobj, file, offset, head)


ReadItem = tuple[Any, OpenFile, int]
"""A line as the source yields it, the file it is from, the offset just after it."""


class FileReader:
    """What the source has read: the file, the bytes of a line whose end has not been
    read yet, and, after a rotation, the file to read next."""

    def __init__(
        self,
        path: str,
        *,
        follow: bool,
        encoding: str,
        chunk_lines: int,
        chunk_bytes: int,
    ) -> None:
        self.path = path
        self.follow = follow
        self.encoding = encoding
        self.chunk_lines = chunk_lines
        self.chunk_bytes = chunk_bytes
        self.current: OpenFile | None = None
        self.next: OpenFile | None = None
        """The file now at the path, once the current one was found rotated away."""
        self.partial = b""
        """The bytes of the current file's line whose newline is still to come."""
        self.rotations = 0
        self.truncations = 0
        self.waiting_logged = False
        self.ended = False

    # -- where to begin ---------------------------------------------------------------

    def start(self, point: Checkpoint | None) -> None:
        """Open the file, at the checkpoint's offset when it is the checkpoint's file.

        Raises ``FileNotFoundError`` when there is no file at the path and the source
        does not follow it (a following source waits for one to appear).
        """
        try:
            at_path: OpenFile | None = open_at(self.path)
        except FileNotFoundError:
            if not self.follow:
                raise
            at_path = None
        try:
            self._begin(at_path, point)
        except BaseException:
            if at_path is not None:
                at_path.fobj.close()
            raise

    def _begin(self, at_path: OpenFile | None, point: Checkpoint | None) -> None:
        if point is None:
            self.current = at_path
            return
        wanted = FileId(point.device, point.inode)
        if at_path is not None and at_path.file == wanted:
            self.current = self._resume(at_path, point)
            return
        found = self._find_in_folder(wanted, point)
        if found is not None:
            log.warning(
                "file_source.rotated path=%s found=%s offset=%d: the checkpoint's file is"
                " no longer at the path; its rest is read first, then the file now at the"
                " path from its start",
                self.path,
                found.name,
                point.offset,
            )
            self.current, self.next = found, at_path
            self.rotations += 1
            return
        log.warning(
            "file_source.lost path=%s device=%d inode=%d offset=%d: the checkpoint's file is"
            " neither at the path nor in its folder, so whatever it held after the offset was"
            " not read; the file now at the path is read from its start",
            self.path,
            point.device,
            point.inode,
            point.offset,
        )
        self.current = at_path

    def _resume(self, opened: OpenFile, point: Checkpoint) -> OpenFile:
        fd = opened.fobj.fileno()
        size = os.fstat(fd).st_size
        if size < point.offset:
            log.warning(
                "file_source.truncated path=%s offset=%d size=%d: the file is shorter than"
                " the checkpoint's offset; it is read from its start",
                self.path,
                point.offset,
                size,
            )
            self.truncations += 1
            return opened
        if head_digest(read_head(fd, point.head_size)) != point.head_sha256:
            log.warning(
                "file_source.rewritten path=%s offset=%d: the file's first bytes are not"
                " those the checkpoint was written for (replaced in place); it is read from"
                " its start",
                self.path,
                point.offset,
            )
            return opened
        opened.fobj.seek(point.offset)
        opened.pos = point.offset
        opened.head = read_head(fd, min(point.offset, HEAD_BYTES))
        log.info("file_source.resumed path=%s offset=%d", self.path, point.offset)
        return opened

    def _find_in_folder(self, wanted: FileId, point: Checkpoint) -> OpenFile | None:
        """The checkpoint's file, if it is still in the path's folder under another
        name (rotated: ``app.log`` renamed ``app.log.1``) with its first bytes."""
        folder = Path(self.path).parent
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return None
        for entry in entries:
            try:
                if entry.inode() != wanted.inode or not entry.is_file(follow_symlinks=False):
                    continue
                found = open_at(entry.path, point.offset)
            except OSError:
                continue
            size = os.fstat(found.fobj.fileno()).st_size
            if (
                found.file == wanted
                and size >= point.offset
                and head_digest(found.head[: point.head_size]) == point.head_sha256
            ):
                return found
            found.fobj.close()
        return None

    # -- reading ----------------------------------------------------------------------

    def step(self) -> list[ReadItem] | None:
        """The next lines: up to ``chunk_lines`` of them and ``chunk_bytes`` bytes
        read. ``[]`` when there is nothing to read now (following: wait, and call again);
        None at the end of the input."""
        while True:
            current = self.current
            if self.ended:
                return None
            if current is None:
                if self._open_path():
                    continue
                return []
            items, at_end = self._read(current)
            if items:
                return items
            if not at_end:
                continue  # a chunk of a long line, and no line ended in it: read on
            if self.next is not None:
                # A rotated file: it had a poll's time for its last writes. Done with it.
                last = self._flush(current)
                current.fobj.close()
                log.info("file_source.next path=%s rotated=%s", self.path, current.name)
                self.current, self.next = self.next, None
                if last:
                    return last
                continue
            if not self.follow:
                last = self._flush(current)
                if not last:
                    self.close()  # the end of the input: nothing more to read
                    self.ended = True
                    return None
                return last
            moved = self._check_path(current)
            if moved is None:
                return []
            if moved:
                return moved

    def _read(self, current: OpenFile) -> tuple[list[ReadItem], bool]:
        """The lines of the next chunk of ``current``; whether its end was reached."""
        items: list[ReadItem] = []
        budget = self.chunk_bytes
        readline = current.fobj.readline
        while len(items) < self.chunk_lines and budget > 0:
            data = readline(budget)
            if not data:
                return items, True
            start = current.pos
            current.pos += len(data)
            budget -= len(data)
            current.note(data, start)
            if data[-1:] != b"\n":
                self.partial += data
                continue
            if self.partial:
                data, self.partial = self.partial + data, b""
            items.append((self._item(data[:-1]), current, current.pos))
        return items, False

    def _flush(self, current: OpenFile) -> list[ReadItem]:
        """The partial line of a file that will not grow any more, as a line."""
        if not self.partial:
            return []
        data, self.partial = self.partial, b""
        return [(self._item(data), current, current.pos)]

    def _item(self, line: bytes) -> Any:
        if line[-1:] == b"\r":
            line = line[:-1]
        try:
            return line.decode(self.encoding)
        except UnicodeDecodeError as exc:
            return Undecodable(data=line, encoding=self.encoding, reason=str(exc))

    # -- following --------------------------------------------------------------------

    def _open_path(self) -> bool:
        """Open the file at the path, if there is one now."""
        try:
            self.current = open_at(self.path)
        except FileNotFoundError:
            if not self.waiting_logged:
                self.waiting_logged = True
                log.info("file_source.waiting path=%s: no such file yet", self.path)
            return False
        self.waiting_logged = False
        return True

    def _check_path(self, current: OpenFile) -> list[ReadItem] | None:
        """At the end of the current file, following: has the file at the path been
        replaced (rotation) or truncated? None to wait; else read on at once, after the
        lines returned."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None  # moved away, nothing new at the path yet: the old may grow
        if FileId.of(st) != current.file:
            try:
                self.next = open_at(self.path)
            except FileNotFoundError:
                return None
            self.rotations += 1
            log.info(
                "file_source.rotated path=%s offset=%d: a new file is at the path; the old"
                " one is read to its end first",
                self.path,
                current.pos,
            )
            return None  # the old file gets one more poll for its last lines
        size = os.fstat(current.fobj.fileno()).st_size
        if size >= current.pos:
            return None
        self.truncations += 1
        log.warning(
            "file_source.truncated path=%s offset=%d size=%d: the file was truncated; it is"
            " read again from its start",
            self.path,
            current.pos,
            size,
        )
        last = self._flush(current)
        self.current = current.truncated()
        return last

    def close(self) -> None:
        for opened in (self.current, self.next):
            if opened is not None:
                opened.fobj.close()
        self.current = self.next = None
