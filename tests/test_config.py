"""Config files: every error at once, each named by its path; a good file builds a
pipeline that runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trio_sink._config import ConfigFileError, load_config, load_config_text
from trio_sink._config_build import build_pipeline

GOOD = """
[pipeline]
batch_size = 16

[source]
type = "file"
path = "in.log"

[parse]
type = "regex"
pattern = '^(?P<level>[A-Z]+) (?P<msg>.*)$'

[[routes]]
name = "errors"
when = 'level == "ERROR"'
sinks = ["errors"]

[[routes]]
name = "all"
sinks = ["all"]

[sinks.errors]
type = "jsonl"
path = "out/errors.jsonl"

[sinks.all]
type = "jsonl"
path = "out/all.jsonl"

[sinks.misses]
type = "jsonl"
path = "out/miss.jsonl"

[infra]
miss = "misses"
"""


def errors_of(text: str, base: Path) -> list[str]:
    with pytest.raises(ConfigFileError) as caught:
        load_config_text(text, base=base)
    return caught.value.errors


def test_a_good_file_loads_and_its_pipeline_runs(tmp_path: Path) -> None:
    import trio

    (tmp_path / "in.log").write_text("ERROR disk full\nINFO ok\nnot a log line\n")
    config = tmp_path / "pipeline.toml"
    config.write_text(GOOD)
    built = build_pipeline(load_config(config))
    report = trio.run(built.pipeline.run)
    assert report.ok
    out = tmp_path / "out"
    errors = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["payload"] for e in errors] == [{"level": "ERROR", "msg": "disk full"}]
    assert len((out / "all.jsonl").read_text().splitlines()) == 2
    assert [json.loads(x)["raw"] for x in (out / "miss.jsonl").read_text().splitlines()] == [
        "not a log line"
    ]


def test_every_error_is_reported_at_once_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "in.log").write_text("")
    text = (
        GOOD.replace("batch_size = 16", 'batch_size = "big"\nbatch_timeut = 1')
        .replace('sinks = ["errors"]', 'sinks = ["erors"]')
        .replace('path = "out/all.jsonl"', "path = 3")
        .replace("level == ", "level === ")
        + '\n[sources]\ntype = "x"\n'
    )
    errors = errors_of(text, tmp_path)
    assert any(e.startswith("$.sources: unknown table") and '"source"' in e for e in errors)
    assert "$.pipeline.batch_size: expected `int`, got `str`" in errors
    assert any(e.startswith("$.sinks.all.path: expected `str`, got `int`") for e in errors)
    assert len(errors) >= 4


def test_names_that_refer_to_nothing_say_what_was_meant(tmp_path: Path) -> None:
    (tmp_path / "in.log").write_text("")
    text = GOOD.replace('sinks = ["errors"]', 'sinks = ["erors"]').replace(
        'miss = "misses"', 'miss = "mises"'
    )
    errors = errors_of(text, tmp_path)
    assert '$.routes[0].sinks[0]: unknown sink "erors", did you mean "errors"?' in errors
    assert '$.infra.miss: unknown sink "mises", did you mean "misses"?' in errors
    # Each defined sink that nothing sends to is named too.
    assert '$.sinks.errors: no route or infra group sends to sink "errors"' in errors


def test_a_bad_condition_and_a_bad_pattern_are_errors_before_anything_runs(
    tmp_path: Path,
) -> None:
    (tmp_path / "in.log").write_text("")
    text = GOOD.replace("level == ", "level === ").replace("(?P<msg>.*)", "(?P<msg>.*")
    errors = errors_of(text, tmp_path)
    assert any(e.startswith("$.routes[0].when:") for e in errors)
    assert any(e.startswith("$.parse.pattern:") or e.startswith("$.parse:") for e in errors)


def test_paths_are_checked(tmp_path: Path) -> None:
    errors = errors_of(GOOD, tmp_path)  # no in.log
    assert any(e.startswith("$.source.path: no such file") for e in errors)
    (tmp_path / "in.log").write_text("")
    (tmp_path / "out").write_text("a file where a folder should be")
    errors = errors_of(GOOD, tmp_path)
    assert any(e.startswith("$.sinks.errors.path:") and "not a folder" in e for e in errors)


def test_not_toml_and_missing_tables(tmp_path: Path) -> None:
    assert errors_of("[source\n", tmp_path)[0].startswith("not valid TOML")
    errors = errors_of("[pipeline]\nbatch_size = 3\n", tmp_path)
    assert [e.split(":")[0] for e in errors] == ["$.source", "$.routes", "$.sinks"]


def test_a_sink_serves_one_route_or_group(tmp_path: Path) -> None:
    (tmp_path / "in.log").write_text("")
    errors = errors_of(GOOD.replace('miss = "misses"', 'miss = "all"'), tmp_path)
    assert '$.infra.miss: sink "all" is also a route\'s (a sink serves one route or group)' in (
        errors
    )


def test_the_example_of_the_config_docs_is_valid(tmp_path: Path) -> None:
    from test_docs_blocks import fenced_blocks

    page = Path(__file__).resolve().parent.parent / "docs" / "config.md"
    example = next(b for b in fenced_blocks(page) if b.lang == "toml")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "app.log").write_text("")
    loaded = load_config_text(example.code, base=tmp_path)
    assert [r.name for r in loaded.config.routes] == ["errors", "all"]
    build_pipeline(loaded)  # every setting is one the pipeline takes


def test_every_source_and_sink_type_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = (tmp_path / "stdin").open("w+")
    monkeypatch.setattr("sys.stdin", stdin)  # pytest's own has no file descriptor
    text = """
[source]
type = "{source}"
{source_keys}

[[routes]]
name = "all"
sinks = ["a"]

[sinks.a]
type = "{sink}"
{sink_keys}
"""
    sources = {
        "file": 'path = "in.log"\ncheckpoint = "state/offset"\nfollow = true',
        "stdin": "",
        "tcp": "port = 0",
        "syslog": 'port = 0\nprotocol = "tcp"',
        "sample": "count = 5\nseed = 3",
    }
    sinks = {
        "jsonl": 'path = "out.jsonl"\nrotate_bytes = 1000\nkeep = 2\ngzip = true',
        "stdout": "",
        "http": 'url = "http://127.0.0.1:9/x"\nformat = "json"\nheaders = {a = "b"}',
        "tcp": "port = 9",
        "null": "delay_per_batch = 0.5\nbreaker = {failures = 2}\nretry = false",
    }
    (tmp_path / "in.log").write_text("")
    for source, source_keys in sources.items():
        for sink, sink_keys in sinks.items():
            config = text.format(
                source=source, source_keys=source_keys, sink=sink, sink_keys=sink_keys
            )
            build_pipeline(load_config_text(config, base=tmp_path))
    stdin.close()


def test_rotation_settings_need_rotate_bytes(tmp_path: Path) -> None:
    (tmp_path / "in.log").write_text("")
    text = GOOD.replace('path = "out/all.jsonl"', 'path = "out/all.jsonl"\ngzip = true\nkeep = 3')
    errors = errors_of(text, tmp_path)
    assert errors == [
        "$.sinks.all.keep: only with rotate_bytes",
        "$.sinks.all.gzip: only with rotate_bytes",
    ]
