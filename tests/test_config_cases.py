"""``trio-sink test CONFIG CASES``: a config's parse and route conditions applied to the
lines of a cases file as the pipeline applies them, compared with what each case expects;
the cases file checked as a config is (every error at once, by its path); and the
command, run as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_docs_blocks import fenced_blocks

from trio_sink import Infra, Miss, Pipeline, Residue, Route
from trio_sink._conditions import compile_condition
from trio_sink._config import ConfigFileError, LoadedConfig, load_config, load_config_text
from trio_sink._config_cases import (
    Case,
    CasesFileError,
    case_lines,
    load_cases,
    load_cases_text,
    load_config_for_test,
    outcome_of,
    run_cases,
    same,
    where_lines_go,
)
from trio_sink.sinks import CollectSink

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "examples" / "seed.toml"
SEED_CASES = ROOT / "examples" / "seed_cases.toml"
CONFIG_DOCS = ROOT / "docs" / "config.md"

# A config whose source file and sink folders do not exist: a test needs none of them.
CONFIG = """
[source]
type = "file"
path = "/nonexistent/app.log"

[[parse]]
type = "regex"
pattern = '^(?P<level>[A-Z]+) (?P<msg>[^|]*)(?:\\|(?P<rest>.*))?$'
rest = "rest"

[[parse]]
type = "kv"
fields = { code = "int", ok = "bool" }

[[routes]]
name = "errors"
when = 'level == "ERROR"'
sinks = ["errors"]

[[routes]]
name = "coded"
when = "code >= 500"
sinks = ["coded"]

[sinks.errors]
type = "jsonl"
path = "/nonexistent/out/errors.jsonl"

[sinks.coded]
type = "null"

[sinks.rest]
type = "null"

