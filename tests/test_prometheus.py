"""trio_sink.extra.prometheus: every metric, read back from the exposition text."""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
import trio
import trio.testing
from helpers import GatedSink, checked
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from trio_sink import (
    ConfigError,
    DeliveryReport,
    DrainStatistics,
    Pipeline,
    PipelineStatistics,
    Route,
    SinkStatistics,
    SourceStatistics,
)
from trio_sink.extra import prometheus as prom
from trio_sink.sinks import NullSink, SlowSink
from trio_sink.testing import running

Labels = frozenset[tuple[str, str]]
Samples = dict[tuple[str, Labels], float]

REASONS = (
    "drain deadline",
    "immediate stop",
    "cancelled",
    "sink error",
    "pipeline failed",
)

# Family name (as the text format names it) -> type. Counters' samples end in _total.
FAMILIES = {
    "trio_sink_up": "gauge",
    "trio_sink_state": "gauge",
    "trio_sink_received_records": "counter",
    "trio_sink_dispatched_records": "counter",
    "trio_sink_source_undelivered_records": "counter",
    "trio_sink_source_pulled_items": "gauge",
    "trio_sink_source_paused": "gauge",
    "trio_sink_source_acknowledged_items": "counter",
    "trio_sink_source_unacknowledged_age_seconds": "gauge",
    "trio_sink_pending_records": "gauge",
    "trio_sink_discarded_records": "counter",
    "trio_sink_routed_records": "counter",
    "trio_sink_delivered_records": "counter",
    "trio_sink_undelivered_records": "counter",
    "trio_sink_waiting_records": "gauge",
    "trio_sink_buffered_records": "gauge",
    "trio_sink_in_flight_records": "gauge",
    "trio_sink_peak_buffered_records": "gauge",
    "trio_sink_sink_paused": "gauge",
    "trio_sink_sink_busy_seconds": "counter",
    "trio_sink_sink_blocked_seconds": "counter",
    "trio_sink_drain_info": "gauge",
    "trio_sink_drain_pending_records": "gauge",
    "trio_sink_drain_elapsed_seconds": "gauge",
    "trio_sink_drain_time_left_seconds": "gauge",
}
DRAIN_FAMILIES = {name for name in FAMILIES if name.startswith("trio_sink_drain_")}


# -- helpers ---------------------------------------------------------------------------


def sink_stats(name: str, **figures: Any) -> SinkStatistics:
    values: dict[str, Any] = {
        "routed": 0,
        "delivered": 0,
        "undelivered": 0,
        "waiting": 0,
        "buffered": 0,
        "in_flight": 0,
        "peak_buffered": 0,
        "paused": False,
        "undelivered_by_reason": {},
    }
    values.update(figures)
    return SinkStatistics(name=name, **values)


def stats(
    state: str = "running",
    *,
    received: int = 0,
    dispatched: int = 0,
    source_undelivered: int = 0,
    pulled: int = 0,
    source_paused: bool = False,
    acknowledged: int | None = None,
    unacknowledged_age: float | None = None,
    sinks: tuple[SinkStatistics, ...] = (),
    discarded: Mapping[str, int] | None = None,
    drain: DrainStatistics | None = None,
) -> PipelineStatistics:
    return PipelineStatistics(
        state=state,  # type: ignore[arg-type]  # tests pass the three states as str
        time=10.0,
        received=received,
        source=SourceStatistics(
            received=received,
            dispatched=dispatched,
            undelivered=source_undelivered,
            pulled=pulled,
            paused=source_paused,
            acknowledged=acknowledged,
            unacknowledged_age=unacknowledged_age,
        ),
        sinks={s.name: s for s in sinks},
        discarded=discarded or {},
        drain=drain,
    )


def drain_stats(kind: str = "stop", **figures: Any) -> DrainStatistics:
    values: dict[str, Any] = {
        "started_at": 4.0,
        "elapsed": 6.0,
        "pending_left": 0,
        "deadline": None,
        "time_left": None,
    }
    values.update(figures)
    return DrainStatistics(kind=kind, **values)


