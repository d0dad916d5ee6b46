"""Parse rules: each rule type, typed fields, rest and residue, the order of rules and
the reasons of misses, decoding from config tables, validation, and a pipeline run.

The property tests render random values the way a log writer would and parse them
back (kv, split), feed random text to every rule (nothing escapes but ``Miss``), and
hold the kv rule's two readers (``str`` methods, one pattern) to its grammar.
"""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from trio_sink import ConfigError, Infra, Miss, Pipeline, Residue, Route
from trio_sink._parse_kv import kv_grammar
from trio_sink._parse_rules import (
    FIELD_TYPES,
    JsonRule,
    KvRule,
    NoneRule,
    RegexRule,
    Rule,
    SplitRule,
    make_parse,
    validate_rules,
)
from trio_sink.sinks import CollectSink

LOG = r"(?P<time>\S+) (?P<level>[A-Z]+) (?P<msg>.*)"


def parsed(rules: Rule | Sequence[Rule], line: Any) -> Any:
    return make_parse(rules)(line)


def miss_reason(rules: Rule | Sequence[Rule], line: Any) -> str:
    with pytest.raises(Miss) as caught:
        make_parse(rules)(line)
    return caught.value.reason


# -- regex ------------------------------------------------------------------------------


def test_regex_named_groups_are_the_payload() -> None:
    line = "2024-05-01T10:00:00 ERROR disk full"
    assert parsed(RegexRule(pattern=LOG), line) == {
        "time": "2024-05-01T10:00:00",
        "level": "ERROR",
        "msg": "disk full",
    }


def test_regex_unnamed_groups_are_not_fields_and_a_group_left_out_is_none() -> None:
    rule = RegexRule(pattern=r"(\d+) (?P<a>x)(?: (?P<b>y))?")
    assert parsed(rule, "1 x") == {"a": "x", "b": None}


@pytest.mark.parametrize(
    ("match", "line", "matches"),
    [
        ("match", "ab-12", True),
        ("match", "x ab-12", False),
        ("match", "ab-12 tail", True),
        ("search", "x ab-12 tail", True),
        ("fullmatch", "ab-12", True),
        ("fullmatch", "ab-12 tail", False),
    ],
)
def test_regex_match_modes(match: str, line: str, matches: bool) -> None:
    parse = make_parse(RegexRule(pattern=r"(?P<k>[a-z]+)-(?P<n>\d+)", match=match))
    if matches:
        assert parse(line) == {"k": "ab", "n": "12"}
    else:
        with pytest.raises(Miss, match=r"^no rule matched: regex #0$"):
            parse(line)


def test_regex_add_sets_fixed_fields() -> None:
    rule = RegexRule(pattern=LOG, add={"source": "nginx", "tier": 2, "prod": True})
    assert parsed(rule, "t INFO hi") == {
        "time": "t",
        "level": "INFO",
        "msg": "hi",
        "source": "nginx",
        "tier": 2,
        "prod": True,
    }


def test_regex_a_non_str_item_is_an_error_not_a_miss() -> None:
    with pytest.raises(TypeError):
        parsed(RegexRule(pattern=LOG), b"t INFO hi")


# -- typed fields ----------------------------------------------------------------------


NUMBERS = r"(?P<n>\S+) (?P<x>\S+) (?P<ok>\S+) (?P<s>\S+)"


def test_typed_fields_convert() -> None:
    rule = RegexRule(pattern=NUMBERS, fields={"n": "int", "x": "float", "ok": "bool", "s": "str"})
    assert parsed(rule, "-12 2.5e3 Yes 007") == {"n": -12, "x": 2500.0, "ok": True, "s": "007"}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("on", True),
        ("1", True),
        ("false", False),
        ("No", False),
        ("off", False),
        ("0", False),
    ],
)
def test_bool_texts(text: str, value: bool) -> None:
    assert parsed(RegexRule(pattern=r"(?P<b>.*)", fields={"b": "bool"}), text) == {"b": value}


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("int", "12a", "an int"),
        ("int", "1.0", "an int"),
        ("float", "x1", "a float"),
        ("bool", "maybe", "a bool"),
        ("time", "yesterday", "a time in ISO 8601"),
    ],
)
def test_a_field_that_does_not_convert_is_a_miss_naming_the_conversion(
    kind: str, text: str, expected: str
) -> None:
    rule = RegexRule(pattern=r"(?P<v>.*)", fields={"v": kind})
    reason = miss_reason(rule, text)
    assert reason == f"no rule matched: regex #0 (field 'v': {text!r} is not {expected})"


