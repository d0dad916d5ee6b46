"""A conformance check for user sinks, in the manner of ``trio.testing.check_two_way_stream``."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Generic, Literal, TypeVar, final

import attrs
import trio
import trio.testing

from .._batch import Batch
from .._exceptions import TrioSinkError
from .._record import Record
from .._sink import SinkLike

__all__ = ["RULES", "SinkConformanceError", "check_sink"]

S = TypeVar("S", bound=SinkLike)

RULES: Final = (
    "name",
    "write_flush_aclose",
    "aclose_idempotent",
    "aclose_cancelled",
    "delivered_on_return",
    "cancel_before_write",
    "cancel_during_write",
    "no_swallowed_cancel",
    "no_task_left_behind",
    "never_blocks",
)
"""The rules :func:`check_sink` checks, by the name :attr:`SinkConformanceError.rule` gives."""


@final
class SinkConformanceError(TrioSinkError, AssertionError):
    """:func:`check_sink` found a sink breaking one of its rules.

    It is an :exc:`AssertionError`, so pytest shows it as a failed check. It means the
    sink can lose a record, or break a pipeline's shutdown; it never means trio_sink
    itself is at fault.

    Attributes:
        rule: The rule broken, one of :data:`RULES`.
        message: What was seen, in words.
    """

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"sink conformance rule {rule!r} broken: {message}")
        self.rule = rule
        self.message = message


def _batch(first: int, n: int) -> Batch:
    # A Batch of columns, as the pipeline gives a sink. JSON-friendly values, so a sink
    # that writes records out and reads them back (``delivered``) gives equal records.
    ids = range(first, first + n)
    return Batch(ids, tuple(f"raw-{i}" for i in ids), tuple({"n": i} for i in ids))


def _ids(records: Sequence[Any]) -> list[Any]:
    return [getattr(r, "id", r) for r in records]


def _is_cancelled(exc: BaseException) -> bool:
    """Cancelled, or a group of nothing but Cancelled (from a nursery inside the write)."""
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1] is None
    return False


def _all_tasks() -> set[trio.lowlevel.Task]:
    """Every task reachable from the root task of the current run."""
    root = trio.lowlevel.current_root_task()
    found: set[trio.lowlevel.Task] = set()
    stack = [root] if root is not None else []
    while stack:
        task = stack.pop()
        found.add(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return found


@attrs.frozen
class _Outcome:
    kind: Literal["returned", "cancelled", "raised"]
    error: BaseException | None
    cancel_called: bool
    seconds: float
    schedule_points: int
    """How many times the write let other tasks run (the pipeline's own test of a sink
    that declares ``never_blocks``, in _inline.py)."""


class _Probe:
    """One fresh sink, under one rule."""

    def __init__(
        self,
        rule: str,
        sink: Any,
        delivered: Callable[[Any], Sequence[Record]] | None,
        tasks_before: set[trio.lowlevel.Task],
    ) -> None:
        self.rule = rule
        self.sink = sink
        self._delivered = delivered
        self.tasks_before = tasks_before
        self.name: str = sink.name
        self.never_blocks = getattr(sink, "never_blocks", False) is True
        self.baseline = list(delivered(sink)) if delivered is not None else []
        self.expected: list[Record] = []

    def fail(self, message: str, rule: str | None = None) -> SinkConformanceError:
        return SinkConformanceError(rule or self.rule, message)

    def check_name(self, when: str) -> None:
        name = getattr(self.sink, "name", None)
        if name != self.name:
            raise self.fail(f"name was {self.name!r} at creation, {name!r} {when}", "name")

    def delivered(self) -> list[Any] | None:
        """The records delivered since the probe began, or None without ``delivered``."""
        if self._delivered is None:
            return None
        got = list(self._delivered(self.sink))
        if got[: len(self.baseline)] != self.baseline:
            raise self.fail(
                f"delivered(sink) held ids {_ids(self.baseline)} when the sink was made,"
                f" then ids {_ids(got)}: records already delivered must stay delivered",
                "delivered_on_return",
            )
        return got[len(self.baseline) :]

    def check_delivered(self, rule: str, when: str) -> None:
        got = self.delivered()
        if got is not None and got != self.expected:
            raise self.fail(
                f"{when}, delivered(sink) holds ids {_ids(got)}, expected {_ids(self.expected)}"
                " (all delivered records, in order)",
                rule,
            )

    async def write(self, batch: Sequence[Record], scope: trio.CancelScope) -> _Outcome:
        """Write ``batch`` inside ``scope``; what came of it, Cancelled included."""
        started = trio.current_time()
        kind: Literal["returned", "cancelled", "raised"] = "returned"
        error: BaseException | None = None
        task = trio.lowlevel.current_task()
        points = task._schedule_points
        with scope:
            try:
                await self.sink.write(batch)
            except Exception as exc:
                kind, error = "raised", exc
            except BaseException as exc:
                if not _is_cancelled(exc):
                    raise
                kind, error = "cancelled", exc
                raise
            finally:
                points = task._schedule_points - points
        self.check_name("after write")
        return _Outcome(kind, error, scope.cancel_called, trio.current_time() - started, points)

    def check_never_blocks(self, outcome: _Outcome, batch: Sequence[Record]) -> None:
        """A sink that declares ``never_blocks`` let no other task run in its write."""
        if self.never_blocks and outcome.schedule_points:
            raise self.fail(
                f"sink {self.name!r} declares never_blocks = True, but its write of ids"
                f" {_ids(batch)} reached a checkpoint (it let other tasks run); the"
                " pipeline writes such a sink from its routing task, and one that awaits"
                " is moved to a task of its own, with a warning (drop never_blocks, or"
                " await nothing that can wait)",
                "never_blocks",
            )

    async def write_ok(self, batch: Sequence[Record], rule: str) -> _Outcome:
        """An uncancelled write that must deliver ``batch``."""
        outcome = await self.write(batch, trio.CancelScope())
        self.check_never_blocks(outcome, batch)
        if outcome.kind != "returned":
            raise self.fail(f"write of ids {_ids(batch)} raised {outcome.error!r}", rule) from (
                outcome.error
            )
        self.expected.extend(batch)
        self.check_delivered("delivered_on_return", f"after a write of ids {_ids(batch)} returned")
        return outcome

    async def call(self, method: str, rule: str) -> None:
        fn = getattr(self.sink, method, None)
        if fn is None:  # optional, as in a pipeline
            return
        try:
            await fn()
        except Exception as exc:
            raise self.fail(f"{method}() raised {exc!r}", rule) from exc
        self.check_name(f"after {method}()")

    def check_outcome(
        self, outcome: _Outcome, batch: Sequence[Record], at_least_once: bool
    ) -> None:
        """The all-or-nothing rule for a write that may have been cancelled."""
        self.check_never_blocks(outcome, batch)
        if outcome.kind == "raised":
            raise self.fail(
                f"a write in a cancelled scope raised {outcome.error!r}; by Trio's"
                " convention it must raise Cancelled (nothing delivered) or return"
                " (the whole batch delivered)"
            ) from outcome.error
        got = self.delivered()
        if outcome.kind == "returned":
            self.expected.extend(batch)
            if got is not None and got != self.expected:
                rule = "no_swallowed_cancel" if outcome.cancel_called else "delivered_on_return"
                raise self.fail(
                    f"write of ids {_ids(batch)} returned normally"
                    f"{' in a cancelled scope' if outcome.cancel_called else ''}, but"
                    f" delivered(sink) holds ids {_ids(got)}: returning means the whole"
                    " batch was delivered (a sink must let Cancelled propagate)",
                    rule,
                )
            return
        if got is None or not got:
            return
        if at_least_once and got == list(batch[: len(got)]):
            return
        allowed = "nothing or a prefix of the batch" if at_least_once else "nothing"
        raise self.fail(
            f"write of ids {_ids(batch)} raised Cancelled, but delivered(sink) holds ids"
            f" {_ids(got)}; a cancelled write must have delivered {allowed}"
            + ("" if at_least_once else " (pass at_least_once=True to allow a prefix)")
        )


async def _make(make_sink: Callable[[], S | Awaitable[S]]) -> Any:
    sink: Any = make_sink()
    if inspect.isawaitable(sink):
        sink = await sink
    return sink


@final
class _Checker(Generic[S]):
    def __init__(
        self,
        make_sink: Callable[[], S | Awaitable[S]],
        delivered: Callable[[S], Sequence[Record]] | None,
        at_least_once: bool,
    ) -> None:
        self.make_sink = make_sink
        self.delivered = delivered
        self.at_least_once = at_least_once
        self.first_write_seconds = 0.0

    async def open(self, rule: str) -> _Probe:
        before = _all_tasks()
        sink = await _make(self.make_sink)
        write = getattr(sink, "write", None)
        if write is None or not callable(write):
            raise SinkConformanceError(
                "write_flush_aclose", f"make_sink() returned {sink!r}, which has no write(batch)"
            )
        name = getattr(sink, "name", None)
        if not isinstance(name, str) or not name:
            raise SinkConformanceError(
                "name", f"a sink's name must be a non-empty str, got {name!r} from {sink!r}"
            )
        return _Probe(rule, sink, self.delivered, before)

    async def close(self, probe: _Probe, *, cancelled: bool = False) -> None:
        """aclose() the probe's sink (under cancellation, as a pipeline does after a
        drain deadline), then check that no task it started is left."""
        if cancelled:
            with trio.CancelScope() as scope:
                scope.cancel()
                await probe.call("aclose", probe.rule)
        else:
            await probe.call("aclose", probe.rule)
        probe.check_name("after aclose()")
        left = _all_tasks() - probe.tasks_before
        if left:
            names = sorted(task.name for task in left)
            raise probe.fail(
                f"after aclose() returned, {len(left)} task(s) the sink started are still"
                f" running: {names}",
                "no_task_left_behind",
            )

    async def write_flush_aclose(self) -> None:
        probe = await self.open("write_flush_aclose")
        first = await probe.write_ok(_batch(0, 3), probe.rule)
        self.first_write_seconds = first.seconds
        await probe.write_ok(_batch(3, 2), probe.rule)
        await probe.call("flush", probe.rule)
        probe.check_delivered("delivered_on_return", "after flush()")
        await self.close(probe)
        probe.check_delivered("delivered_on_return", "after aclose()")

    async def aclose_idempotent(self) -> None:
        for writes in (0, 1):
            probe = await self.open("aclose_idempotent")
            if writes:
                await probe.write_ok(_batch(0, 2), "write_flush_aclose")
            await self.close(probe)
            fn = getattr(probe.sink, "aclose", None)
            if fn is not None:
                try:
                    await fn()
                except Exception as exc:
                    raise probe.fail(
                        f"a second aclose() (after {writes} write(s)) raised {exc!r}"
                    ) from exc

    async def aclose_cancelled(self) -> None:
        probe = await self.open("aclose_cancelled")
        await probe.write_ok(_batch(0, 2), "write_flush_aclose")
        await self.close(probe, cancelled=True)

    async def delivered_on_return(self) -> None:
        probe = await self.open("delivered_on_return")
        for first, n in ((0, 1), (1, 3), (4, 2)):
            await probe.write_ok(_batch(first, n), "write_flush_aclose")
        await self.close(probe)

    async def cancel_before_write(self) -> None:
        probe = await self.open("cancel_before_write")
        batch = _batch(0, 3)
        scope = trio.CancelScope()
        scope.cancel()
        probe.check_outcome(await probe.write(batch, scope), batch, self.at_least_once)
        await self.close(probe, cancelled=True)

    async def cancel_during_write(self) -> None:
        # First: cancel the moment the write blocks (every task is blocked).
        probe = await self.open("cancel_during_write")
        batch = _batch(0, 3)
        scope = trio.CancelScope()
        outcomes: list[_Outcome] = []

        async def writer() -> None:
            outcomes.append(await probe.write(batch, scope))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
        probe.check_outcome(outcomes[0], batch, self.at_least_once)
        await self.close(probe, cancelled=True)
        # Then: deadlines a quarter, a half and three quarters into an uncancelled write.
        seconds = self.first_write_seconds
        if seconds <= 0:
            return
        for fraction in (0.25, 0.5, 0.75):
            probe = await self.open("cancel_during_write")
            scope = trio.CancelScope(deadline=trio.current_time() + fraction * seconds)
            probe.check_outcome(await probe.write(batch, scope), batch, self.at_least_once)
            await self.close(probe, cancelled=True)


async def check_sink(
    make_sink: Callable[[], S | Awaitable[S]],
    *,
    delivered: Callable[[S], Sequence[Record]] | None = None,
    at_least_once: bool = False,
) -> None:
    """Check that the sinks ``make_sink()`` makes keep the sink contract; raise
    :exc:`SinkConformanceError` for the first rule broken.

    Await it inside a Trio run (a pytest-trio test, best with the ``autojump_clock``
    fixture: writes that sleep then take no real time). ``make_sink`` returns a fresh
    sink (or an awaitable of one) each time it is called: each rule runs against a
    fresh sink, and every sink made is closed before the check returns. Nothing else
    should start tasks while the check runs (see ``no_task_left_behind``).

    ``delivered(sink)`` returns the records ``sink`` has delivered so far, in order,
    read from where the sink puts them (a list it keeps, a file read back, a test
    server's state). Without it, the rules about what was delivered are not checked.
    Each write is given a :class:`~trio_sink.Batch`, as in a pipeline; its records
    have ``int`` ids, ``str`` raw items and ``{"n": id}`` payloads, so they survive a
    round trip through JSON.

    The rules, by the name :attr:`SinkConformanceError.rule` gives:

    - ``name``: ``sink.name`` is a non-empty str, and stays the same through every
      write, ``flush()`` and ``aclose()``.
    - ``write_flush_aclose``: writes, then ``flush()``, then ``aclose()`` (each
      optional but ``write``), in that order, raise nothing.
    - ``aclose_idempotent``: a second ``aclose()`` raises nothing, whether or not the
      sink was written to.
    - ``aclose_cancelled``: ``aclose()`` in a cancelled scope (as a pipeline calls it
      after a drain deadline) returns or raises :exc:`trio.Cancelled`, nothing else.
    - ``delivered_on_return``: once a write returns, ``delivered(sink)`` holds its
      batch, in order, after everything delivered before. A write that hands the
      batch to a background task and returns breaks it: returning means delivered.
    - ``cancel_before_write``: a write called in an already-cancelled scope either
      delivers the whole batch and returns, or raises :exc:`trio.Cancelled` having
      delivered nothing.
    - ``cancel_during_write``: the same, for a write cancelled while it is blocked:
      the moment every task is blocked, and at deadlines a quarter, a half and three
      quarters into the time an uncancelled write took. With
      ``at_least_once=True``, a cancelled write may also have delivered a prefix of
      the batch (the pipeline then reports the whole batch undelivered, so those
      records are delivered at least once, not exactly once).
    - ``no_swallowed_cancel``: a write that returned normally inside a cancelled
      scope delivered the whole batch. A sink that catches :exc:`trio.Cancelled` and
      returns would have the pipeline count a batch it never delivered.
    - ``no_task_left_behind``: once ``aclose()`` returns (also under cancellation),
      no task the sink started is still running: the tasks reachable from
      :func:`trio.lowlevel.current_root_task` are those from before the sink was made.
    - ``never_blocks``: a sink that declares ``never_blocks = True`` (see
      :attr:`trio_sink.Sink.never_blocks`) lets no other task run in any write,
      cancelled or not: no ``await`` in it reaches a checkpoint.

    Under all rules, a write that is cancelled must raise :exc:`trio.Cancelled` (or a
    group of nothing else), never another exception.

    This is a checkpoint; it takes the virtual or real time the sink's writes take. If
    cancelled, it raises :exc:`trio.Cancelled` and the sink it was checking is left
    unclosed.
    """
    checker = _Checker(make_sink, delivered, at_least_once)
    await checker.write_flush_aclose()
    await checker.aclose_idempotent()
    await checker.aclose_cancelled()
    await checker.delivered_on_return()
    await checker.cancel_before_write()
    await checker.cancel_during_write()