[infra]
residue = "rest"
"""


@pytest.fixture
def config(tmp_path: Path) -> LoadedConfig:
    path = tmp_path / "pipeline.toml"
    path.write_text(CONFIG)
    return load_config_for_test(path)


def cases(text: str, config: LoadedConfig) -> list[Case]:
    return load_cases_text(text, [r.name for r in config.config.routes])


def one_case(config: LoadedConfig, **keys: Any) -> list[str]:
    """The problems of the one case ``keys`` makes (none: it passed)."""
    case = Case(name="c", **keys)
    (result,) = run_cases(config, [case])
    return [p for each in result.inputs for p in each.problems]


# -- what happens to a line -------------------------------------------------------------


def test_each_line_goes_where_the_pipeline_sends_it(config: LoadedConfig) -> None:
    expected = {
        "ERROR disk full": (("errors",), ()),
        "INFO all well": ((), ("default",)),
        "ERROR disk full|at line 3": (("errors",), ("residue",)),
        "code=503 ok=yes": (("coded",), ()),
        "code=200": ((), ("default",)),
        "code=abc": ((), ("miss",)),
        "    at api.get(line 12)": ((), ("miss",)),
    }
    test = where_lines_go(config)
    for line, (routes, groups) in expected.items():
        outcome = test(line)
        assert (outcome.routes, outcome.groups) == (routes, groups), line
    outcome = test("ERROR disk full|at line 3")
    assert outcome.payload == {"level": "ERROR", "msg": "disk full"}
    assert outcome.rest == "at line 3"
    assert test("code=abc").reason == (
        "no rule matched: regex #0, kv #1 (field 'code': 'abc' is not an int)"
    )


def _parse(line: str) -> Any:
    if line.startswith("boom"):
        raise ValueError(f"cannot parse {line!r}")
    if line.startswith("at "):
        raise Miss("a stack trace")
    level, _, msg = line.partition(" ")
    payload = {"level": level, "msg": msg}
    if "|" in msg:
        return Residue({"level": level, "msg": msg.split("|")[0]}, msg.split("|", 1)[1])
    return payload


def _fussy(payload: Any) -> bool:
    if "crash" in payload["msg"]:
        raise RuntimeError("a when that raises")
    return "slow" in payload["msg"]


LINES = [
    "ERROR disk full",
    "INFO all well",
    "ERROR crash here",
    "INFO crash there",
    "INFO slow request",
    "ERROR slow|rest of it",
    "at api.get",
    "boom",
    "WARN x|y",
]


async def test_the_outcome_is_what_a_real_pipeline_does() -> None:
    """Each line's routes and groups, as :func:`outcome_of` tells them, are where a
    real pipeline delivers its record: parse errors, misses, residues, a ``when`` that
    raises, and records no route accepts."""
    routes: list[tuple[str, Callable[[Any], Any] | None]] = [
        ("errors", compile_condition('level == "ERROR"')),
        ("slow", _fussy),
    ]
    sinks = {name: CollectSink(name) for name, _ in routes}
    groups = {g: CollectSink(g) for g in ("default", "miss", "residue", "error")}
    report = await Pipeline(
        LINES,
        parse=_parse,
        routes=[Route(name, sinks[name], when=when) for name, when in routes],
        infra=Infra(**groups),
    ).run()
    assert report.received == len(LINES)
    assert not report.undelivered
    went: dict[int, set[str]] = {i: set() for i in range(len(LINES))}
    for name, sink in {**sinks, **groups}.items():
        for record in sink.records:
            went[record.id].add(name)
    for i, line in enumerate(LINES):
        outcome = outcome_of(_parse, routes, line)
        assert went[i] == {*outcome.routes, *outcome.groups}, line
    crash = outcome_of(_parse, routes, "ERROR crash here")
    assert crash.routes == ("errors",)
    assert crash.groups == ("error",)
    assert crash.reason == "the when of route 'slow' raised RuntimeError: a when that raises"
    boom = outcome_of(_parse, routes, "boom")
    assert (boom.parsed, boom.groups) == (False, ("error",))
    assert boom.reason == "ValueError: cannot parse 'boom'"
    assert outcome_of(_parse, routes, "INFO crash there").groups == ("default", "error")


def test_without_parse_rules_the_payload_is_the_line(tmp_path: Path) -> None:
    text = CONFIG.split("[[parse]]")[0] + "[[routes]]" + CONFIG.split("[[routes]]", 1)[1]
    (tmp_path / "p.toml").write_text(text.replace('when = "code >= 500"\n', ""))
    loaded = load_config_for_test(tmp_path / "p.toml")
    assert loaded.rules is None
    (result,) = run_cases(loaded, [Case(name="c", input="ERROR x", routes=["coded"])])
    assert result.passed
    assert result.inputs[0].outcome.payload == "ERROR x"


# -- comparing with a case --------------------------------------------------------------


def test_routes_are_compared_as_a_set_and_all_of_them(config: LoadedConfig) -> None:
    assert one_case(config, input="ERROR code=503", routes=["errors"]) == []
    assert one_case(config, input="code=503 ok=1", routes=["coded"]) == []
    assert one_case(config, input="ERROR disk full", routes=["errors", "coded"]) == [
        'expected routes ["errors", "coded"], got ["errors"]'
    ]


def test_a_case_lists_every_group_and_no_group_means_none(config: LoadedConfig) -> None:
    line = "ERROR disk full|at line 3"
    assert one_case(config, input=line, routes=["errors"]) == [
        'expected no infra group, got group "residue"'
    ]
    assert one_case(config, input=line, routes=["errors"], group="residue") == []
    assert one_case(config, input="INFO fine", group="default") == []
    assert one_case(config, input="INFO fine", group=["default", "error"]) == [
        'expected groups ["default", "error"], got group "default"'
    ]
    assert one_case(config, input="at x", routes=["errors"]) == [
        'expected routes ["errors"], got []',
        'expected no infra group, got group "miss"',
    ]


def test_payload_fields_are_checked_by_value_and_type(config: LoadedConfig) -> None:
    ok = one_case(config, input="code=503 ok=on", routes=["coded"], payload={"code": 503.0})
    assert ok == []
    problems = one_case(
        config,
        input="code=503 ok=on",
        routes=["coded"],
        payload={"code": "503", "ok": 1, "level": "ERROR"},
    )
    assert problems == [
        'expected payload.code = "503", got 503',
        "expected payload.ok = 1, got true",
        'expected payload.level = "ERROR", got no such field',
    ]
    assert one_case(config, input="at x", group="miss", payload={"level": "INFO"}) == [
        "expected a payload, got none (the line was not parsed)"
    ]


def test_same_tells_bools_from_numbers_and_compares_tables_whole() -> None:
    assert same(3, 3.0)
    assert not same(1, True)
    assert not same(True, 1)
    assert same(False, False)
    assert not same("3", 3)
    assert same({"a": [1, "x"]}, {"a": [1.0, "x"]})
    assert not same({"a": 1, "b": 2}, {"a": 1})
    assert not same((1, 2), [1, 2, 3])
    moment = datetime(2026, 12, 6, 7, tzinfo=UTC)
    assert same(moment, tomllib.loads("t = 2026-12-06T07:00:00Z")["t"])
    assert not same(moment.date(), moment)


def test_every_input_of_a_case_must_meet_it(config: LoadedConfig) -> None:
    case = Case(name="errors", inputs=["ERROR a", "INFO b", "ERROR c", "WARN d"], routes=["errors"])
    (result,) = run_cases(config, [case])
    assert not result.passed
    assert [bool(r.problems) for r in result.inputs] == [False, True, False, True]
    lines = case_lines([result])
    assert lines[0] == (
        'FAIL errors (input 2 of 4): expected routes ["errors"], got []; '
        'expected no infra group, got group "default"'
    )
    assert lines[1:3] == ['    input:   "INFO b"', '    payload: {"level":"INFO","msg":"b"}']
    assert lines[3].startswith("FAIL errors (input 4 of 4): ")
    assert lines[-1] == "0 passed, 1 failed"


def test_the_report_says_ok_or_why_not_and_counts() -> None:
    loaded = load_config_for_test(SEED)
    suite = load_cases(SEED_CASES, [r.name for r in loaded.config.routes])
    failing = Case(name="trace", input="    at x.y(line 1)", routes=["all"])
    lines = case_lines(run_cases(loaded, [*suite, failing]))
    assert lines[: len(suite)] == [f"ok  {case.name}" for case in suite]
    assert lines[len(suite) :] == [
        'FAIL trace: expected routes ["all"], got []; expected no infra group, got group "miss"',
        '    input:   "    at x.y(line 1)"',
        "    miss:    no rule matched: regex #0",
        f"{len(suite)} passed, 1 failed",
    ]


def test_the_seed_cases_pass() -> None:
    loaded = load_config_for_test(SEED)
    suite = load_cases(SEED_CASES, [r.name for r in loaded.config.routes])
    assert len(suite) >= 5
    results = run_cases(loaded, suite)
    assert all(r.passed for r in results), case_lines(results)
    # Between them they reach every route of the seed config, and the miss group.
    reached = {x for r in results for i in r.inputs for x in (*i.outcome.routes, *i.outcome.groups)}
    assert reached == {"errors", "requests", "all", "miss"}


# -- the cases file ---------------------------------------------------------------------


def test_every_problem_of_a_cases_file_is_reported_at_once(config: LoadedConfig) -> None:
    text = """