def test_a_long_value_is_cut_short_in_the_reason() -> None:
    reason = miss_reason(RegexRule(pattern=r"(?P<v>.*)", fields={"v": "int"}), "x" * 100)
    shown = "'" + "x" * 35 + "...'"
    assert reason == f"no rule matched: regex #0 (field 'v': {shown} is not an int)"


def test_a_group_left_out_is_not_converted() -> None:
    rule = RegexRule(pattern=r"(?P<a>\d+)(?: (?P<b>\d+))?", fields={"a": "int", "b": "int"})
    assert parsed(rule, "7") == {"a": 7, "b": None}


def test_time_iso_8601_by_default() -> None:
    rule = RegexRule(pattern=r"(?P<t>\S+)", fields={"t": "time"})
    assert parsed(rule, "2024-05-01T10:00:00Z") == {"t": datetime(2024, 5, 1, 10, tzinfo=UTC)}
    assert parsed(rule, "2024-05-01T10:00:00.250+02:00") == {
        "t": datetime(2024, 5, 1, 10, 0, 0, 250000, tzinfo=timezone(timedelta(hours=2)))
    }
    assert parsed(rule, "2024-05-01T10:00") == {"t": datetime(2024, 5, 1, 10)}  # naive


def test_time_with_a_format() -> None:
    rule = RegexRule(
        pattern=r"\[(?P<t>[^\]]+)\]", fields={"t": "time"}, time_format="%d/%b/%Y:%H:%M:%S %z"
    )
    assert parsed(rule, "[10/Oct/2000:13:55:36 -0700]") == {
        "t": datetime(2000, 10, 10, 13, 55, 36, tzinfo=timezone(timedelta(hours=-7)))
    }
    assert miss_reason(rule, "[2000-10-10]") == (
        "no rule matched: regex #0 (field 't': '2000-10-10' is not a time in the format "
        "'%d/%b/%Y:%H:%M:%S %z')"
    )


# -- rest and residue ------------------------------------------------------------------


REST = RegexRule(pattern=r"(?P<level>[A-Z]+):(?: (?P<tail>.*))?", rest="tail")


def test_rest_makes_a_residue() -> None:
    assert parsed(REST, "WARN: and more") == Residue({"level": "WARN"}, "and more")


def test_an_empty_or_absent_rest_is_no_residue() -> None:
    assert parsed(REST, "WARN: ") == {"level": "WARN"}
    assert parsed(REST, "WARN:") == {"level": "WARN"}


def test_a_residue_has_typed_fields_and_added_ones() -> None:
    rule = RegexRule(
        pattern=r"(?P<n>\d+) (?P<rest>.*)", rest="rest", fields={"n": "int"}, add={"k": "v"}
    )
    assert parsed(rule, "5 left over") == Residue({"n": 5, "k": "v"}, "left over")


# -- json -------------------------------------------------------------------------------


def test_json_object() -> None:
    assert parsed(JsonRule(), '{"a": 1, "b": [true, null]}') == {"a": 1, "b": [True, None]}


@pytest.mark.parametrize("line", ["[1, 2]", "3", '"text"', "null", "{", "not json", "", "\ud800"])
def test_json_that_is_not_an_object_is_a_miss(line: str) -> None:
    assert miss_reason(JsonRule(), line) == "no rule matched: json #0"


def test_json_typed_fields() -> None:
    rule = JsonRule(
        fields={"n": "int", "s": "int", "f": "float", "b": "bool", "t": "str", "o": "str"},
        add={"source": "api"},
    )
    line = '{"n": 3, "s": "4", "f": 2, "b": "on", "t": 1.5, "o": {"x": [1]}, "other": "x"}'
    assert parsed(rule, line) == {
        "n": 3,
        "s": 4,
        "f": 2.0,
        "b": True,
        "t": "1.5",
        "o": '{"x":[1]}',
        "other": "x",
        "source": "api",
    }


def test_json_absent_and_null_fields_stay_as_they_are() -> None:
    rule = JsonRule(fields={"n": "int", "m": "int"})
    assert parsed(rule, '{"m": null}') == {"m": None}


@pytest.mark.parametrize(
    ("kind", "value"),
    [("int", "1.5"), ("int", "true"), ("int", '"x"'), ("float", "false"), ("bool", "1")],
)
def test_json_values_that_do_not_convert(kind: str, value: str) -> None:
    reason = miss_reason(JsonRule(fields={"v": kind}), f'{{"v": {value}}}')
    assert reason.startswith("no rule matched: json #0 (field 'v': ")


