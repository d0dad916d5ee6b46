"""quiet_library_logs: mute trio_sink's logs for a block."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["quiet_library_logs"]


@contextmanager
def quiet_library_logs() -> Iterator[None]:
    """Mute trio_sink's logs inside the block, and restore them after it.

    The logs only narrate (a run's result is its report), and formatting a traceback
    for every failed write costs most of a long property test's example. It sets the
    level of the ``trio_sink`` logger above ``CRITICAL``, so its children that have no
    level of their own (all of them, unless you set one) log nothing; on leaving, the
    level it had is set again. A sync context manager: it works in sync and async code
    alike, around ``trio.run`` or inside a task.
    """
    logger = logging.getLogger("trio_sink")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)
