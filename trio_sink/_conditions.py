"""Route conditions: :func:`compile_condition` turns the text of a condition into a
:class:`Condition`, which tells a record's payload in or out, one at a time or a batch.

The text is parsed into a syntax tree (:mod:`trio_sink._condition_parser`), and the tree
into Python source for three functions: one payload, a batch of dicts as one list
comprehension, and a batch of anything. The source is built only here, only from the
validated tree, never from the text: a field name or a string is embedded as the
``repr()`` of a ``str``, a number as the ``repr()`` of a finite int or float, and sets
and compiled regexes are bound as closure constants. It is compiled once, with no
builtins in reach, so evaluating a batch makes no Python call per record.

What a condition means is written down in docs/conditions.md; the tests hold this
module to a plain interpreter of the tree (tests/condition_model.py).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, final

import attrs

from ._condition_parser import (
    And,
    Compare,
    ConditionError,
    Exists,
    In,
    Matches,
    Node,
    Not,
    Or,
    Path,
    Value,
    parse,
)

__all__ = ["Condition", "ConditionError", "compile_condition"]


class _Missing:
    """The value of a field that is not there; never equal to anything."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()
_NO_FIELDS: Callable[[str, object], object] = dict[str, object]().get  # no field at all


def _nested(value: object, key: str) -> object:
    """``value[key]`` when ``value`` is a mapping that holds ``key``, else MISSING.

    Called only for a value that is not exactly a dict (nor MISSING): a dict subclass is
    read with ``dict.get`` (as a dict is), another mapping with its own ``get``.
    """
    if isinstance(value, dict):
        return dict.get(value, key, MISSING)
    if isinstance(value, Mapping):
        return value.get(key, MISSING)
    return MISSING


def _getter(payload: object) -> Callable[[str, object], object]:
    """The ``get(key, default)`` that reads the fields of a payload that is not a dict."""
    if isinstance(payload, dict):
        return functools.partial(dict.get, payload)
    if isinstance(payload, Mapping):
        return payload.get
    return _NO_FIELDS


# The names the generated source may use, besides its own temporaries and constants.
_SCOPE: dict[str, object] = {
    "_M": MISSING,
    "_dict": dict,
    "_get": dict.get,
    "_nested": _nested,
    "_getter": _getter,
    "_int": int,
    "_float": float,
    "_bool": bool,
    "_str": str,
    "_isinstance": isinstance,
    "_NUM": (int, float),
}

_TEMPLATE = """\
def _make({scope}):
    def one(p):
        _g = p.get if p.__class__ is _dict else _getter(p)
        return {one}

    def dicts(ps):
        return [{batch} for p in ps]

    def mixed(ps):
        return [{batch} if p.__class__ is _dict else one(p) for p in ps]

    return one, dicts, mixed
"""


def _literal(value: Value) -> str:
    """The Python source of a str, int or float literal: its ``repr()``, once checked."""
    if type(value) is str or type(value) is int:
        return repr(value)
    if type(value) is float and math.isfinite(value):
        return repr(value)
    raise AssertionError(f"not a literal to embed: {value!r}")  # the parser never makes one