def test_json_time_field() -> None:
    rule = JsonRule(fields={"ts": "time"})
    assert parsed(rule, '{"ts": "2024-01-02T03:04:05"}') == {"ts": datetime(2024, 1, 2, 3, 4, 5)}
    assert "is not a time in ISO 8601" in miss_reason(rule, '{"ts": 1700000000}')


def test_json_add_replaces_a_parsed_field() -> None:
    assert parsed(JsonRule(add={"source": "fixed"}), '{"source": "x"}') == {"source": "fixed"}


# -- kv ---------------------------------------------------------------------------------


def test_kv_pairs() -> None:
    line = """a=1 b="x y" c='z' d= e=u=v"""
    assert parsed(KvRule(), line) == {"a": "1", "b": "x y", "c": "z", "d": "", "e": "u=v"}


def test_kv_quoted_values_with_escapes() -> None:
    line = r"""a="say \"hi\"" b='it\'s' c="back\\slash" d="C:\temp" e=""  """
    assert parsed(KvRule(), line) == {
        "a": 'say "hi"',
        "b": "it's",
        "c": "back\\slash",
        "d": "C:\\temp",  # a backslash before anything else is kept
        "e": "",
    }


def test_kv_a_bare_value_may_hold_a_quote_after_its_start() -> None:
    assert parsed(KvRule(), "msg=don't n=1") == {"msg": "don't", "n": "1"}


def test_kv_a_key_given_twice_has_its_last_value() -> None:
    assert parsed(KvRule(), "a=1 a=2") == {"a": "2"}
    assert parsed(KvRule(), 'a=1 a="2"') == {"a": "2"}


@pytest.mark.parametrize(
    "line",
    [
        "",
        "   ",
        "plain text",
        "a=1 junk",
        "=1",
        "a =1",
        'a="unterminated',
        'a="x"y',
        "a='x' 'b'=1",
        'k"ey=1',
    ],
)
def test_kv_text_that_is_not_pairs_is_a_miss(line: str) -> None:
    assert miss_reason(KvRule(), line) == "no rule matched: kv #0"


def test_kv_separators() -> None:
    rule = KvRule(pair_sep=",", kv_sep=":")
    line = ' a:1 , msg:disk full,q:"x, y", e:'
    assert parsed(rule, line) == {"a": "1", "msg": "disk full", "q": "x, y", "e": ""}
    for bad in ["a:1,,b:2", "a:1,", "a: 1", "a b:1", "a:1;b:2 junk,c:3 junk,"]:
        with pytest.raises(Miss):
            make_parse(rule)(bad)


def test_kv_typed_fields() -> None:
    rule = KvRule(fields={"n": "int", "ok": "bool"}, add={"from": "kv"})
    assert parsed(rule, 'n=5 ok=yes s="t"') == {"n": 5, "ok": True, "s": "t", "from": "kv"}
    assert parsed(rule, "s=t") == {"s": "t", "from": "kv"}
    assert miss_reason(rule, "n=five") == (
        "no rule matched: kv #0 (field 'n': 'five' is not an int)"
    )


def test_kv_a_long_line_that_is_not_pairs_is_read_in_linear_time() -> None:
    lines = [
        'a="' + "x" * 50_000,
        "a=" + "b=" * 50_000 + " junk",
        "a=1 " * 20_000 + "junk",
        'a="x" ' * 10_000 + 'b="' + "\\x" * 20_000,
    ]
    parse = make_parse([KvRule(), KvRule(pair_sep=",", kv_sep=":")])
    started = time.perf_counter()
    for line in [*lines, *(line.replace(" ", ",").replace("=", ":") for line in lines)]:
        with pytest.raises(Miss):
            parse(line)
    long_value = "a:" + "x" + " " * 50_000 + "y"
    assert parse(long_value) == {"a": "x" + " " * 50_000 + "y"}
    assert time.perf_counter() - started < 5  # quadratic would be minutes


# -- split ------------------------------------------------------------------------------


def test_split_on_whitespace_the_last_field_takes_the_rest() -> None:
    rule = SplitRule(names=["ip", "method", "path"])
    assert parsed(rule, "  10.0.0.1  GET /a b  c ") == {
        "ip": "10.0.0.1",
        "method": "GET",
        "path": "/a b  c ",
    }


