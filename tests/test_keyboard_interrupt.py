"""Ctrl-C outside serve(): a real SIGINT at hundreds of points inside trio_sink's code.

``trio.run(pipeline.run)`` is the README's batch usage, where a Ctrl-C raises
KeyboardInterrupt wherever the code happens to be. A trace function counts the line
events of trio_sink's own modules and, at the Nth, sends the process a real SIGINT
(``signal.raise_signal``). Whatever N: the run's report passes ``check()``, every record
is delivered to a sink or reported for it (never both, never neither), and nothing
delivered is left in the rescue store.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import trio
import trio.testing

import trio_sink
from trio_sink import (
    CircuitBreaker,
    DeliveryReport,
    Pipeline,
    PipelineHandle,
    Record,
    RescueStore,
    Route,
    Source,
)
from trio_sink._ki import unprotect
from trio_sink.sinks import CollectSink
from trio_sink.testing import Pause, ScriptedSource

PACKAGE = str(Path(trio_sink.__file__).parent)


class SlowCollect:
    """Collects, with a checkpoint a write, as a real sink has."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.records: list[Record] = []

    async def write(self, batch: Sequence[Record]) -> None:
        await trio.lowlevel.checkpoint()
        self.records.extend(batch)


def _pipeline(store: RescueStore | None) -> tuple[Pipeline, list[Any]]:
    sinks: list[Any] = [SlowCollect("a"), CollectSink("b")]
    pipeline = Pipeline(
        range(40),
        parse=lambda x: x,
        routes=[Route("all", sinks[0]), Route("odd", sinks[1], when=lambda p: p % 2 == 1)],
        batch_size=4,
        capacity=2,
        rescue=store,
    )
    return pipeline, sinks


def _run(pipeline: Pipeline, interrupt_at: int | None) -> tuple[DeliveryReport | None, int]:
    """Run ``pipeline``; with ``interrupt_at``, send a SIGINT at that line event of
    trio_sink's code. Returns the report and how many line events there were."""
    handles: list[PipelineHandle] = []
    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if not frame.f_code.co_filename.startswith(PACKAGE):
            return None
        if event == "line":
            count += 1
            if count == interrupt_at:
                signal.raise_signal(signal.SIGINT)
        return tracer

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            handles.append(await nursery.start(pipeline.run))

    sys.settrace(tracer)
    try:
        trio.run(main)
    except BaseException as exc:
        # A KeyboardInterrupt, alone or in the groups of the nurseries it crossed; any
        # other exception (an AccountingError of the strict ledger) fails the test.
        if not _only_interrupts(exc):
            raise
    finally:
        sys.settrace(None)
    return (handles[0].report if handles else None), count


def _only_interrupts(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_interrupts(e) for e in exc.exceptions)
    return isinstance(exc, (KeyboardInterrupt, trio.Cancelled))


def _check(report: DeliveryReport, sinks: list[Any], store: RescueStore | None) -> None:
    report.check()
    reported = {(u.sink, u.record.id) for u in report.undelivered}
    for sink in sinks:
        delivered = [r.id for r in sink.records]
        assert len(delivered) == len(set(delivered)), sink.name  # each delivered once
        both = {(sink.name, i) for i in delivered} & reported
        assert not both, f"delivered and reported: {sorted(both)}"
        assert len(delivered) == report.delivered[sink.name]
    if store is not None:
        store.seal()
        with RescueStore(store.path) as reader:
            stored = {(e.sink, e.id) for e in reader.entries()}
        delivered_pairs = {(s.name, r.id) for s in sinks for r in s.records}
        assert not stored & delivered_pairs, "delivered records left in the store"
        assert {(u.sink, u.record.id) for u in report.undelivered if u.stored} <= stored


