"""Testing a config's parse rules and route conditions: ``trio-sink test CONFIG CASES``.

A cases file (:mod:`trio_sink._config_cases_file`) lists input lines and where each must
go: the routes that accept it, the infra groups it reaches, and fields its payload must
hold. :func:`run_cases` builds the config's parse and its routes' conditions, and
nothing else (no source, no sink, no file opened), applies them to each line as the
pipeline's route stage does, and compares; :func:`case_lines` is the report. The format
is in docs/config.md, "Testing a config: trio-sink test".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time
from typing import Any

import attrs
import msgspec

from ._conditions import compile_condition
from ._config import LoadedConfig
from ._config_cases_file import (
    GROUPS,
    Case,
    CasesFileError,
    load_cases,
    load_cases_text,
    load_config_for_test,
)
from ._parse_rules import make_parse
from ._record import Miss, Residue

__all__ = [
    "GROUPS",
    "Case",
    "CaseResult",
    "CasesFileError",
    "InputResult",
    "Outcome",
    "case_lines",
    "load_cases",
    "load_cases_text",
    "load_config_for_test",
    "outcome_of",
    "run_cases",
    "same",
    "where_lines_go",
]


@attrs.frozen
class Outcome:
    """What the pipeline does with one line."""

    line: str
    routes: tuple[str, ...]
    """The routes that accept it, in the config's order."""
    groups: tuple[str, ...]
    """The infra groups it reaches, in the order of :data:`GROUPS`."""
    parsed: bool
    """Whether it has a payload: False for a miss or a parse that raised."""
    payload: Any = None
    rest: Any = None
    """The rest of a partial parse (the ``residue`` group's), or None."""
    reason: str | None = None
    """Why it missed (the :class:`~trio_sink.Miss`'s reason) or what raised."""


def where_lines_go(loaded: LoadedConfig) -> Callable[[str], Outcome]:
    """The function that tells what the pipeline of ``loaded`` does with a line: its
    parse and its routes' conditions, built once."""
    parse = None if loaded.rules is None else make_parse(loaded.rules)
    routes = [
        (r.name, None if r.when is None else compile_condition(r.when))
        for r in loaded.config.routes
    ]
    return lambda line: outcome_of(parse, routes, line)


def outcome_of(
    parse: Callable[[Any], Any] | None,
    routes: Sequence[tuple[str, Callable[[Any], Any] | None]],
    line: str,
) -> Outcome:
    """What the route stage does with ``line``: ``parse`` it (a miss goes to ``miss``,
    an exception to ``error``, a residue to ``residue`` as well), then ask each route's
    condition; a record whose condition raises goes to ``error`` once, and one that no
    route accepts to ``default``."""
    groups: set[str] = set()
    rest = None
    try:
        payload = line if parse is None else parse(line)
    except Miss as exc:
        return Outcome(line, (), ("miss",), parsed=False, reason=exc.reason)
    except Exception as exc:
        return Outcome(line, (), ("error",), parsed=False, reason=_error(exc))
    if type(payload) is Residue:
        payload, rest = payload.payload, payload.rest
        groups.add("residue")
    accepted: list[str] = []
    reasons: list[str] = []
    for name, when in routes:
        try:
            taken = when is None or bool(when(payload))
        except Exception as exc:
            groups.add("error")
            reasons.append(f"the when of route {name!r} raised {_error(exc)}")
            continue
        if taken:
            accepted.append(name)
    if not accepted:
        groups.add("default")
    return Outcome(
        line,
        tuple(accepted),
        tuple(g for g in GROUPS if g in groups),
        parsed=True,
        payload=payload,
        rest=rest,
        reason="; ".join(reasons) or None,
    )


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@attrs.frozen
class InputResult:
    """One line of a case: what happened to it, and how that differs from the case."""

    outcome: Outcome
    problems: tuple[str, ...]
    """Each difference, as a sentence; none when the line meets the case."""


@attrs.frozen
class CaseResult:
    """A case, run: one :class:`InputResult` a line."""

    case: Case
    inputs: tuple[InputResult, ...]

    @property
    def passed(self) -> bool:
        """Whether every line met the case."""
        return not any(r.problems for r in self.inputs)