def test_split_with_a_separator_keeps_empty_fields() -> None:
    rule = SplitRule(names=["a", "b", "c"], sep="|")
    assert parsed(rule, "x||z|w") == {"a": "x", "b": "", "c": "z|w"}


def test_split_fewer_parts_than_names_is_a_miss() -> None:
    assert miss_reason(SplitRule(names=["a", "b", "c"]), "x y") == "no rule matched: split #0"
    assert miss_reason(SplitRule(names=["a"]), "   ") == "no rule matched: split #0"


def test_split_typed_fields() -> None:
    rule = SplitRule(names=["code", "bytes", "rest"], fields={"code": "int", "bytes": "int"})
    assert parsed(rule, "200 512 ok") == {"code": 200, "bytes": 512, "rest": "ok"}
    assert "field 'bytes': '-' is not an int" in miss_reason(rule, "200 - ok")


# -- none -------------------------------------------------------------------------------


def test_none_keeps_the_line_whole() -> None:
    assert parsed(NoneRule(), "anything at all") == {"message": "anything at all"}
    assert parsed(NoneRule(field="line", add={"k": 1}), "") == {"line": "", "k": 1}


# -- several rules ----------------------------------------------------------------------


NGINX = r'(?P<ip>\S+) - - \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3})'


def test_the_first_rule_that_matches_wins() -> None:
    rules: list[Rule] = [
        RegexRule(pattern=r"(?P<word>\w+)$", add={"rule": 0}),
        KvRule(add={"rule": 1}),
        RegexRule(pattern=r"(?P<any>.*)", add={"rule": 2}),
    ]
    parse = make_parse(rules)
    assert parse("hello") == {"word": "hello", "rule": 0}
    assert parse("a=1") == {"a": "1", "rule": 1}  # rule 2 matches too: not tried
    assert parse("a b") == {"any": "a b", "rule": 2}


def test_no_rule_matched_names_every_rule_tried() -> None:
    rules: list[Rule] = [
        RegexRule(pattern=NGINX),
        KvRule(),
        JsonRule(),
        SplitRule(names=["a", "b"]),
    ]
    assert miss_reason(rules, "one") == "no rule matched: regex #0, kv #1, json #2, split #3"


def test_a_conversion_that_fails_tries_the_next_rule() -> None:
    rules = [
        RegexRule(pattern=r"(?P<n>\S+)$", fields={"n": "int"}),
        RegexRule(pattern=r"(?P<word>\S+)$"),
    ]
    assert parsed(rules, "12") == {"n": 12}
    assert parsed(rules, "twelve") == {"word": "twelve"}


def test_the_reason_tells_each_conversion_that_failed() -> None:
    rules: list[Rule] = [
        RegexRule(pattern=r"(?P<n>\S+)", fields={"n": "int"}),
        KvRule(),
        JsonRule(fields={"t": "time"}),
    ]
    assert miss_reason(rules, '{"t": "noon"}') == (
        "no rule matched: regex #0 (field 'n': '{\"t\":' is not an int), kv #1, "
        "json #2 (field 't': 'noon' is not a time in ISO 8601)"
    )


def test_a_none_rule_last_takes_what_the_others_leave() -> None:
    parse = make_parse([RegexRule(pattern=NGINX, fields={"status": "int"}), NoneRule()])
    line = '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200'
    assert parse(line)["status"] == 200
    assert parse("something else") == {"message": "something else"}


def test_an_exception_other_than_a_conversion_is_not_caught() -> None:
    parse = make_parse([JsonRule(), SplitRule(names=["a"])])
    with pytest.raises(TypeError):
        parse(12)  # msgspec raises TypeError for an int: the record goes to "error"


# -- decoding from config tables -------------------------------------------------------


class Config(msgspec.Struct):
    """The part of a config the parse rules sit in, as a loader would declare it."""

    parse: Rule | list[Rule]


def test_convert_a_single_table() -> None:
    table = {"type": "regex", "pattern": LOG, "fields": {"time": "time"}, "match": "search"}
    config = msgspec.convert({"parse": table}, Config)
    assert config.parse == RegexRule(pattern=LOG, fields={"time": "time"}, match="search")


