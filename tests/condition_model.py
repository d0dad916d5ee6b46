"""A model of the route condition language, for tests/test_conditions.py.

- :func:`evaluate`: a plain recursive interpreter of a condition's syntax tree, written
  from docs/conditions.md's table and nothing else; the compiled conditions must answer
  as it does, for every payload.
- :func:`render`: a tree back to text, with spacing and extra parentheses drawn by
  Hypothesis, and string literals in either quote and either way of writing a
  backslash.
- Strategies: syntax trees, payloads (missing fields, ints, floats, strs, bools, None,
  nested dicts, and a few odder values), and text that is mostly not a condition.

They live here rather than in tests/strategies.py because nothing else uses them.
"""

from __future__ import annotations

import enum
import itertools
import operator
import re
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from hypothesis import strategies as st

from trio_sink._condition_parser import (
    COMPARISONS,
    And,
    Compare,
    Exists,
    In,
    Matches,
    Node,
    Not,
    Or,
    Path,
    Value,
)

__all__ = [
    "MISSING",
    "PATTERNS",
    "catalogue_for",
    "conditions",
    "depth",
    "evaluate",
    "garbage",
    "leaves",
    "payloads",
    "records_for",
    "render",
    "resolve",
    "trees",
    "walk",
]

# -- the reference evaluator --------------------------------------------------------------

MISSING: Any = object()

_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def resolve(payload: object, path: Path) -> Any:
    """The value at ``path``: each step needs a mapping that holds the key."""
    value = payload
    for key in path:
        if isinstance(value, dict):
            value = dict.get(value, key, MISSING)
        elif isinstance(value, Mapping):
            value = value.get(key, MISSING)
        else:
            return MISSING
    return value


def kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "str"
    return "other"


def equal(value: object, literal: Value) -> bool:
    """Same kind (a number, a str, a bool, null), and equal."""
    return kind(value) == kind(literal) != "other" and bool(value == literal)


def evaluate(node: Node, payload: object) -> bool:
    if isinstance(node, Not):
        return not evaluate(node.operand, payload)
    if isinstance(node, And):
        return all(evaluate(operand, payload) for operand in node.operands)
    if isinstance(node, Or):
        return any(evaluate(operand, payload) for operand in node.operands)
    value = resolve(payload, node.path)
    if isinstance(node, Exists):
        return value is not MISSING
    if value is MISSING:
        return False
    if isinstance(node, In):
        return any(equal(value, x) for x in node.values)
    if isinstance(node, Matches):
        return isinstance(value, str) and node.regex.search(value) is not None
    if node.op == "==":
        return equal(value, node.value)
    if node.op == "!=":
        return not equal(value, node.value)
    same = kind(value) == kind(node.value) and kind(value) in ("number", "str")
    return same and bool(_ORDER[node.op](value, node.value))


# -- rendering ----------------------------------------------------------------------------

_ESCAPED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def render_string(draw: st.DrawFn, text: str) -> str:
    quote = draw(st.sampled_from("\"'"))
    out = []
    for i, char in enumerate(text):
        following = text[i + 1 : i + 2]
        if char == quote:
            out.append("\\" + char)
        elif (
            char == "\\" and following and following not in "\\\"'nrt\n\r\t" and draw(st.booleans())
        ):
            out.append("\\")  # a backslash before another character stays as written
        else:
            out.append(_ESCAPED.get(char, char))
    return quote + "".join(out) + quote


def render_value(draw: st.DrawFn, value: Value) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, str):
        return render_string(draw, value)
    return repr(value)


def _tokens(draw: st.DrawFn, node: Node, parens: bool) -> list[str]:
    """The tokens of ``node``: in parentheses if ``parens``, or sometimes anyway."""
    inner = _bare(draw, node)
    return ["(", *inner, ")"] if parens or draw(st.integers(0, 5)) == 0 else inner


def _bare(draw: st.DrawFn, node: Node) -> list[str]:
    if isinstance(node, Not):
        operand = node.operand
        return ["not", *_tokens(draw, operand, isinstance(operand, (And, Or)))]
    if isinstance(node, (And, Or)):
        word = "and" if isinstance(node, And) else "or"
        needs = (And, Or) if isinstance(node, And) else (Or,)
        out: list[str] = []
        for i, operand in enumerate(node.operands):
            out += [word] if i else []
            out += _tokens(draw, operand, isinstance(operand, needs))
        return out
    path = ".".join(node.path)
    if isinstance(node, Exists):
        return ["exists", path]
    if isinstance(node, Matches):
        return [path, "matches", render_string(draw, node.pattern)]
    if isinstance(node, In):
        items = [render_value(draw, x) for x in node.values]
        listed = [part for i, item in enumerate(items) for part in ([","] if i else []) + [item]]
        trailing = bool(items) and draw(st.booleans())  # [1, 2,] is a list too
        return [path, "in", "[", *listed, *([","] if trailing else []), "]"]
    return [path, node.op, render_value(draw, node.value)]


