"""Route conditions (trio_sink/_conditions.py, trio_sink/_condition_parser.py): what each
operator means on each kind of value, the errors and where they point, that a batch makes
no Python call per record, and, with Hypothesis, that the compiled code answers as a plain
interpreter of the syntax tree (tests/condition_model.py) on random conditions and
records, that rendering a tree and parsing it gives the tree back, and that any text
compiles or raises ConditionError."""

from __future__ import annotations

import json
import pickle
import re
import sys
from collections import OrderedDict, defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType, MappingProxyType
from typing import Any

import attrs
import pytest
from condition_model import (
    MISSING,
    PATTERNS,
    catalogue_for,
    conditions,
    evaluate,
    garbage,
    leaves,
    payloads,
    records_for,
    render,
    resolve,
    trees,
)
from hypothesis import given
from hypothesis import strategies as st

from trio_sink import ConfigError, TrioSinkError
from trio_sink._condition_parser import (
    COMPARISONS,
    MAX_DEPTH,
    Compare,
    Exists,
    In,
    Matches,
    Node,
    Not,
    Or,
    Value,
    parse,
    quote,
)
from trio_sink._conditions import Condition, ConditionError, compile_condition


def answers(text: str, *records: Any) -> list[bool]:
    """The condition's answer for each record, checked to be the same one at a time, in
    a batch, and in a batch with a payload that is not a dict."""
    condition = compile_condition(text)
    one = [condition(record) for record in records]
    assert condition.batch(list(records)) == one
    assert condition.batch([*records, "no fields"]) == [*one, condition("no fields")]
    assert all(type(answer) is bool for answer in one)
    return one


# -- the examples -------------------------------------------------------------------------


def test_errors_or_timeouts() -> None:
    text = 'level == "ERROR" or msg matches "(?i)timeout"'
    records = [
        {"level": "ERROR", "msg": "disk full"},
        {"level": "INFO", "msg": "upstream Timeout after 3 s"},
        {"level": "INFO", "msg": "ok"},
        {"msg": "timeout"},
        {"level": "error", "msg": 504},
    ]
    assert answers(text, *records) == [True, True, False, True, False]


def test_server_errors_off_the_health_checks() -> None:
    text = 'status >= 500 and not (path in ["/health", "/ready"])'
    records = [
        {"status": 503, "path": "/api"},
        {"status": 503, "path": "/health"},
        {"status": 200, "path": "/api"},
        {"status": 500.0},  # no path: not in the list
        {"status": "503", "path": "/api"},  # a str is not a number
    ]
    assert answers(text, *records) == [True, False, False, True, False]


def test_exists_a_nested_field() -> None:
    records = [{"user": {"id": 7}}, {"user": {"id": None}}, {"user": {}}, {"user": "bob"}, {}]
    assert answers("exists user.id", *records) == [True, True, False, False, False]


# -- semantics ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ['x == "a"', 'x != "a"', "x != 1", "x != null", "x != true", "x < 1", "x >= 0",
     'x in ["a", 1, null]', 'x matches ""'],
)  # fmt: skip
def test_a_missing_field_makes_every_comparison_false_not_equal_too(text: str) -> None:
    assert answers(text, {}, {"y": 1}, "not a mapping", None) == [False] * 4
    assert answers(f"not ({text})", {}) == [True]


def test_not_equal_is_true_for_a_present_value_of_another_kind() -> None:
    # "!=" is "exists and not ==": 1 is not "1", true is not 1, null is not 0.
    assert answers('x != "1"', {"x": 1}, {"x": "1"}, {"x": None}) == [True, False, True]
    assert answers("x != 1", {"x": True}, {"x": 1.0}, {"x": float("nan")}) == [True, False, True]
    assert answers("x != null", {"x": 0}, {"x": None}, {"x": False}) == [True, False, True]


def test_values_of_other_kinds_are_never_ordered() -> None:
    records = [{"x": "5"}, {"x": None}, {"x": True}, {"x": [1]}, {"x": {"y": 1}}, {"x": 2 + 0j}]
    for text in ["x < 10", "x <= 10", "x > 0", "x >= 0", 'x < "z"', 'x >= ""']:
        assert answers(text, *records) == [text == 'x < "z"' or text == 'x >= ""'] + [False] * 5


def test_ints_and_floats_compare_as_numbers() -> None:
    assert answers("x == 1", {"x": 1}, {"x": 1.0}, {"x": 1.5}) == [True, True, False]
    assert answers("x < 2.5", {"x": 2}, {"x": 2.5}, {"x": -3}) == [True, False, True]
    assert answers("x >= -1e3", {"x": -1000}, {"x": -1001.0}) == [True, False]
    assert answers("x == 9007199254740993", {"x": 9007199254740992.0}) == [False]  # exact


