"""Hypothesis strategies for the property tests: whole pipeline runs, drawn as plain values.

A :class:`Scenario` is data only (frozen attrs classes, so a shrunk failing example reads
as a recipe); :func:`build_pipeline` turns it into the objects a ``Pipeline`` takes.

Conventions that keep a failing example readable:

- The item at position ``x`` of a source is the int ``RAW_BASE + x``, so a raw item is
  never mistaken for a record id (the id of that item is ``x``).
- A parsed payload is the tuple ``("p", x)``; a residue's rest is ``("rest", x)``.
- Every behaviour that applies to "chosen items" (miss, parse error, residue, a ``when``
  that accepts or raises, a sink write that raises) is a :class:`Pick` of positions (or
  of write indexes, for sinks).
- Clocks, stop plans, pipeline settings and sink behaviours (speeds, failing writes) are
  the public ones of :mod:`trio_sink.testing.strategies`, which users test with too;
  this module adds what only this project's properties need: sources that fail at a
  chosen item, parse and routing specs with an independent model, and sinks that can
  also be bare functions.
- Durations are mostly dyadic fractions (1/1024, 1/128, 1/4, ...), whose sums are exact
  in floating point: in virtual time a stop, a deadline, a write's end and a source's
  next item then often fall on the very same instant, where shutdown races live.
  Arbitrary floats are drawn as well.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from functools import cache
from typing import Any, Literal

import attrs
import trio
from hypothesis import strategies as st

from trio_sink import Infra, Miss, Pipeline, Record, Residue, Route
from trio_sink.testing import Fail, Pause, RecordingSink, ScriptedSource
from trio_sink.testing.strategies import (
    DrainKind,
    PipelineSettings,
    SinkBehaviour,
    Stop,
    StopPlan,
    clocks,
    pipeline_settings,
    sink_behaviours,
    stop_plans,
)

__all__ = [
    "INFRA_GROUPS",
    "NEVER",
    "RAW_BASE",
    "Built",
    "InfraSpec",
    "ObservedSink",
    "ParseBoom",
    "ParseSpec",
    "Pick",
    "PipelineSettings",
    "RouteSpec",
    "Scenario",
    "ScriptedSource",
    "SinkBoom",
    "SinkSpec",
    "SourceBoom",
    "SourceSpec",
    "Stop",
    "StopPlan",
    "WhenBoom",
    "build_pipeline",
    "clocks",
    "picks",
    "position_of",
    "scenarios",
    "schedules",
    "stop_plans",
]

RAW_BASE = 10_000
"""The raw item at position ``x`` is ``RAW_BASE + x``."""

INFRA_GROUPS = ("default", "miss", "residue", "error", "monitor")


class SourceBoom(RuntimeError):
    """The scripted source failing at its chosen item."""


class ParseBoom(ValueError):
    """``parse`` failing on a chosen item (goes to the ``error`` group)."""


class WhenBoom(ValueError):
    """A route's ``when`` failing on a chosen payload (goes to ``error`` once)."""


class SinkBoom(RuntimeError):
    """A sink write failing on a chosen write index."""


# -- choices -------------------------------------------------------------------------


@attrs.frozen
class Pick:
    """A set of non-negative ints: the listed ``items``, and every ``x`` with
    ``x % modulus == remainder`` when ``modulus`` is set."""

    items: frozenset[int] = frozenset()
    modulus: int = 0
    remainder: int = 0

    def __call__(self, x: int) -> bool:
        return x in self.items or (self.modulus > 0 and x % self.modulus == self.remainder)


NEVER = Pick()


# Strategy factories are cached: a scenario is drawn hundreds of times per test (more
# while shrinking), and building and validating strategies anew on every draw cost
# more than running the pipeline.


@cache
def picks(max_item: int = 40) -> st.SearchStrategy[Pick]:
    """Nothing, a few listed ints, or one residue class modulo 2..5."""
    listed = st.builds(Pick, items=st.frozensets(st.integers(0, max_item), min_size=1, max_size=4))
    modular = st.builds(
        lambda m, r: Pick(modulus=m, remainder=r % m), st.integers(2, 5), st.integers(0, 4)
    )
    return st.one_of(st.just(NEVER), listed, modular)


@cache
def _ints(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high)


def schedules() -> st.SearchStrategy[object]:
    """A seed for Trio's scheduler, drawn per example.

    Under Hypothesis, Trio schedules deterministically (its Hypothesis plugin registers
    the scheduler's PRNG, so every example would otherwise replay one and the same
    order). Drawing the seed explores other orders of the tasks that are ready at the
    same virtual instant (where shutdown races live) and keeps every example
    reproducible: a failing example shows its ``RandomSeeder(seed)``.
    """
    return st.random_module()


