"""Loading a pipeline's config file: every error at once, each named by its path.

:func:`load_config` reads a TOML file into a :class:`~trio_sink._config_types.Config`,
table by table, so that one bad table does not hide the errors of the others; then it
checks what the types cannot: sink names that routes and infra groups refer to (with a
"did you mean"), route names, each ``when`` condition and parse rule, and that the files
and folders named can be read or made. :func:`build_pipeline` turns a loaded config into
a :class:`~trio_sink.Pipeline`.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import Any, TypeVar

import attrs
import msgspec

from ._conditions import ConditionError, compile_condition
from ._config_types import (
    Config,
    FileSourceConfig,
    InfraConfig,
    JsonlSinkConfig,
    PipelineConfig,
    RescueConfig,
    RouteConfig,
    SinkConfig,
    SourceConfig,
)
from ._exceptions import ConfigError
from ._parse_rules import Rule, validate_rules

__all__ = [
    "ConfigFileError",
    "LoadedConfig",
    "did_you_mean",
    "load_config",
    "load_config_text",
    "validation_message",
]

T = TypeVar("T")

TABLES = ("pipeline", "source", "parse", "routes", "sinks", "infra", "rescue")


class ConfigFileError(ConfigError):
    """A config file that cannot run: :attr:`errors` lists every problem found, each
    beginning with the path of the key (``$.sinks.errors.path: expected str, got
    int``)."""

    def __init__(self, path: str, errors: list[str]) -> None:
        self.path = path
        self.errors = errors
        lines = "\n".join(f"  {e}" for e in errors)
        n = len(errors)
        super().__init__(f"{path}: {n} error{'s' if n != 1 else ''}:\n{lines}")


@attrs.frozen
class LoadedConfig:
    """A config file that passed every check."""

    config: Config
    base: Path
    """The config file's folder: relative paths in it are relative to this."""
    rules: Rule | tuple[Rule, ...] | None
    """The parse rule, or the rules tried in order; None: the raw line is the payload."""

    def path(self, value: str) -> Path:
        """``value`` (a path from the file) made absolute against :attr:`base`."""
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else self.base / p


def load_config(path: str | os.PathLike[str], *, check_paths: bool = True) -> LoadedConfig:
    """Read and check the config file at ``path``. Raises :class:`ConfigFileError`
    with every problem found. Without ``check_paths``, the files and folders it names
    are not looked at (``trio-sink test`` opens none of them)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(str(p), [f"cannot read the file: {exc}"]) from exc
    return load_config_text(text, base=p.resolve().parent, name=str(p), check_paths=check_paths)


def load_config_text(
    text: str, *, base: Path, name: str = "<config>", check_paths: bool = True
) -> LoadedConfig:
    """:func:`load_config` for the text of a file, whose relative paths are relative
    to ``base``."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(name, [f"not valid TOML: {exc}"]) from exc
    errors: list[str] = []
    tables = _tables(raw, errors)
    # What refers to what, and the conditions: checked on the raw tables, so that
    # they are reported along with the type errors of other tables.
    _check_names(raw, errors)
    _check_conditions(raw, errors)
    rules = _rules(raw.get("parse"), errors)
    config = None
    if not errors:
        try:
            config = msgspec.convert(tables, Config)
        except msgspec.ValidationError as exc:  # pragma: no cover - caught per table
            errors.append(validation_message(exc, ""))
    if config is None:
        raise ConfigFileError(name, errors)
    loaded = LoadedConfig(config, base, rules)
    if check_paths:
        _check_paths(loaded, errors)
    if errors:
        raise ConfigFileError(name, errors)
    return loaded


def _tables(raw: dict[str, Any], errors: list[str]) -> dict[str, Any]:
    """Each table converted on its own (its errors kept); returns the raw tables when
    every one converted."""
    for key in raw:
        if key not in TABLES:
            errors.append(f"$.{key}: unknown table{did_you_mean(key, TABLES)}")
    for key in ("source", "routes", "sinks"):
        if key not in raw:
            errors.append(f"$.{key}: missing (a config needs [source], [[routes]], [sinks.NAME])")
    one: list[tuple[str, Any, Any]] = [
        ("pipeline", raw.get("pipeline", {}), PipelineConfig),
        ("source", raw.get("source"), SourceConfig),
        ("infra", raw.get("infra", {}), InfraConfig),
    ]
    if "rescue" in raw:
        one.append(("rescue", raw["rescue"], RescueConfig))
    for key, value, kind in one:
        if value is not None:
            _convert(value, kind, f"$.{key}", errors)
    routes = raw.get("routes", [])
    if not isinstance(routes, list) or not routes:
        if "routes" in raw:
            errors.append("$.routes: expected one [[routes]] table or more")
    else:
        for k, route in enumerate(routes):
            _convert(route, RouteConfig, f"$.routes[{k}]", errors)
    sinks = raw.get("sinks", {})
    if not isinstance(sinks, dict):
        errors.append("$.sinks: expected [sinks.NAME] tables")
    else:
        for sink_name, sink in sinks.items():
            _convert(sink, SinkConfig, f"$.sinks.{sink_name}", errors)
    parse = raw.get("parse")
    if parse is not None and not isinstance(parse, (dict, list)):
        errors.append("$.parse: expected a [parse] table or [[parse]] tables")
    return raw


