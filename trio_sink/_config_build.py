"""A loaded config file made into a :class:`~trio_sink.Pipeline` and what it needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ._breaker import CircuitBreaker
from ._conditions import compile_condition
from ._config import LoadedConfig
from ._config_types import (
    BreakerConfig,
    FileSourceConfig,
    HttpSinkConfig,
    JsonlSinkConfig,
    NullSinkConfig,
    RedisStreamSinkConfig,
    RedisStreamSourceConfig,
    RetryConfig,
    SampleSourceConfig,
    SinkConfig,
    StdinSourceConfig,
    StdoutSinkConfig,
    SyslogSourceConfig,
    TcpSinkConfig,
    TcpSourceConfig,
)
from ._parse_rules import make_parse
from ._pipeline import Pipeline
from ._record import Miss
from ._rescue import RescueStore
from ._retry import NO_RETRY, RetryPolicy
from ._route import Infra, Route
from ._sample_source import SampleSource
from ._sink import Sink
from .sinks import HttpSink, JsonlFileSink, NullSink, SlowSink, StdoutSink, TcpLinesSink
from .sources import FileSource, StdinSource, SyslogSource, TcpLinesSource

__all__ = ["Built", "build_pipeline"]


@attrs.frozen
class Built:
    """A pipeline made from a config file, and the rescue store it writes to (the
    caller closes it once the run is over)."""

    pipeline: Pipeline
    store: RescueStore | None
    entered: tuple[Any, ...] = ()
    """Sources and sinks to enter (``async with``) around the run: each then keeps one
    connection pool for all its calls."""


def build_pipeline(loaded: LoadedConfig) -> Built:
    """The pipeline that ``loaded`` describes. Raises :class:`~trio_sink.ConfigError`
    (or ``OSError`` for a file that cannot be opened) before anything runs."""
    config = loaded.config
    settings = config.pipeline
    sinks = {name: _sink(loaded, name, table) for name, table in config.sinks.items()}
    routes = [
        Route(
            r.name,
            [sinks[s] for s in r.sinks],
            when_batch=None if r.when is None else compile_condition(r.when).batch,
        )
        for r in config.routes
    ]
    infra = Infra(
        **{
            group: sinks[name]
            for group in ("default", "miss", "residue", "error", "monitor")
            if (name := getattr(config.infra, group)) is not None
        }
    )
    pipeline_retry = _retry(settings.retry)
    retry: dict[str, RetryPolicy] = {}
    write_timeout: dict[str, float | None] = {}
    breaker: dict[str, CircuitBreaker] = {}
    for name, table in config.sinks.items():
        retry[name] = pipeline_retry if table.retry == "pipeline" else _retry(table.retry)
        write_timeout[name] = (
            settings.write_timeout if table.write_timeout == "pipeline" else table.write_timeout
        )
        if table.breaker is not None:
            breaker[name] = _breaker(table.breaker)
    parse = None if loaded.rules is None else make_parse(loaded.rules)
    source = _source(loaded)
    if isinstance(config.source, RedisStreamSourceConfig):
        parse = _entry_parse(parse, config.source.message_field)
    # Redis sources and sinks keep one connection pool for the run when entered.
    pairs: list[tuple[Any, object]] = [(source, config.source)]
    pairs += [
        (getattr(sink, "inner", sink), table)  # a delayed sink's own
        for sink, table in zip(sinks.values(), config.sinks.values(), strict=True)
    ]
    entered = tuple(
        x
        for x, table in pairs
        if isinstance(table, (RedisStreamSourceConfig, RedisStreamSinkConfig))
    )
    store = None
    if config.rescue is not None:
        store = RescueStore(loaded.path(config.rescue.path), fsync=config.rescue.fsync)
    try:
        pipeline = Pipeline(
            source,
            parse=parse,
            routes=routes,
            infra=infra,
            capacity=settings.capacity,
            batch_size=settings.batch_size,
            max_batch_size=settings.max_batch_size,
            batch_timeout=settings.batch_timeout,
            drain_timeout=settings.drain_timeout,
            stop_after_records=settings.stop_after_records,
            stop_when_idle=settings.stop_when_idle,
            monitor_interval=settings.monitor_interval,
            progress_interval=settings.progress_interval,
            retry=retry,
            write_timeout=write_timeout,
            breaker=breaker,
            rescue=store,
        )
    except BaseException:
        if store is not None:
            store.close()
        raise
    return Built(pipeline, store, entered)


def _source(loaded: LoadedConfig) -> Any:
    source = loaded.config.source
    if isinstance(source, FileSourceConfig):
        checkpoint = None
        if source.checkpoint is not None:
            checkpoint = loaded.path(source.checkpoint)
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
        return FileSource(
            loaded.path(source.path),
            checkpoint=checkpoint,
            follow=source.follow,
            encoding=source.encoding,
            poll_interval=source.poll_interval,
        )
    if isinstance(source, StdinSourceConfig):
        return StdinSource()
    if isinstance(source, TcpSourceConfig):
        return TcpLinesSource(source.host, source.port, max_line_bytes=source.max_line_bytes)
    if isinstance(source, SyslogSourceConfig):
        return SyslogSource(
            source.host, source.port, protocol=source.protocol, strict=source.strict
        )
    if isinstance(source, RedisStreamSourceConfig):
        from ._redis_source import RedisStreamSource  # needs the redis extra

        return RedisStreamSource(
            source.url,
            source.stream,
            group=source.group,
            consumer=source.consumer,
            batch=source.batch,
            block=source.block,
            claim_idle=source.claim_idle,
            max_deliveries=source.max_deliveries,
            group_start=source.group_start,
            cluster=source.cluster,
        )
    assert isinstance(source, SampleSourceConfig)
    return SampleSource(source.count, seed=source.seed, rate=source.rate)


def _entry_parse(parse: Callable[[Any], Any] | None, field: str) -> Callable[[Any], Any]:
    """The parse of a Redis stream's entries: their fields, or the rules' payload of
    the field ``field`` (a missing one is a miss); poison entries go to ``error``."""
    from ._redis_entries import entry_parser  # needs the redis extra

    if parse is None:
        return entry_parser(_fields)

    def parse_field(entry: Any) -> Any:
        text = entry.fields.get(field)
        if text is None:
            raise Miss(f"no field {field!r}")
        return parse(text)

    return entry_parser(parse_field)


def _fields(entry: Any) -> dict[str, str]:
    fields: dict[str, str] = entry.fields
    return fields


def _sink(loaded: LoadedConfig, name: str, table: SinkConfig) -> Any:
    sink: Sink
    if isinstance(table, JsonlSinkConfig):
        sink = JsonlFileSink(
            loaded.path(table.path),
            name=name,
            rotate_bytes=table.rotate_bytes,
            keep=table.keep,
            gzip=table.gzip,
        )
    elif isinstance(table, StdoutSinkConfig):
        sink = StdoutSink(name=name)
    elif isinstance(table, HttpSinkConfig):
        sink = HttpSink(
            table.url,
            name=name,
            format=table.format,
            headers=table.headers,
            timeout=table.timeout,
        )
    elif isinstance(table, TcpSinkConfig):
        sink = TcpLinesSink(table.host, table.port, name=name)
    elif isinstance(table, RedisStreamSinkConfig):
        from ._redis_sink import RedisStreamSink  # needs the redis extra

        sink = RedisStreamSink(
            table.url, table.stream, maxlen=table.maxlen, cluster=table.cluster, name=name
        )
    else:
        assert isinstance(table, NullSinkConfig)
        sink = NullSink(name)
    if table.delay_per_batch or table.delay_per_record:
        return SlowSink(sink, per_batch=table.delay_per_batch, per_record=table.delay_per_record)
    return sink


def _retry(table: RetryConfig | bool) -> RetryPolicy:
    if table is False or table is True:
        return NO_RETRY if table is False else RetryPolicy()
    return RetryPolicy(
        attempts=table.attempts,
        initial_backoff=table.initial_backoff,
        max_backoff=table.max_backoff,
        multiplier=table.multiplier,
    )


def _breaker(table: BreakerConfig) -> CircuitBreaker:
    return CircuitBreaker(failures=table.failures, probe_interval=table.probe_interval)