# -- settings: the public PipelineSettings and pipeline_settings() -------------------------


# -- sources -------------------------------------------------------------------------

SourceKind = Literal["list", "gen", "agen", "source"]


@attrs.frozen
class SourceSpec:
    """``list``: a plain list. ``gen``: a sync generator. ``agen``: an async generator.
    ``source``: a :class:`trio_sink.Source` subclass. All but ``list`` may fail when
    about to produce item ``fail_at`` (so ``fail_at`` items are produced; ``fail_at ==
    n`` fails after the last one). Async kinds wait ``delays[x % len(delays)]`` before
    item ``x`` (0: no checkpoint at all)."""

    kind: SourceKind
    n: int
    fail_at: int | None = None
    delays: tuple[float, ...] = (0.0,)

    def arrival(self, x: int) -> float:
        """When an async source, pulled without pause, produces item ``x``."""
        delays = self.delays
        return sum(delays[i % len(delays)] for i in range(x + 1))

    @property
    def produces(self) -> int:
        """Items produced when the source is pulled to its end."""
        return self.n if self.fail_at is None else self.fail_at


def _sync_items(spec: SourceSpec) -> Iterator[int]:
    for x in range(spec.n):
        if x == spec.fail_at:
            raise SourceBoom(f"source fails at {x}")
        yield RAW_BASE + x
    if spec.fail_at == spec.n:
        raise SourceBoom(f"source fails at {spec.n}")


async def _async_items(spec: SourceSpec) -> AsyncIterator[int]:
    delays = spec.delays
    for x in range(spec.n):
        if x == spec.fail_at:
            raise SourceBoom(f"source fails at {x}")
        delay = delays[x % len(delays)]
        if delay > 0:
            await trio.sleep(delay)
        yield RAW_BASE + x
    if spec.fail_at == spec.n:
        raise SourceBoom(f"source fails at {spec.n}")


def scripted_source(spec: SourceSpec) -> ScriptedSource:
    """The public :class:`ScriptedSource` playing :func:`_async_items`'s script."""
    script: list[object] = []
    delays = spec.delays
    for x in range(spec.n):
        if x == spec.fail_at:
            script.append(Fail(SourceBoom(f"source fails at {x}")))
            break
        delay = delays[x % len(delays)]
        if delay > 0:
            script.append(Pause(delay))
        script.append(RAW_BASE + x)
    if spec.fail_at == spec.n:
        script.append(Fail(SourceBoom(f"source fails at {spec.n}")))
    return ScriptedSource(script)


def build_source(spec: SourceSpec) -> Any:
    if spec.kind == "list":
        return [RAW_BASE + x for x in range(spec.n)]
    if spec.kind == "gen":
        return _sync_items(spec)
    if spec.kind == "agen":
        return _async_items(spec)
    return scripted_source(spec)


Failing = Literal["never", "sometimes", "always"]
_source_kinds: st.SearchStrategy[SourceKind] = st.sampled_from(["list", "gen", "agen", "source"])
_failing_kinds: st.SearchStrategy[SourceKind] = st.sampled_from(["gen", "agen", "source"])
_delay_lists = st.lists(
    st.sampled_from([0.0, 0.0, 1 / 1024, 1 / 128, 1 / 16, 1 / 4, 1.0]), min_size=1, max_size=5
)


@st.composite
def source_specs(
    draw: st.DrawFn,
    *,
    max_n: int = 1500,
    batch_size: int = 64,
    failing: Failing = "sometimes",
) -> SourceSpec:
    kind = draw(_failing_kinds if failing == "always" else _source_kinds)
    is_async = kind in ("agen", "source")
    # Mostly small; sometimes long. What an example costs is its number of batches (each
    # crosses a channel to every sink) and, for async sources, one loop turn per item:
    # so long sources come with big batches, and async ones stay shorter.
    longest = min(max_n, max(64, 100 * batch_size), 300 if is_async else max_n)
    n = draw(st.one_of(_ints(0, 40), _ints(0, longest)))
    fail_at = None
    if kind != "list" and (failing == "always" or (failing == "sometimes" and draw(st.booleans()))):
        fail_at = draw(_ints(0, n))
    delays: tuple[float, ...] = (0.0,)
    if is_async:
        delays = tuple(draw(_delay_lists))
    return SourceSpec(kind, n, fail_at, delays)


# -- parse and routes ----------------------------------------------------------------


@attrs.frozen
class ParseSpec:
    """``enabled`` False: no parse (payload = raw). Otherwise, by position, in this order:
    ``miss`` raises Miss, ``error`` raises ParseBoom, ``residue`` returns
    ``Residue(("p", x), ("rest", x))``, anything else returns ``("p", x)``."""

    enabled: bool = False
    miss: Pick = NEVER
    error: Pick = NEVER
    residue: Pick = NEVER


