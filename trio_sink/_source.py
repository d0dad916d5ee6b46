"""Sources, and the source stage: pull raw items, assign ids, cut batches, ship them.

A sync iterable is pulled in a plain loop (``list.extend`` over ``islice``: no await
per item). An async iterable is pulled by a puller task into a local buffer while the
batcher (the stage's own task) waits, once per batch, for "buffer full" or "first
item older than ``batch_timeout``" and ships the whole buffer. The pull is never
cancelled to cut a batch (that would end an async generator for good); only Stop
cancels it. Each batch is routed and handed to the sinks by the same task (see
``Fanout``), so it crosses exactly one channel on its way to a sink.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Sequence,
)
from itertools import islice
from time import perf_counter
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import trio

from ._control import Pause, StopControl
from ._exceptions import describe
from ._fanout import Fanout
from ._ki import protected, unprotect
from ._route import unrouted

if TYPE_CHECKING:
    from ._acks import Acks

__all__ = ["Source", "SourceStage", "acknowledges", "close_source", "run_source_stage"]

T = TypeVar("T")
log = logging.getLogger("trio_sink.pipeline")

BLOCKING = 0.1
"""Seconds one pull of a sync source may hold the event loop before it is logged."""


class Source(Generic[T]):
    """Base class for sources that need setup, teardown or acknowledgements.

    Subclasses implement ``__aiter__`` (an async generator method is the easy way).
    ``open()`` is awaited once before the first item is pulled; ``aclose()`` exactly
    once at the end of the run, after the sinks drained and the last :meth:`ack`,
    under cancellation after a drain deadline. At a graceful Stop, a pull that is
    waiting for input is cancelled; an item already produced is still delivered. A
    source that defines :meth:`ack` is told which items are safe, so that it can
    resume after them when restarted. Any iterable or async iterable is accepted
    directly where a Source is.
    """

    name: str = "source"
    ack_interval: float = 0.1
    """The least seconds between the starts of two :meth:`ack` calls: what becomes safe
    meanwhile goes in the next call (a source whose ack writes a file or a network
    request may want more)."""

    def __aiter__(self) -> AsyncIterator[T]:
        raise NotImplementedError(f"{type(self).__name__}.__aiter__")

    async def open(self) -> None:
        """Set up before the first pull. Default: nothing."""

    async def ack(self, items: Sequence[T]) -> None:
        """Acknowledge ``items``: every record made from them reached a final, safe
        outcome. Define it to be told; the default does nothing, and is never called.

        The pipeline calls it in source order with consecutive runs of the items this
        source yielded (the next call's first item follows the last item of the one
        before), once every record made from them was delivered to every sink it was
        routed to, written to the rescue store, or discarded by configuration (an infra
        group with no sink). A record that was not delivered and not stored is never
        acknowledged, and neither is anything after it: a source that resumes from its
        acknowledged prefix after a crash sees those items again (at least once).

        At most one call is in flight; a call takes every item acknowledged since the
        last one, and calls begin at least :attr:`ack_interval` seconds apart. Calls
        run beside the data path, never in it. A last call is made after the sinks
        have drained and the rest was stored, before :meth:`aclose`. If a call raises,
        the error is logged and no more calls are made in this run (delivery goes on).
        """

    async def aclose(self) -> None:
        """Tear down at the end of the run, after the last :meth:`ack`. Default:
        nothing."""


def acknowledges(source: object) -> bool:
    """Whether ``source`` defines ``ack``: a :class:`Source` whose class overrides the
    default (which is never called)."""
    return isinstance(source, Source) and type(source).ack is not Source.ack


def _nothing() -> None:
    pass


class SourceStage:
    """The state of the source stage of one run: what it holds, and its settings."""

    def __init__(
        self,
        control: StopControl,
        fanout: Fanout,
        batch_size: int,
        batch_timeout: float,
        *,
        max_size: int | None = None,
        limit: int | None = None,
        track_idle: bool = False,
    ) -> None:
        self.control = control
        self.ledger = fanout.router.ledger
        self.fanout = fanout
        self.batch_size = batch_size
        self.max_size = batch_size if max_size is None else max_size
        self.size = batch_size
        """The size of the next batch: from ``batch_size``, doubled after each full
        batch up to ``max_size``, back to ``batch_size`` after one cut by the timeout."""
        self.batch_timeout = batch_timeout
        self.limit = limit  # stop_after_records
        self.track_idle = track_idle  # note when each item arrives (stop_when_idle)
        self.end_kind = "source exhausted"
        # Items pulled from an async source and not yet cut into a batch.
        self.buf: list[Any] = []
        self.error: BaseException | None = None
        """What the source raised, if it did (even if a deadline then cut the stage
        short)."""
        self.pause = Pause()
        control.on_stop.append(self.pause.release)  # a paused source sees the Stop
        # For stop_when_idle: when the source last produced an item, or was last held
        # by a sink's full buffer; whether it is held now; who to tell.
        self.last_activity = trio.current_time()
        self.shipping = False
        self.on_activity: Callable[[], object] = _nothing
        self.on_end: Callable[[], object] = _nothing
        self.blocking_logged = False
        self.acks: Acks | None = None
        """The run's acknowledgements, when the source makes them."""
        self.opened = False
        """Whether the stage began to open the source (it is closed after the run)."""

    def pause_source(self) -> None:
        if self.pause.pause():
            log.info("pipeline.source_paused received=%d", self.ledger.received)

    def resume_source(self, *, log_it: bool = True) -> None:
        if self.pause.resume():
            self.last_activity = trio.current_time()  # idle time counts from here
            self.on_activity()
            if log_it:
                log.info("pipeline.source_resumed received=%d", self.ledger.received)

    def _blocked(self, seconds: float) -> None:
        self.blocking_logged = True
        log.warning(
            "source.blocking seconds=%.3f: pulling one batch from the source held the event"
            " loop, and nothing else could run meanwhile; read files, pipes and sockets with"
            " trio_sink.sources.LinesSource, or give an async iterable",
            seconds,
        )

    async def wait_resumed(self) -> None:
        """Wait while the source is paused; return at once on Stop."""
        resumed = self.pause.resumed
        if resumed is not None and not self.control.stopping:
            await resumed.wait()

    async def ship(self, raws: list[Any]) -> None:
        """Give ``raws`` their ids (they are received from here on) and ship them."""
        first = self.ledger.receive(len(raws))
        if self.acks is not None:
            self.acks.hold(first, raws)
        self.shipping = True  # a source held by backpressure is not idle
        try:
            await self.fanout.ship(first, raws)
        finally:
            self.shipping = False
            if self.track_idle:
                self.last_activity = trio.current_time()
                self.on_activity()

    def failed(self, exc: BaseException) -> None:
        log.error('source.failed error="%s"', describe(exc), exc_info=exc)
        self.error = exc
        self.control.stop("source failed")

    def abandon(self, exc: BaseException) -> None:
        reason = self.control.reason_for(exc)
        self.fanout.abandon(reason)
        if self.buf:
            first = self.ledger.receive(len(self.buf))
            if self.acks is not None:
                self.acks.hold(first, self.buf)
            self.ledger.abandon(None, None, "source", reason, unrouted(first, self.buf))
            self.buf = []

    async def guarded(self, loop: Callable[[], Awaitable[None]]) -> None:
        """Run ``loop`` (the stage's pull, or its batcher) to its end; when a sink
        written by this task ran past its write timeout, the watchdog cancels the
        guard: that write is taken over by the sink's task, and ``loop`` goes on where
        it was."""
        fanout = self.fanout
        if fanout.watchdog is None:
            await loop()
            return
        while True:
            with fanout.guard():
                await fanout.resume()
                await loop()
                return

    # -- sync iterables -------------------------------------------------------

    async def pull_sync(self, it: Iterator[Any]) -> None:
        await self.guarded(functools.partial(self._pull_sync, it))

    async def _pull_sync(self, it: Iterator[Any]) -> None:
        limit = self.limit
        control = self.control
        while not control.stopping:
            if self.pause.resumed is not None:
                await self.wait_resumed()
                continue
            size = self.size
            if size < self.max_size:  # a sync source fills every batch: the next grows
                self.size = min(2 * size, self.max_size)
            take = size if limit is None else min(size, limit - self.ledger.received)
            # extend keeps the items it took if the iterator raises midway; held in
            # self.buf meanwhile, so that abandon() reports them after a BaseException.
            raws: list[Any] = []
            self.buf = raws
            began = perf_counter()
            try:
                raws.extend(islice(it, take))
            except Exception as exc:
                self.failed(exc)
            if perf_counter() - began >= BLOCKING and not self.blocking_logged:
                self._blocked(perf_counter() - began)
            self.buf = []
            if raws:
                await self.ship(raws)  # notes the time it ends, if track_idle
            if len(raws) < take:
                break
            if limit is not None and self.ledger.received >= limit:
                self.end_kind = "record limit"
                break

    # -- async iterables ------------------------------------------------------

    async def pull_async(self, ait: AsyncIterator[Any]) -> None:
        self.have_items = trio.Event()
        self.full = trio.Event()
        self.space = trio.Event()
        self.first_at = 0.0
        self.done = False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._puller, ait)
            await self.guarded(self._batcher)

    @protected
    async def _puller(self, ait: AsyncIterator[Any]) -> None:
        control = self.control
        limit = self.limit
        track_idle = self.track_idle
        pulled = 0
        try:
            with control.pull_scope:
                async for raw in ait:
                    buf = self.buf
                    buf.append(raw)
                    if track_idle:
                        self.last_activity = trio.current_time()
                    if len(buf) == 1:
                        self.first_at = trio.current_time()
                        self.have_items.set()
                    if limit is not None:
                        pulled += 1
                        if pulled >= limit:
                            self.end_kind = "record limit"
                            break
                    if len(buf) >= self.size:
                        self.full.set()
                        await self.space.wait()
                    if self.pause.resumed is not None:
                        await self.wait_resumed()
        except Exception as exc:
            self.failed(exc)
        finally:
            self.done = True
            self.have_items.set()
            self.full.set()

    async def _batcher(self) -> None:
        while True:
            if not self.buf and not self.done:
                await self.have_items.wait()
            if not self.done and len(self.buf) < self.size:
                with trio.move_on_at(self.first_at + self.batch_timeout):
                    await self.full.wait()
            # A full batch: the source is fast, the next may be larger. One cut by the
            # timeout (or the end): the source is slow, the next starts small again.
            full = len(self.buf) >= self.size
            self.size = min(2 * self.size, self.max_size) if full else self.batch_size
            raws, self.buf = self.buf, []
            self.have_items = trio.Event()
            self.full = trio.Event()
            space, self.space = self.space, trio.Event()
            space.set()
            if raws:
                await self.ship(raws)
            elif self.done:
                return