def scrape_families(registry: CollectorRegistry) -> dict[str, Any]:
    text = generate_latest(registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def scrape(registry: CollectorRegistry) -> Samples:
    """Every sample of the exposition text: (sample name, labels) -> value."""
    samples: Samples = {}
    for family in scrape_families(registry).values():
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = s.value
    return samples


def without(samples: Samples, name: str, label_value: str) -> Samples:
    """``samples`` without the label ``name=label_value`` (a pipeline's own label)."""
    return {(n, labels - {(name, label_value)}): v for (n, labels), v in samples.items()}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def registry_for(snapshot: PipelineStatistics, **kwargs: Any) -> CollectorRegistry:
    registry = CollectorRegistry()
    prom.register(lambda: snapshot, registry=registry, **kwargs)
    return registry


# -- hand-built snapshots --------------------------------------------------------------


def test_every_family_has_its_type_and_a_help_text() -> None:
    snapshot = stats("draining", sinks=(sink_stats("a"),), drain=drain_stats())
    families = scrape_families(registry_for(snapshot))
    assert {name: f.type for name, f in families.items()} == FAMILIES
    for family in families.values():
        assert family.documentation, family.name
    counters = [f for f in families.values() if f.type == "counter"]
    assert all(s.name == f.name + "_total" for f in counters for s in f.samples)


def test_the_families_carry_their_units_in_openmetrics() -> None:
    from prometheus_client.openmetrics.exposition import generate_latest as generate_om

    snapshot = stats("draining", sinks=(sink_stats("a"),), drain=drain_stats())
    # prometheus_client's OpenMetrics generate_latest has no annotations.
    text = generate_om(registry_for(snapshot)).decode()  # type: ignore[no-untyped-call]
    assert "# UNIT trio_sink_received_records records" in text
    assert "# UNIT trio_sink_drain_elapsed_seconds seconds" in text
    assert "# UNIT trio_sink_source_pulled_items items" in text


def test_a_running_pipeline() -> None:
    snapshot = stats(
        received=120,
        dispatched=100,
        pulled=3,
        sinks=(
            sink_stats(
                "db",
                routed=90,
                delivered=40,
                waiting=5,
                buffered=20,
                in_flight=25,
                peak_buffered=30,
            ),
            sink_stats("log", routed=10, delivered=10, peak_buffered=1),
        ),
        discarded={"default": 4, "miss": 0},
    )
    samples = scrape(registry_for(snapshot))
    assert value(samples, "trio_sink_up") == 1
    assert value(samples, "trio_sink_state", state="running") == 1
    assert value(samples, "trio_sink_state", state="draining") == 0
    assert value(samples, "trio_sink_state", state="stopped") == 0
    assert value(samples, "trio_sink_received_records_total") == 120
    assert value(samples, "trio_sink_dispatched_records_total") == 100
    assert value(samples, "trio_sink_source_undelivered_records_total") == 0
    assert value(samples, "trio_sink_source_pulled_items") == 3
    assert value(samples, "trio_sink_source_paused") == 0
    assert value(samples, "trio_sink_pending_records") == 50
    assert value(samples, "trio_sink_discarded_records_total", group="default") == 4
    assert value(samples, "trio_sink_discarded_records_total", group="miss") == 0
    expected = {
        "db": {"routed": 90, "delivered": 40, "waiting": 5, "buffered": 20, "in_flight": 25},
        "log": {"routed": 10, "delivered": 10, "waiting": 0, "buffered": 0, "in_flight": 0},
    }
    for sink, figures in expected.items():
        assert value(samples, "trio_sink_routed_records_total", sink=sink) == figures["routed"]
        assert (
            value(samples, "trio_sink_delivered_records_total", sink=sink) == (figures["delivered"])
        )
        assert value(samples, "trio_sink_waiting_records", sink=sink) == figures["waiting"]
        assert value(samples, "trio_sink_buffered_records", sink=sink) == figures["buffered"]
        assert value(samples, "trio_sink_in_flight_records", sink=sink) == figures["in_flight"]
        assert value(samples, "trio_sink_sink_paused", sink=sink) == 0
        for reason in REASONS:  # every kind is there from the start, at 0
            undelivered = value(
                samples, "trio_sink_undelivered_records_total", sink=sink, reason=reason
            )
            assert undelivered == 0
    assert value(samples, "trio_sink_peak_buffered_records", sink="db") == 30
    assert value(samples, "trio_sink_peak_buffered_records", sink="log") == 1
    # Before a drain, the drain's metrics are absent.
    assert not {n.removesuffix("_info") for n in names(samples)} & (
        DRAIN_FAMILIES | {"trio_sink_drain"}
    )
    assert len(samples) == 1 + 3 + 5 + 1 + 2 + 2 * (2 + len(REASONS) + 5 + 2)


def test_a_draining_pipeline_with_a_deadline() -> None:
    snapshot = stats(
        "draining",
        received=50,
        dispatched=50,
        sinks=(sink_stats("db", routed=50, delivered=20, buffered=30),),
        drain=drain_stats("stop", elapsed=6.0, pending_left=30, deadline=64.0, time_left=54.0),
    )
    samples = scrape(registry_for(snapshot))
    assert value(samples, "trio_sink_state", state="running") == 0
    assert value(samples, "trio_sink_state", state="draining") == 1
    assert value(samples, "trio_sink_state", state="stopped") == 0
    assert value(samples, "trio_sink_drain_info", kind="stop") == 1
    assert value(samples, "trio_sink_drain_pending_records") == 30
    assert value(samples, "trio_sink_drain_elapsed_seconds") == 6.0
    assert value(samples, "trio_sink_drain_time_left_seconds") == 54.0
    assert value(samples, "trio_sink_pending_records") == 30


def test_a_drain_without_a_deadline_has_infinite_time_left() -> None:
    snapshot = stats("draining", drain=drain_stats("source exhausted", deadline=None))
    samples = scrape(registry_for(snapshot))
    assert value(samples, "trio_sink_drain_info", kind="source exhausted") == 1
    assert value(samples, "trio_sink_drain_time_left_seconds") == math.inf


def test_a_stopped_pipeline() -> None:
    snapshot = stats(
        "stopped",
        received=10,
        dispatched=9,
        source_undelivered=1,
        sinks=(
            sink_stats(
                "db",
                routed=9,
                delivered=6,
                undelivered=3,
                undelivered_by_reason={"immediate stop": 3},
            ),
        ),
        drain=drain_stats("immediate stop", elapsed=0.5, deadline=4.0, time_left=0.0),
    )
    samples = scrape(registry_for(snapshot))
    assert value(samples, "trio_sink_state", state="running") == 0
    assert value(samples, "trio_sink_state", state="draining") == 0
    assert value(samples, "trio_sink_state", state="stopped") == 1
    assert value(samples, "trio_sink_source_undelivered_records_total") == 1
    assert value(samples, "trio_sink_drain_info", kind="immediate stop") == 1
    assert value(samples, "trio_sink_drain_elapsed_seconds") == 0.5
    assert value(samples, "trio_sink_drain_time_left_seconds") == 0.0
    assert value(samples, "trio_sink_drain_pending_records") == 0
    reasons = {
        dict(labels)["reason"]: v
        for (name, labels), v in samples.items()
        if name == "trio_sink_undelivered_records_total"
    }
    assert reasons == {**dict.fromkeys(REASONS, 0), "immediate stop": 3}


def test_paused_sink_and_source() -> None:
    snapshot = stats(
        source_paused=True,
        sinks=(sink_stats("db", paused=True, buffered=7), sink_stats("log")),
    )
    samples = scrape(registry_for(snapshot))
    assert value(samples, "trio_sink_source_paused") == 1
    assert value(samples, "trio_sink_sink_paused", sink="db") == 1
    assert value(samples, "trio_sink_sink_paused", sink="log") == 0
    assert value(samples, "trio_sink_buffered_records", sink="db") == 7


def test_undelivered_by_reason_sums_to_the_sinks_undelivered() -> None:
    snapshot = stats(
        sinks=(
            sink_stats(
                "db",
                routed=20,
                undelivered=12,
                undelivered_by_reason={"sink error": 5, "drain deadline": 2, "new kind": 1},
            ),
        ),
    )
    samples = scrape(registry_for(snapshot))
    reasons = {
        dict(labels)["reason"]: v
        for (name, labels), v in samples.items()
        if name == "trio_sink_undelivered_records_total"
    }
    # A kind not known in advance is exported too; what the split misses is "other".
    assert reasons == {
        **dict.fromkeys(REASONS, 0),
        "sink error": 5,
        "drain deadline": 2,
        "new kind": 1,
        "other": 4,
    }
    assert sum(reasons.values()) == 12


def test_the_known_reasons_are_the_ledgers_kinds() -> None:
    from trio_sink._report import STAT_KEYS, kind_of
    from trio_sink.extra._prometheus_families import REASONS as EXPORTED

    kinds = {
        STAT_KEYS[kind_of(r)]
        for r in (
            "drain deadline",
            "immediate stop",
            "cancelled",
            "sink raised ValueError: boom",
            "pipeline failed: RuntimeError: boom",
        )
    }
    assert kinds == set(REASONS)
    assert set(EXPORTED) == set(REASONS)


def test_labels_are_on_every_sample_and_namespace_on_every_name() -> None:
    snapshot = stats(
        "draining", sinks=(sink_stats("db"),), discarded={"default": 1}, drain=drain_stats()
    )
    registry = registry_for(snapshot, namespace="ingest", labels={"pipeline": "a", "env": "t"})
    samples = scrape(registry)
    assert len(samples) == 1 + 3 + 5 + 1 + 1 + (2 + len(REASONS) + 5 + 2) + 4
    for name, labels in samples:
        assert name.startswith("ingest_")
        assert {("pipeline", "a"), ("env", "t")} <= labels
    assert value(samples, "ingest_routed_records_total", pipeline="a", env="t", sink="db") == 0


def test_collector_properties() -> None:
    collector = prom.PipelineCollector(lambda: stats(), namespace="x", labels={"b": "2", "a": "1"})
    assert collector.namespace == "x"
    assert list(collector.labels.items()) == [("a", "1"), ("b", "2")]


def test_a_collector_registered_directly() -> None:
    registry = CollectorRegistry()
    collector = prom.PipelineCollector(lambda: stats(received=3))
    registry.register(collector)
    assert value(scrape(registry), "trio_sink_received_records_total") == 3
    # It describes its names, so a second one in the same namespace is refused
    # instead of producing an invalid exposition.
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(prom.PipelineCollector(lambda: stats()))
    collector.unregister()  # not registered by register(): nothing to do
    registry.unregister(collector)
    assert scrape(registry) == {}


def test_several_pipelines_share_a_registry() -> None:
    registry = CollectorRegistry()
    a = prom.register(lambda: stats(received=1), registry=registry, labels={"pipeline": "a"})
    b = prom.register(lambda: stats(received=2), registry=registry, labels={"pipeline": "b"})
    text = generate_latest(registry).decode()
    assert text.count("# TYPE trio_sink_up gauge") == 1  # one family, both pipelines
    samples = scrape(registry)
    assert value(samples, "trio_sink_received_records_total", pipeline="a") == 1
    assert value(samples, "trio_sink_received_records_total", pipeline="b") == 2
    a.unregister()
    a.unregister()  # a second call does nothing
    samples = scrape(registry)
    assert {dict(labels)["pipeline"] for _, labels in samples} == {"b"}
    b.unregister()
    assert scrape(registry) == {}
    # With the namespace free again, other label names are fine.
    prom.register(lambda: stats(received=5), registry=registry, labels={"job": "c"})
    assert value(scrape(registry), "trio_sink_received_records_total", job="c") == 5


def test_other_namespaces_are_separate_groups() -> None:
    registry = CollectorRegistry()
    prom.register(lambda: stats(received=1), registry=registry)
    prom.register(lambda: stats(received=2), registry=registry, namespace="other")
    samples = scrape(registry)
    assert value(samples, "trio_sink_received_records_total") == 1
    assert value(samples, "other_received_records_total") == 2


def test_register_uses_the_default_registry() -> None:
    collector = prom.register(lambda: stats(received=7), namespace="trio_sink_default_test")
    try:
        samples = scrape(prometheus_client.REGISTRY)
        assert value(samples, "trio_sink_default_test_received_records_total") == 7
    finally:
        collector.unregister()
    assert "trio_sink_default_test_up" not in names(scrape(prometheus_client.REGISTRY))


# -- validation ------------------------------------------------------------------------


async def _async_statistics() -> PipelineStatistics:
    return stats()  # pragma: no cover - refused before it is called


class _AsyncStatistics:
    async def statistics(self) -> PipelineStatistics:
        return stats()  # pragma: no cover - refused before it is called


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"source": 42}, "source must be"),
        ({"source": _async_statistics}, "source must be"),
        ({"source": _AsyncStatistics()}, "source must be"),
        ({"namespace": ""}, "namespace must be"),
        ({"namespace": "9lives"}, "namespace must be"),
        ({"namespace": "a-b"}, "namespace must be"),
        ({"namespace": "__x"}, "namespace must be"),
        ({"namespace": None}, "namespace must be"),
        ({"labels": ["pipeline"]}, "labels must be a mapping"),
        ({"labels": {"bad-name": "x"}}, "label name must be"),
        ({"labels": {"__x": "x"}}, "label name must be"),
        ({"labels": {1: "x"}}, "label name must be"),
        ({"labels": {"sink": "x"}}, "'sink' is a label of the metrics"),
        ({"labels": {"state": "x"}}, "'state' is a label of the metrics"),
        ({"labels": {"pipeline": ""}}, "non-empty str value"),
        ({"labels": {"pipeline": 3}}, "non-empty str value"),
        ({"registry": {}}, "registry must be"),
    ],
)
def test_invalid_arguments_raise_config_error(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"source": lambda: stats(), **kwargs}
    source = args.pop("source")
    with pytest.raises(ConfigError, match=match):
        prom.register(source, **{"registry": CollectorRegistry(), **args})
    if "registry" not in args:
        with pytest.raises(ConfigError, match=match):
            prom.PipelineCollector(source, **args)


