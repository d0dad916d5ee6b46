"""Dest: one sink as the routing task sees it."""

from __future__ import annotations

from typing import Protocol

import trio

from ._feeds import SinkBatch
from ._inline import InlineWrites
from ._ledger import SinkAccount

__all__ = ["Dest", "HasRoom"]


class Dest:
    """One sink as the route stage sees it: its counts and its channel, and its writer
    when the routing task may write the sink itself (it never blocks)."""

    __slots__ = ("account", "blocked_seconds", "inline", "send", "writer")

    def __init__(self, account: SinkAccount, send: trio.MemorySendChannel[SinkBatch]) -> None:
        self.account = account
        self.send = send
        self.blocked_seconds = 0.0  # the source stage waiting for room in its buffer
        self.inline: InlineWrites | None = None
        self.writer: HasRoom | None = None
        """The sink's writer, when its buffer is bounded in records (see
        ``Fanout.record_bound``)."""


class HasRoom(Protocol):
    """A sink's writer, which sets ``room`` (and clears it) when it takes a batch."""

    room: trio.Event | None