def position_of(payload: Any) -> int:
    """The source position a payload came from (payloads are ``("p", x)`` or raw ints)."""
    if isinstance(payload, tuple):
        x: int = payload[1]
        return x
    return int(payload) - RAW_BASE


def build_parse(spec: ParseSpec) -> Callable[[Any], Any] | None:
    if not spec.enabled:
        return None

    def parse(raw: int) -> object:
        x = raw - RAW_BASE
        if spec.miss(x):
            raise Miss(f"no rule for {x}")
        if spec.error(x):
            raise ParseBoom(f"parse {x}")
        payload = ("p", x)
        if spec.residue(x):
            return Residue(payload, ("rest", x))
        return payload

    return parse


@cache
def parse_specs(*, always: bool = False) -> st.SearchStrategy[ParseSpec]:
    """No parse, or one that misses, fails or leaves a residue on chosen items;
    ``always``: always a parse."""
    parsing = st.builds(
        ParseSpec, enabled=st.just(True), miss=picks(), error=picks(), residue=picks()
    )
    return parsing if always else st.one_of(st.just(ParseSpec()), parsing)


@attrs.frozen
class SinkSpec:
    """A sink named ``name`` that behaves as ``behaviour`` (the public
    :class:`SinkBehaviour`: sleeps ``per_batch + per_record * len(batch)``, then raises
    SinkBoom on its failing write numbers, else delivers). ``plain_function``: given to
    the pipeline as a bare ``async def`` (no flush/aclose)."""

    name: str
    behaviour: SinkBehaviour
    plain_function: bool = False


@cache
def sink_specs(name: str, *, failing: bool = True) -> st.SearchStrategy[SinkSpec]:
    return st.builds(
        SinkSpec,
        name=st.just(name),
        behaviour=sink_behaviours(max_per_record=1 / 16, max_per_batch=2.0, failures=failing),
        plain_function=st.booleans(),
    )


@attrs.frozen
class RouteSpec:
    """``accept`` None: ``when=None`` (every record). Otherwise ``when(payload)`` raises
    WhenBoom on positions in ``raise_on``, else returns ``accept(x)``."""

    name: str
    sinks: tuple[SinkSpec, ...]
    accept: Pick | None = None
    raise_on: Pick = NEVER


def build_when(spec: RouteSpec) -> Callable[[Any], bool] | None:
    accept = spec.accept
    if accept is None:
        return None

    def when(payload: Any) -> bool:
        x = position_of(payload)
        if spec.raise_on(x):
            raise WhenBoom(f"when {spec.name} {x}")
        return accept(x)

    return when


@cache
def route_specs(index: int, *, failing: bool = True) -> st.SearchStrategy[RouteSpec]:
    """Route ``r<index>`` with sinks ``r<index>s0`` and maybe ``r<index>s1``."""
    name = f"r{index}"
    first = sink_specs(f"{name}s0", failing=failing)
    second = st.one_of(st.none(), sink_specs(f"{name}s1", failing=failing))
    accepts = st.one_of(st.none(), picks())

    @st.composite
    def route(draw: st.DrawFn) -> RouteSpec:
        sinks = (draw(first), draw(second))
        accept = draw(accepts)
        raise_on = NEVER if accept is None else draw(picks())
        return RouteSpec(name, tuple(s for s in sinks if s is not None), accept, raise_on)

    return route()


@attrs.frozen
class InfraSpec:
    default: SinkSpec | None = None
    miss: SinkSpec | None = None
    residue: SinkSpec | None = None
    error: SinkSpec | None = None
    monitor: SinkSpec | None = None

    def sink_for(self, group: str) -> SinkSpec | None:
        spec: SinkSpec | None = getattr(self, group)
        return spec


@cache
def infra_specs(*, failing: bool = True, always: bool = False) -> st.SearchStrategy[InfraSpec]:
    """Each infra group with a sink ``infra_<group>``, or without one (``always``: with)."""
    groups = {
        g: sink_specs(f"infra_{g}", failing=failing)
        if always
        else st.one_of(st.none(), sink_specs(f"infra_{g}", failing=failing))
        for g in INFRA_GROUPS
    }
    return st.builds(InfraSpec, **groups)


# -- stop plans: the public Stop, StopPlan and stop_plans() -------------------------------


# -- the scenario --------------------------------------------------------------------


