"""Statistics snapshots made by hand, for the statistics endpoint and ``top``."""

from __future__ import annotations

from typing import Any

from trio_sink._stats import PipelineStatistics, SinkStatistics, SourceStatistics


def sink(name: str, delivered: int, **more: Any) -> SinkStatistics:
    fields: dict[str, Any] = {
        "routed": delivered,
        "delivered": delivered,
        "undelivered": 0,
        "waiting": 0,
        "buffered": 0,
        "in_flight": 0,
        "peak_buffered": 0,
        "paused": False,
        "undelivered_by_reason": {},
        **more,
    }
    return SinkStatistics(name=name, **fields)


def snapshot(t: float = 5.0, delivered: int = 10, **more: Any) -> PipelineStatistics:
    fields: dict[str, Any] = {
        "state": "running",
        "time": t,
        "received": delivered,
        "source": SourceStatistics(
            received=delivered, dispatched=delivered, undelivered=0, pulled=0, paused=False
        ),
        "sinks": {
            "out": sink("out", delivered, buffered=3, in_flight=2, waiting=1),
            "slow": sink(
                "slow",
                delivered // 2,
                undelivered=1,
                undelivered_by_reason={"sink error": 1},
                health="unhealthy",
            ),
        },
        "discarded": {"miss": 4},
        "drain": None,
        **more,
    }
    return PipelineStatistics(**fields)
