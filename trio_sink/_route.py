"""Routes, infra groups, and routing: parse, then fan out, once per batch.

Routing is synchronous: a source batch is parsed and split into one sub-batch per
destination before any checkpoint, so at any cancellation it is either not routed yet,
or split into sub-batches that the fan-out (``_fanout.py``) knows it has not sent yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import compress
from operator import attrgetter
from typing import Any

from . import _record
from ._batch import Batch
from ._checks import is_async_callable
from ._dest import Dest
from ._feeds import SinkBatch
from ._ledger import Ledger, Ticket
from ._record import ErrorRecord, Miss, Record, Residue, Undecodable
from ._route_spec import FAILED, INFRA_GROUPS, BatchWhen, Infra, Route, apply_each
from ._user_errors import UserErrors

__all__ = [
    "FAILED",
    "INFRA_GROUPS",
    "Infra",
    "Route",
    "Router",
    "apply_each",
    "is_async_callable",
    "unrouted",
]


def unrouted(first_id: int, raws: Iterable[Any]) -> Iterator[Record]:
    """Records for raw items given up before routing: their payload is the raw item."""
    return (Record(i, raw, raw) for i, raw in enumerate(raws, first_id))


_get_id = attrgetter("id")


def _missing_undecodable(parse: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    """``parse``, but an :class:`Undecodable` item is a miss (and never parsed)."""

    def parse_decoded(raw: Any) -> Any:
        if type(raw) is Undecodable:
            raise Miss(raw.reason or f"not valid {raw.encoding}")
        return raw if parse is None else parse(raw)

    return parse_decoded


class Router:
    """Parse and split one source batch. Pure computation, plus the ledger's counts."""

    def __init__(
        self,
        parse: Callable[[Any], Any] | None,
        routes: Sequence[tuple[Callable[[Any], bool] | None, Sequence[Dest]]],
        infra: dict[str, Dest | None],
        ledger: Ledger,
        errors: UserErrors | None = None,
        names: Sequence[str] = (),
    ) -> None:
        self.parse = parse
        self.routes = routes
        self.errors = UserErrors(1.0, time.monotonic) if errors is None else errors
        # What the log calls each route's when.
        self.wheres = [f"when of route {n!r}" for n in names] or [
            f"when of route {k}" for k in range(len(routes))
        ]
        self.catch_all = any(when is None for when, _ in routes)
        self.infra = infra
        self.ledger = ledger

    def route(self, first_id: int, raws: list[Any]) -> list[tuple[Dest, SinkBatch]]:
        """Parse and split one source batch; count what goes where.

        No record is built on the common path: each sub-batch is a :class:`Batch` of
        columns (the source batch's ids and raws, and the payloads it selected)."""
        n = len(raws)
        ticket = Ticket(first_id, n, 0)
        ids: Sequence[int] = range(first_id, first_id + n)
        # Filled on the slow path only (a failed parse, a residue).
        misses: Sequence[Record] = ()
        residues: Sequence[Record] = ()
        errors: Sequence[Record] = ()
        payloads: list[Any]
        parse = self.parse
        if _record.undecodable_made and Undecodable in map(type, raws):
            parse = _missing_undecodable(parse)
        if parse is None:
            payloads = raws
        else:
            payloads, failures = apply_each(parse, raws)
            if failures:
                misses, errors = self._failed(first_id, raws, failures)
                for exc in (e.error for e in errors):
                    assert exc is not None
                    self.errors.raised("parse", exc)
            # No residue can be among the payloads before the first Residue is made.
            if failures or (_record.residue_made and Residue in map(type, payloads)):
                ids, raws, payloads, residues = self._sort_out(ids, raws, payloads)
        # Tuples: the sinks of every route share these columns, and none can change them.
        whole = Batch(ids, tuple(raws), tuple(payloads))

        subs: list[tuple[Sequence[Dest], Batch]] = []
        accepted: set[int] | None = None if self.catch_all else set()
        errored: dict[int, Record] = {}  # by index in the batch: one error record each
        for k, (when, dests) in enumerate(self.routes):
            sub = whole if when is None else self._select(when, whole, errored, accepted, k)
            if sub:
                subs.append((dests, sub))
        if errored:
            # A record whose when raised may be routed elsewhere too, and fail there
            # later: its copy must not reach the error group a second time. (A record
            # whose parse failed goes nowhere else.)
            if self.infra["error"] is not None:
                self.ledger.sent_to_errors(errored.values())
            # Parse errors and when errors, back in source order.
            errors = sorted([*errors, *errored.values()], key=_get_id)
        if accepted is not None and len(accepted) < len(payloads):
            rejected = [k for k in range(len(payloads)) if k not in accepted]
            default = Batch(ids, raws, tuple(map(payloads.__getitem__, rejected)), picks=rejected)
            self._group(subs, "default", default)
        if misses:
            self._group(subs, "miss", Batch.of(misses))
        if residues:
            self._group(subs, "residue", Batch.of(residues))
        if errors:
            self._group(subs, "error", Batch.of(errors))

        out: list[tuple[Dest, SinkBatch]] = []
        for dests, batch in subs:
            msg = (batch, ticket)
            for dest in dests:
                out.append((dest, msg))
        self.ledger.dispatch(ticket, out)
        return out

    @staticmethod
    def _failed(
        first_id: int, raws: list[Any], failures: list[tuple[int, Exception]]
    ) -> tuple[list[Record], list[Record]]:
        """The miss and error records of the raw items whose parse raised."""
        misses: list[Record] = []
        errors: list[Record] = []
        for k, exc in failures:
            raw = raws[k]
            if isinstance(exc, Miss):
                misses.append(Record(first_id + k, raw, raw))
            else:
                errors.append(ErrorRecord(first_id + k, raw, raw, error=exc))
        return misses, errors

    @staticmethod
    def _sort_out(
        ids: Sequence[int], raws: list[Any], payloads: list[Any]
    ) -> tuple[tuple[int, ...], list[Any], list[Any], list[Record]]:
        """The slow path, for a batch with failed parses or residues: the ids, raws
        and payloads of the parsed items, and the residue records."""
        kept_ids: list[int] = []
        kept_raws: list[Any] = []
        kept: list[Any] = []
        residues: list[Record] = []
        for i, raw, payload in zip(ids, raws, payloads, strict=True):
            if payload is FAILED:
                continue
            if type(payload) is Residue:
                residues.append(Record(i, raw, payload.payload, rest=payload.rest))
                payload = payload.payload
            kept_ids.append(i)
            kept_raws.append(raw)
            kept.append(payload)
        return tuple(kept_ids), kept_raws, kept, residues

    def _select(
        self,
        when: Callable[[Any], Any],
        whole: Batch,
        errored: dict[int, Record],
        accepted: set[int] | None,
        route: int,
    ) -> Batch:
        """The records of ``whole`` whose payload ``when`` accepts. A record whose
        ``when`` raised (or returned a value without a truth value) is not selected,
        and gets an error record in ``errored`` unless it has one already."""
        payloads = whole.payloads
        if type(when) is BatchWhen:
            flags, failures = when.each(payloads)
        else:
            flags, failures = apply_each(when, payloads)
        if not failures:
            # Each flag judged once, in one pass in C: the batch keeps the indices it
            # picked, never the flags (whose truth may change once a sink has run). It is
            # right when every flag that is not == False was taken: a flag whose __bool__
            # raises fails compress, or (StopIteration) cuts it short silently, and a falsy
            # flag that is not == False (None, "") is not taken; either way the batch goes
            # down the slow path below.
            try:
                picks = list(compress(range(len(flags)), flags))
                plain = len(picks) + flags.count(False) == len(flags)
            except Exception:
                plain = False
            if plain:
                if accepted is not None:
                    accepted.update(picks)
                picked = tuple(map(payloads.__getitem__, picks))
                return Batch(whole.ids, whole.raws, picked, picks=picks)
        truth: list[bool] = []
        for k, flag in enumerate(flags):
            try:
                truth.append(flag is not FAILED and bool(flag))
            except Exception as exc:
                failures.append((k, exc))
                truth.append(False)
        where = self.wheres[route]
        for k, error in failures:
            self.errors.raised(where, error)
            if k not in errored:
                errored[k] = ErrorRecord(whole.ids[k], whole.raws[k], payloads[k], error=error)
        picks = list(compress(range(len(truth)), truth))
        if accepted is not None:
            accepted.update(picks)
        return Batch(whole.ids, whole.raws, tuple(map(payloads.__getitem__, picks)), picks=picks)

    def _group(
        self,
        subs: list[tuple[Sequence[Dest], Batch]],
        group: str,
        records: Batch,
    ) -> None:
        if not records:
            return
        dest = self.infra[group]
        if dest is None:
            self.ledger.discard(group, len(records))
        else:
            subs.append(((dest,), records))