def _glued(left: str, right: str) -> bool:
    """Whether the two tokens would read as one without a space between them."""
    word = re.compile(r"[\w.]")
    return bool(word.match(left[-1]) and word.match(right[0])) or (
        left[-1] in "=!<>" and right[0] in "=!<>"
    )


@st.composite
def render(draw: st.DrawFn, node: Node) -> str:
    """``node`` as text: random spacing (none where the tokens allow), extra parens."""
    tokens = _tokens(draw, node, False)
    out = [draw(st.sampled_from(["", " ", "\n "]))]
    for left, right in itertools.pairwise(tokens):
        out.append(left)
        gap = draw(st.sampled_from(["", "", " ", "  ", "\t", "\n"]))
        out.append(" " if not gap and _glued(left, right) else gap)
    out.append(tokens[-1])
    return "".join(out) + draw(st.sampled_from(["", " "]))


# -- strategies ---------------------------------------------------------------------------

NAMES = ["a", "b", "level", "x_1", "é"]
PATTERNS = ["a", "^a", "b$", "(?i)A", "[ab]+", r"\d", r"\w\.", "", "a|é", r"\\"]
CHARS = "ab1.AÉé \"'\\\n\t"

paths = st.one_of(
    st.sampled_from(NAMES).map(lambda name: (name,)),
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map(tuple),
)
numbers = st.one_of(
    st.integers(-3, 3),
    st.integers(-1, 2),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 2.5, -1.5]),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)
strings = st.text(CHARS, max_size=4)
literals: st.SearchStrategy[Value] = st.one_of(numbers, strings, st.booleans(), st.none())
ordered = st.one_of(numbers, strings)


def _compare(path: Path, op: str, value: Value) -> Compare:
    return Compare(path, op, value)


leaves: st.SearchStrategy[Node] = st.one_of(
    st.builds(_compare, paths, st.sampled_from(["==", "!="]), literals),
    st.builds(_compare, paths, st.sampled_from(COMPARISONS), ordered),
    st.builds(In, paths, st.lists(literals, max_size=4).map(tuple)),
    st.sampled_from(PATTERNS).flatmap(
        lambda p: st.builds(Matches, paths, st.just(p), st.just(re.compile(p)))
    ),
    st.builds(Exists, paths),
)


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    several = st.lists(children, min_size=2, max_size=3).map(tuple)
    return st.one_of(st.builds(Not, children), st.builds(And, several), st.builds(Or, several))


def depth(node: Node) -> int:
    """How many levels of operators ``node`` has above its tests."""
    if isinstance(node, Not):
        return 1 + depth(node.operand)
    if isinstance(node, (And, Or)):
        return 1 + max(depth(operand) for operand in node.operands)
    return 0


# At most two levels of nesting a level (an operator and parentheses): within MAX_DEPTH.
trees: st.SearchStrategy[Node] = st.recursive(leaves, _extend, max_leaves=8).filter(
    lambda tree: depth(tree) <= 10
)


@st.composite
def conditions(draw: st.DrawFn) -> tuple[Node, str]:
    """A tree, and a text for it."""
    tree = draw(trees)
    return tree, draw(render(tree))


class Level(enum.IntEnum):
    ONE = 1


class Text(str):
    __slots__ = ()


class Real(float):
    __slots__ = ()


scalars = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    st.just(float("nan")),
    st.sampled_from([float("inf"), -float("inf")]),
    strings,
    st.sampled_from([Level.ONE, Text("a"), Real(1.0), b"a", [1], ("a",), 1j]),
)


def _dict_of(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(NAMES), values, max_size=4)


def _mappings(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        _dict_of(values),
        _dict_of(values).map(OrderedDict),
        _dict_of(values).map(MappingProxyType),
        _dict_of(values).map(lambda d: defaultdict(int, d)),
    )


values: st.SearchStrategy[Any] = st.recursive(scalars, _mappings, max_leaves=6)
payloads: st.SearchStrategy[Any] = st.one_of(
    _dict_of(values), _dict_of(values), _mappings(values), scalars
)
"""Mostly dicts of fields; some other mappings; some payloads with no fields at all."""