@protected
async def run_source_stage(
    source: Any,
    stage: SourceStage,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the source stage. If the source raises, its exception is kept in
    ``stage.error`` (even if a deadline then cuts the stage short).

    When it ends, for whatever reason, every sink channel is closed: the end of input.
    """
    control = stage.control
    fanout = stage.fanout
    closers: list[Any] = []  # what to close at the end, in order
    ended = False
    try:
        it: Iterator[Any] | None = None
        ait: AsyncIterator[Any] | None = None
        try:
            if isinstance(source, Source):
                # Closed by the run, after the sinks drained and the last ack.
                stage.opened = True
                unprotect(source.open, source.aclose)
                await source.open()
            # Generators the pipeline iterated are closed at the end (one suspended at a
            # yield by Stop runs its finally blocks now, not whenever the GC gets to it),
            # before the Source's own aclose() at the end of the run. Other iterators, such as a
            # memory channel given as the source, are the caller's to close.
            if isinstance(source, AsyncIterable):
                ait = aiter(source)
                unprotect(ait)
                if inspect.isasyncgen(ait):
                    closers.insert(0, ait)
            else:
                it = iter(source)
                unprotect(it)
                if inspect.isgenerator(it):
                    closers.insert(0, it)
        except Exception as exc:
            stage.failed(exc)
        task_status.started()
        if it is not None:
            await stage.pull_sync(it)
        elif ait is not None:
            await stage.pull_async(ait)
        ended = True
    except BaseException as exc:
        stage.abandon(exc)
        raise
    finally:
        fanout.close()
        if ended:
            # The source's end (or failure) is the Stop of batch mode. Not when the
            # stage was cancelled: that is no Stop, and must not start a drain deadline.
            control.stop(stage.end_kind if stage.error is None else "source failed")
        stage.on_end()
        await _close_all(closers)


async def _close_all(closers: list[Any]) -> None:
    """Close each of ``closers`` in order; each one even if an earlier one raised
    (``Cancelled`` included, after a drain deadline)."""
    if not closers:
        return
    closer, rest = closers[0], closers[1:]
    try:
        if inspect.isgenerator(closer):
            closer.close()
        else:
            await closer.aclose()
    except Exception as exc:
        log.error('source.close_failed error="%s"', describe(exc), exc_info=exc)
    finally:
        await _close_all(rest)


async def close_source(source: Source[Any], control: StopControl) -> None:
    """Close ``source`` at the end of the run, after its last ack: under cancellation
    when the run is past its drain deadline. An error is logged."""
    with trio.CancelScope() as scope:
        if control.scope.cancel_called:
            scope.cancel()
        await _close_all([source])
