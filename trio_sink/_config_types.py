"""The shape of a pipeline's config file: one msgspec Struct per table.

A TOML file decodes into :class:`Config` (see :mod:`trio_sink._config`, which also
checks what a type cannot: names that refer to other tables, conditions, rules, paths).
Every table refuses keys it does not know, so a typo is an error, not a silent default.
The JSON Schema that ``trio-sink schema`` prints is generated from these types.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "BreakerConfig",
    "Config",
    "FileSourceConfig",
    "HttpSinkConfig",
    "InfraConfig",
    "JsonlSinkConfig",
    "NullSinkConfig",
    "PipelineConfig",
    "RedisStreamSinkConfig",
    "RedisStreamSourceConfig",
    "RescueConfig",
    "RetryConfig",
    "RouteConfig",
    "SampleSourceConfig",
    "SinkConfig",
    "SourceConfig",
    "StdinSourceConfig",
    "StdoutSinkConfig",
    "SyslogSourceConfig",
    "TcpSinkConfig",
    "TcpSourceConfig",
]

Seconds = Annotated[float, msgspec.Meta(ge=0)]
Positive = Annotated[float, msgspec.Meta(gt=0)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Name = Annotated[str, msgspec.Meta(min_length=1)]


class _Table(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A table of the config file: unknown keys are refused."""


# -- [pipeline] -----------------------------------------------------------------------


class RetryConfig(_Table, frozen=True, kw_only=True):
    """``retry = {attempts = 3, ...}``: how a failed write is tried again."""

    attempts: Annotated[int, msgspec.Meta(ge=1)] = 3
    initial_backoff: Seconds = 0.1
    max_backoff: Seconds = 5.0
    multiplier: Annotated[float, msgspec.Meta(ge=1)] = 2.0


class BreakerConfig(_Table, frozen=True, kw_only=True):
    """``breaker = {failures = 5, probe_interval = 5.0}``: a sink's circuit breaker."""

    failures: Annotated[int, msgspec.Meta(ge=1)] = 5
    probe_interval: Positive = 5.0


class PipelineConfig(_Table, frozen=True, kw_only=True):
    """``[pipeline]``: the :class:`~trio_sink.Pipeline` settings, same names and
    defaults."""

    capacity: Annotated[int, msgspec.Meta(ge=0)] = 128
    batch_size: Annotated[int, msgspec.Meta(ge=1)] = 128
    max_batch_size: Annotated[int, msgspec.Meta(ge=1)] | None = None
    batch_timeout: Seconds = 0.3
    drain_timeout: Seconds | None = 60.0
    stop_after_records: Annotated[int, msgspec.Meta(ge=1)] | None = None
    stop_when_idle: Positive | None = None
    monitor_interval: Positive = 1.0
    progress_interval: Positive | None = 1.0
    write_timeout: Seconds | None = 60.0
    retry: RetryConfig | Literal[False] = msgspec.field(default_factory=RetryConfig)
    """A table of retry settings, or ``false`` for none."""


# -- [source] -------------------------------------------------------------------------


class FileSourceConfig(_Table, tag="file", tag_field="type", frozen=True, kw_only=True):
    path: Name
    checkpoint: str | None = None
    follow: bool = False
    encoding: str = "utf-8"
    poll_interval: Positive = 0.25


class StdinSourceConfig(_Table, tag="stdin", tag_field="type", frozen=True, kw_only=True):
    pass