def _near(value: Value) -> list[Any]:
    """``value``, and values that a mistake could take for it."""
    if value is None:
        return [None, 0, False, "null", ""]
    if isinstance(value, bool):
        return [value, not value, int(value), float(value), str(value).lower()]
    if isinstance(value, str):
        return [value, Text(value), value + "a", value[:-1], value.upper(), 0, [value]]
    out: list[Any] = [value, value + 1, value - 1, str(value), -value, True, False, None]
    if isinstance(value, int) and abs(value) < 2**1000:
        out += [float(value), Real(value), float(value) + 0.5]
    if isinstance(value, float) and value.is_integer():
        out.append(int(value))
    return out


_SEARCHED = ["a", "A", "ba", "1", "x.", "\\", "é", "B\n"]
_WRAPS: list[Callable[[dict[str, Any]], Any]] = [
    dict,
    dict,
    dict,
    OrderedDict,
    MappingProxyType,
    lambda d: defaultdict(int, d),
]


CATALOGUE: list[Any] = [
    *[None, True, False, 0, 1, -1, 2, 0.0, -0.0, 1.0, 0.5, 2.5, -1.5, 2**64, 2.0**64],
    *[float("nan"), float("inf"), -float("inf")],
    *["", "a", "A", "b", "ab", "1", "é", "x.", "\\", "B\n", "null", "true"],
    *[Text("a"), Level.ONE, Real(1.0), b"a", [1], ["a"], ("a",), 1j, object()],
    *[{}, {"a": 1}, MappingProxyType({"a": "a"})],
]
"""Values of every kind, and the edges between kinds (a few: more come from the literals)."""


def catalogue_for(test: Compare | In | Matches | Exists) -> list[Any]:
    """Payloads for one test: its field set to each value of the catalogue and each value
    near its literals, through each kind of mapping; its field missing; no fields."""
    near = list(CATALOGUE)
    for literal in (test.value,) if isinstance(test, Compare) else getattr(test, "values", ()):
        near += _near(literal)
    out: list[Any] = [{}, {"other": 1}, None, "a", 1, [test.path[0]]]
    for i, value in enumerate(near):
        nested = value
        for key in reversed(test.path):
            nested = _WRAPS[i % len(_WRAPS)]({key: nested})
        out.append(nested)
    for wrap in _WRAPS:  # the path cut short: a prefix of it holds a value, not a mapping
        for cut in range(1, len(test.path)):
            nested = "a"
            for key in reversed(test.path[:cut]):
                nested = wrap({key: nested})
            out.append(nested)
    return out


@st.composite
def records_for(draw: st.DrawFn, tree: Node) -> Any:
    """A payload for ``tree``: its fields often there, with values near its literals."""
    tests = [n for n in walk(tree) if isinstance(n, (Compare, In, Matches, Exists))]
    near = list(_SEARCHED)
    for node in tests:
        for literal in (node.value,) if isinstance(node, Compare) else getattr(node, "values", ()):
            near += _near(literal)
    value = st.one_of(*[st.sampled_from(near)] * 4, scalars, _mappings(scalars))
    record = draw(st.dictionaries(st.sampled_from(NAMES), scalars, max_size=2))
    for node in tests:
        if draw(st.integers(0, 3)):  # else the field is left as it is, often missing
            nested = draw(value)
            for key in reversed(node.path[1:]):
                nested = draw(st.sampled_from(_WRAPS))({key: nested})
            record[node.path[0]] = nested
    if draw(st.integers(0, 9)) == 0:
        return draw(scalars)  # no fields at all
    return draw(st.sampled_from(_WRAPS))(record)


# fmt: off
VOCABULARY = [
    *NAMES, *COMPARISONS,
    "and", "or", "not", "in", "matches", "exists", "true", "false", "null",
    "(", ")", "[", "]", ",", ".", "-", "1", "-2.5", "1e3", '"a"', "'b'", '"(', '"\\', "=",
    "&&", "!", "AND", "True", "@", "a.b", "1.2.3",
]
# fmt: on


def _joined(parts: list[str]) -> str:
    return " ".join(parts)


@st.composite
def _edited(draw: st.DrawFn) -> str:
    """A condition's text with a slice cut out, or a token put in: often still valid."""
    _, text = draw(conditions())
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 4)))
    put = draw(st.sampled_from(["", "", *VOCABULARY]))
    return text[:start] + put + text[end:]


garbage: st.SearchStrategy[str] = st.one_of(
    st.text(max_size=40),
    st.text("ab()[]\"'\\=!<> .,-1e", max_size=40),
    st.lists(st.sampled_from(VOCABULARY), max_size=12).map(_joined),
    st.lists(st.sampled_from(VOCABULARY), max_size=12).map("".join),
    _edited(),
)


def walk(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, Not):
        yield from walk(node.operand)
    elif isinstance(node, (And, Or)):
        for operand in node.operands:
            yield from walk(operand)
