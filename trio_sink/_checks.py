"""Argument checks, eager and alike everywhere: a mistake raises :class:`ConfigError`,
whose message names the argument, the value and what was expected.

A wrong type and a bad value are the same kind of mistake here (a value the caller
should not have passed), so both raise ``ConfigError``; it is a ``ValueError``. The
``attrs`` validators at the end check the fields of the settings classes with the
same functions, naming the field as ``Class.field``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from ._exceptions import ConfigError

__all__ = [
    "at_least",
    "check_choice",
    "check_function",
    "check_int",
    "check_number",
    "check_seconds",
    "check_source",
    "check_text",
    "exception_types",
    "fraction",
    "is_async_callable",
    "per_sink",
    "per_sink_seconds",
    "positive_seconds",
    "seconds",
]

T = TypeVar("T")


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def is_async_callable(obj: object) -> bool:
    """An async function, or an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(
        getattr(obj, "__call__", None)  # noqa: B004 - the method itself is inspected
    )


def check_function(name: str, value: object, expected: str) -> None:
    """A sync callable that can be called with one argument (when its signature can be
    read: a builtin's often cannot)."""
    if not callable(value) or is_async_callable(value):
        raise ConfigError(f"{name} must be {expected}, got {value!r}")
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(None)
    except TypeError:
        raise ConfigError(
            f"{name} must take one argument, got {value!r} whose signature is {signature}"
        ) from None


def check_int(name: str, value: object, minimum: int) -> int:
    """``value``, an int (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_number(name: str, value: object, expected: str, ok: Callable[[float], bool]) -> float:
    """``value``, a finite int or float for which ``ok`` holds; ``expected`` says what
    that is, for the message."""
    if not _is_number(value) or not math.isfinite(value) or not ok(value):  # type: ignore[arg-type]
        raise ConfigError(f"{name} must be {expected}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_seconds(
    name: str, value: object, *, positive: bool = False, optional: bool = False
) -> float | None:
    """A duration: a finite number of seconds >= 0 (> 0 when ``positive``), or None
    when ``optional``."""
    if value is None and optional:
        return None
    expected = "a finite number of seconds " + ("> 0" if positive else ">= 0")
    if optional:
        expected += " or None"
    return check_number(name, value, expected, (lambda v: v > 0) if positive else _not_negative)


def _not_negative(value: float) -> bool:
    return value >= 0


def check_choice(name: str, value: object, choices: Sequence[object]) -> None:
    """One of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")


def check_text(name: str, value: object, *, optional: bool = False) -> str | None:
    """A non-empty str, or None when ``optional``."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        expected = "a non-empty str" + (" or None" if optional else "")
        raise ConfigError(f"{name} must be {expected}, got {value!r}")
    return value


def per_sink(name: str, value: object, kind: type[T], sinks: Sequence[str]) -> dict[str, T]:
    """One setting for every sink, or a mapping by sink name; as a mapping."""
    if value is None:
        return {}
    if isinstance(value, kind):
        return dict.fromkeys(sinks, value)
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{name} must be a {kind.__name__}, a mapping from sink name to"
            f" {kind.__name__}, or None; got {value!r}"
        )
    out: dict[str, T] = {}
    for key, item in value.items():
        if key not in sinks:
            raise ConfigError(
                f"{name} names the sink {key!r}, which the pipeline does not have;"
                f" its sinks are: {', '.join(map(repr, sinks))}"
            )
        if not isinstance(item, kind):
            raise ConfigError(f"{name}[{key!r}] must be a {kind.__name__}, got {item!r}")
        out[key] = item
    return out


def per_sink_seconds(
    name: str, value: object, sinks: Sequence[str], default: float | None = 60.0
) -> dict[str, float | None]:
    """A duration (> 0, or None for no limit) for every sink, or a mapping by sink name
    (the sinks it does not name get ``default``); as a full mapping."""
    if not isinstance(value, Mapping):
        seconds = check_seconds(name, value, positive=True, optional=True)
        return dict.fromkeys(sinks, seconds)
    out: dict[str, float | None] = dict.fromkeys(sinks, default)
    for key, item in value.items():
        if key not in sinks:
            raise ConfigError(
                f"{name} names the sink {key!r}, which the pipeline does not have;"
                f" its sinks are: {', '.join(map(repr, sinks))}"
            )
        out[key] = check_seconds(f"{name}[{key!r}]", item, positive=True, optional=True)
    return out


# -- attrs validators ----------------------------------------------------------------------


def _field(inst: object, attribute: attrs.Attribute[Any]) -> str:
    return f"{type(inst).__name__}.{attribute.name}"


def at_least(minimum: int) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """A validator: an int >= ``minimum``."""

    def check(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        check_int(_field(inst, attribute), value, minimum)

    return check


def seconds(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A validator: a finite number of seconds >= 0."""
    check_seconds(_field(inst, attribute), value)


def positive_seconds(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A validator: a finite number of seconds > 0."""
    check_seconds(_field(inst, attribute), value, positive=True)


def multiplier(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A validator: a finite number >= 1."""
    check_number(_field(inst, attribute), value, "a finite number >= 1", lambda v: v >= 1)


def fraction(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A validator: a number in [0, 1]."""
    check_number(_field(inst, attribute), value, "a number in [0, 1]", lambda v: 0 <= v <= 1)


ExceptionTypes = tuple[type[BaseException], ...]


def to_types(value: type[BaseException] | Any) -> ExceptionTypes:
    """One exception class, or any iterable of them, as a tuple (for the validator)."""
    if isinstance(value, (type, str, bytes)) or not hasattr(value, "__iter__"):
        return (value,)  # a bad value, for the validator
    return tuple(value)


def exception_types(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A validator: a tuple of exception classes."""
    if not all(isinstance(t, type) and issubclass(t, BaseException) for t in value):
        raise ConfigError(
            f"{_field(inst, attribute)} must be an exception class or a tuple of exception"
            f" classes, got {value!r}"
        )


def check_source(source: object) -> None:
    """An iterable, an async iterable or a Source (not a str, not a generator function)."""
    if isinstance(source, (str, bytes)):
        raise ConfigError(
            f"source must be an iterable or async iterable of items, got the"
            f" {type(source).__name__} {source!r}; wrap it in a list for one item"
        )
    if inspect.isasyncgenfunction(source) or inspect.isgeneratorfunction(source):
        raise ConfigError(
            f"source must be an iterable or async iterable, got the generator function"
            f" {source!r}; call it to pass its generator"
        )
    if not isinstance(source, (AsyncIterable, Iterable)):  # a Source is an AsyncIterable
        raise ConfigError(
            f"source must be an Iterable, an AsyncIterable or a trio_sink.Source, got {source!r}"
        )
