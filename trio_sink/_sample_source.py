"""SampleSource: made-up application log lines, the same for the same seed."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import final

import trio

from ._checks import check_int, check_seconds
from ._source import Source

__all__ = ["SampleSource", "sample_lines"]

SERVICES = ("api", "auth", "billing", "search", "worker")
PATHS = ("/users", "/orders", "/cart", "/search", "/login", "/health")
START = datetime(2026, 12, 6, 7, 0, 0, tzinfo=UTC)


def sample_lines(count: int, seed: int = 0) -> Iterator[str]:
    """``count`` lines of a mixed application log: mostly ``TIME LEVEL SERVICE:
    MESSAGE key=value...``, some errors and timeouts, and now and then a line of a
    stack trace that no rule for the format matches."""
    rng = random.Random(seed)
    t = START
    for _ in range(count):
        t += timedelta(milliseconds=rng.randint(1, 40))
        stamp = t.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        service = rng.choice(SERVICES)
        roll = rng.random()
        if roll < 0.02:
            handler = rng.choice(["get", "post"])
            yield f"    at {service}.handlers.{handler}(line {rng.randint(1, 900)})"
            continue
        path = rng.choice(PATHS)
        ms = int(rng.expovariate(1 / 40))
        if roll < 0.06:
            level, msg = "ERROR", f"request failed path={path} status=500 ms={ms}"
        elif roll < 0.09:
            level, msg = "WARN", f"upstream timeout path={path} ms={ms + 1000}"
        elif roll < 0.25:
            level, msg = (
                "DEBUG",
                f"cache {rng.choice(['hit', 'miss'])} key={path}:{rng.randint(1, 99)}",
            )
        else:
            status = rng.choice((200, 200, 200, 201, 204, 304, 404))
            level, msg = "INFO", f"request done path={path} status={status} ms={ms}"
        yield f"{stamp} {level} {service}: {msg}"


@final
class SampleSource(Source[str]):
    """The lines of :func:`sample_lines`; at most ``rate`` a second when given (else as
    fast as the pipeline takes them)."""

    name = "sample"

    def __init__(self, count: int = 10_000, *, seed: int = 0, rate: float | None = None) -> None:
        self.count = check_int("count", count, 0)
        self.seed = seed
        self.rate = check_seconds("rate", rate, positive=True, optional=True)

    async def __aiter__(self) -> AsyncIterator[str]:
        if self.rate is None:
            for k, line in enumerate(sample_lines(self.count, self.seed)):
                if k % 1024 == 1023:
                    await trio.lowlevel.checkpoint()
                yield line
            return
        start = trio.current_time()
        for k, line in enumerate(sample_lines(self.count, self.seed)):
            await trio.sleep_until(start + k / self.rate)
            yield line