class _Generator:
    """Python source for the tree's nodes, with a given way to read a top-level field."""

    top: Callable[[str], str]
    """The source that reads a top-level field, given the source of its name."""

    def __init__(self) -> None:
        self.constants: dict[str, object] = {}
        self.names: dict[tuple[int, str], str] = {}
        self.temps = 0

    def constant(self, node: Node, role: str, make: Callable[[], object]) -> str:
        """The name of a closure constant, the same one each time for (node, role)."""
        key = (id(node), role)
        if key not in self.names:
            self.names[key] = f"_K{len(self.constants)}"
            self.constants[self.names[key]] = make()
        return self.names[key]

    def temp(self) -> str:
        self.temps += 1
        return f"_t{self.temps}"

    def source(self, node: Node, top: Callable[[str], str]) -> str:
        """The source of an expression for ``node``; constants are shared between calls."""
        self.top = top
        return self.node(node)

    def value(self, path: Path) -> str:
        """An expression for the value at ``path``: the value, or ``_M`` if missing."""
        assert all(type(key) is str for key in path)
        code = self.top(repr(path[0]))
        for key in path[1:]:
            t = self.temp()
            code = (
                f"(_get({t}, {key!r}, _M) if ({t} := {code}).__class__ is _dict"
                f" else _M if {t} is _M else _nested({t}, {key!r}))"
            )
        return code

    def node(self, node: Node) -> str:
        if isinstance(node, Not):
            return f"(not {self.node(node.operand)})"
        if isinstance(node, (And, Or)):
            joint = " and " if isinstance(node, And) else " or "
            return f"({joint.join(self.node(operand) for operand in node.operands)})"
        if isinstance(node, Exists):
            return f"({self.value(node.path)} is not _M)"
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, In):
            return self.member(node)
        return self.matches(node)

    def compare(self, node: Compare) -> str:
        v, t, op, value = self.value(node.path), self.temp(), node.op, node.value
        if value is None or isinstance(value, bool):  # the parser allows only == and !=
            assert op in ("==", "!=")
            if op == "==":
                return f"({v} is {value})"
            return f"(({t} := {v}) is not {value} and {t} is not _M)"
        literal = _literal(value)
        if isinstance(value, str):
            # An exact str is compared at once; a subclass of str after its check.
            head, check = f"({t} := {v}).__class__ is _str", f"_isinstance({t}, _str)"
        else:
            c = self.temp()
            head = f"({c} := ({t} := {v}).__class__) is _int or {c} is _float"
            check = f"{c} is not _bool and _isinstance({t}, _NUM)"
        if op == "!=":
            slow = f"{t} is not _M and not ({check} and (True if {t} == {literal} else False))"
        else:
            slow = f"{check} and (True if {t} {op} {literal} else False)"
        return f"({t} {op} {literal} if {head} else {slow})"

    def member(self, node: In) -> str:
        v, t, c = self.value(node.path), self.temp(), self.temp()
        strs = {x for x in node.values if isinstance(x, str)}
        numbers = {x for x in node.values if isinstance(x, (int, float)) and type(x) is not bool}
        slow = [f"{t} is {x}" for x in (True, False, None) if any(y is x for y in node.values)]
        if not strs and not numbers:  # true, false, null: identity, with no kind to check
            return f"(({t} := {v}) is not _M and ({' or '.join(slow)}))" if slow else "False"
        kind = f"({c} := ({t} := {v}).__class__)"  # the first test made binds both
        s = self.constant(node, "strs", lambda: frozenset(strs)) if strs else ""
        n = self.constant(node, "numbers", lambda: frozenset(numbers)) if numbers else ""
        if numbers:
            slow.insert(0, f"{c} is not _bool and _isinstance({t}, _NUM) and {t} in {n}")
        if strs:
            slow.insert(0, f"_isinstance({t}, _str) and {t} in {s}")
        if strs and numbers:
            fast = f"{t} in {s} if {kind} is _str else {t} in {n} if {c} is _int or {c} is _float"
        elif strs:
            fast = f"{t} in {s} if {kind} is _str"
        else:
            fast = f"{t} in {n} if {kind} is _int or {c} is _float"
        return f"({fast} else (True if {' or '.join(f'({x})' for x in slow)} else False))"

    def matches(self, node: Matches) -> str:
        v, t = self.value(node.path), self.temp()
        search = self.constant(node, "search", lambda: node.regex.search)
        found = f"{search}({t}) is not None"
        return (
            f"({found} if ({t} := {v}).__class__ is _str else _isinstance({t}, _str) and {found})"
        )


@final
@attrs.frozen
class Condition:
    """A route condition, compiled: true or false for a record's payload.

    Made by :func:`compile_condition`, never directly. ``condition(payload)`` answers
    for one payload, :meth:`batch` for many at once (the same answers, faster). Two
    conditions are equal when their texts are. It pickles as its text, compiled again.
    """

    text: str
    """The condition as written."""
    tree: Node = attrs.field(eq=False, repr=False)
    """Its syntax tree."""
    source: str = attrs.field(eq=False, repr=False)
    """The Python source it was compiled to (for the curious; not an API)."""
    _one: Callable[[Any], bool] = attrs.field(eq=False, repr=False, alias="one")
    _dicts: Callable[[Sequence[Any]], list[bool]] = attrs.field(eq=False, repr=False, alias="dicts")
    _mixed: Callable[[Sequence[Any]], list[bool]] = attrs.field(eq=False, repr=False, alias="mixed")

    def __call__(self, payload: Any) -> bool:
        """Whether ``payload`` meets the condition."""
        return self._one(payload)

    def batch(self, payloads: Sequence[Any]) -> list[bool]:
        """``[condition(p) for p in payloads]``, computed without a call per payload.

        A batch of dicts is one list comprehension; a batch with other payloads (a
        mapping that is not a dict, a value that has no fields) costs a call for each of
        those only.
        """
        if not isinstance(payloads, (list, tuple)):
            payloads = list(payloads)  # read twice if it holds a payload that is not a dict
        try:
            return self._dicts(payloads)
        except TypeError:  # dict.get of a payload that is not a dict
            return self._mixed(payloads)

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields the condition reads, as written (``"user.id"``), each once."""
        return tuple(dict.fromkeys(".".join(path) for path in _paths(self.tree)))

    def __reduce__(self) -> tuple[Callable[[str], Condition], tuple[str]]:
        return compile_condition, (self.text,)


def _paths(node: Node) -> list[Path]:
    if isinstance(node, (And, Or)):
        return [path for operand in node.operands for path in _paths(operand)]
    if isinstance(node, Not):
        return _paths(node.operand)
    return [node.path]


def compile_condition(text: str) -> Condition:
    """The :class:`Condition` that ``text`` says, or :class:`ConditionError`.

    Every mistake in ``text`` is found here, before any record is seen: an unknown
    operator, a missing or extra parenthesis, a bad literal, a bad regex... The grammar
    and what each operator means on each kind of value: docs/conditions.md.
    """
    tree = parse(text)
    generator = _Generator()
    one = generator.source(tree, lambda key: f"_g({key}, _M)")
    batch = generator.source(tree, lambda key: f"_get(p, {key}, _M)")
    scope = {**_SCOPE, **generator.constants}
    source = _TEMPLATE.format(scope=", ".join(scope), one=one, batch=batch)
    namespace: dict[str, Any] = {"__builtins__": {}}
    exec(compile(source, "<condition>", "exec"), namespace)
    made = namespace["_make"](*scope.values())
    return Condition(text, tree, source, one=made[0], dicts=made[1], mixed=made[2])
