"""Records, and the two values ``parse`` uses to say "no rule" and "partly parsed"."""

from __future__ import annotations

from typing import Any, final

import attrs
import msgspec

__all__ = [
    "ErrorRecord",
    "Miss",
    "Record",
    "ReplayedRecord",
    "Residue",
    "Undecodable",
    "residue_made",
    "undecodable_made",
    "with_error",
]


# Record is the one value created per item on the hot path, so it is a frozen
# msgspec.Struct rather than an attrs class: construction measured ~100 ns against
# ~700 ns for a frozen slotted attrs class, which alone would cost most of the
# pipeline's budget next to a ~1 us parse. It is not tracked by the garbage collector
# (gc=False): building and freeing one skips the collector's bookkeeping, and records
# in flight never trigger or slow a collection. Measured: with tracked records, letting
# a few batches wait between task switches ran the collector ~1,800 times in 1M
# records (a quarter of the CPU time). A record holds what the source and parse made,
# which never refers back to it; the one value that can (an exception, whose traceback
# holds the frames that held the batch) is carried by the tracked subclass ErrorRecord,
# so such cycles are still collected.
class Record(msgspec.Struct, frozen=True, gc=False):
    """One item on its way from the source to the sinks. Immutable.

    Attributes:
        id: Unique within one run, assigned in source order, starting at 0.
        raw: The item the source produced.
        payload: What ``parse`` returned; the raw item when there is no ``parse``, and
            for a record that never reached ``parse`` (a miss, a parse error, or a
            record reported before routing).
        rest: The unparsed rest of a partial parse, on a record sent to the
            ``residue`` group; None otherwise.
        error: The exception that ``parse`` or a route's ``when`` raised, on a record
            sent to the ``error`` group; None otherwise.

    Records are not tracked by the garbage collector: a reference cycle through a
    record is never collected. The records the pipeline gives an ``error`` are
    :class:`ErrorRecord` instances, which are tracked; build those (not ``Record``)
    for values that can refer back to the record.
    """

    id: int
    raw: Any
    payload: Any
    rest: Any = None
    error: BaseException | None = None


class ErrorRecord(Record, frozen=True, gc=True):
    """A :class:`Record` tracked by the garbage collector, for records that carry an
    ``error``: an exception's traceback can refer back to the record through the
    frames that held it. Otherwise the same as a Record (an instance of it)."""


class ReplayedRecord(Record, frozen=True, gc=False, kw_only=True):
    """A record delivered by :func:`trio_sink.replay`: a :class:`Record` (an instance
    of it) that also says where it came from, read from its rescue store entry.

    Its ``id`` is the replay's own numbering (0, 1, ... in store order, as in any run,
    so that the replay's report adds up); a sink that uses ids as idempotency keys
    should use ``(origin_run, origin_id)`` instead. ``error`` is None: an exception does
    not survive the store, its text does (:attr:`error_text`).

    Attributes:
        origin_run: The run that rescued the record (``RescueEntry.run``).
        origin_id: The record's id in that run (``RescueEntry.id``). With
            ``origin_run``, it names one record of one run, for a sink: the same record
            replayed twice has the same pair (a record meant for several sinks has it
            at each).
        error_text: The record's own ``error`` (what ``parse`` or a route's ``when``
            raised, or the sink's error for a copy sent to the ``error`` group) as
            ``"TypeName: message"``; None when it had none.
        repr_only: True when part of ``raw``, ``payload`` or ``rest`` could not be
            stored as JSON and is only its ``repr()`` text (``RescueEntry.repr_only``):
            the value is not the one the source or ``parse`` made.
    """

    origin_run: str
    origin_id: int
    error_text: str | None = None
    repr_only: bool = False


def with_error(record: Record, error: BaseException) -> ErrorRecord:
    """A copy of ``record`` carrying ``error``, tracked by the garbage collector."""
    return ErrorRecord(record.id, record.raw, record.payload, record.rest, error)


class Miss(Exception):
    """Raised by ``parse`` to say: this raw item matches no rule.

    The record goes to the ``miss`` infra group. It is not an error: nothing is logged.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@final
@attrs.frozen
class Residue:
    """Returned by ``parse`` for a partial parse.

    ``payload`` is routed as usual; a second record carrying ``rest`` goes to the
    ``residue`` infra group.
    """

    payload: Any
    rest: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> Residue:
        # __new__, not __init__: copies and unpickled values are counted too.
        global residue_made
        residue_made = True
        return super().__new__(cls)


residue_made = False
"""Whether a :class:`Residue` was ever made in this process. Until one is, the route
stage need not look for residues among the payloads of a batch."""


@final
@attrs.frozen
class Undecodable:
    """An item a source could not decode (a line that is not valid in its encoding).

    Yielded by a source in place of the text; the route stage sends its record to the
    ``miss`` infra group without calling ``parse``, with the bytes kept in ``data``.
    """

    data: bytes
    encoding: str = "utf-8"
    reason: str = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> Undecodable:
        global undecodable_made
        undecodable_made = True
        return super().__new__(cls)


undecodable_made = False
"""Whether an :class:`Undecodable` was ever made in this process (see
:data:`residue_made`)."""
