"""Scale-out with real processes and real signals: three workers (tests/
redis_worker_child.py) share one consumer group; one is SIGKILLed mid-run, one is
SIGTERMed (it drains and acknowledges, and exits 0); the last takes over what the killed
one held once it is idle ``claim_idle``. Every entry is delivered at least once, none is
lost, nothing stays pending, and the entries delivered twice are among those the killed
worker held unacknowledged when it died (its in-flight window).

Waits are on conditions, with generous bounds: the machine may be busy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import coredis
import pytest
import trio
from redis_helpers import RedisServer, running_redis

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL, SIGSTOP are POSIX")

CHILD = Path(__file__).with_name("redis_worker_child.py")
PROJECT = Path(__file__).parent.parent
ENTRIES = 30_000
CLAIM_IDLE = 3.0
"""Seconds: far above what a live worker holds an entry (milliseconds), so that only
the killed worker's entries are taken over, even on a busy machine."""

Client = coredis.Redis[str]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as server:
        yield server


@asynccontextmanager
async def client_of(url: str) -> AsyncIterator[Client]:
    async with coredis.Redis.from_url(url, decode_responses=True) as client:
        yield client


@asynccontextmanager
async def workers(url: str, names: list[str]) -> AsyncIterator[dict[str, subprocess.Popen[str]]]:
    """The worker processes, each up (it printed ``ready``); killed at the end if alive."""
    path = os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("PYTEST_ADDOPTS", None)
    procs = {
        name: subprocess.Popen(  # noqa: ASYNC220 - quick to start; read in a thread
            [sys.executable, str(CHILD), url, name, str(CLAIM_IDLE)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in names
    }
    try:
        with trio.fail_after(60):
            for proc in procs.values():
                assert proc.stdout is not None
                line = await trio.to_thread.run_sync(proc.stdout.readline, abandon_on_cancel=True)
                assert line == "ready\n", line
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()


async def wait_for(what: str, check: Any, seconds: float = 60) -> None:
    """Poll ``await check()`` until true (the processes give nothing else to wait on)."""
    with trio.fail_after(seconds):
        while not await check():  # noqa: ASYNC110 - no event to wait on across processes
            await trio.sleep(0.01)


async def pending_of(client: Client, consumer: str | None = None) -> list[str]:
    """The ids pending in the group (for one consumer)."""
    found: Any = await client.xpending("in", "g", "-", "+", 10 * ENTRIES, consumer=consumer)
    return [p.identifier for p in found]


async def test_three_workers_one_killed_one_stopped_lose_nothing(server: RedisServer) -> None:
    url = server.url
    async with client_of(url) as client:
        await client.xgroup_create("in", "g", "0", mkstream=True)
        async with workers(url, ["w1", "w2", "w3"]) as procs:
            added = 0

            async def add_up_to(n: int) -> None:
                """Add entries, 500 a round trip, until there are ``n``."""
                nonlocal added
                while added < n:
                    async with client.pipeline(transaction=False) as pipe:
                        for i in range(added, min(n, added + 500)):
                            pipe.xadd("in", {"n": str(i)})
                    added = min(n, added + 500)

            async def out_at_least(n: int) -> bool:
                return await client.xlen("out") >= n

            # w1 dies mid-run holding entries: frozen first (SIGSTOP), so that what it
            # holds can be read before it dies; until it holds some, thawed again, with
            # more entries to work on.
            await add_up_to(ENTRIES // 3)
            await wait_for("progress", lambda: out_at_least(ENTRIES // 10))
            for _ in range(500):
                procs["w1"].send_signal(signal.SIGSTOP)
                held = await pending_of(client, "w1")
                if held:
                    break
                procs["w1"].send_signal(signal.SIGCONT)
                await add_up_to(min(added + 500, ENTRIES * 2 // 3))
                await trio.sleep(0.005)
            assert held, "w1 never held an entry when looked at"
            procs["w1"].send_signal(signal.SIGKILL)
            assert await trio.to_thread.run_sync(procs["w1"].wait, 30) == -signal.SIGKILL

            # w2 is stopped gracefully: it drains, acknowledges all it delivered, exits 0.
            await add_up_to(ENTRIES * 2 // 3)
            await wait_for("progress", lambda: out_at_least(ENTRIES // 2))
            procs["w2"].send_signal(signal.SIGTERM)
            assert await trio.to_thread.run_sync(procs["w2"].wait, 60) == 0
            # Left pending by w2: only what a read cancelled at its Stop had taken.
            left_by_w2 = await pending_of(client, "w2")
            await add_up_to(ENTRIES)

            # w3 reads the rest, and takes over w1's entries (and any a cancelled read
            # of w2's left behind) once idle CLAIM_IDLE.
            async def all_delivered_and_acknowledged() -> bool:
                if await client.xlen("out") < ENTRIES:
                    return False
                return not await pending_of(client)

            await wait_for("the end", all_delivered_and_acknowledged)
            procs["w3"].send_signal(signal.SIGTERM)
            assert await trio.to_thread.run_sync(procs["w3"].wait, 60) == 0

        n_of = {e.identifier: int(e.field_values["n"]) for e in await client.xrange("in")}
        out = [
            (int(e.field_values["n"]), e.field_values["worker"]) for e in await client.xrange("out")
        ]
        assert await pending_of(client) == []

    times = Counter(n for n, _ in out)
    lost = ENTRIES - len(times)
    duplicated = {n for n, k in times.items() if k > 1}
    held_by_w1 = {n_of[ident] for ident in held}
    print(  # noqa: T201 - the figures of the run, for the reader of -s output
        f"\nscale-out: {ENTRIES} entries, 3 workers; delivered {len(out)}"
        f" ({dict(Counter(w for _, w in out))}); lost {lost}; delivered twice"
        f" {len(duplicated)}; w1 held {len(held)} unacknowledged when killed; w2 left"
        f" {len(left_by_w2)} pending (read, not yielded) at its Stop"
    )
    assert lost == 0
    assert set(times) == set(range(ENTRIES))
    # Only what the killed worker held unacknowledged was delivered twice, once each.
    assert duplicated <= held_by_w1
    assert max(times.values()) <= 2
    # The stopped worker acknowledged everything it delivered.
    assert not {n_of[ident] for ident in left_by_w2} & {n for n, w in out if w == "w2"}
