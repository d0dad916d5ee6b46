"""Argument checks shared by the testing kit's fakes and plain-data recipes.

The fakes raise :exc:`ValueError` (or :exc:`TypeError`) at construction, naming the
argument, the value and what was expected; the recipes of
:mod:`trio_sink.testing.strategies` raise :class:`~trio_sink.ConfigError` (itself a
``ValueError``), as ``Pipeline`` does for the same settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, TypeGuard

import attrs

from .._exceptions import ConfigError
from .._sink import SinkLike


def is_seconds(value: object) -> bool:
    """Whether ``value`` is a finite number of seconds >= 0 (a bool is not)."""
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value >= 0
    )


def is_write_number(value: object) -> TypeGuard[int]:
    """Whether ``value`` is an int >= 0 (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# -- for the fakes: ValueError ---------------------------------------------------------


def check_seconds(arg: str, value: object) -> None:
    if not is_seconds(value):
        raise ValueError(f"{arg} must be a finite number of seconds >= 0, got {value!r}")


def check_name(value: object, *, optional: bool = False) -> None:
    """A sink's or a source's name: a non-empty str (or None, when ``optional``)."""
    if optional and value is None:
        return
    if not isinstance(value, str) or not value:
        expected = "a non-empty str or None" if optional else "a non-empty str"
        raise ValueError(f"name must be {expected}, got {value!r}")


def check_inner(value: object) -> None:
    """An optional inner sink: None, or anything sink-shaped."""
    if value is not None and not isinstance(value, SinkLike):
        raise ValueError(f"inner must be a sink (a name and an async write), got {value!r}")


def check_bool(arg: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{arg} must be a bool, got {value!r}")


def check_error_factory(value: object) -> None:
    if not callable(value):
        raise ValueError(f"error must be a callable returning an exception, got {value!r}")


def write_numbers(value: object) -> frozenset[int] | None:
    """``value`` as a set of write (or probe) numbers, or None if it is not one."""
    numbers = frozenset(value) if isinstance(value, Iterable) else None
    if numbers is None or not all(is_write_number(k) for k in numbers):
        return None
    return numbers


def validate_seconds(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    """An attrs validator: :func:`check_seconds` for a field."""
    check_seconds(attribute.name, value)


def validate_error(_inst: object, attribute: attrs.Attribute[BaseException], value: object) -> None:
    """An attrs validator: an exception instance (not a class)."""
    if not isinstance(value, BaseException):
        raise TypeError(f"{attribute.name} must be an exception instance, got {value!r}")


# -- for the recipes: ConfigError ------------------------------------------------------


def field_seconds(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not is_seconds(value):
        raise ConfigError(
            f"{attribute.name} must be a finite number of seconds >= 0, got {value!r}"
        )


def field_optional_seconds(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        field_seconds(_inst, attribute, value)


def field_int(minimum: int) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{attribute.name} must be an int >= {minimum}, got {value!r}")

    return check