extra = 1

[[cases]]
name = "a"
input = "x"
routes = ["erors", "coded", "coded"]
group = "mis"
colour = "red"

[[cases]]
name = "b"
input = "x"
inputs = ["y"]
group = ["default", "nothing"]

[[cases]]
name = "a"
inputs = []
routes = []

[[cases]]
name = "c"
input = 3

[[cases]]
name = "d"
inputs = ["fine", "two\\nlines"]
group = "default"

[[cases]]
input = "x"
group = "default"
"""
    with pytest.raises(CasesFileError) as caught:
        cases(text, config)
    assert caught.value.errors == [
        "$.extra: unknown key",
        "$.cases[0].colour: unknown key",
        '$.cases[0].routes[0]: unknown route "erors", did you mean "errors"?',
        '$.cases[0].routes[2]: route "coded" is named twice',
        '$.cases[0].group: unknown group "mis", did you mean "miss"?',
        "$.cases[1]: give input (one line) or inputs (several), not both",
        '$.cases[1].group[1]: unknown group "nothing" (one of default, miss, residue, error)',
        '$.cases[2].name: case "a" is named twice',
        "$.cases[2].inputs: no lines (give one or more)",
        "$.cases[2]: give routes, group or both: every record goes somewhere"
        ' (no route takes it: group = "default")',
        "$.cases[3].input: expected `str | null`, got `int`",
        "$.cases[4].inputs[1]: a line holds no line break (give several lines as inputs)",
        "$.cases[5]: object missing required field `name`",
    ]
    assert str(caught.value).startswith("<cases>: 13 errors:\n  $.extra: unknown key\n")


def test_a_cases_file_that_is_not_one(tmp_path: Path, config: LoadedConfig) -> None:
    for text, error in [
        ("[[cases]\n", "not valid TOML: "),
        ("", "$.cases: missing (a cases file needs [[cases]] tables)"),
        ("cases = 3", "$.cases: expected one [[cases]] table or more"),
        ("case = []", '$.case: unknown key, did you mean "cases"?'),
    ]:
        with pytest.raises(CasesFileError) as caught:
            cases(text, config)
        assert any(e.startswith(error) for e in caught.value.errors), caught.value.errors
    with pytest.raises(CasesFileError) as caught:
        load_cases(tmp_path / "nope.toml", [])
    assert caught.value.path == str(tmp_path / "nope.toml")
    assert caught.value.errors[0].startswith("cannot read the file: ")


def test_a_config_is_checked_as_load_config_checks_it_but_for_its_paths(tmp_path: Path) -> None:
    # The paths of CONFIG do not exist: load_config refuses it, a test does not.
    with pytest.raises(ConfigFileError) as caught:
        load_config_text(CONFIG, base=tmp_path)
    assert all("nonexistent" in e for e in caught.value.errors)
    bad = CONFIG.replace('level == "ERROR"', 'level = "ERROR"').replace(
        'sinks = ["coded"]', 'sinks = ["coder"]'
    )
    (tmp_path / "bad.toml").write_text(bad)
    with pytest.raises(ConfigFileError) as caught:
        load_config_for_test(tmp_path / "bad.toml")
    with pytest.raises(ConfigFileError) as full:
        load_config_text(bad, base=tmp_path)
    assert caught.value.errors == [e for e in full.value.errors if "nonexistent" not in e]
    assert len(caught.value.errors) == 3  # the when, the unknown sink, the sink unused
    # A config whose paths are there loads as load_config loads it.
    assert load_config_for_test(SEED) == load_config(SEED)
    (tmp_path / "not.toml").write_text("[source\n")
    with pytest.raises(ConfigFileError, match="not valid TOML"):
        load_config_for_test(tmp_path / "not.toml")


# -- the command ------------------------------------------------------------------------


def command(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_sink._cli", "test", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def console(marker: str) -> tuple[str, str]:
    """The command and the output of the console block of docs/config.md that runs
    ``marker``."""
    (block,) = [b for b in fenced_blocks(CONFIG_DOCS) if b.lang == "console" and marker in b.code]
    first, _, out = block.code.partition("\n")
    return first, out


def test_the_command_passes_the_seed_cases_as_the_docs_show() -> None:
    done = command("examples/seed.toml", "examples/seed_cases.toml")
    assert done.returncode == 0, done.stdout + done.stderr
    n = len(tomllib.loads(SEED_CASES.read_text())["cases"])
    assert done.stdout.splitlines()[-1] == f"{n} passed, 0 failed"
    first, out = console("seed_cases.toml")
    assert first == "$ trio-sink test examples/seed.toml examples/seed_cases.toml"
    assert done.stdout == out
    assert done.stderr == ""


def test_a_failing_case_exits_1_and_says_why_as_the_docs_show(tmp_path: Path) -> None:
    (tmp_path / "cases.toml").write_text(
        """
