"""Batch: the read-only sequence of records a sink's ``write`` receives, kept by columns.

The route stage never builds a :class:`~trio_sink.Record` per item: a batch holds the
ids, the raw items and the payloads of its records as columns, and builds a record only
when a sink asks for one. A sink that needs only the payloads (or the ids) reads
:attr:`Batch.payloads` (:attr:`Batch.ids`) and builds none.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, final, overload

from ._record import Record

__all__ = ["Batch", "payloads_of"]


@final
class Batch(Sequence[Record]):
    """A batch of records as a sink's ``write`` receives it: a read-only
    ``Sequence[Record]``, stored as columns.

    Iterating it or indexing it builds the records (iterating builds them once, and
    keeps them for the next pass); :attr:`payloads`, :attr:`ids` and :attr:`raws` give
    one column each without building any, in the same order. A sink that writes only
    payloads, such as a JSON-lines sink, uses :attr:`payloads` and costs no record
    object per item. A batch must not be kept after the write returns unless copied.

    Build one from records with :meth:`of` (to test a sink, for example).
    """

    __slots__ = ("_ids", "_payloads", "_picked", "_picks", "_raws", "_records", "_size")

    def __init__(
        self,
        ids: Sequence[int],
        raws: Sequence[Any],
        payloads: Sequence[Any],
        *,
        picks: Sequence[int] | None = None,
        records: Sequence[Record] | None = None,
    ) -> None:
        # With picks, ids and raws are the source batch's, and the batch holds the items
        # at those indices: its own ids and raws are picked out when first asked for.
        self._ids = ids
        self._raws = raws
        self._payloads = payloads
        self._size = len(payloads)
        self._picks = picks
        self._picked: tuple[Sequence[int], Sequence[Any]] | None = None
        self._records = records

    @property
    def payloads(self) -> Sequence[Any]:
        """What ``parse`` returned for each record (``record.payload``), in order."""
        return self._payloads

    @property
    def size(self) -> int:
        """The number of records: ``len(batch)``, read as an attribute."""
        return self._size

    @classmethod
    def of(cls, records: Sequence[Record]) -> Batch:
        """A batch of ``records`` (kept as they are: their ``rest`` and ``error``
        too)."""
        if type(records) is Batch:
            return records
        kept = tuple(records)
        return cls(
            tuple([r.id for r in kept]),
            tuple([r.raw for r in kept]),
            tuple([r.payload for r in kept]),
            records=kept,
        )

    @property
    def ids(self) -> Sequence[int]:
        """Each record's ``id``, in order."""
        return self._ids if self._picks is None else self._pick()[0]

    @property
    def raws(self) -> Sequence[Any]:
        """Each record's ``raw`` item, in order."""
        return self._raws if self._picks is None else self._pick()[1]

    def _pick(self) -> tuple[Sequence[int], Sequence[Any]]:
        # Stored in one assignment, never over the source columns: an interruption
        # (KeyboardInterrupt) leaves the batch as it was, or picked.
        picked = self._picked
        if picked is None:
            picks = self._picks
            assert picks is not None
            picked = self._picked = (
                tuple(map(self._ids.__getitem__, picks)),
                tuple(map(self._raws.__getitem__, picks)),
            )
        return picked

    def records(self) -> Sequence[Record]:
        """The records, built (once) if they were not yet."""
        records = self._records
        if records is None:
            records = self._records = tuple(map(Record, self.ids, self.raws, self._payloads))
        return records

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records())

    @overload
    def __getitem__(self, index: int) -> Record: ...
    @overload
    def __getitem__(self, index: slice) -> Batch: ...
    def __getitem__(self, index: int | slice) -> Record | Batch:
        records = self._records
        if isinstance(index, slice):
            if records is not None:
                return Batch.of(records[index])
            return Batch(self.ids[index], self.raws[index], self._payloads[index])
        if records is not None:
            return records[index]
        return Record(self.ids[index], self.raws[index], self._payloads[index])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Batch):
            return self.records() == other.records()
        if isinstance(other, (tuple, list)):
            return list(self.records()) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Batch({list(self.records())!r})"


def payloads_of(batch: Sequence[Record]) -> Sequence[Any]:
    """The payloads of ``batch``'s records, in order: :attr:`Batch.payloads` for a
    :class:`Batch`, built from the records for any other sequence."""
    if type(batch) is Batch:
        return batch._payloads
    return [r.payload for r in batch]
