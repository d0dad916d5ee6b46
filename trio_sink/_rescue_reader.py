"""Reading a rescue store: :class:`RescueReader`, one read of it, and
:class:`RescueReadStats`, what a read went through."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from types import TracebackType
from typing import final

import attrs

from ._rescue_format import RescueEntry
from ._rescue_segments import Item, Tally, scan
from ._segment_log import SegmentLog

__all__ = ["RescueReadStats", "RescueReader", "stats_of"]


@final
@attrs.frozen
class RescueReadStats:
    """What one read of a store (``entries()``, ``counts()``, ``pending()``, or a
    replay) went through: :attr:`RescueReader.stats` for a read of its own,
    :attr:`trio_sink.RescueStore.read_stats` for the read that ended last. A read stopped
    early counts what it had passed."""

    segments: int
    """Segments read."""
    entries: int
    """Entries read."""
    torn_lines: int
    """Undecodable last lines of a segment (a writer killed mid-write), skipped."""
    bad_lines: int
    """Undecodable lines elsewhere, skipped."""
    quarantined: int = 0
    """Undecodable lines (torn and bad) a replay moved, byte for byte, to the store's
    ``quarantine/`` directory: never deleted, never read again. Other reads move
    nothing."""
    held: int = 0
    """Entries a replay left in segments that a live writer holds (under their
    ``.open`` name): reported undelivered, for a replay once they are sealed. Other
    reads skip those segments without counting."""


def _scan_entries(
    log: SegmentLog, tally: Tally, sink: str | None
) -> Generator[RescueEntry, None, None]:
    """The entries of the segments ``log`` reads, for ``sink`` when given."""
    for seg in log.readable_segments():
        tally.segments += 1
        for item in scan(seg.path, seg.start, seg.consumed, tally):
            if isinstance(item, Item) and (sink is None or item.entry.sink == sink):
                yield item.entry


def stats_of(tally: Tally) -> RescueReadStats:
    return RescueReadStats(
        segments=tally.segments,
        entries=tally.entries,
        torn_lines=tally.torn,
        bad_lines=tally.bad,
        quarantined=tally.quarantined,
        held=tally.held,
    )


@final
class RescueReader(Iterator[RescueEntry]):
    """One read of a store, from :meth:`trio_sink.RescueStore.entries`: an iterator of its
    entries, in write order, and what the read has gone through in :attr:`stats`.

    Each read counts for itself, so reads at once (in threads, or during a replay)
    do not mix their counts. The read ends when it reaches its end, raises, or is
    closed; then its stats become the store's :attr:`~trio_sink.RescueStore.read_stats`.
    Close it (or use it as a context manager) to let go of its open file early.
    """

    def __init__(self, log: SegmentLog, sink: str | None) -> None:
        self._log = log
        self._tally = Tally()
        self._entries = _scan_entries(self._log, self._tally, sink)
        self._ended = False

    def __iter__(self) -> RescueReader:
        return self

    def __next__(self) -> RescueEntry:
        try:
            return next(self._entries)
        except BaseException:  # StopIteration, or what the read raised: it ended
            self._end()
            raise

    @property
    def stats(self) -> RescueReadStats:
        """What this read has gone through so far."""
        return stats_of(self._tally)

    def close(self) -> None:
        """End the read here, closing the file it reads. Idempotent."""
        self._entries.close()
        self._end()

    def __enter__(self) -> RescueReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._log.end_read(self._tally)
