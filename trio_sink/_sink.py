"""The Sink base class, and the adapter that turns anything sink-shaped into a slot."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ._checks import is_async_callable
from ._exceptions import ConfigError, describe
from ._ki import unprotect
from ._record import Record

if TYPE_CHECKING:
    from ._ledger import Ledger

__all__ = ["Sink", "SinkLike", "SinkSlot", "as_slot", "close_sink"]

log = logging.getLogger("trio_sink.sink")


class Sink:
    """Base class for sinks; subclass it, or write any object of the same shape.

    A sink receives batches of records from its own task, one write at a time. It may
    keep state between writes without locks.
    """

    name: str
    """Unique in one pipeline; the key of the sink in every report."""

    never_blocks: bool = False
    """True declares that ``write`` never awaits anything that can wait (no I/O, no
    sleep, no lock): it only computes, or stores in memory. The pipeline may then call
    it from the task that routes the records, with no buffer or task of its own, which
    saves a channel and a task switch per batch. The accounting is the same. A write
    that raises is retried by the sink's own task, as any failed write, and the sink
    is written from its own task for the rest of the run; so is a sink whose write
    awaited after all (logged at WARNING), or ran past its ``write_timeout``. A sink
    with a circuit breaker, a paused sink, the ``error`` and ``monitor`` groups' sinks,
    and a sink whose ``write_timeout`` differs from that of most such sinks are
    written from their own task. :func:`trio_sink.testing.check_sink` checks the
    claim (docs/sinks.md, "Sinks that never block")."""

    async def write(self, batch: Sequence[Record]) -> None:
        """Deliver ``batch``. Returning means delivered; raising means not delivered.

        A checkpoint in most sinks. If cancelled (at the drain deadline), the batch is
        reported as undelivered: a sink that may have written part of it before the
        cancellation gives at-least-once delivery for that batch. The batch is
        read-only and must not be kept after the call unless copied. The pipeline
        gives a :class:`~trio_sink.Batch`, whose columns (``batch.payloads``, or
        :func:`~trio_sink.payloads_of` in typed code) build no record.
        """
        raise NotImplementedError(f"{type(self).__name__}.write")

    async def flush(self) -> None:
        """Called once after the last write of a run, under the drain deadline."""

    async def aclose(self) -> None:
        """Called exactly once at the end of the run; after a drain deadline, under
        cancellation (Trio's convention: close forcefully, and quickly)."""


@runtime_checkable
class SinkLike(Protocol):
    """The shape of a sink: a ``name`` and an async ``write(batch)``."""

    name: str

    def write(self, batch: Sequence[Record], /) -> Awaitable[None]: ...


SinkArg = SinkLike | Callable[[Sequence[Record]], Awaitable[None]]


async def _nothing() -> None:
    pass


class SinkSlot:
    """A sink as the pipeline sees it: its name and three bound coroutine functions."""

    __slots__ = ("aclose", "flush", "name", "never_blocks", "obj", "write")

    def __init__(self, obj: object) -> None:
        self.obj = obj
        name = getattr(obj, "name", None) if hasattr(obj, "write") else None
        if hasattr(obj, "write"):
            write = obj.write
            flush = getattr(obj, "flush", None) or _nothing
            aclose = getattr(obj, "aclose", None) or _nothing
        elif callable(obj) and inspect.iscoroutinefunction(obj):
            write, flush, aclose = obj, _nothing, _nothing
            name = getattr(obj, "__name__", None)
        else:
            raise ConfigError(
                f"a sink must have a name and an async write(batch), or be an async"
                f" function; got {obj!r}"
            )
        if not callable(write):
            raise ConfigError(f"sink {obj!r}: write must be callable, got {write!r}")
        if not is_async_callable(write):
            raise ConfigError(
                f"sink {obj!r}: write must be async (async def write(self, batch)), got"
                f" {write!r}; run blocking work in it with trio.to_thread.run_sync"
            )
        if not isinstance(name, str) or not name:
            raise ConfigError(f"sink {obj!r}: name must be a non-empty str, got {name!r}")
        unprotect(write, flush, aclose)
        self.name: str = name
        self.write: Callable[[Sequence[Record]], Awaitable[Any]] = write
        self.flush: Callable[[], Awaitable[Any]] = flush
        self.aclose: Callable[[], Awaitable[Any]] = aclose
        self.never_blocks = getattr(obj, "never_blocks", False) is True


def as_slot(obj: object) -> SinkSlot:
    return SinkSlot(obj)


async def close_sink(slot: SinkSlot, ledger: Ledger, what: str) -> None:
    """Await the sink's ``flush()`` or ``aclose()``; an exception from it is logged and
    kept in the report's ``sink_errors``: the records it had delivered stay delivered."""
    try:
        await (slot.flush() if what == "flush" else slot.aclose())
    except Exception as exc:
        log.error('sink.%s_failed sink=%s error="%s"', what, slot.name, describe(exc), exc_info=exc)
        ledger.note_error(slot.name, f"{what} raised {describe(exc)}")
