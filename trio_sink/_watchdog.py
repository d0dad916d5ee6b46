"""The watchdog of a sink's writes: a write that runs past its ``write_timeout`` is
cancelled, and one that holds the event loop is logged.

A cancel scope of its own for every write would cost more than the write of a small
batch (a scope is ~10 us). So the writer's main loop runs in one scope, the ``guard``,
and notes when each write begins; a task beside it (:meth:`Watchdog.watch`) sleeps
until the write it last saw begin is ``write_timeout`` old, and cancels the guard if
that write is still running. With writes flowing, that is one look per
``write_timeout``, never one per write; once the writer has been idle that long, the
watchdog waits without a deadline for the next write.
"""

from __future__ import annotations

import logging

import trio

from ._ki import protected

__all__ = ["BLOCKING", "Watchdog"]

log = logging.getLogger("trio_sink.sink")

BLOCKING = 0.1
"""Seconds of a write without a checkpoint that get a sink logged as blocking the loop."""


class Watchdog:
    """One sink's writes, as its watchdog sees them."""

    def __init__(self, name: str, write_timeout: float | None) -> None:
        self.name = name
        self.write_timeout = write_timeout
        self.began: float | None = None
        """When the write in progress began (Trio's clock); None between writes."""
        self.last_began = 0.0
        self.writes = 0
        """Writes begun."""
        self.guard = trio.CancelScope()
        """Around the writer's main loop: what a timed-out write cancels."""
        self.timed_out = False
        """The guard was cancelled for a write that ran too long."""
        self.idle: trio.Event | None = None  # the watchdog waits on it; set when a write begins
        self.scope = trio.CancelScope()
        """Around :meth:`watch`: cancelled when the writer ends."""
        self.blocking_logged = False

    def begin(self, now: float) -> None:
        """A write of the main loop begins at ``now``."""
        self.writes += 1
        self.began = self.last_began = now
        idle = self.idle
        if idle is not None:
            self.idle = None
            idle.set()

    @protected
    async def watch(self) -> None:
        """Cancel the guard when a write runs past ``write_timeout``; until the writer
        ends (which cancels :attr:`scope`)."""
        timeout = self.write_timeout
        if timeout is None:
            return
        with self.scope:
            seen = -1
            while True:
                if self.writes == seen or self.timed_out:
                    self.idle = idle = trio.Event()
                    await idle.wait()
                seen = self.writes
                await trio.sleep_until(self.last_began + timeout)
                if self.writes == seen and self.began is not None:
                    self.timed_out = True
                    self.guard.cancel()

    def blocked(self, seconds: float) -> None:
        """A write held the event loop for ``seconds`` without letting another task run:
        logged once per sink."""
        if not self.blocking_logged:
            self.blocking_logged = True
            log.warning(
                "sink.blocking sink=%s seconds=%.3f: its write held the event loop and no"
                " other task could run meanwhile; run blocking calls in it with"
                " trio.to_thread.run_sync",
                self.name,
                seconds,
            )
