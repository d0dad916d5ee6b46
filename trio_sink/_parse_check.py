"""The checks of one parse rule: every problem, each with its config path.

The rules are read by their tag and attributes (see :mod:`._parse_rules`, which
defines them and calls :func:`check_rule` for each), so this module needs nothing of
the rule classes but their shape.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

import msgspec

__all__ = ["FIELD_TYPES", "MATCH_MODES", "check_rule", "key_path"]

FIELD_TYPES = ("int", "float", "bool", "str", "time")
"""The types a field can be given in a rule's ``fields``."""

MATCH_MODES = ("match", "search", "fullmatch")
"""The values of a regex rule's ``match``: which method of the pattern is used."""

_SAMPLE_TIME = datetime(2001, 2, 3, 4, 5, 6, 7000, tzinfo=UTC)
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_NOT_IN_SEPARATORS = re.compile(r"""[\s"'\\]""")


def key_path(where: str, key: str) -> str:
    """The path of ``key`` in the mapping at ``where``: ``.key``, or ``['a.b']``."""
    return f"{where}.{key}" if _PLAIN_KEY.fullmatch(key) else f"{where}[{key!r}]"


def _quoted(values: Collection[str]) -> str:
    *first, last = (f'"{v}"' for v in values)
    return f"{', '.join(first)} or {last}" if first else last


def _unknown(value: str, known: Collection[str], noun: str) -> str:
    """``unknown <noun> "x" (expected ...)``, with a guess when one is close."""
    close = difflib.get_close_matches(value, known, n=1)
    guess = f', did you mean "{close[0]}"?' if close else ""
    return f'unknown {noun} "{value}"{guess} (expected {_quoted(known)})'


def _shape(rule: Any, where: str) -> str | None:
    """What ``msgspec.convert`` would say of the rule's settings (a rule built in
    Python is not checked on construction), or None when they have the right types."""
    try:
        msgspec.convert(msgspec.to_builtins(rule), type(rule))
    except msgspec.ValidationError as exc:
        text, _, at = str(exc).partition(" - at `$")
        return f"{where}{at.rstrip('`')}: {text}"
    except TypeError as exc:  # a value msgspec cannot even encode
        return f"{where}: {exc}"
    return None


def _check_regex(rule: Any, where: str) -> tuple[list[str], set[str] | None]:
    """The problems of a regex rule's own settings, and the fields it makes."""
    problems: list[str] = []
    if rule.match not in MATCH_MODES:
        problems.append(f"{where}.match: {_unknown(rule.match, MATCH_MODES, 'mode')}")
    try:
        groups = set(re.compile(rule.pattern).groupindex)
    except re.error as exc:
        problems.append(f"{where}.pattern: bad regex: {exc}")
        return problems, None
    if not groups:
        problems.append(f"{where}.pattern: no named group: name each field with (?P<name>...)")
    if rule.rest is not None:
        if rule.rest not in groups:
            problems.append(f'{where}.rest: no group named "{rule.rest}" in the pattern')
        elif rule.rest in rule.fields:
            at = key_path(f"{where}.fields", rule.rest)
            problems.append(f'{at}: "{rule.rest}" is the rest, not a field: it has no type')
        groups.discard(rule.rest)
    return problems, groups


def _check_separators(rule: Any, where: str) -> list[str]:
    problems: list[str] = []
    seps = {"kv_sep": rule.kv_sep}
    if rule.pair_sep is not None:
        seps["pair_sep"] = rule.pair_sep
    for name, sep in seps.items():
        if len(sep) != 1 or _NOT_IN_SEPARATORS.match(sep):
            hint = " (leave it out to separate pairs by whitespace)" if name == "pair_sep" else ""
            problems.append(
                f"{where}.{name}: {sep!r} is not one character other than whitespace, "
                f"a quote or a backslash{hint}"
            )
    if rule.pair_sep is not None and rule.pair_sep == rule.kv_sep:
        problems.append(f"{where}.pair_sep: the same as kv_sep ({rule.kv_sep!r})")
    return problems


def _check_split(rule: Any, where: str) -> list[str]:
    problems: list[str] = []
    if rule.sep == "":
        problems.append(f"{where}.sep: empty (leave it out to split at whitespace)")
    if not rule.names:
        problems.append(f"{where}.names: no names (give one per field)")
    seen: set[str] = set()
    for k, name in enumerate(rule.names):
        if not name:
            problems.append(f"{where}.names[{k}]: an empty name")
        elif name in seen:
            problems.append(f'{where}.names[{k}]: "{name}" given twice')
        seen.add(name)
    return problems


def _check_fields(rule: Any, where: str, made: set[str] | None, missing: str) -> list[str]:
    """The problems of ``fields`` and ``time_format``; ``made`` is the set of fields
    the rule makes (None: any key can be there), ``missing`` says a name is not one
    of them (``{}`` stands for the name)."""
    problems: list[str] = []
    for name, kind in rule.fields.items():
        at = key_path(f"{where}.fields", name)
        if kind not in FIELD_TYPES:
            problems.append(f"{at}: {_unknown(kind, FIELD_TYPES, 'type')}")
        elif made is not None and name not in made and name != getattr(rule, "rest", None):
            problems.append(f"{at}: {missing.format(name)}")
    if rule.time_format is not None:
        try:
            datetime.strptime(_SAMPLE_TIME.strftime(rule.time_format), rule.time_format)
        except ValueError as exc:
            problems.append(f"{where}.time_format: bad format {rule.time_format!r}: {exc}")
        if "time" not in rule.fields.values():
            problems.append(f'{where}.time_format: no field is typed "time"')
    return problems


def _check_add(rule: Any, where: str, made: set[str] | None) -> list[str]:
    if made is None:
        return []
    return [
        f"{key_path(f'{where}.add', name)}: also a field the rule parses"
        for name in rule.add
        if name in made or name == getattr(rule, "rest", None)
    ]


def check_rule(rule: Any, where: str) -> list[str]:
    """Every problem of one rule (an instance of a rule class) at path ``where``."""
    shape = _shape(rule, where)
    if shape is not None:
        return [shape]  # the other checks need values of the right types
    tag = rule.__struct_config__.tag
    if tag == "none":
        if not rule.field:
            return [f"{where}.field: empty (the name of the field that holds the line)"]
        return _check_add(rule, where, {rule.field})
    problems: list[str] = []
    made: set[str] | None = None
    missing = ""
    if tag == "regex":
        problems, made = _check_regex(rule, where)
        missing = 'no group named "{}" in the pattern'
        if made is None:  # the pattern does not compile: no group to check against
            return problems + _check_fields(rule, where, None, missing)
    elif tag == "kv":
        problems = _check_separators(rule, where)
    elif tag == "split":
        problems = _check_split(rule, where)
        made, missing = set(rule.names), '"{}" is not one of the names'
    problems += _check_fields(rule, where, made, missing)
    problems += _check_add(rule, where, made)
    return problems
