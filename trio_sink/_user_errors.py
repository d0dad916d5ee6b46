"""What ``parse`` and the routes' ``when`` raise: the records go to the ``error`` group
(or are counted there), and the people running the pipeline hear of it.

The first exception of each kind (where it was raised, and its type) is logged at
WARNING with its traceback; after that, the count of those raised since is logged at
most once every ``interval`` seconds, and once more at the end of the run. Nothing is
logged per record, so a parse that fails on every line costs a log line a second.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

import trio

from ._exceptions import describe

__all__ = ["UserErrors"]

log = logging.getLogger("trio_sink.pipeline")


class UserErrors:
    """Logs the exceptions user functions raise, as the module documentation says."""

    def __init__(self, interval: float, clock: Callable[[], float] = trio.current_time) -> None:
        self.interval = interval
        self.clock = clock
        self.seen: set[tuple[str, type[BaseException]]] = set()
        self.since: Counter[str] = Counter()  # raised since the last count was logged
        self.total: Counter[str] = Counter()
        self.next_count = 0.0

    def raised(self, where: str, exc: BaseException) -> None:
        """``where`` (``"parse"``, or ``"when of route 'x'"``) raised ``exc``."""
        self.total[where] += 1
        kind = (where, type(exc))
        if kind not in self.seen:
            self.seen.add(kind)
            log.warning(
                'pipeline.user_error where="%s" error="%s"; the record goes to the error group',
                where,
                describe(exc),
                exc_info=exc,
            )
            if not self.since:  # counts start one interval after the first line
                self.next_count = self.clock() + self.interval
            return
        self.since[where] += 1
        now = self.clock()
        if now >= self.next_count:
            self.flush()
            self.next_count = now + self.interval

    def flush(self) -> None:
        """Log the counts raised since the last log line, if any."""
        for where, n in sorted(self.since.items()):
            log.warning(
                'pipeline.user_errors where="%s" count=%d total=%d', where, n, self.total[where]
            )
        self.since.clear()