def test_register_refuses_labels_that_do_not_fit_the_namespace() -> None:
    registry = CollectorRegistry()
    prom.register(lambda: stats(), registry=registry, labels={"pipeline": "a"})
    with pytest.raises(ConfigError, match=r"labels must have the names \['pipeline'\]"):
        prom.register(lambda: stats(), registry=registry, labels={"job": "a"})
    with pytest.raises(ConfigError, match=r"labels must have the names \['pipeline'\]"):
        prom.register(lambda: stats(), registry=registry)
    with pytest.raises(ConfigError, match="already used"):
        prom.register(lambda: stats(), registry=registry, labels={"pipeline": "a"})
    assert {dict(labels)["pipeline"] for _, labels in scrape(registry)} == {"a"}


def test_register_refuses_a_namespace_taken_in_the_registry() -> None:
    registry = CollectorRegistry()
    prometheus_client.Gauge("trio_sink_up", "someone else's", registry=registry)
    with pytest.raises(ConfigError, match="choose another namespace"):
        prom.register(lambda: stats(), registry=registry)
    prom.register(lambda: stats(), registry=registry, namespace="ts")
    assert "ts_up" in names(scrape(registry))


# -- an observer never fails the scrape ------------------------------------------------


class _Failing:
    def __init__(self) -> None:
        self.fail = True
        self.calls = 0

    def statistics(self) -> PipelineStatistics:
        self.calls += 1
        if self.fail:
            raise RuntimeError("no figures")
        return stats(received=9)