def test_bools_are_not_numbers() -> None:
    assert answers("x == 1", {"x": True}) == [False]
    assert answers("x > 0", {"x": True}) == [False]
    assert answers("x in [0, 1]", {"x": False}, {"x": 0}) == [False, True]
    assert answers("x == true", {"x": True}, {"x": 1}, {"x": "true"}) == [True, False, False]
    assert answers("x in [true]", {"x": True}, {"x": 1}) == [True, False]


def test_null_is_a_value_and_missing_is_not() -> None:
    assert answers("x == null", {"x": None}, {}, {"x": 0}) == [True, False, False]
    assert answers("exists x", {"x": None}, {}) == [True, False]


def test_strings_compare_by_code_point() -> None:
    assert answers('x < "b"', {"x": "a"}, {"x": "B"}, {"x": "ba"}) == [True, True, False]
    assert answers('x == "é"', {"x": "é"}, {"x": "e\u0301"}) == [True, False]  # no normalizing


def test_matches_searches_strs_only() -> None:
    text = r'x matches "^\d+$"'
    assert answers(text, {"x": "123"}, {"x": "12a"}, {"x": 123}, {"x": b"123"}) == [
        True,
        False,
        False,
        False,
    ]
    assert answers('x matches "b"', {"x": "abc"}) == [True]  # a search, not a full match


def test_the_regex_is_compiled_once_when_the_condition_is() -> None:
    tree = compile_condition('x matches "(?i)timeout"').tree
    assert isinstance(tree, Matches)
    assert tree.regex.pattern == "(?i)timeout"


def test_subclasses_and_odd_values_are_judged_by_their_kind() -> None:
    class Text(str):
        pass

    assert answers('x == "a"', {"x": Text("a")}, {"x": ["a"]}, {"x": ("a",)}) == [
        True,
        False,
        False,
    ]
    assert answers("x > 1", {"x": Level.TWO}) == [True]
    assert answers('x in ["a"]', {"x": Text("a")}, {"x": ["a"]}) == [True, False]


class Level(int):
    TWO: Level


Level.TWO = Level(2)


def test_paths_read_nested_mappings_only() -> None:
    text = "a.b.c == 1"
    nested = {"a": {"b": {"c": 1}}}
    flat = {"a.b.c": 1}  # a dotted key is not a path
    proxy = {"a": MappingProxyType({"b": OrderedDict(c=1)})}
    not_mappings = [{"a": {"b": [1]}}, {"a": {"b": "c"}}, {"a": None}, {"a": {"c": 1}}]
    assert answers(text, nested, flat, proxy, *not_mappings) == [True, False, True] + [False] * 4


def test_a_mapping_payload_is_read_with_get_and_a_dict_is_never_written() -> None:
    counts: defaultdict[str, int] = defaultdict(int, {"a": 1})
    assert answers("exists b", counts, MappingProxyType({"b": 0})) == [False, True]
    assert answers("a.b == 0", {"a": defaultdict(int)}) == [False]
    assert dict(counts) == {"a": 1}  # no key made by __missing__