@attrs.frozen
class Scenario:
    settings: PipelineSettings
    source: SourceSpec
    parse: ParseSpec
    routes: tuple[RouteSpec, ...]
    infra: InfraSpec
    plan: StopPlan

    def sink_specs(self) -> list[SinkSpec]:
        specs = [s for route in self.routes for s in route.sinks]
        specs += [s for g in INFRA_GROUPS if (s := self.infra.sink_for(g)) is not None]
        return specs


@cache
def settings_strategy(drain: DrainKind) -> st.SearchStrategy[PipelineSettings]:
    return pipeline_settings(
        max_capacity=8,
        max_batch_size=64,
        max_batch_timeout=1.0,
        drain=drain,
        max_drain_timeout=60.0,
    )


@st.composite
def scenarios(
    draw: st.DrawFn,
    *,
    plans: st.SearchStrategy[StopPlan] | None = None,
    drain: DrainKind = "any",
    sink_failures: bool = True,
    source_failures: Failing = "sometimes",
    max_n: int = 1500,
    routing_heavy: bool = False,
) -> Scenario:
    """A whole run. ``routing_heavy``: always a parse, and a sink for every infra group,
    so that every routing outcome reaches a sink that can be looked at."""
    settings = draw(settings_strategy(drain))
    source = draw(
        source_specs(max_n=max_n, batch_size=settings.batch_size, failing=source_failures)
    )
    parse = draw(parse_specs(always=routing_heavy))
    n_routes = draw(_ints(1, 3))
    routes = tuple(draw(route_specs(i, failing=sink_failures)) for i in range(n_routes))
    infra = draw(infra_specs(failing=sink_failures, always=routing_heavy))
    plan = draw(stop_plans() if plans is None else plans)
    if plan.stops and source.kind in ("agen", "source") and source.n and draw(st.booleans()):
        # Stop at the very instant the source produces an item (times are exact).
        x = draw(_ints(0, source.n - 1))
        plan = plan.shifted(source.arrival(x) - plan.stops[0].at)
    return Scenario(settings, source, parse, routes, infra, plan)


# -- the sink that records what was delivered ----------------------------------------


@attrs.frozen
class ObservedSink:
    """A sink built from its spec (a public :class:`RecordingSink` around the
    behaviour), and what the properties read from its calls. The recording sink keeps
    a record only once the inner write returns, with no checkpoint in between: kept
    == delivered."""

    spec: SinkSpec
    sink: RecordingSink

    @property
    def delivered(self) -> list[Record]:
        """Records of every write that returned, in order."""
        return self.sink.records

    @property
    def attempted(self) -> list[int]:
        """Ids of every batch a write began with, in order."""
        return [r.id for call in self.sink.calls for r in call.batch]

    @property
    def failed(self) -> list[int]:
        """Ids of every batch whose write raised (SinkBoom, the only error it raises)."""
        return [r.id for call in self.sink.calls if call.outcome == "raised" for r in call.batch]

    @property
    def delivered_at(self) -> list[float]:
        """When each write that returned did so, on Trio's clock."""
        return [call.ended for call in self.sink.calls if call.outcome == "delivered"]

    @property
    def batch_sizes(self) -> list[int]:
        """The size of every batch a write began with, in order."""
        return [len(call.batch) for call in self.sink.calls]

    @property
    def flushes(self) -> int:
        return len(self.sink.flushes)

    @property
    def closes(self) -> int:
        return len(self.sink.closes)


def as_plain_function(sink: RecordingSink) -> Callable[[Sequence[Record]], Awaitable[None]]:
    async def write(batch: Sequence[Record]) -> None:
        await sink.write(batch)

    write.__name__ = sink.name
    return write


@attrs.frozen
class Built:
    pipeline: Pipeline
    sinks: dict[str, ObservedSink]
    source: ScriptedSource | None


def build_pipeline(scenario: Scenario) -> Built:
    sinks: dict[str, ObservedSink] = {}

    def make(spec: SinkSpec) -> Any:
        name = spec.name
        sink = spec.behaviour.build(name, error=lambda: SinkBoom(f"{name} write"))
        sinks[name] = ObservedSink(spec, sink)
        return as_plain_function(sink) if spec.plain_function else sink

    routes = [
        Route(r.name, [make(s) for s in r.sinks], when=build_when(r)) for r in scenario.routes
    ]
    infra_sinks = {
        g: None if (s := scenario.infra.sink_for(g)) is None else make(s) for g in INFRA_GROUPS
    }
    source = build_source(scenario.source)
    pipeline = Pipeline(
        source,
        parse=build_parse(scenario.parse),
        routes=routes,
        infra=Infra(**infra_sinks),
        **scenario.settings.kwargs(),
    )
    return Built(pipeline, sinks, source if isinstance(source, ScriptedSource) else None)