def test_convert_toml() -> None:
    text = """
[[parse]]
type = "regex"
pattern = '^(?P<time>\\S+) (?P<level>[A-Z]+) (?P<msg>.*)$'
fields = { time = "time" }
add = { source = "app" }

[[parse]]
type = "kv"
pair_sep = ","

[[parse]]
type = "split"
names = ["a", "b"]
sep = "|"

[[parse]]
type = "json"

[[parse]]
type = "none"
field = "line"
"""
    config = msgspec.convert(tomllib.loads(text), Config)
    assert isinstance(config.parse, list)
    assert [type(rule) for rule in config.parse] == [
        RegexRule,
        KvRule,
        SplitRule,
        JsonRule,
        NoneRule,
    ]
    assert validate_rules(config.parse) == []
    parse = make_parse(config.parse)
    assert parse("2024-01-01T00:00:00 INFO up") == {
        "time": datetime(2024, 1, 1),
        "level": "INFO",
        "msg": "up",
        "source": "app",
    }
    assert parse("a=1, b=2") == {"a": "1", "b": "2"}
    assert parse("x|y|z") == {"a": "x", "b": "y|z"}
    assert parse("?") == {"line": "?"}


def test_rules_round_trip_through_builtins() -> None:
    rules: list[Rule] = [
        RegexRule(pattern="(?P<a>.)", rest=None, time_format="%Y"),
        KvRule(pair_sep=";", kv_sep=":", fields={"n": "int"}),
        SplitRule(names=["a"], add={"x": 1.5}),
        NoneRule(),
        JsonRule(),
    ]
    assert msgspec.convert(msgspec.to_builtins(rules), list[Rule]) == rules


@pytest.mark.parametrize(
    ("parse", "error"),
    [
        (
            [{"type": "none"}, {"type": "regex", "pattern": 5}],
            "Expected `str`, got `int` - at `$.parse[1].pattern`",
        ),
        (
            [{"type": "regex"}],
            "Object missing required field `pattern` - at `$.parse[0]`",
        ),
        ({"type": "regx", "pattern": "x"}, "Invalid value 'regx' - at `$.parse.type`"),
        ({"pattern": "x"}, "Object missing required field `type` - at `$.parse`"),
        (
            [{"type": "kv"}, {"type": "split", "names": ["a"], "seperator": ","}],
            "Object contains unknown field `seperator` - at `$.parse[1]`",
        ),
        (
            {"type": "split", "names": "a b"},
            "Expected `array`, got `str` - at `$.parse.names`",
        ),
        (
            {"type": "none", "add": {"tags": ["a"]}},
            "Expected `bool | int | float | str`, got `array` - at `$.parse.add[...]`",
        ),
    ],
)
def test_convert_errors_name_the_path(parse: Any, error: str) -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert({"parse": parse}, Config)
    assert str(caught.value) == error


def test_field_types_and_match_modes_are_left_to_validation() -> None:
    # So that validate_rules reports them with every other problem, at their own path.
    config = msgspec.convert(
        {"parse": {"type": "regex", "pattern": "(?P<a>.)", "fields": {"a": "tim"}}}, Config
    )
    assert validate_rules(config.parse) == [
        '$.parse.fields.a: unknown type "tim", did you mean "time"? '
        '(expected "int", "float", "bool", "str" or "time")'
    ]


def test_the_json_schema_lists_the_types_and_modes() -> None:
    schema = msgspec.json.schema(Rule)
    regex = schema["$defs"]["RegexRule"]["properties"]
    assert regex["fields"]["additionalProperties"]["enum"] == list(FIELD_TYPES)
    assert regex["match"]["enum"] == ["match", "search", "fullmatch"]