[[cases]]
name = "an error line goes to errors and all"
input = "2026-12-06T07:00:00.000Z ERROR api: request failed path=/x status=500 ms=3"
routes = ["errors", "all"]
payload = { level = "ERROR", service = "api" }
"""
    )
    done = command(str(SEED), "cases.toml", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert 'got ["errors", "requests", "all"]' in done.stdout
    first, out = console("FAIL")
    assert first == "$ trio-sink test examples/seed.toml cases.toml"
    assert done.stdout == out


def test_a_bad_cases_file_exits_2_naming_it_as_the_docs_show(tmp_path: Path) -> None:
    (tmp_path / "broken_cases.toml").write_text(
        """
[[cases]]
name = "a"
input = "2026-12-06T07:00:00.000Z ERROR api: request failed"
routes = ["erors"]
colour = "red"

[[cases]]
name = "b"
input = "    at x"
group = "mis"
"""
    )
    done = command(str(SEED), "broken_cases.toml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    first, out = console("broken_cases.toml")
    assert first == "$ trio-sink test examples/seed.toml broken_cases.toml"
    assert done.stderr == out


def test_a_bad_config_or_a_missing_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(SEED.read_text().replace('sinks = ["errors"]', 'sinks = ["erors"]'))
    done = command(str(bad), str(SEED_CASES))
    assert done.returncode == 2
    assert str(bad) in done.stderr
    assert '$.routes[0].sinks[0]: unknown sink "erors", did you mean "errors"?' in done.stderr
    done = command(str(SEED), str(tmp_path / "nope.toml"))
    assert done.returncode == 2
    assert f"{tmp_path / 'nope.toml'}: 1 error:" in done.stderr
    assert command(str(SEED)).returncode == 2  # usage: the cases file is missing


def test_the_cases_the_docs_show_are_seed_cases_that_pass() -> None:
    (block,) = [b for b in fenced_blocks(CONFIG_DOCS) if b.lang == "toml" and "[[cases]]" in b.code]
    loaded = load_config_for_test(SEED)
    shown = load_cases_text(block.code, [r.name for r in loaded.config.routes])
    assert all(r.passed for r in run_cases(loaded, shown))
    seed = load_cases(SEED_CASES, [r.name for r in loaded.config.routes])
    assert all(case in seed for case in shown)  # an excerpt of examples/seed_cases.toml
