"""A pipeline's statistics as Prometheus metrics, read at scrape time.

Needs the ``prometheus`` extra (``pip install trio_sink[prometheus]``) and is imported
explicitly::

    from trio_sink.extra import prometheus as sink_metrics

    handle = await nursery.start(pipeline.run)
    sink_metrics.register(handle, labels={"pipeline": "ingest"})

A :class:`PipelineCollector` keeps no counters of its own: each scrape takes one
snapshot (``PipelineHandle.statistics()``, sync and cheap) and turns it into metric
families, so the figures of one scrape agree with each other, and once the run has
ended with its :class:`~trio_sink.DeliveryReport`. ``docs/metrics.md`` lists the metrics.

Scrapes may come from another thread: ``prometheus_client.start_http_server`` serves
from one. A collector made inside a Trio run takes every snapshot in that run's thread
(through :func:`trio.from_thread.run_sync`), where the pipeline's counters live.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol, TypeAlias, final

import prometheus_client
import trio
from prometheus_client.core import (
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from .._exceptions import ConfigError, describe
from .._route import is_async_callable
from .._stats import PipelineStatistics
from ._prometheus_families import OWN_LABELS, Families

__all__ = [
    "PipelineCollector",
    "StatisticsSource",
    "SupportsStatistics",
    "register",
]

log = logging.getLogger("trio_sink.metrics")

_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


class SupportsStatistics(Protocol):
    """Anything with a sync ``statistics()`` returning a snapshot, as ``PipelineHandle``."""

    def statistics(self) -> PipelineStatistics: ...


StatisticsSource: TypeAlias = SupportsStatistics | Callable[[], PipelineStatistics]
"""What a collector reads: a ``PipelineHandle``, any object with a sync
``statistics()`` method, or a sync callable without arguments returning
:class:`~trio_sink.PipelineStatistics`."""


@final
class PipelineCollector(Collector):
    """Exports one pipeline's statistics; each scrape takes one snapshot.

    ``source`` is read at every scrape (see :data:`StatisticsSource`). ``namespace``
    prefixes every metric name. ``labels`` are added to every sample of this pipeline,
    to tell several pipelines apart (``{"pipeline": "ingest"}``); their names must be
    valid Prometheus label names other than ``sink``, ``reason``, ``group``, ``state``
    and ``kind``, and their values non-empty strings. Invalid arguments raise
    :class:`~trio_sink.ConfigError`.

    :func:`register` makes one and adds it to a registry, where several pipelines may
    share a namespace. A collector made directly can be added with
    ``registry.register(collector)``: then it must be the only one of its namespace
    in that registry.

    A collector made inside a Trio run reads ``source`` in that run's thread, also
    when the scrape comes from another thread; once that run has exited, in the
    scrape's thread (a ``PipelineHandle`` then gives its final snapshot). If reading
    fails, the error is logged on ``trio_sink.metrics`` (the first time in a row at ERROR)
    and the scrape exports only ``<namespace>_up 0`` for this pipeline: a scrape never
    raises because of it, and the pipeline never notices.
    """

    def __init__(
        self,
        source: StatisticsSource,
        *,
        namespace: str = "trio_sink",
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self._read = _reader(source)
        self._namespace = _check_namespace(namespace)
        self._labels = _check_labels(labels)
        self._label_names = tuple(self._labels)
        self._label_values = tuple(self._labels.values())
        self._label_text = ",".join(f"{k}={v}" for k, v in self._labels.items())
        self._trio_token = _current_trio_token()
        self._failing = False
        self._group: _Group | None = None

    @property
    def namespace(self) -> str:
        """The prefix of every metric name."""
        return self._namespace

    @property
    def labels(self) -> Mapping[str, str]:
        """The labels added to every sample of this pipeline, sorted by name."""
        return dict(self._labels)

    def collect(self) -> Iterable[Metric]:
        """One snapshot's metric families (called by the registry at each scrape)."""
        families = Families(self._namespace, self._label_names)
        self._export(families)
        return families.all()

    def describe(self) -> Iterable[Metric]:
        """The metric families, without samples: a registry checks names with it."""
        return Families(self._namespace, self._label_names).all()

    def unregister(self) -> None:
        """Remove it from the registry that :func:`register` added it to.

        Its metrics leave the next scrape. Does nothing if it is not registered that way
        (a second call included).
        """
        with _groups_lock:
            group, self._group = self._group, None
            if group is None:
                return
            group.members = tuple(m for m in group.members if m is not self)
            registry = group.registry()
            if group.members or registry is None:
                return
            registry.unregister(group)
            _groups.get(registry, {}).pop(group.namespace, None)

    def _export(self, families: Families) -> None:
        families.add(self._label_values, self._snapshot())

    def _snapshot(self) -> PipelineStatistics | None:
        try:
            stats = self._read_in_trio()
            if not isinstance(stats, PipelineStatistics):
                raise TypeError(f"statistics() returned {stats!r}, not a PipelineStatistics")
        except Exception as exc:
            if not self._failing:
                self._failing = True
                log.error(
                    'metrics.statistics_failed labels="%s" error="%s"',
                    self._label_text,
                    describe(exc),
                    exc_info=exc,
                )
            else:
                log.debug(
                    'metrics.statistics_failed labels="%s" error="%s"',
                    self._label_text,
                    describe(exc),
                )
            return None
        if self._failing:
            self._failing = False
            log.info('metrics.statistics_recovered labels="%s"', self._label_text)
        return stats

    def _read_in_trio(self) -> object:
        token = self._trio_token
        if token is None or _current_trio_token() is token:
            return self._read()
        try:
            return trio.from_thread.run_sync(self._read, trio_token=token)
        except trio.RunFinishedError:
            # The run is over and nothing changes its figures any more: read them here
            # (a PipelineHandle answers with its final snapshot).
            return self._read()