# -- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (RegexRule(pattern="(?P<a>x"), "$.parse.pattern: bad regex: missing ), unterminated"),
        (RegexRule(pattern="x+"), "$.parse.pattern: no named group: name each field with"),
        (RegexRule(pattern="(?P<a>x)", rest="rest"), '$.parse.rest: no group named "rest"'),
        (
            RegexRule(pattern="(?P<a>x)(?P<r>y)", rest="r", fields={"r": "int"}),
            '$.parse.fields.r: "r" is the rest, not a field: it has no type',
        ),
        (
            RegexRule(pattern="(?P<a>x)", fields={"b": "int"}),
            '$.parse.fields.b: no group named "b" in the pattern',
        ),
        (
            RegexRule(pattern="(?P<a>x)", fields={"a b": "int"}),
            "$.parse.fields['a b']: no group named \"a b\" in the pattern",
        ),
        (
            RegexRule(pattern="(?P<a>x)", match="serch"),
            '$.parse.match: unknown mode "serch", did you mean "search"?',
        ),
        (RegexRule(pattern="(?P<a>x)", add={"a": 1}), "$.parse.add.a: also a field the rule"),
        (JsonRule(fields={"ts": "date"}), '$.parse.fields.ts: unknown type "date" (expected'),
        (
            JsonRule(fields={"t": "time"}, time_format="%Y-%q"),
            "$.parse.time_format: bad format '%Y-%q': 'q' is a bad directive",
        ),
        (
            JsonRule(time_format="%Y"),
            '$.parse.time_format: no field is typed "time"',
        ),
        (KvRule(pair_sep=""), "$.parse.pair_sep: '' is not one character"),
        (KvRule(pair_sep=", "), "$.parse.pair_sep: ', ' is not one character"),
        (KvRule(kv_sep=" "), "$.parse.kv_sep: ' ' is not one character"),
        (KvRule(kv_sep='"'), "$.parse.kv_sep: '\"' is not one character"),
        (KvRule(pair_sep="="), "$.parse.pair_sep: the same as kv_sep ('=')"),
        (SplitRule(names=[]), "$.parse.names: no names"),
        (SplitRule(names=["a", ""]), "$.parse.names[1]: an empty name"),
        (SplitRule(names=["a", "b", "a"]), '$.parse.names[2]: "a" given twice'),
        (SplitRule(names=["a"], sep=""), "$.parse.sep: empty"),
        (SplitRule(names=["a"], fields={"b": "int"}), '$.parse.fields.b: "b" is not one of'),
        (SplitRule(names=["a"], add={"a": "x"}), "$.parse.add.a: also a field"),
        (NoneRule(field=""), "$.parse.field: empty"),
        (NoneRule(add={"message": "x"}), "$.parse.add.message: also a field"),
        (RegexRule(pattern=5), "$.parse.pattern: Expected `str`, got `int`"),  # type: ignore[arg-type]
        (
            RegexRule(pattern=re.compile("x")),  # type: ignore[arg-type]
            "$.parse: Encoding objects of type re.Pattern is unsupported",
        ),
    ],
)
def test_each_problem(rule: Rule, problem: str) -> None:
    problems = validate_rules(rule)
    assert len(problems) == 1, problems
    assert problems[0].startswith(problem), problems
    with pytest.raises(ConfigError, match=re.escape(problem)):
        make_parse(rule)


def test_every_problem_at_once() -> None:
    rules: list[Any] = [
        RegexRule(pattern="(?P<a>"),
        RegexRule(pattern="(?P<a>x)", rest="rest", fields={"a": "nt"}),
        JsonRule(fields={"ts": "tim"}),
        NoneRule(),
        {"type": "kv"},
        KvRule(kv_sep=""),
    ]
    expected = [
        "$.parse[0].pattern: bad regex: missing ), unterminated subpattern at position 0",
        '$.parse[1].rest: no group named "rest" in the pattern',
        '$.parse[1].fields.a: unknown type "nt", did you mean "int"? '
        '(expected "int", "float", "bool", "str" or "time")',
        '$.parse[2].fields.ts: unknown type "tim", did you mean "time"? '
        '(expected "int", "float", "bool", "str" or "time")',
        "$.parse[3]: a none rule matches every line: the rules after it are never tried",
        "$.parse[4]: expected a parse rule (RegexRule, JsonRule, KvRule, SplitRule or "
        "NoneRule), got dict: convert a [parse] table with msgspec.convert(table, Rule)",
        "$.parse[5].kv_sep: '' is not one character other than whitespace, a quote or a backslash",
    ]
    assert validate_rules(rules) == expected
    with pytest.raises(ConfigError) as caught:
        make_parse(rules)
    assert str(caught.value) == "invalid parse rules (7):" + "".join(f"\n  {p}" for p in expected)
    assert isinstance(caught.value, ValueError)


def test_validation_paths_follow_the_given_path() -> None:
    assert validate_rules([KvRule(kv_sep="")], path="$.pipelines.web.parse") == [
        "$.pipelines.web.parse[0].kv_sep: '' is not one character other than whitespace, "
        "a quote or a backslash"
    ]


def test_no_rules_is_a_problem() -> None:
    assert validate_rules([]) == [
        '$.parse: no rules (give at least one; type "none" keeps lines whole)'
    ]
    with pytest.raises(ConfigError, match="no rules"):
        make_parse([])