def test_a_failing_statistics_is_logged_and_the_scrape_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_sink.metrics")
    registry = CollectorRegistry()
    failing = _Failing()
    prom.register(failing, registry=registry, labels={"pipeline": "bad"})
    prom.register(lambda: stats(received=4), registry=registry, labels={"pipeline": "good"})

    samples = scrape(registry)
    assert value(samples, "trio_sink_up", pipeline="bad") == 0
    assert value(samples, "trio_sink_up", pipeline="good") == 1
    assert value(samples, "trio_sink_received_records_total", pipeline="good") == 4
    # Of the failing pipeline, only up=0.
    assert [n for n, labels in samples if ("pipeline", "bad") in labels] == ["trio_sink_up"]
    [first] = caplog.records
    assert first.name == "trio_sink.metrics"
    assert first.levelno == logging.ERROR
    assert first.getMessage() == (
        'metrics.statistics_failed labels="pipeline=bad" error="RuntimeError: no figures"'
    )
    assert first.exc_info is not None

    caplog.clear()
    scrape(registry)  # failing again: not another error, only a debug line
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]

    caplog.clear()
    failing.fail = False
    samples = scrape(registry)
    assert value(samples, "trio_sink_up", pipeline="bad") == 1
    assert value(samples, "trio_sink_received_records_total", pipeline="bad") == 9
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, 'metrics.statistics_recovered labels="pipeline=bad"')
    ]
    assert failing.calls == 3