class Broken(Mapping[str, Any]):
    """A mapping whose reads fail."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("unreadable")

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def test_a_mapping_that_raises_raises_through_the_condition() -> None:
    condition = compile_condition("x == 1")
    with pytest.raises(RuntimeError, match="unreadable"):
        condition(Broken())
    with pytest.raises(RuntimeError, match="unreadable"):
        condition.batch([{"x": 1}, Broken()])


def test_an_empty_list_contains_nothing() -> None:
    assert answers("x in []", {"x": 1}, {}) == [False, False]
    assert answers("not x in []", {"x": 1}, {}) == [True, True]


def test_precedence_not_and_or() -> None:
    # not > and > or, and comparisons bind tighter than not.
    tree = parse("not a == 1 and b == 2 or c == 3")
    assert isinstance(tree, Or)
    assert repr(tree) == repr(
        parse("((not (a == 1)) and (b == 2)) or (c == 3)")
    )  # the same tree, parentheses or not
    assert answers("not a == 1 and b == 2 or c == 3", {"b": 2}, {"a": 1, "b": 2}) == [True, False]


def test_literals() -> None:
    tree = parse(r"""x in ["a\"b", 'c\'d', "\\", "\d", "\n\t\r", -0, -1.5, 2e3, 1E-2, true]""")
    assert isinstance(tree, In)
    assert tree.values == ('a"b', "c'd", "\\", "\\d", "\n\t\r", 0, -1.5, 2000.0, 0.01, True)


# -- the Condition value ------------------------------------------------------------------


def test_a_condition_is_a_frozen_value_named_by_its_text() -> None:
    condition = compile_condition("a == 1")
    assert condition == compile_condition("a == 1") != compile_condition("a == 1.0")
    assert hash(condition) == hash(compile_condition("a == 1"))
    assert repr(condition) == "Condition(text='a == 1')"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        condition.text = "b == 1"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(condition))({"a": 1}) is True


def test_fields_are_listed_once_each_in_order() -> None:
    condition = compile_condition('b == 1 or exists a.c or not (b in [2]) or z matches "x"')
    assert condition.fields == ("b", "a.c", "z")


def test_batch_takes_any_sequence_and_any_iterable() -> None:
    condition = compile_condition("a > 1")
    assert condition.batch([]) == []
    assert condition.batch(({"a": 2}, {"a": 1})) == [True, False]
    assert condition.batch(iter([{"a": 2}, "x", {"a": 3}])) == [True, False, True]  # type: ignore[arg-type]


def test_a_batch_makes_no_python_call_per_record() -> None:
    condition = compile_condition(
        'level == "ERROR" or (status >= 500 and not path in ["/a", "/b"]) or exists user.id'
        ' or msg matches "time"'
    )
    records = [{"level": "INFO", "status": 200 + i, "path": "/a", "msg": "ok"} for i in range(500)]
    records += [{"user": {"id": 1}}, {"user": "x"}]  # a nested read of a non-dict: one call
    calls: list[str] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            calls.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        condition.batch(records)
    finally:
        sys.setprofile(None)
    assert calls.count("_nested") == 1
    assert len(calls) < 10, calls


# -- errors -------------------------------------------------------------------------------

ERRORS = [
    ("", 0, "empty condition"),
    ("  \n ", 4, "empty condition"),
    ("status >= 500 and level ==", 26, 'expected a value after "=="'),
    ('level = "x"', 6, 'unknown operator "=" (did you mean "=="?)'),
    ("a == 1 && b == 2", 7, 'unknown operator "&&" (did you mean "and"?)'),
    ("a <> 1", 2, 'unknown operator "<>" (did you mean "!="?)'),
    ("a @ 1", 2, 'unexpected character "@"'),
    ("(a == 1 or (b == 2)", 0, 'unclosed "("'),
    ("a == 1)", 6, 'unbalanced ")"'),
    ("a == 1 b == 2", 7, 'expected "and" or "or", got "b"'),
    ("a == 1 AND b == 2", 7, 'expected "and" or "or", got "AND" (keywords are lowercase: "and")'),
    ('a == "x', 5, "unterminated string"),
    ("a == 'x\\'", 5, "unterminated string"),
    ("a == 12abc", 5, 'bad number "12abc"'),
    ("a == 1.2.3", 5, 'bad number "1.2.3"'),
    ("a == 1e999", 5, 'number "1e999" is too large for a float'),
    ("a == - 1", 5, 'unexpected "-" (a negative number is written -5, with no space)'),
    ('msg matches "a(b"', 14, "bad regex: missing ), unterminated subpattern"),
    ('msg matches "\\\\d+[" or x == 1', 17, "bad regex: unterminated character set"),
    ('msg matches "[[a]"', 14, "bad regex: Possible nested set"),
    ("msg matches 5", 12, 'expected a string (the regex) after "matches", got 5'),
    ("a in 5", 5, 'expected "[" after "in", got 5'),
    ("a in [1 2]", 8, 'expected "," or "]" in the list, got 2'),
    ("a in [1, b]", 9, "expected a value in the list, got the field name b"),
    ("a in [1,", 5, 'unclosed "["'),
    ("exists", 6, 'expected a field name after "exists"'),
    ("exists 1", 7, 'expected a field name after "exists", got 1'),
    ("a.", 2, 'expected a field name after "."'),
    ("a.in == 1", 2, '"in" is a keyword, not a field name'),
    ("level", 5, 'expected an operator after "level" (==, !=, <, <=, >, >=, in, matches)'),
    ("level == ERROR", 9, 'got the field name ERROR (a string is quoted: "ERROR")'),
    ("ok == True", 6, "got the field name True (did you mean true?)"),
    ("500 < status", 0, "expected a field name, got the value 500"),
    ("a < true", 4, "< compares numbers or strings, not true"),
    ("a >= null", 5, ">= compares numbers or strings, not null"),
    ("a not in [1]", 2, "a condition is negated before its field: not (a ...)"),
    ("not", 3, 'expected a condition after "not"'),
    ("a == 1 or", 9, 'expected a condition after "or"'),
    ("a == 1 and ()", 12, 'expected a condition (a field name, "exists", "not" or "("), got ")"'),
]


@pytest.mark.parametrize(("text", "position", "reason"), ERRORS)
def test_errors_say_what_and_where(text: str, position: int, reason: str) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition(text)
    error = caught.value
    assert (error.text, error.position) == (text, position)
    assert error.reason.startswith(reason) or reason in error.reason, error.reason
    assert str(error).startswith(f"{error.reason} at {position}\n")


def test_the_message_quotes_the_text_with_a_caret() -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition("status >= 500 and\n  level == ")
    assert str(caught.value) == (
        'expected a value after "==" at 29\n      level == \n' + " " * 15 + "^"
    )


def test_the_message_shows_a_window_of_a_long_line() -> None:
    text = "a == 1 or " * 20 + "b ==="
    with pytest.raises(ConditionError) as caught:
        compile_condition(text)
    first, line, caret = str(caught.value).split("\n")
    assert first == f'unknown operator "===" (did you mean "=="?) at {len(text) - 3}'
    assert line == "    " + text[-43:]
    assert caret == " " * (4 + 40) + "^"


def test_a_condition_error_is_a_config_error_and_pickles() -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition("a =")
    error = caught.value
    assert isinstance(error, ConfigError)
    assert isinstance(error, ValueError)
    assert isinstance(error, TrioSinkError)
    again = pickle.loads(pickle.dumps(error))
    assert (again.reason, again.text, again.position, str(again)) == (
        error.reason,
        error.text,
        error.position,
        str(error),
    )


def test_a_condition_that_is_not_a_str_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="a condition must be a str, got b'a == 1'"):
        compile_condition(b"a == 1")  # type: ignore[arg-type]


def test_nesting_is_limited() -> None:
    deepest = "not (" * (MAX_DEPTH // 2) + "a == 1" + ")" * (MAX_DEPTH // 2)
    assert answers(deepest, {"a": 1}, {"a": 2}) == [True, False]
    nested_lists = "(a == 1 or " * MAX_DEPTH + "b in [1]" + ")" * MAX_DEPTH
    assert answers(nested_lists, {"b": 1}, {"c": 1}) == [True, False]
    with pytest.raises(ConditionError, match=f"^nested more than {MAX_DEPTH} levels deep at"):
        compile_condition("(" * (MAX_DEPTH + 1) + "a == 1" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(ConditionError, match=r"^nested more than"):
        compile_condition("not " * (MAX_DEPTH + 1) + "a == 1")
    with pytest.raises(ConditionError, match=r"^nested more than"):
        compile_condition("(" * 100_000)


def test_a_long_condition_compiles() -> None:
    text = " or ".join(f'f{i} == "{i}"' for i in range(2000))
    assert answers(text, {"f1999": "1999"}, {"f1999": 1999}) == [True, False]


# -- safety -------------------------------------------------------------------------------

HOSTILE = [
    "__import__('os').system('exit 1')",
    "'); import os; ('",
    '" + open("/etc/passwd").read() + "',
    "\\",
    "{0} {p} %s",
    "\x00\ud800",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_strings_are_data_in_the_generated_source(value: str) -> None:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    condition = compile_condition(f'x == "{escaped}" or x.y in ["{escaped}"]')
    assert answers(condition.text, {"x": value}, {"x": {"y": value}}, {"x": "other"}) == [
        True,
        True,
        False,
    ]
    assert "__builtins__" not in condition.source
    assert repr(value) in condition.source


def test_the_generated_source_has_no_builtins() -> None:
    condition = compile_condition("a == 1")
    namespace = condition._one.__globals__
    assert namespace["__builtins__"] == {}
    assert set(namespace) == {"__builtins__", "_make"}


# -- properties ---------------------------------------------------------------------------


LITERALS: list[Value] = [0, 1, -1, 2, 0.0, -0.0, 1.0, 0.5, 2**64, "", "a", "b", "1", "é"]
LISTS = ["[]", "[0]", '[1, "a"]', "[true]", "[false]", "[null]", "[true, false, null]",
         '["a", "b"]', '[0.5, 1, "1", null]', "[2.0, -0.0]"]  # fmt: skip


def every_test() -> Iterator[str]:
    """Each operator with literals of each kind, on a field and on a nested one."""
    for path in ["a", "a.b"]:
        for op in COMPARISONS:
            singletons = ["true", "false", "null"] if op in ("==", "!=") else []
            for literal in [*map(render_literal, LITERALS), *singletons]:
                yield f"{path} {op} {literal}"
        yield from (f"{path} in {items}" for items in LISTS)
        yield from (f"{path} matches {quote(pattern)}" for pattern in PATTERNS)
        yield f"exists {path}"


def render_literal(value: Value) -> str:
    return quote(value) if isinstance(value, str) else repr(value)


def test_every_test_answers_as_the_model_on_every_kind_of_value() -> None:
    for text in every_test():
        tree = parse(text)
        assert isinstance(tree, (Compare, In, Matches, Exists))
        records = catalogue_for(tree)
        expected = [evaluate(tree, record) for record in records]
        condition = compile_condition(text)
        assert [condition(record) for record in records] == expected, text
        assert condition.batch(records) == expected, text
        assert compile_condition(f"not {text}").batch(records) == [not x for x in expected]


@given(leaves, st.data())
def test_each_test_answers_as_the_model(leaf: Node, data: st.DataObject) -> None:
    # One test at a time (no and/or to hide an answer), on values of every kind.
    assert isinstance(leaf, (Compare, In, Matches, Exists))
    records = catalogue_for(leaf)
    condition = compile_condition(data.draw(render(leaf)))
    expected = [evaluate(leaf, record) for record in records]
    assert [condition(record) for record in records] == expected
    assert condition.batch(records) == expected
    negated = compile_condition(f"not ({condition.text})")
    assert negated.batch(records) == [not answer for answer in expected]


@given(conditions(), st.data())
def test_compiled_conditions_answer_as_the_model(
    drawn: tuple[Node, str], data: st.DataObject
) -> None:
    tree, text = drawn
    records = data.draw(st.lists(records_for(tree) | payloads, max_size=8))
    condition = compile_condition(text)
    expected = [evaluate(tree, record) for record in records]
    assert [condition(record) for record in records] == expected
    got = condition.batch(records)
    assert got == expected
    assert all(type(answer) is bool for answer in got)


@given(trees, st.data())
def test_rendering_then_parsing_gives_the_tree_back(tree: Node, data: st.DataObject) -> None:
    text = data.draw(render(tree))
    parsed = parse(text)
    assert parsed == tree
    assert repr(parsed) == repr(tree)  # 1 is not 1.0 nor true, -0.0 is not 0.0


def compiled_or_error(text: str) -> Condition | ConditionError:
    try:
        return compile_condition(text)
    except ConditionError as error:
        return error


@given(garbage, st.lists(payloads, max_size=4))
def test_any_text_compiles_or_raises_condition_error(text: str, records: list[Any]) -> None:
    condition = compiled_or_error(text)
    if isinstance(condition, ConditionError):
        assert condition.text == text
        assert 0 <= condition.position <= len(text)
        return
    expected = [evaluate(condition.tree, record) for record in records]
    assert condition.batch(records) == expected == [condition(r) for r in records]


def test_the_model_reads_paths_as_documented() -> None:
    assert resolve({"a": {"b": 1}}, ("a", "b")) == 1
    assert resolve({"a": 1}, ("a", "b")) is MISSING
    assert evaluate(Compare(("a",), "!=", 1), {}) is False
    assert evaluate(Not(Compare(("a",), "!=", 1)), {}) is True


# -- docs/conditions.md -------------------------------------------------------------------

DOCS = Path(__file__).parent.parent / "docs" / "conditions.md"


def table(heading: str) -> list[list[list[str]]]:
    """The rows of the table under the first header row that starts with ``heading``:
    for each cell, the code spans in it (an empty cell's text is "(empty)")."""
    lines = DOCS.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {heading} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = line.strip("|").split(" | ")
        rows.append([re.findall(r"`([^`]+)`", cell) or [""] for cell in cells])
    return rows


def test_the_docs_examples_are_true() -> None:
    rows = table("condition")
    assert len(rows) >= 9
    for [text], true_for, false_for in rows:
        records = [json.loads(x) for x in true_for + false_for]
        assert answers(text, *records) == [True] * len(true_for) + [False] * len(false_for)


def test_the_docs_errors_are_the_errors() -> None:
    rows = table("text")
    assert len(rows) >= 14
    for [text], [message] in rows:
        with pytest.raises(ConditionError) as caught:
            compile_condition(text)
        assert str(caught.value).splitlines()[0] == message