@pytest.mark.parametrize("rules", ["regex", 5, None])
def test_rules_that_are_not_rules(rules: Any) -> None:
    assert validate_rules(rules)[0].startswith("$.parse: expected a parse rule")


# -- properties -------------------------------------------------------------------------


def _no_space(c: str) -> bool:
    return not c.isspace()


KV_SEPS = st.sampled_from([(None, "="), (None, ":"), (",", "="), (";", ":"), ("&", "=")])
ANY_TEXT = st.text(st.characters(codec="utf-8"))


@st.composite
def kv_lines(draw: st.DrawFn) -> tuple[str | None, str, dict[str, str], str]:
    """Random pairs, and a line that renders them as a writer would: bare when the
    value allows it and the draw says so, else in double or single quotes."""
    pair_sep, kv_sep = draw(KV_SEPS)
    forbidden = "\"'" + kv_sep + (pair_sep or "")
    keys = st.text(
        st.characters(codec="utf-8", exclude_characters=forbidden).filter(_no_space),
        min_size=1,
    )
    pairs = draw(st.dictionaries(keys, ANY_TEXT, min_size=1, max_size=6))
    rendered = []
    for key, value in pairs.items():
        if pair_sep is None:
            bare_ok = not any(c.isspace() for c in value)
        else:
            bare_ok = pair_sep not in value and value == value.strip()
        bare_ok = bare_ok and not value.startswith(("'", '"'))
        style = draw(st.sampled_from(["bare", '"', "'"] if bare_ok else ['"', "'"]))
        if style != "bare":
            value = value.replace("\\", "\\\\").replace(style, "\\" + style)
            value = f"{style}{value}{style}"
        rendered.append(f"{key}{kv_sep}{value}")
    space = st.sampled_from(["", " ", "  ", "\t"])
    if pair_sep is None:
        gaps = [draw(space.filter(bool)) for _ in rendered[1:]]
    else:
        gaps = [draw(space) + pair_sep + draw(space) for _ in rendered[1:]]
    line = draw(space) + rendered[0]
    for gap, pair in zip(gaps, rendered[1:], strict=True):
        line += gap + pair
    return pair_sep, kv_sep, pairs, line + draw(space)


@given(kv_lines())
def test_kv_round_trip(case: tuple[str | None, str, dict[str, str], str]) -> None:
    pair_sep, kv_sep, pairs, line = case
    assert parsed(KvRule(pair_sep=pair_sep, kv_sep=kv_sep), line) == pairs


def _kv_by_regex(pair_sep: str | None, kv_sep: str, line: str) -> dict[str, str] | None:
    """The kv rule's reading of ``line`` by its regular expressions alone."""
    whole, pair = kv_grammar(pair_sep, kv_sep)
    if whole.fullmatch(line) is None:
        return None
    unescape = re.compile(r"""\\([\\"'])""")
    return {k: unescape.sub(r"\1", d or s) if d or s else b for k, d, s, b in pair.findall(line)}


@given(KV_SEPS, st.text("ab=:;,&'\"\\ \t\x1c\xa0"), st.booleans())
def test_kv_both_readers_agree_with_the_grammar(
    seps: tuple[str | None, str], line: str, unquote: bool
) -> None:
    # Lines without quotes take the plain reader (str methods), lines with quotes the
    # one-pass pattern; the whole-line grammar is the reference for both.
    pair_sep, kv_sep = seps
    if unquote:
        line = line.replace('"', "").replace("'", "")
    parse = make_parse(KvRule(pair_sep=pair_sep, kv_sep=kv_sep))
    try:
        got: dict[str, str] | None = parse(line)
    except Miss:
        got = None
    assert got == _kv_by_regex(pair_sep, kv_sep, line)


@st.composite
def split_lines(draw: st.DrawFn) -> tuple[str | None, dict[str, str], str]:
    names = draw(
        st.lists(st.from_regex(r"[a-z]{1,5}", fullmatch=True), min_size=1, max_size=5, unique=True)
    )
    sep = draw(st.sampled_from([None, ",", "|", "\t", ";"]))
    if sep is None:
        word = st.text(st.characters(codec="utf-8").filter(_no_space), min_size=1)
        last = st.text(st.characters(codec="utf-8"), min_size=1).filter(
            lambda t: not t[0].isspace()
        )
        values = [draw(word) for _ in names[:-1]] + [draw(last)]
        gap = st.sampled_from([" ", "  ", "\t", " \t "])
        line = draw(st.sampled_from(["", " ", "\t"])) + values[0]
        for value in values[1:]:
            line += draw(gap) + value
    else:
        part = st.text(st.characters(codec="utf-8", exclude_characters=sep))
        values = [draw(part) for _ in names[:-1]] + [draw(ANY_TEXT)]
        line = sep.join(values)
    return sep, dict(zip(names, values, strict=True)), line