class TcpSourceConfig(_Table, tag="tcp", tag_field="type", frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: Port
    max_line_bytes: Annotated[int, msgspec.Meta(ge=1)] = 65536


class SyslogSourceConfig(_Table, tag="syslog", tag_field="type", frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: Port
    protocol: Literal["udp", "tcp"] = "udp"
    strict: bool = True


class SampleSourceConfig(_Table, tag="sample", tag_field="type", frozen=True, kw_only=True):
    """Made-up log lines (for a demo or a load test): ``count`` of them, the same for a
    ``seed``; ``rate`` lines a second at most (none for as fast as they go)."""

    count: Annotated[int, msgspec.Meta(ge=0)] = 10_000
    seed: int = 0
    rate: Positive | None = None


class RedisStreamSourceConfig(
    _Table, tag="redis_stream", tag_field="type", frozen=True, kw_only=True
):
    """A member of a Redis consumer group (extra ``redis``). The payload is the entry's
    fields (a dict of str); with parse rules, they parse the field ``message_field``."""

    url: Name
    stream: Name
    group: Name
    consumer: Name
    batch: Annotated[int, msgspec.Meta(ge=1)] = 128
    block: Positive = 1.0
    claim_idle: Positive = 60.0
    max_deliveries: Annotated[int, msgspec.Meta(ge=1)] | None = 10
    group_start: str = "0"
    cluster: bool = False
    message_field: Name = "message"


SourceConfig = (
    FileSourceConfig
    | StdinSourceConfig
    | TcpSourceConfig
    | SyslogSourceConfig
    | SampleSourceConfig
    | RedisStreamSourceConfig
)


# -- [sinks.NAME] ---------------------------------------------------------------------


class _SinkTable(_Table, tag_field="type", frozen=True, kw_only=True):
    """Settings every sink has."""

    write_timeout: Seconds | Literal["pipeline"] | None = "pipeline"
    """Seconds a write may take (``"pipeline"``: the ``[pipeline]`` value)."""
    retry: RetryConfig | Literal[False] | Literal["pipeline"] = "pipeline"
    breaker: BreakerConfig | None = None
    delay_per_batch: Seconds = 0.0
    """Seconds each write waits first (a slow sink, for a demo or a test)."""
    delay_per_record: Seconds = 0.0


class JsonlSinkConfig(_SinkTable, tag="jsonl", frozen=True, kw_only=True):
    path: Name
    rotate_bytes: Annotated[int, msgspec.Meta(ge=1)] | None = None
    keep: Annotated[int, msgspec.Meta(ge=1)] | None = None
    gzip: bool = False


class StdoutSinkConfig(_SinkTable, tag="stdout", frozen=True, kw_only=True):
    pass


class HttpSinkConfig(_SinkTable, tag="http", frozen=True, kw_only=True):
    url: Name
    format: Literal["jsonl", "json"] = "jsonl"
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    timeout: Positive = 10.0


class TcpSinkConfig(_SinkTable, tag="tcp", frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: Port


class NullSinkConfig(_SinkTable, tag="null", frozen=True, kw_only=True):
    pass


class RedisStreamSinkConfig(_SinkTable, tag="redis_stream", frozen=True, kw_only=True):
    """``XADD`` of each record to ``stream`` (extra ``redis``)."""

    url: Name
    stream: Name
    maxlen: Annotated[int, msgspec.Meta(ge=1)] | None = None
    cluster: bool = False


SinkConfig = (
    JsonlSinkConfig
    | StdoutSinkConfig
    | HttpSinkConfig
    | TcpSinkConfig
    | RedisStreamSinkConfig
    | NullSinkConfig
)


# -- [[routes]], [infra], [rescue] -----------------------------------------------------


class RouteConfig(_Table, frozen=True, kw_only=True):
    name: Name
    sinks: Annotated[list[Name], msgspec.Meta(min_length=1)]
    when: str | None = None
    """A condition (docs/conditions.md); none: every record."""


class InfraConfig(_Table, frozen=True, kw_only=True):
    """``[infra]``: the sink of each infra group, by name; none counts and discards."""

    default: str | None = None
    miss: str | None = None
    residue: str | None = None
    error: str | None = None
    monitor: str | None = None


class RescueConfig(_Table, frozen=True, kw_only=True):
    path: Name
    fsync: Literal["batch", "interval", "never"] = "batch"


class Config(_Table, frozen=True, kw_only=True):
    """A whole config file."""

    source: SourceConfig
    routes: Annotated[list[RouteConfig], msgspec.Meta(min_length=1)]
    sinks: dict[Name, SinkConfig]
    pipeline: PipelineConfig = msgspec.field(default_factory=PipelineConfig)
    parse: dict[str, Any] | list[dict[str, Any]] | None = None
    """One parse rule, or a list tried in order (docs/parsing.md); none: the raw line."""
    infra: InfraConfig = msgspec.field(default_factory=InfraConfig)
    rescue: RescueConfig | None = None