def register(
    source: StatisticsSource,
    *,
    registry: CollectorRegistry = prometheus_client.REGISTRY,
    namespace: str = "trio_sink",
    labels: Mapping[str, str] | None = None,
) -> PipelineCollector:
    """Export ``source``'s statistics from ``registry``; return the collector.

    Sync. Arguments as for :class:`PipelineCollector`. Several pipelines may share a
    registry and a namespace: each metric family then holds every pipeline's samples,
    which ``labels`` tell apart, so they must have the same label names and different
    values. ``collector.unregister()`` removes the pipeline again.

    Raises :class:`~trio_sink.ConfigError` for an invalid argument, labels that do not
    fit the pipelines already registered under ``namespace``, or a namespace whose
    metric names something else in ``registry`` already uses.
    """
    if not isinstance(registry, CollectorRegistry):
        raise ConfigError(
            f"registry must be a prometheus_client CollectorRegistry, got {registry!r}"
        )
    collector = PipelineCollector(source, namespace=namespace, labels=labels)
    names, values = collector._label_names, collector._label_values
    with _groups_lock:
        groups = _groups.setdefault(registry, {})
        group = groups.get(namespace)
        if group is None:
            group = _Group(registry, namespace, names)
            try:
                registry.register(group)
            except ValueError as exc:  # prometheus_client's DuplicateTimeseries
                raise ConfigError(
                    f"namespace {namespace!r}: the registry already has metrics of these"
                    f" names ({exc}); choose another namespace"
                ) from exc
            groups[namespace] = group
        elif names != group.label_names:
            raise ConfigError(
                f"labels must have the names {list(group.label_names)}, as the pipelines"
                f" already registered under namespace {namespace!r}; got {list(names)}"
            )
        elif any(m._label_values == values for m in group.members):
            raise ConfigError(
                f"labels {dict(zip(names, values, strict=True))} are already used by a"
                f" pipeline registered under namespace {namespace!r}; give each one its own"
            )
        group.members = (*group.members, collector)
        collector._group = group
    return collector


@final
class _Group:
    """The pipelines registered in one registry under one namespace.

    They are scraped as one collector because a metric family may appear only once in
    an exposition: each family holds the samples of every pipeline.
    """

    def __init__(
        self, registry: CollectorRegistry, namespace: str, label_names: tuple[str, ...]
    ) -> None:
        # A weak reference: _groups is keyed weakly by the registry.
        self.registry = weakref.ref(registry)
        self.namespace = namespace
        self.label_names = label_names
        self.members: tuple[PipelineCollector, ...] = ()

    def collect(self) -> Iterable[Metric]:
        families = Families(self.namespace, self.label_names)
        for member in self.members:
            member._export(families)
        return families.all()

    def describe(self) -> Iterable[Metric]:
        return Families(self.namespace, self.label_names).all()


_groups: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, _Group]] = (
    weakref.WeakKeyDictionary()
)
_groups_lock = threading.Lock()


def _current_trio_token() -> trio.lowlevel.TrioToken | None:
    try:
        return trio.lowlevel.current_trio_token()
    except RuntimeError:  # not in a Trio run's thread
        return None


def _reader(source: object) -> Callable[[], object]:
    statistics = getattr(source, "statistics", None)
    read = statistics if callable(statistics) else source if callable(source) else None
    if read is None or is_async_callable(read):
        raise ConfigError(
            "source must be a PipelineHandle, an object with a sync statistics() method or"
            f" a sync callable returning PipelineStatistics, got {source!r}"
        )
    return read


def _check_namespace(namespace: object) -> str:
    if not isinstance(namespace, str) or not _NAME.match(namespace) or namespace[:2] == "__":
        raise ConfigError(
            "namespace must be a str matching [a-zA-Z_][a-zA-Z0-9_]* and not starting"
            f" with '__', got {namespace!r}"
        )
    return namespace


def _check_labels(labels: object) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise ConfigError(f"labels must be a mapping of label names to str or None, got {labels!r}")
    checked: dict[str, str] = {}
    for name, value in labels.items():
        if not isinstance(name, str) or not _NAME.match(name) or name[:2] == "__":
            raise ConfigError(
                "labels: a label name must be a str matching [a-zA-Z_][a-zA-Z0-9_]* and not"
                f" starting with '__', got {name!r}"
            )
        if name in OWN_LABELS:
            raise ConfigError(
                f"labels: {name!r} is a label of the metrics themselves (so are"
                f" {sorted(OWN_LABELS - {name})}); choose another name"
            )
        if not isinstance(value, str) or not value:
            raise ConfigError(f"labels: {name!r} must have a non-empty str value, got {value!r}")
        checked[name] = value
    return dict(sorted(checked.items()))
