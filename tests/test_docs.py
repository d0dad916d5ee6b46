"""The code in docs/testing.md runs as written, and its tests pass."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import trio
import trio.testing

DOC = Path(__file__).parent.parent / "docs" / "testing.md"


def _namespace() -> dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    return namespace


def test_the_sink_in_the_docs_passes_check_sink() -> None:
    ns = _namespace()
    clock = trio.testing.MockClock(autojump_threshold=0)
    trio.run(ns["test_buffered_sink_keeps_the_contract"], clock, clock=clock)


def test_the_running_example_in_the_docs_passes() -> None:
    ns = _namespace()
    clock = trio.testing.MockClock(autojump_threshold=0)
    trio.run(ns["test_a_stop_delivers_what_was_pulled"], clock, clock=clock)


def test_the_property_test_in_the_docs_runs() -> None:
    # The Hypothesis-wrapped async test needs pytest-trio's wrapping to run as a whole;
    # here its body runs on hand-made plans, each under a fresh mock clock.
    from trio_sink.testing.strategies import Stop, StopPlan

    body = _namespace()["test_my_pipeline_is_lossless"].hypothesis.inner_test
    for plan in (StopPlan(()), StopPlan((Stop(0.5),)), StopPlan((Stop(0.25, immediate=True),))):
        clock = trio.testing.MockClock(autojump_threshold=0)
        trio.run(functools.partial(body, plan=plan, clock=clock), clock=clock)
