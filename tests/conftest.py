from __future__ import annotations

import os
from typing import Any

# Every ledger of the suite checks its accounts after every move (and so do the
# subprocesses the tests start, which inherit the variable).
os.environ.setdefault("TRIO_SINK_STRICT_LEDGER", "1")

import pytest
import trio
from hypothesis import HealthCheck, settings

# "dev": quick local runs. "ci": Hypothesis's own ci profile (derandomized, no deadline),
# which it loads by itself when CI=true; registered here too so it can be named.
settings.register_profile(
    "dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    parent=settings.get_profile("ci"),
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)
# "mutants": tools/mutate.py's test runs. The dev profile, derandomized and without the
# example database, so that a mutant's verdict is the same from one run to the next.
settings.register_profile(
    "mutants", parent=settings.get_profile("dev"), derandomize=True, database=None
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def inline_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``trio.to_thread.run_sync`` calls in the event loop, after a checkpoint.

    Under an autojump clock, waiting for a worker thread counts as idle: virtual time
    jumps ahead by as many steps as the thread's real duration allows, which makes the
    order of events depend on the machine. Inline, a store write takes no virtual time,
    and a test can say when things happen. Cancellation keeps its meaning for a thread
    that has not started: cancelled at the checkpoint, nothing ran.
    """

    async def run_sync(fn: Any, *args: Any, **kwargs: Any) -> Any:
        await trio.lowlevel.checkpoint()
        return fn(*args)

    monkeypatch.setattr(trio.to_thread, "run_sync", run_sync)
