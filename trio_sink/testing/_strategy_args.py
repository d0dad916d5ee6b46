"""Checks of the strategies' own arguments: a bad one raises Hypothesis's
:class:`~hypothesis.errors.InvalidArgument` when the strategy is built."""

from __future__ import annotations

from hypothesis.errors import InvalidArgument

from ._checks import is_seconds


def arg_seconds(name: str, value: object) -> float:
    if not is_seconds(value):
        raise InvalidArgument(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    assert isinstance(value, (int, float))
    return float(value)


def arg_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgument(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def arg_order(low_name: str, low: float, high_name: str, high: float) -> None:
    if low > high:
        raise InvalidArgument(f"{low_name}={low!r} must be <= {high_name}={high!r}")


def arg_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{name} must be a bool, got {value!r}")
    return value
