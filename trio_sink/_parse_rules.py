"""Parse rules: how a raw line becomes a record's payload, as data a config can hold.

The rules are msgspec Structs forming one tagged union on the field ``type``, so that
a config loader decodes a TOML ``[parse]`` table (or a list of them, ``[[parse]]``)
straight into them with ``msgspec.convert``. :func:`make_parse` turns a list of rules
into the ``parse`` function of a :class:`~trio_sink.Pipeline`; :func:`validate_rules`
finds every problem in a list of rules, each with its config path. The checks live in
:mod:`._parse_check`, the compiled forms in :mod:`._parse_matchers` and
:mod:`._parse_kv`; docs/parsing.md tells the whole story.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeAlias

import msgspec

from ._exceptions import ConfigError
from ._parse_check import FIELD_TYPES, MATCH_MODES, check_rule
from ._parse_kv import kv_matcher
from ._parse_matchers import (
    Matcher,
    Unconvertible,
    converters,
    json_matcher,
    none_matcher,
    regex_matcher,
    split_matcher,
)
from ._record import Miss

__all__ = [
    "FIELD_TYPES",
    "MATCH_MODES",
    "JsonRule",
    "KvRule",
    "NoneRule",
    "RegexRule",
    "Rule",
    "SplitRule",
    "make_parse",
    "validate_rules",
]

# The type names and match modes are plain strings to msgspec, so that a wrong one is
# one of the problems validate_rules lists, at its own path (``$.parse[0].fields.ts``),
# with the others; the JSON schema still lists the values.
FieldType = Annotated[str, msgspec.Meta(extra_json_schema={"enum": list(FIELD_TYPES)})]
MatchMode = Annotated[str, msgspec.Meta(extra_json_schema={"enum": list(MATCH_MODES)})]
Scalar: TypeAlias = str | int | float | bool


class _Rule(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="type"
):
    """The settings every rule has.

    Attributes:
        add: Fixed fields added to every payload the rule makes (``{"source":
            "nginx"}``): str, int, float or bool values. They are set after the parsed
            fields, so a parsed field of the same name is replaced.
    """

    add: dict[str, Scalar] = {}


class _TypedRule(_Rule, frozen=True, kw_only=True):
    """The settings of the rules whose fields can be typed (all but ``none``).

    Attributes:
        fields: Field name -> type, one of :data:`FIELD_TYPES`: ``int`` and ``float``
            as Python's ``int()`` and ``float()`` read text, ``bool`` from ``true`` /
            ``false``, ``yes`` / ``no``, ``on`` / ``off``, ``1`` / ``0`` (any case),
            ``str`` (text as it is), ``time`` a :class:`datetime.datetime` (see
            ``time_format``). A field whose value does not convert makes the rule not
            match: the next rule is tried. A field that is absent or None is left
            as it is. Fields not named here stay text.
        time_format: The ``strptime`` format of the ``time`` fields
            (``"%d/%b/%Y:%H:%M:%S %z"``); None, the default, reads ISO 8601 with
            ``datetime.fromisoformat``. A time with no offset is a naive datetime.
    """

    fields: dict[str, FieldType] = {}
    time_format: str | None = None


class RegexRule(_TypedRule, frozen=True, kw_only=True, tag="regex"):
    """The named groups of a regular expression are the fields.

    Attributes:
        pattern: A Python ``re`` pattern with at least one named group,
            ``(?P<name>...)``; compiled once. A named group that took no part in
            the match has the value None.
        match: How the pattern is applied: ``"match"`` (the default) anchors it at
            the start of the line, ``"fullmatch"`` at both ends, ``"search"`` finds
            it anywhere.
        rest: The name of a named group whose text is the rest of a partial parse:
            it is not a field; when it is not empty, the parse returns
            ``Residue(payload, rest)`` and the record also goes to the ``residue``
            group. None (the default): no rest.
    """

    pattern: str
    match: MatchMode = "match"
    rest: str | None = None


class JsonRule(_TypedRule, frozen=True, kw_only=True, tag="json"):
    """The line is one JSON object, which is the payload. Any other line (not JSON,
    or JSON that is not an object) does not match.

    Typed fields apply to top-level keys: a value of the type is kept, a string is
    read as text is; ``str`` turns a number, bool, array or object into its JSON text.
    """


class KvRule(_TypedRule, frozen=True, kw_only=True, tag="kv"):
    """The line is ``key=value`` pairs: ``a=1 b="x y" c='z'``. A line that is
    anything else (a pair missing its separator, text between pairs, an empty line)
    does not match. A key given twice has its last value.

    A value is quoted (``"..."`` or ``'...'``; a backslash escapes a quote or a
    backslash, and is kept before any other character) or bare: it does not start
    with a quote and holds no whitespace (by default) or no ``pair_sep``. Keys hold
    no whitespace, quote or separator. There is no whitespace around ``kv_sep``.
    The grammar in full is in :mod:`._parse_kv`.

    Attributes:
        pair_sep: What separates pairs: None (the default) for whitespace, or one
            character (``","``), with optional whitespace around it; then a bare
            value may hold inner spaces: ``msg=disk full, code=7``.
        kv_sep: The one character between a key and its value (default ``"="``).
        Neither separator can be whitespace, a quote or a backslash.
    """

    pair_sep: str | None = None
    kv_sep: str = "="


class SplitRule(_TypedRule, frozen=True, kw_only=True, tag="split"):
    """The line is split into as many parts as there are names; the last field
    takes the rest of the line as it is. A line with fewer parts does not match.

    Attributes:
        names: The field names, in order (at least one, each once).
        sep: The separator, as ``str.split`` takes it: None (the default) splits at
            runs of whitespace and ignores leading whitespace; a string splits at each
            occurrence (so two in a row make an empty field).
    """

    names: list[str]
    sep: str | None = None


class NoneRule(_Rule, frozen=True, kw_only=True, tag="none"):
    """The whole line is one field: the payload is ``{"message": line}``. It matches
    every line, so a rule after it is never tried.

    Attributes:
        field: The name of that field (default ``"message"``).
    """

    field: str = "message"


Rule: TypeAlias = RegexRule | JsonRule | KvRule | SplitRule | NoneRule
"""One parse rule: what a ``[parse]`` table decodes into (``msgspec.convert(table,
Rule)``); a list of them is tried in order."""

_RULE_TYPES = (RegexRule, JsonRule, KvRule, SplitRule, NoneRule)


def _located(rules: Rule | Sequence[Rule], path: str) -> list[tuple[str, Any]]:
    """Each rule with its config path: ``path`` for a lone rule, ``path[i]`` in a list."""
    if isinstance(rules, _RULE_TYPES):
        return [(path, rules)]
    if isinstance(rules, (str, bytes)) or not isinstance(rules, Sequence):
        return [(path, rules)]
    return [(f"{path}[{i}]", rule) for i, rule in enumerate(rules)]


def validate_rules(rules: Rule | Sequence[Rule], *, path: str = "$.parse") -> list[str]:
    """Every problem of ``rules`` (a rule, or a list tried in order), each as
    ``"<config path>: <what is wrong>"``; an empty list when there is none.

    ``path`` is where the rules sit in the config: a lone rule is at ``path``
    (``$.parse.pattern``), the rules of a list at ``path[i]``. Checks what
    ``msgspec.convert`` checks (for rules built in Python), then: patterns compile and
    have named groups; every typed field, ``rest`` and ``add`` name fits the rule;
    types, match modes, time formats and separators are known and usable; and no rule
    comes after a ``none`` rule, which matches every line.
    """
    located = _located(rules, path)
    if not located:
        return [f'{path}: no rules (give at least one; type "none" keeps lines whole)']
    problems: list[str] = []
    for k, (where, rule) in enumerate(located):
        if not isinstance(rule, _RULE_TYPES):
            problems.append(
                f"{where}: expected a parse rule (RegexRule, JsonRule, KvRule, SplitRule or "
                f"NoneRule), got {type(rule).__name__}: convert a [parse] table with "
                "msgspec.convert(table, Rule)"
            )
            continue
        problems.extend(check_rule(rule, where))
        if isinstance(rule, NoneRule) and k + 1 < len(located):
            problems.append(
                f"{where}: a none rule matches every line: the rules after it are never tried"
            )
    return problems


def _matcher(rule: Rule, label: str, miss: str | None) -> Matcher:
    """The compiled ``rule``: a matcher, or with ``miss`` the parse function of a
    rule that is alone (it raises Miss with that reason)."""
    if isinstance(rule, NoneRule):
        return none_matcher(rule.field, rule.add)
    convs = converters(rule.fields, rule.time_format, json=isinstance(rule, JsonRule))
    if isinstance(rule, RegexRule):
        rx = re.compile(rule.pattern)
        return regex_matcher(rx, rule.match, convs, rule.add, rule.rest, label, miss)
    if isinstance(rule, JsonRule):
        return json_matcher(convs, rule.add, label, miss)
    if isinstance(rule, KvRule):
        return kv_matcher(rule.pair_sep, rule.kv_sep, convs, rule.add, label, miss)
    return split_matcher(rule.sep, rule.names, convs, rule.add, label, miss)


def make_parse(rules: Rule | Sequence[Rule], *, path: str = "$.parse") -> Callable[[Any], Any]:
    """The ``parse`` function of ``rules``: a rule, or a list tried in order.

    The first rule that matches a line makes its payload (a dict, or a
    :class:`~trio_sink.Residue` for a regex rule with a ``rest``). A rule whose typed
    field does not convert does not match: the next one is tried. When no rule
    matches, it raises :class:`~trio_sink.Miss` (the record goes to the ``miss``
    group) whose reason names each rule tried, and each conversion that failed:
    ``no rule matched: regex #0 (field 'status': 'abc' is not an int), kv #1``. An
    item that is not a ``str`` raises what the rule's code raises with it (a
    ``TypeError``, most often): the record goes to the ``error`` group.

    Raises:
        ConfigError: listing every problem :func:`validate_rules` finds, with its
            path (``path`` is the rules' place in the config).
    """
    problems = validate_rules(rules, path=path)
    if problems:
        listed = "".join(f"\n  {p}" for p in problems)
        raise ConfigError(f"invalid parse rules ({len(problems)}):{listed}")
    located: list[tuple[str, Rule]] = _located(rules, path)
    labels = [f"{rule.__struct_config__.tag} #{k}" for k, (_, rule) in enumerate(located)]
    if len(located) == 1:
        return _matcher(located[0][1], labels[0], f"no rule matched: {labels[0]}")
    matchers = tuple(_matcher(rule, labels[k], None) for k, (_, rule) in enumerate(located))
    return _first_of(matchers, labels)


def _first_of(matchers: tuple[Matcher, ...], labels: list[str]) -> Callable[[Any], Any]:
    """The parse function of several rules: the first that matches."""
    reason = "no rule matched: " + ", ".join(labels)

    def parse(line: Any) -> Any:
        failed: list[Unconvertible] | None = None
        for matcher in matchers:
            try:
                payload = matcher(line)
            except Unconvertible as exc:
                failed = [exc] if failed is None else [*failed, exc]
                continue
            if payload is not None:
                return payload
        if failed is None:
            raise Miss(reason)
        raise Miss(_reason(labels, failed))

    return parse


def _reason(labels: list[str], failed: list[Unconvertible]) -> str:
    """The reason of a miss after conversions failed: each rule tried, and for those
    that matched, the conversion that failed."""
    told = {exc.label: str(exc) for exc in failed}
    return "no rule matched: " + ", ".join(told.get(label, label) for label in labels)
