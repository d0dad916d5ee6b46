"""The base of the fakes that wrap an inner sink: ``flush`` and ``aclose`` go on to it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, Generic, TypeVar

from .._sink import Sink, SinkLike
from ..sinks import CollectSink
from ._checks import check_inner, check_name

Probe = Callable[[], Awaitable[None]]
"""The type of a sink's optional ``probe``: an async health check, None when it has none."""

_Inner = TypeVar("_Inner", bound=SinkLike | None)


async def call_optional(obj: object, method: str) -> None:
    """Await ``obj.method()`` if ``obj`` has it (``flush`` and ``aclose`` are optional)."""
    fn = getattr(obj, method, None)
    if fn is not None:
        await fn()


class Forwarding(Sink, Generic[_Inner]):
    """A fake around ``inner``: :meth:`flush` and :meth:`aclose` are passed on to it.

    Not public: the fakes themselves are final. ``inner`` may be None (then there is
    nothing to pass on) in the fakes that also work alone.
    """

    def __init__(self, inner: _Inner, name: str) -> None:
        self.inner: Final[_Inner] = inner
        self.name = name

    async def flush(self) -> None:
        """Flush ``inner`` (if it has a ``flush``). Never fails or hangs on purpose."""
        await call_optional(self.inner, "flush")

    async def aclose(self) -> None:
        """Close ``inner`` (if it has an ``aclose``). Never fails or hangs on purpose."""
        await call_optional(self.inner, "aclose")


def inner_named(inner: object, name: object, default: str) -> SinkLike:
    """The sink a fault-injecting fake wraps, whose name is the fake's: ``inner``, or a
    :class:`~trio_sink.sinks.CollectSink` named ``name or default``. With ``inner``,
    ``name`` must be None or ``inner.name``."""
    check_inner(inner)
    check_name(name, optional=True)
    if inner is None:
        return CollectSink(name if isinstance(name, str) else default)
    assert isinstance(inner, SinkLike)
    if name is not None and name != inner.name:
        raise ValueError(
            f"name must be None or inner's name {inner.name!r} when inner is given, got {name!r}"
        )
    return inner
