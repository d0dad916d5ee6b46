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


def arg_seconds_range(
    low_name: str, low: object, high_name: str, high: object
) -> tuple[float, float]:
    """Bounds in seconds, each checked, then their order."""
    bounds = arg_seconds(low_name, low), arg_seconds(high_name, high)
    arg_order(low_name, bounds[0], high_name, bounds[1])
    return bounds


def arg_int_range(low_name: str, low: object, high_name: str, high: object) -> tuple[int, int]:
    """Bounds that are ints >= 0, each checked, then their order."""
    bounds = arg_int(low_name, low, 0), arg_int(high_name, high, 0)
    arg_order(low_name, bounds[0], high_name, bounds[1])
    return bounds


def arg_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{name} must be a bool, got {value!r}")
    return value