def test_statistics_returning_something_else_is_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    prom.register(lambda: {"received": 1}, registry=registry)  # type: ignore[arg-type, return-value]
    assert scrape(registry) == {("trio_sink_up", frozenset()): 0}
    [record] = caplog.records
    assert "not a PipelineStatistics" in record.getMessage()


# -- threads: the read happens in the run's thread --------------------------------------


async def test_a_scrape_from_another_thread_reads_in_the_trio_thread() -> None:
    trio_thread = threading.get_ident()
    reads: list[tuple[int, float]] = []

    def read() -> PipelineStatistics:
        reads.append((threading.get_ident(), trio.current_time()))  # needs the run
        return stats(received=len(reads))

    registry = CollectorRegistry()
    prom.register(read, registry=registry)
    text = await trio.to_thread.run_sync(generate_latest, registry)
    assert b"trio_sink_received_records_total 1.0" in text
    assert [thread for thread, _ in reads] == [trio_thread]
    # In the Trio thread itself, it reads directly.
    assert value(scrape(registry), "trio_sink_received_records_total") == 2


def test_after_the_run_a_scrape_reads_in_its_own_thread() -> None:
    registry = CollectorRegistry()
    final = stats("stopped", received=11)

    async def main() -> None:
        prom.register(lambda: final, registry=registry)

    trio.run(main)
    # The run is over: no Trio thread to read in, so the scrape reads here.
    assert value(scrape(registry), "trio_sink_received_records_total") == 11


