"""running: a pipeline in daemon mode for the length of an ``async with`` block."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from .._handle import PipelineHandle
from .._pipeline import Pipeline

__all__ = ["running"]


@asynccontextmanager
async def running(pipeline: Pipeline) -> AsyncIterator[PipelineHandle]:
    """Run ``pipeline`` in daemon mode for the length of an ``async with`` block::

        async with running(pipeline) as handle:
            await trio.sleep(1)
            handle.stop()
        report = handle.report  # the run has ended here

    It starts ``pipeline.run`` in a nursery of its own (``await
    nursery.start(pipeline.run)``) and gives the block the
    :class:`~trio_sink.PipelineHandle` once every stage is up. When the block ends,
    it waits until the run has ended: stop the run in the block (``handle.stop()``),
    or let its source end, or it waits as long as the run goes on. After the block,
    ``handle.report`` is the report and ``await handle.wait()`` returns it at once.

    If the block raises, the run is cancelled (what it had not delivered is reported,
    its sinks are closed), and the exception propagates once the run has ended. If the
    run raises (a :class:`~trio_sink.SourceError`, say), the block is cancelled and the
    run's exception propagates. One exception propagates as itself, as ``await
    pipeline.run()`` would raise it, not in an exception group; when the block and the
    run both raise, both propagate in a :exc:`BaseExceptionGroup`, as from a nursery.

    Entering is a checkpoint (it waits for the stages to start); cancelled there, the
    run is cancelled and the block never runs. Leaving is a schedule point, also when
    the run has already ended. Cancelled from outside while the block runs or while
    it waits for the end, the run is cancelled with it: its report is built (see
    :meth:`Pipeline.run <trio_sink.Pipeline.run>`) and :exc:`trio.Cancelled`
    propagates to the scope that was cancelled.
    """
    only: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            yield await nursery.start(pipeline.run)
    except BaseExceptionGroup as group:
        # The nursery holds one task, the run, beside the block: a group of one hides
        # nothing, so its exception is raised as itself (below, outside this handler,
        # so that it does not get the group as its context).
        if len(group.exceptions) != 1:
            raise
        only = group.exceptions[0]
    if only is not None:
        context = only.__context__
        try:
            raise only
        finally:
            only.__context__ = context
            del only