def _points(total: int, most: int) -> Iterator[int]:
    step = max(1, total // most)
    yield from range(1, total + 1, step)


@pytest.mark.parametrize("with_store", [False, True])
def test_a_sigint_anywhere_in_trio_sink_keeps_the_books(with_store: bool, tmp_path: Path) -> None:
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("Trio delivers KeyboardInterrupt only with Python's default handler")
    pipeline, _ = _pipeline(None)
    _, total = _run(pipeline, None)
    assert total > 1000
    tried = interrupted = 0
    for n in _points(total, 300):
        store = RescueStore(tmp_path / f"store-{n}") if with_store else None
        try:
            pipeline, sinks = _pipeline(store)
            report, _ = _run(pipeline, n)
            tried += 1
            if report is None or (report.ok and report.received == 40):
                continue  # interrupted before the run began, or after it ended
            interrupted += 1
            _check(report, sinks, store)
        finally:
            if store is not None:
                store.close()
    assert tried >= 250
    assert interrupted >= tried // 2


# -- which code is protected --------------------------------------------------------------
#
# Trio marks code objects, for good: each test here has functions of its own, so that one
# test's marks never decide another's.


def _protected_now() -> bool:
    return trio.lowlevel.currently_ki_protected()


class Noting:
    """A sink that notes, in each of its methods, whether its code runs protected. Its
    first write fails, so that its breaker opens and its probe is called."""

    name = "db"

    def __init__(self) -> None:
        self.protected: dict[str, bool] = {}
        self.writes = 0

    async def write(self, batch: Sequence[Record]) -> None:
        self.protected.setdefault("write", _protected_now())
        self.writes += 1
        if self.writes == 1:
            raise OSError("down")

    async def flush(self) -> None:
        self.protected["flush"] = _protected_now()

    async def aclose(self) -> None:
        self.protected["aclose"] = _protected_now()

    async def probe(self) -> None:
        self.protected["probe"] = _protected_now()


async def test_the_users_functions_run_unprotected_so_that_ctrl_c_can_stop_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A hung user function must stay interruptible: parse, when, each method of a sink
    # and its probe run without the protection of the task that calls them.
    seen: dict[str, bool] = {}

    def parse(raw: int) -> int:
        seen.setdefault("parse", _protected_now())
        return raw

    def when(payload: int) -> bool:
        seen.setdefault("when", _protected_now())
        return True

    sink = Noting()
    pipeline = Pipeline(
        ScriptedSource([0, Pause(5.0), 1]),
        parse=parse,
        routes=[Route("r", sink, when=when)],
        batch_size=1,
        retry=None,
        breaker=CircuitBreaker(failures=1, probe_interval=1.0),
    )
    report = await pipeline.run()
    assert [(u.record.id, u.reason) for u in report.undelivered] == [
        (0, "sink raised OSError: down")
    ]
    assert seen == {"parse": False, "when": False}
    assert sink.protected == {"write": False, "probe": False, "flush": False, "aclose": False}
    assert trio.lowlevel.currently_ki_protected() is False  # (the test's own task)


def _gen_source(seen: dict[str, bool]) -> Iterator[int]:
    seen["source"] = _protected_now()
    yield from range(3)


async def _agen_source(seen: dict[str, bool]) -> AsyncIterator[int]:
    seen["source"] = _protected_now()
    for i in range(3):
        yield i


class _NextSource:
    def __init__(self, seen: dict[str, bool]) -> None:
        self.seen = seen
        self.left = 3

    def __iter__(self) -> _NextSource:
        return self

    def __next__(self) -> int:
        self.seen["source"] = _protected_now()
        if not self.left:
            raise StopIteration
        self.left -= 1
        return self.left


class _AnextSource:
    def __init__(self, seen: dict[str, bool]) -> None:
        self.seen = seen
        self.left = 3

    def __aiter__(self) -> _AnextSource:
        return self

    async def __anext__(self) -> int:
        self.seen["source"] = _protected_now()
        if not self.left:
            raise StopAsyncIteration
        self.left -= 1
        return self.left


class _SetUpSource(Source[int]):
    def __init__(self, seen: dict[str, bool]) -> None:
        self.seen = seen

    async def open(self) -> None:
        self.seen["open"] = _protected_now()

    async def __aiter__(self) -> AsyncIterator[int]:
        self.seen["source"] = _protected_now()
        for i in range(3):
            yield i

    async def aclose(self) -> None:
        self.seen["aclose"] = _protected_now()


@pytest.mark.parametrize(
    "make",
    [_gen_source, _agen_source, _NextSource, _AnextSource, _SetUpSource],
    ids=["generator", "async-generator", "iterator", "async-iterator", "Source"],
)
async def test_a_sources_own_code_runs_unprotected(make: Callable[[dict[str, bool]], Any]) -> None:
    seen: dict[str, bool] = {}
    sink = CollectSink("out")
    report = await Pipeline(make(seen), routes=[Route("r", sink)]).run()
    assert report.ok
    assert len(sink.records) == 3
    assert set(seen.values()) == {False}
    assert set(seen) == ({"open", "source", "aclose"} if make is _SetUpSource else {"source"})


async def test_trio_sinks_own_sinks_keep_their_protection() -> None:
    # A built-in sink's code is trio_sink's: a Ctrl-C inside it waits for a checkpoint,
    # as in the rest of the package. (Seen from a trace function, as a signal handler
    # sees the frame it interrupts.)
    sink = CollectSink("out")
    code = CollectSink.write.__code__
    seen: list[bool] = []

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code is code:
            seen.append(trio.lowlevel.currently_ki_protected())
        return None

    sys.settrace(tracer)
    try:
        report = await Pipeline(range(3), routes=[Route("r", sink)]).run()
    finally:
        sys.settrace(None)
    assert report.ok
    assert seen == [True]


def test_unprotect_marks_the_code_of_every_kind_of_callable_and_iterator() -> None:
    seen: dict[str, bool] = {}

    def function() -> None:
        seen["function"] = _protected_now()

    def partly(x: int) -> None:
        seen["partial"] = _protected_now()

    class Methods:
        def method(self) -> None:
            seen["method"] = _protected_now()

        def __call__(self) -> None:
            seen["__call__"] = _protected_now()

    def generator() -> Iterator[int]:
        seen["generator"] = _protected_now()
        yield 1

    async def agenerator() -> AsyncGenerator[int, None]:
        seen["async generator"] = _protected_now()
        yield 1

    async def coroutine() -> None:
        seen["coroutine"] = _protected_now()

    class Hostile:
        """An object whose attributes raise: its code stays as it is, and the objects
        after it are still marked."""

        def __getattr__(self, name: str) -> Any:
            raise RuntimeError(f"no {name}")

    def after_hostile() -> None:
        seen["after a hostile object"] = _protected_now()

    def not_marked() -> None:
        seen["not marked"] = _protected_now()

    gen, agen, coro = generator(), agenerator(), coroutine()
    callable_object = Methods()
    unprotect(
        function,
        functools.partial(partly, 1),
        Methods().method,
        callable_object,
        gen,
        agen,
        coro,
        None,
        Hostile(),
        after_hostile,
    )

    @trio.lowlevel.enable_ki_protection
    async def main() -> None:
        function()
        partly(1)
        Methods().method()
        callable_object()
        next(gen)
        await agen.__anext__()
        await coro
        after_hostile()
        not_marked()
        await agen.aclose()

    trio.run(main)
    assert seen == {
        "function": False,
        "partial": False,
        "method": False,
        "__call__": False,
        "generator": False,
        "async generator": False,
        "coroutine": False,
        "after a hostile object": False,
        "not marked": True,
    }


def test_user_code_in_a_folder_beside_the_package_runs_unprotected() -> None:
    # "trio_sink_plugins/" starts like the package's own folder, but is not it.
    from trio_sink._ki import unprotect

    folder = os.path.dirname(trio_sink.__file__) + "_plugins"
    namespace: dict[str, Any] = {"trio": trio}
    source = "def parse(x):\n    return trio.lowlevel.currently_ki_protected()\n"
    exec(compile(source, os.path.join(folder, "parse.py"), "exec"), namespace)
    parse = namespace["parse"]
    unprotect(parse)

    @trio.lowlevel.enable_ki_protection
    async def protected_caller() -> bool:
        return bool(parse(0))

    assert trio.run(protected_caller) is False