# -- a real pipeline -------------------------------------------------------------------


async def ticking(interval: float = 0.001) -> AsyncIterator[int]:
    """An endless source: one item each ``interval`` seconds of virtual time."""
    i = 0
    while True:
        await trio.sleep(interval)
        yield i
        i += 1


def sum_by_sink(samples: Samples, name: str) -> Counter[str]:
    totals: Counter[str] = Counter()
    for (n, labels), v in samples.items():
        if n == name:
            totals[dict(labels)["sink"]] += int(v)
    return totals


def assert_agrees_with_the_report(samples: Samples, report: DeliveryReport) -> None:
    assert value(samples, "trio_sink_received_records_total") == report.received
    assert dict(sum_by_sink(samples, "trio_sink_routed_records_total")) == report.routed
    assert dict(sum_by_sink(samples, "trio_sink_delivered_records_total")) == report.delivered
    undelivered = Counter(u.sink for u in report.undelivered if u.sink is not None)
    by_sink = sum_by_sink(samples, "trio_sink_undelivered_records_total")
    assert +by_sink == undelivered  # unary + drops the sinks at 0
    before_routing = sum(1 for u in report.undelivered if u.sink is None)
    assert value(samples, "trio_sink_source_undelivered_records_total") == before_routing
    discarded = {
        dict(labels)["group"]: v
        for (n, labels), v in samples.items()
        if n == "trio_sink_discarded_records_total"
    }
    assert discarded == report.discarded


def assert_sinks_balance(samples: Samples) -> None:
    """routed == delivered + undelivered + waiting + buffered + in_flight, per sink."""
    routed = sum_by_sink(samples, "trio_sink_routed_records_total")
    settled = (
        sum_by_sink(samples, "trio_sink_delivered_records_total")
        + sum_by_sink(samples, "trio_sink_undelivered_records_total")
        + sum_by_sink(samples, "trio_sink_waiting_records")
        + sum_by_sink(samples, "trio_sink_buffered_records")
        + sum_by_sink(samples, "trio_sink_in_flight_records")
    )
    assert routed == settled