def _convert(value: Any, kind: Any, where: str, errors: list[str]) -> None:
    try:
        msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        errors.append(validation_message(exc, where))


_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def validation_message(exc: msgspec.ValidationError, where: str) -> str:
    """``Expected `str`, got `int` - at `$.path``` as ``WHERE.path: expected ...``."""
    m = _AT.match(str(exc))
    assert m is not None
    what = m["what"]
    return f"{where}{m['path'] or ''}: {what[:1].lower()}{what[1:]}"


def _rules(parse: Any, errors: list[str]) -> Rule | tuple[Rule, ...] | None:
    """The parse rules: one (a ``[parse]`` table), several (``[[parse]]`` tables),
    or None."""
    if not isinstance(parse, (dict, list)):
        return None
    if isinstance(parse, dict):
        try:
            rule: Rule = msgspec.convert(parse, Rule)
        except msgspec.ValidationError as exc:
            errors.append(validation_message(exc, "$.parse"))
            return None
        errors.extend(validate_rules(rule, path="$.parse"))
        return rule
    rules: list[Rule] = []
    for k, table in enumerate(parse):
        try:
            rules.append(msgspec.convert(table, Rule))
        except msgspec.ValidationError as exc:
            errors.append(validation_message(exc, f"$.parse[{k}]"))
    if len(rules) < len(parse):
        return None
    errors.extend(validate_rules(rules, path="$.parse"))
    return tuple(rules)


def did_you_mean(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f', did you mean "{close[0]}"?' if close else ""


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _check_names(raw: dict[str, Any], errors: list[str]) -> None:
    """Route names are unique; routes and infra groups name sinks that exist; each
    sink serves one route or group, and is used."""
    sinks = raw.get("sinks") if isinstance(raw.get("sinks"), dict) else {}
    assert isinstance(sinks, dict)
    used: set[str] = set()
    names: set[str] = set()
    for k, route in enumerate(_dicts(raw.get("routes"))):
        name = route.get("name")
        if isinstance(name, str) and name in names:
            errors.append(f'$.routes[{k}].name: route "{name}" is named twice')
        names.add(str(name))
        targets = route.get("sinks")
        for j, sink in enumerate(targets if isinstance(targets, list) else []):
            if not isinstance(sink, str):
                continue
            if sink not in sinks:
                errors.append(
                    f'$.routes[{k}].sinks[{j}]: unknown sink "{sink}"{did_you_mean(sink, sinks)}'
                )
            used.add(sink)
    infra = raw.get("infra") if isinstance(raw.get("infra"), dict) else {}
    assert isinstance(infra, dict)
    groups: dict[str, str] = {}
    for group in ("default", "miss", "residue", "error", "monitor"):
        sink = infra.get(group)
        if not isinstance(sink, str):
            continue
        if sink not in sinks:
            errors.append(f'$.infra.{group}: unknown sink "{sink}"{did_you_mean(sink, sinks)}')
        elif sink in groups:
            errors.append(
                f'$.infra.{group}: sink "{sink}" already takes the {groups[sink]} group'
                " (a sink serves one route or group)"
            )
        elif sink in used:
            errors.append(
                f'$.infra.{group}: sink "{sink}" is also a route\'s'
                " (a sink serves one route or group)"
            )
        groups[sink] = group
    for name in sinks:
        if name not in used and name not in groups:
            errors.append(f'$.sinks.{name}: no route or infra group sends to sink "{name}"')


def _check_conditions(raw: dict[str, Any], errors: list[str]) -> None:
    for k, route in enumerate(_dicts(raw.get("routes"))):
        when = route.get("when")
        if not isinstance(when, str):
            continue
        try:
            compile_condition(when)
        except ConditionError as exc:
            errors.append(f"$.routes[{k}].when: {exc.reason} at {exc.position}: {when!r}")


def _check_paths(loaded: LoadedConfig, errors: list[str]) -> None:
    config = loaded.config
    source = config.source
    if isinstance(source, FileSourceConfig):
        path = loaded.path(source.path)
        if not source.follow and not path.is_file():
            errors.append(f"$.source.path: no such file: {path}")
        elif path.exists() and not os.access(path, os.R_OK):
            errors.append(f"$.source.path: cannot read {path}")
        if source.checkpoint is not None:
            _check_folder(loaded.path(source.checkpoint).parent, "$.source.checkpoint", errors)
    for name, sink in config.sinks.items():
        if isinstance(sink, JsonlSinkConfig):
            for key in ("keep", "gzip"):
                if getattr(sink, key) and sink.rotate_bytes is None:
                    errors.append(f"$.sinks.{name}.{key}: only with rotate_bytes")
            target = loaded.path(sink.path)
            if target.is_dir():
                errors.append(f"$.sinks.{name}.path: is a folder: {target}")
            else:
                _check_folder(target.parent, f"$.sinks.{name}.path", errors)
    if config.rescue is not None:
        _check_folder(loaded.path(config.rescue.path), "$.rescue.path", errors)


def _check_folder(folder: Path, where: str, errors: list[str]) -> None:
    """``folder`` exists and is writable, or can be made (its nearest existing
    parent is a writable folder)."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        errors.append(f"{where}: {probe} is not a folder")
    elif not os.access(probe, os.W_OK | os.X_OK):
        errors.append(f"{where}: cannot write in {probe}")
