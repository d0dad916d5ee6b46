"""The undelivered records of a report whose run kept most of them in the rescue store.

A sink that keeps failing for a long run would leave millions of undelivered records,
each with its raw item and payload: held in memory until the report is built, they
would take more memory than the run itself. So a run with a rescue store keeps a
sample of the stored ones in memory (:data:`~trio_sink._ledger.KEEP_STORED`) and only
counts the rest. :class:`UndeliveredView` is the report's ``undelivered`` then: a
sequence whose length is known, which yields the records kept in memory, then reads
the others back from the store (the entries of this run), one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from typing import overload

from ._report import Undelivered

__all__ = ["UndeliveredView"]


class UndeliveredView(Sequence[Undelivered]):
    """``kept`` (in memory), then ``spilled`` more read back with ``read_back()``.

    Reading back happens each time the view is iterated past ``kept``; what the store
    no longer holds (replayed meanwhile) is not yielded, so a view iterated after a
    replay yields fewer records than its length says.
    """

    keeps_its_records = False
    """For the report: a view is taken as it is, not copied into a tuple."""

    def __init__(
        self,
        kept: Sequence[Undelivered],
        spilled: int,
        read_back: Callable[[], Iterator[Undelivered]],
    ) -> None:
        self._kept = tuple(kept)
        self._spilled = spilled
        self._read_back = read_back

    def __len__(self) -> int:
        return len(self._kept) + self._spilled

    def __iter__(self) -> Iterator[Undelivered]:
        yield from self._kept
        if not self._spilled:
            return
        kept = {(u.sink, u.record.id) for u in self._kept}
        left = self._spilled
        for u in self._read_back():
            if (u.sink, u.record.id) in kept:
                continue
            yield u
            left -= 1
            if not left:
                return

    @overload
    def __getitem__(self, index: int) -> Undelivered: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Undelivered]: ...
    def __getitem__(self, index: int | slice) -> Undelivered | Sequence[Undelivered]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            return tuple(islice(self, start, stop, step))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("undelivered index out of range")
        if index < len(self._kept):
            return self._kept[index]
        for k, u in enumerate(self):
            if k == index:
                return u
        raise IndexError("undelivered record no longer in the store")

    def __repr__(self) -> str:
        return f"UndeliveredView(kept={len(self._kept)}, in the store={self._spilled})"