async def test_a_running_pipeline_agrees_with_its_report(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slow = SlowSink(NullSink("slow"), per_record=0.01)
    pipeline = Pipeline(
        ticking(), routes=[Route("all", [slow, NullSink("fast")])], batch_timeout=0.05
    )
    registry = CollectorRegistry()
    async with running(pipeline) as handle:
        prom.register(handle, registry=registry, labels={"pipeline": "p"})
        await trio.sleep(1.0)

        live = without(scrape(registry), "pipeline", "p")
        assert value(live, "trio_sink_up") == 1
        assert value(live, "trio_sink_state", state="running") == 1
        assert value(live, "trio_sink_received_records_total") > 900
        assert value(live, "trio_sink_buffered_records", sink="slow") > 0
        assert value(live, "trio_sink_buffered_records", sink="fast") == 0
        assert value(live, "trio_sink_pending_records") > 0
        assert value(live, "trio_sink_delivered_records_total", sink="slow") < value(
            live, "trio_sink_delivered_records_total", sink="fast"
        )
        assert "trio_sink_drain_time_left_seconds" not in names(live)
        assert_sinks_balance(live)

        handle.stop(immediate=True)
        draining = without(scrape(registry), "pipeline", "p")
        assert value(draining, "trio_sink_state", state="draining") == 1
        assert value(draining, "trio_sink_drain_info", kind="immediate stop") == 1
        assert value(draining, "trio_sink_drain_time_left_seconds") == 0
        assert value(draining, "trio_sink_drain_elapsed_seconds") == 0
        assert_sinks_balance(draining)

        report = checked(await handle.wait())
    stopped = without(scrape(registry), "pipeline", "p")
    assert value(stopped, "trio_sink_state", state="stopped") == 1
    assert value(stopped, "trio_sink_pending_records") == 0
    assert value(stopped, "trio_sink_buffered_records", sink="slow") == 0
    assert (
        value(stopped, "trio_sink_undelivered_records_total", sink="slow", reason="immediate stop")
        > 0
    )
    assert_agrees_with_the_report(stopped, report)
    assert_sinks_balance(stopped)
    assert report.undelivered  # the slow sink's backlog, reported


async def test_a_finished_batch_run_agrees_with_its_report(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pipeline = Pipeline(
        range(500),
        routes=[Route("even", NullSink("even"), when=lambda x: x % 2 == 0)],
        drain_timeout=1.0,
    )
    registry = CollectorRegistry()
    async with running(pipeline) as handle:
        prom.register(handle, registry=registry)
        report = checked(await handle.wait())
    samples = scrape(registry)
    assert value(samples, "trio_sink_state", state="stopped") == 1
    assert value(samples, "trio_sink_drain_info", kind="source exhausted") == 1
    assert_agrees_with_the_report(samples, report)
    assert value(samples, "trio_sink_discarded_records_total", group="default") == 250


async def test_a_blocked_pipeline_scraped_from_another_thread(
    mock_clock: trio.testing.MockClock,
) -> None:
    # A clock that never moves by itself: while the scrape runs in a thread, the
    # pipeline stays exactly where the gated sink holds it.
    gated = GatedSink("gated")
    pipeline = Pipeline(range(100), routes=[Route("r", gated)], capacity=1, batch_size=10)
    registry = CollectorRegistry()
    async with running(pipeline) as handle:
        prom.register(handle, registry=registry)
        await trio.testing.wait_all_tasks_blocked()
        text = (await trio.to_thread.run_sync(generate_latest, registry)).decode()
        from_thread = {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert from_thread == scrape(registry)
        assert value(from_thread, "trio_sink_in_flight_records", sink="gated") == 10
        assert value(from_thread, "trio_sink_delivered_records_total", sink="gated") == 0
        assert_sinks_balance(from_thread)
        handle.stop(immediate=True)
        report = checked(await handle.wait())
    samples = await trio.to_thread.run_sync(scrape, registry)  # the handle's final figures
    assert_agrees_with_the_report(samples, report)
    assert report.delivered == {"gated": 0}


# -- docs/metrics.md -------------------------------------------------------------------

DOC = Path(__file__).parent.parent / "docs" / "metrics.md"


def test_the_docs_list_every_metric_with_its_type() -> None:
    rows = re.findall(r"^\| `(trio_sink_\w+)` \| (\w+)", DOC.read_text(), re.M)
    expected = [
        (name + "_total" if kind == "counter" else name, kind) for name, kind in FAMILIES.items()
    ]
    assert rows == expected


def test_the_docs_code_compiles_and_its_imports_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 2
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    assert namespace["sink_metrics"] is prom
    assert callable(namespace["main"])


def test_the_acknowledgements_are_exported_only_for_a_source_that_acknowledges() -> None:
    samples = scrape(registry_for(stats(received=5)))
    assert not [key for key in samples if "acknowledged" in key[0]]
    samples = scrape(registry_for(stats(received=9, acknowledged=7, unacknowledged_age=2.5)))
    assert value(samples, "trio_sink_source_acknowledged_items_total") == 7
    assert value(samples, "trio_sink_source_unacknowledged_age_seconds") == 2.5
    samples = scrape(registry_for(stats(received=9, acknowledged=9)))
    assert value(samples, "trio_sink_source_unacknowledged_age_seconds") == 0
