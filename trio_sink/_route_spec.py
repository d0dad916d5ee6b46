"""Routes and infra groups as a pipeline is given them, and how a route's test is
applied to a batch's payloads."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, final

import attrs

from ._checks import check_function
from ._exceptions import ConfigError
from ._sink import SinkArg

__all__ = ["FAILED", "INFRA_GROUPS", "BatchWhen", "Infra", "Route", "apply_each"]

INFRA_GROUPS = ("default", "miss", "residue", "error", "monitor")


def _is_single_sink(obj: object) -> bool:
    return hasattr(obj, "write") or inspect.iscoroutinefunction(obj)


def _to_sinks(sinks: object) -> tuple[SinkArg, ...]:
    if _is_single_sink(sinks):
        return (sinks,)  # type: ignore[return-value]
    if isinstance(sinks, (str, bytes)) or not isinstance(sinks, Sequence):
        raise ConfigError(f"Route sinks must be a sink or a sequence of sinks, got {sinks!r}")
    return tuple(sinks)


def _check_route(route: Route, attribute: attrs.Attribute[Any], value: Any) -> None:
    if attribute.name == "name" and (not isinstance(value, str) or not value):
        raise ConfigError(f"Route name must be a non-empty str, got {value!r}")
    if attribute.name == "sinks" and not value:
        raise ConfigError(f"Route {route.name!r}: sinks must not be empty")
    if attribute.name == "when" and value is not None:
        check_function(f"Route {route.name!r}: when", value, "a sync callable (payload -> bool)")
    if attribute.name == "when_batch" and value is not None:
        check_function(
            f"Route {route.name!r}: when_batch",
            value,
            "a sync callable (payloads -> one truth value each)",
        )
        if route.when is not None:
            raise ConfigError(f"Route {route.name!r}: give when or when_batch, not both")


@final
@attrs.frozen
class Route:
    """Send every record whose payload ``when`` accepts (all, when None) to ``sinks``.

    A record goes to every route that accepts it. If ``when`` raises, the record goes
    to the ``error`` group once (whatever the number of routes that raised) and not to
    that route; the other routes are still evaluated. A record that no route accepts
    goes to the ``default`` group, also when it went to ``error`` because a ``when``
    raised (it was accepted nowhere).

    ``when_batch``, in place of ``when``, decides for a whole batch at once: it takes
    the batch's payloads (a tuple) and returns one truth value per payload, in order
    (a list comprehension over the batch costs no Python call per record). If it
    raises or returns the wrong number of values, it is called again with each
    payload alone, so that only the records it fails for go to ``error``.
    """

    name: str = attrs.field(validator=_check_route)
    sinks: tuple[SinkArg, ...] = attrs.field(converter=_to_sinks, validator=_check_route)
    when: Callable[[Any], bool] | None = attrs.field(
        default=None, kw_only=True, validator=_check_route
    )
    when_batch: Callable[[Sequence[Any]], Sequence[Any]] | None = attrs.field(
        default=None, kw_only=True, validator=_check_route
    )

    @property
    def test(self) -> Callable[[Any], Any] | None:
        """What the route stage calls: ``when``, or ``when_batch`` as a :class:`BatchWhen`."""
        return self.when if self.when_batch is None else BatchWhen(self.when_batch)


@final
class BatchWhen:
    """A route's ``when_batch``, as the route stage applies it."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Sequence[Any]], Sequence[Any]]) -> None:
        self.fn = fn

    def __call__(self, payload: Any) -> Any:
        """The truth value of one payload (a batch of one)."""
        flags = self.fn((payload,))
        if len(flags) != 1:
            raise ValueError(f"when_batch returned {len(flags)} values for 1 payload")
        return flags[0]

    def each(self, payloads: Sequence[Any]) -> tuple[list[Any], list[tuple[int, Exception]]]:
        """One truth value per payload (as :func:`apply_each`): the whole batch in one
        call; if that fails, each payload alone."""
        try:
            flags = list(self.fn(payloads))
        except Exception:
            pass
        else:
            if len(flags) == len(payloads):
                return flags, []
        return apply_each(self, payloads)


@final
@attrs.frozen(kw_only=True)
class Infra:
    """Where the infra groups go: each a sink, or None to count and discard.

    ``default``: records no route accepted. ``miss``: ``parse`` raised :class:`Miss`.
    ``residue``: the ``rest`` of a partial parse. ``error``: ``parse`` or a ``when``
    raised (the record carries ``.error``). ``monitor``: statistics records.
    """

    default: SinkArg | None = None
    miss: SinkArg | None = None
    residue: SinkArg | None = None
    error: SinkArg | None = None
    monitor: SinkArg | None = None


FAILED: Any = object()
"""Marks the result of a call that raised, in :func:`apply_each`."""


def apply_each(fn: Callable[[Any], Any], items: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """``[fn(x) for x in items]`` with the loop in C, surviving exceptions.

    ``map`` runs the loop in C, and ``list.extend`` keeps what it got before an
    exception; the loop then resumes after the item that raised, so ``fn`` is called
    exactly once per item. A failed slot holds ``FAILED``; the second list has
    ``(index, exception)`` for each. A ``StopIteration`` from ``fn`` looks to ``map``
    like the end of the items: it is caught by the length check and reported as a
    ``RuntimeError``, as PEP 479 does for generators.
    """
    n = len(items)
    out: list[Any] = []
    failures: list[tuple[int, Exception]] = []
    it = iter(items)
    while True:
        try:
            out.extend(map(fn, it))
        except Exception as exc:
            failures.append((len(out), exc))
            out.append(FAILED)
        else:
            if len(out) == n:
                return out, failures
            failures.append((len(out), RuntimeError(f"{fn!r} raised StopIteration")))
            out.append(FAILED)