def run_cases(loaded: LoadedConfig, cases: Sequence[Case]) -> list[CaseResult]:
    """Run ``cases`` against the parse and routes of ``loaded``: one result a case."""
    test = where_lines_go(loaded)
    return [
        CaseResult(case, tuple(_check(case, test(line)) for line in case.lines)) for case in cases
    ]


def _check(case: Case, outcome: Outcome) -> InputResult:
    problems: list[str] = []
    expected = case.routes or []
    if set(expected) != set(outcome.routes):
        problems.append(f"expected routes {_names(expected)}, got {_names(outcome.routes)}")
    if case.groups != outcome.groups:
        problems.append(f"expected {_groups(case.groups)}, got {_groups(outcome.groups)}")
    if case.payload is not None:
        problems.extend(_payload_problems(case.payload, outcome))
    return InputResult(outcome, tuple(problems))


def _payload_problems(fields: Mapping[str, Any], outcome: Outcome) -> list[str]:
    if not outcome.parsed:
        return ["expected a payload, got none (the line was not parsed)"]
    payload = outcome.payload
    if not isinstance(payload, Mapping):
        return [f"expected a payload with fields, got {_show(payload)}"]
    problems: list[str] = []
    for key, value in fields.items():
        if key not in payload:
            problems.append(f"expected payload.{key} = {_show(value)}, got no such field")
        elif not same(payload[key], value):
            problems.append(f"expected payload.{key} = {_show(value)}, got {_show(payload[key])}")
    return problems


def same(got: Any, want: Any) -> bool:
    """Whether a payload's value is the value a case wants: ``==``, except that a bool
    equals only a bool (``true`` is not ``1``), a number only a number (``1`` is
    ``1.0``), and a date or time only one of its own type; tables and arrays are
    compared item by item."""
    if isinstance(want, bool) or isinstance(got, bool):
        return type(want) is type(got) and want == got
    if isinstance(want, (int, float)):
        return isinstance(got, (int, float)) and got == want
    if isinstance(want, (datetime, date, time)):
        return type(got) is type(want) and got == want
    if isinstance(want, Mapping):
        return (
            isinstance(got, Mapping)
            and got.keys() == want.keys()
            and all(same(got[k], want[k]) for k in want)
        )
    if isinstance(want, list):
        return (
            isinstance(got, (list, tuple))
            and len(got) == len(want)
            and all(same(g, w) for g, w in zip(got, want, strict=True))
        )
    return type(got) is type(want) and bool(got == want)


# -- the report -------------------------------------------------------------------------


def case_lines(results: Sequence[CaseResult]) -> list[str]:
    """The report of ``results``: ``ok  NAME`` or ``FAIL NAME: WHY`` (with what
    happened to the line, indented) for each case, then ``N passed, M failed``."""
    out: list[str] = []
    for result in results:
        name = result.case.name
        if result.passed:
            out.append(f"ok  {name}")
            continue
        many = len(result.inputs) > 1
        for k, each in enumerate(result.inputs):
            if not each.problems:
                continue
            which = f" (input {k + 1} of {len(result.inputs)})" if many else ""
            out.append(f"FAIL {name}{which}: {'; '.join(each.problems)}")
            out.extend(f"    {line}" for line in _shown(each.outcome))
    failed = sum(not r.passed for r in results)
    out.append(f"{len(results) - failed} passed, {failed} failed")
    return out


def _shown(outcome: Outcome) -> list[str]:
    """What happened to a line, for a failed case."""
    lines = [f"input:   {_show(outcome.line)}"]
    if outcome.parsed:
        lines.append(f"payload: {_show(outcome.payload)}")
    if outcome.rest is not None:
        lines.append(f"rest:    {_show(outcome.rest)}")
    if outcome.reason is not None:
        label = "miss:" if "miss" in outcome.groups and not outcome.parsed else "error:"
        lines.append(f"{label:<8} {outcome.reason}")
    return lines


def _names(names: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{n}"' for n in names) + "]"


def _groups(groups: Sequence[str]) -> str:
    if not groups:
        return "no infra group"
    if len(groups) == 1:
        return f'group "{groups[0]}"'
    return f"groups {_names(groups)}"


def _show(value: Any) -> str:
    """``value`` as JSON when it can be (what a sink would write), else its repr."""
    try:
        return msgspec.json.encode(value).decode()
    except (TypeError, msgspec.EncodeError):
        return repr(value)