@given(split_lines())
def test_split_round_trip(case: tuple[str | None, dict[str, str], str]) -> None:
    sep, fields, line = case
    assert parsed(SplitRule(names=list(fields), sep=sep), line) == fields


RANDOM_TEXT = st.one_of(
    ANY_TEXT,
    st.text("ab01 =:,|{}[]\"'\\\t-.TZ"),
    st.builds(
        lambda k, v: f'{{"{k}": {v}}}', st.sampled_from("abn"), st.sampled_from(["1", '"x"', "[]"])
    ),
)
UNTYPED: list[Rule] = [
    RegexRule(pattern=r"(?P<a>\w+)=(?P<b>\d+)(?P<rest>.*)", rest="rest", match="search"),
    RegexRule(pattern=r"(?P<a>.)(?P<b>.)?", match="fullmatch"),
    JsonRule(),
    KvRule(),
    KvRule(pair_sep=",", kv_sep=":"),
    SplitRule(names=["a", "b", "c"]),
    SplitRule(names=["a", "b"], sep=","),
    NoneRule(),
]
TYPED: list[Rule] = [
    RegexRule(pattern=r"(?P<n>\S*) ?(?P<t>.*)", fields={"n": "int", "t": "time"}),
    JsonRule(fields={"a": "int", "b": "bool", "n": "float"}),
    KvRule(fields={"a": "float", "b": "time"}, time_format="%H:%M"),
    SplitRule(names=["a", "b"], fields={"a": "bool", "b": "int"}),
]


def outcome(rules: Rule | Sequence[Rule], text: str) -> Any:
    """What the parse of ``rules`` makes of ``text``: its payload, or the Miss it raised."""
    try:
        return parsed(rules, text)
    except Miss as miss:
        return miss


@given(RANDOM_TEXT)
def test_random_text_makes_a_payload_or_a_miss(text: str) -> None:
    for rules in [*UNTYPED, *TYPED, UNTYPED[:-1], TYPED]:
        got = outcome(rules, text)
        if isinstance(got, Miss):
            assert got.reason.startswith("no rule matched: ")
            continue
        if isinstance(got, Residue):
            assert isinstance(got.rest, str)
            got = got.payload
        assert isinstance(got, dict)


# -- through a pipeline -----------------------------------------------------------------


async def test_a_pipeline_with_parse_rules(autojump_clock: trio.testing.MockClock) -> None:
    lines: list[Any] = [
        "2024-05-01T10:00:00 ERROR disk full",
        'level=INFO msg="all good" code=200',
        "2024-05-01T10:00:01 WARN slow; retry=3",
        "level=INFO code=abc",
        "garbage",
        b"not text",
    ]
    rules: list[Rule] = [
        RegexRule(
            pattern=r"(?P<time>\S+) (?P<level>[A-Z]+) (?P<msg>[^;]*)(?:; (?P<more>.*))?",
            fields={"time": "time"},
            rest="more",
        ),
        KvRule(fields={"code": "int"}),
    ]
    everything, misses, residues = CollectSink("all"), CollectSink("m"), CollectSink("r")
    errors = CollectSink("e")
    report = await Pipeline(
        lines,
        parse=make_parse(rules),
        routes=[Route("all", everything)],
        infra=Infra(miss=misses, residue=residues, error=errors),
        batch_size=4,
    ).run()
    report.check()
    assert report.ok
    assert [(r.id, r.payload) for r in everything.records] == [
        (0, {"time": datetime(2024, 5, 1, 10), "level": "ERROR", "msg": "disk full"}),
        (1, {"level": "INFO", "msg": "all good", "code": 200}),
        (2, {"time": datetime(2024, 5, 1, 10, 0, 1), "level": "WARN", "msg": "slow"}),
    ]
    assert [(r.id, r.rest) for r in residues.records] == [(2, "retry=3")]
    assert [r.raw for r in misses.records] == ["level=INFO code=abc", "garbage"]
    assert [r.id for r in errors.records] == [5]
    assert isinstance(errors.records[0].error, TypeError)
    assert dict(report.delivered) == {"all": 3, "m": 2, "r": 1, "e": 1}
