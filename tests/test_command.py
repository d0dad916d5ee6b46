"""The trio-sink command, run as a real process: validate, run (batch mode and a daemon
stopped by a real signal), the report, and the exit statuses."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def command(
    *args: str, cwd: Path | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_sink._cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    """The shipped seed config and sample log, in a fresh folder."""
    for name in ("seed.toml", "sample.log"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    return tmp_path / "seed.toml"


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_the_seed_config_runs_every_line_to_its_sinks(seed: Path) -> None:
    done = command("run", str(seed), "--report", str(seed.parent / "report.json"))
    assert done.returncode == 0, done.stderr
    out = seed.parent / "out"
    everything = lines(out / "all.jsonl")
    misses = lines(out / "miss.jsonl")
    sample = (seed.parent / "sample.log").read_text().splitlines()
    # Every line is in the archive (the slow sink) or, when no rule matched it, in miss.
    assert sorted(r["id"] for r in everything + misses) == list(range(len(sample)))  # type: ignore[type-var]
    assert all(str(r["raw"]).startswith("    at ") for r in misses)
    errors = lines(out / "errors.jsonl")
    assert errors
    for r in errors:
        payload = r["payload"]
        assert isinstance(payload, dict)
        assert payload["level"] == "ERROR" or "timeout" in str(payload["msg"]).lower()
    report = json.loads((seed.parent / "report.json").read_text())
    assert report["exit_status"] == 0
    assert report["received"] == report["acknowledged"] == len(sample)
    assert report["undelivered"] == []
    assert "exit status 0" in done.stderr
    assert "archive" in done.stderr


def test_validate_says_ok_or_lists_every_error_and_exits_2(seed: Path) -> None:
    done = command("validate", str(seed))
    assert done.returncode == 0
    assert "ok: a file source, 1 parse rule, 3 routes, 4 sinks" in done.stdout
    text = seed.read_text()
    bad = seed.parent / "bad.toml"
    bad.write_text(
        text.replace('sinks = ["errors"]', 'sinks = ["erors"]')
        .replace("batch_size = 128", 'batch_size = "many"')
        .replace("(?P<msg>.*)$", "(?P<msg>.*$")
        .replace('level == "ERROR"', 'level = "ERROR"')
    )
    done = command("validate", str(bad))
    assert done.returncode == 2
    err = done.stderr
    assert "4 errors" in err or "5 errors" in err
    assert '$.routes[0].sinks[0]: unknown sink "erors", did you mean "errors"?' in err
    assert "$.pipeline.batch_size: expected `int`, got `str`" in err
    assert "$.routes[0].when:" in err
    assert "$.parse.pattern:" in err
    # run refuses it the same way, before anything starts.
    done = command("run", str(bad))
    assert done.returncode == 2
    assert not (seed.parent / "out").exists()


def test_a_missing_file_and_bad_usage_exit_2(tmp_path: Path) -> None:
    assert command("validate", str(tmp_path / "nope.toml")).returncode == 2
    assert command("frobnicate").returncode == 2


def test_schema_is_the_json_schema_of_the_config(tmp_path: Path) -> None:
    done = command("schema")
    assert done.returncode == 0
    schema = json.loads(done.stdout)
    assert "Config" in schema["$defs"]
    assert {"source", "routes", "sinks"} <= set(schema["$defs"]["Config"]["required"])


def test_undelivered_records_exit_3_and_are_kept_in_the_rescue_store(tmp_path: Path) -> None:
    (tmp_path / "in.log").write_text("".join(f"line {i}\n" for i in range(50)))
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "p.toml").write_text(
        f"""
[pipeline]
retry = false
drain_timeout = 5.0

[source]
type = "file"
path = "in.log"

[[routes]]
name = "all"
sinks = ["remote"]

[sinks.remote]
type = "tcp"
port = {port}

[rescue]
path = "rescue"
"""
    )
    done = command("run", str(tmp_path / "p.toml"), "--report", str(tmp_path / "r.json"))
    assert done.returncode == 3, done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert len(report["undelivered"]) == 50
    assert all(u["stored"] for u in report["undelivered"])
    assert "50 undelivered (50 kept in the rescue store)" in done.stderr
    listed = command("replay", str(tmp_path / "rescue"), "--list")
    assert listed.returncode in (0, 3), listed.stderr
    assert "50" in listed.stdout


def test_a_daemon_drains_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "d.toml").write_text(
        """
[source]
type = "tcp"
port = 0

[[routes]]
name = "all"
sinks = ["out"]

[sinks.out]
type = "jsonl"
path = "out.jsonl"
"""
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "trio_sink._cli", "run", str(tmp_path / "d.toml")],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stderr is not None
        # Wait, on its log, until it runs: the line that says it started.
        deadline = time.monotonic() + 60
        for line in process.stderr:
            if "pipeline.start" in line or time.monotonic() > deadline:
                break
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "serve.signal signal=SIGTERM action=stop" in err
    assert "exit status 0" in err


def test_a_redis_stream_to_a_redis_stream(tmp_path: Path) -> None:
    from redis_helpers import running_redis

    with running_redis(tmp_path / "redis") as server:
        for i in range(300):
            level = "ERROR" if i % 10 == 0 else "INFO"
            server.command("XADD", "logs", "*", "message", f"{level} event {i}")
        server.command("XADD", "logs", "*", "other", "no message field")
        (tmp_path / "r.toml").write_text(
            f"""
[pipeline]
stop_when_idle = 1.0

[source]
type = "redis_stream"
url = "{server.url}"
stream = "logs"
group = "g"
consumer = "c1"
block = 0.2

[parse]
type = "regex"
pattern = '^(?P<level>[A-Z]+) (?P<msg>.*)$'

[[routes]]
name = "errors"
when = 'level == "ERROR"'
sinks = ["errors"]

[sinks.errors]
type = "redis_stream"
url = "{server.url}"
stream = "errors"

[sinks.misses]
type = "jsonl"
path = "miss.jsonl"

[infra]
miss = "misses"
"""
        )
        done = command("run", str(tmp_path / "r.toml"))
        assert done.returncode == 0, done.stderr
        assert server.command("XLEN", "errors") == 30
        # Every entry was acknowledged (XACK), the one without a message field too.
        assert "received 301, acknowledged 301" in done.stderr
    misses = [json.loads(x) for x in (tmp_path / "miss.jsonl").read_text().splitlines()]
    assert [m["raw"]["fields"] for m in misses] == [{"other": "no message field"}]


def test_sighup_reloads_a_valid_config_and_refuses_a_bad_one(tmp_path: Path) -> None:
    log = tmp_path / "in.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    config = tmp_path / "r.toml"
    text = """
[pipeline]
batch_timeout = 0.05

[source]
type = "file"
path = "in.log"
checkpoint = "state/offset"
follow = true
poll_interval = 0.05

[[routes]]
name = "all"
sinks = ["out"]

[sinks.out]
type = "jsonl"
path = "{out}"
"""
    config.write_text(text.format(out="a.jsonl"))

    def count(name: str) -> int:
        path = tmp_path / name
        return len(path.read_text().splitlines()) if path.exists() else 0

    def until(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline, "the run did not get there in 60 s"
            time.sleep(0.02)

    errors = tmp_path / "stderr.txt"
    with errors.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "trio_sink._cli", "run", str(config)],
            stderr=err,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            until(lambda: count("a.jsonl") == 100)
            config.write_text(text.format(out="b.jsonl"))
            process.send_signal(signal.SIGHUP)
            until(lambda: "reload.start generation=2" in errors.read_text())
            with log.open("a") as f:
                f.write("".join(f"line {i}\n" for i in range(100, 150)))
            until(lambda: count("b.jsonl") == 50)
            config.write_text(text.format(out="b.jsonl").replace('type = "jsonl"', "type = 3"))
            process.send_signal(signal.SIGHUP)
            until(lambda: "reload.refused" in errors.read_text())
            with log.open("a") as f:
                f.write("".join(f"line {i}\n" for i in range(150, 160)))
            until(lambda: count("b.jsonl") == 60)  # the running pipeline went on
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    raws = [r["raw"] for name in ("a.jsonl", "b.jsonl") for r in lines(tmp_path / name)]
    # Every line once: the new pipeline resumed where the old one's acknowledgements got.
    assert raws == [f"line {i}" for i in range(160)]
    said = errors.read_text()
    assert "$.sinks.out.type" in said or "$.sinks.out" in said


def test_a_source_that_fails_exits_4(tmp_path: Path) -> None:
    with socket.socket() as taken:  # the source's port is in use: its open() fails
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        (tmp_path / "f.toml").write_text(
            f"""
[source]
type = "tcp"
port = {taken.getsockname()[1]}

[[routes]]
name = "all"
sinks = ["out"]

[sinks.out]
type = "null"
"""
        )
        done = command("run", str(tmp_path / "f.toml"))
    assert done.returncode == 4, done.stderr
    assert "the source failed" in done.stderr


def test_an_http_sink_posts_each_batch(tmp_path: Path) -> None:
    import http.server
    import threading

    bodies: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        (tmp_path / "h.toml").write_text(
            f"""
[pipeline]
batch_size = 10

[source]
type = "sample"
count = 95

[parse]
type = "regex"
pattern = '^(?P<time>\\S+) (?P<level>[A-Z]+) (?P<service>\\w+): (?P<msg>.*)$'

[[routes]]
name = "all"
sinks = ["web"]

[sinks.web]
type = "http"
url = "http://127.0.0.1:{server.server_address[1]}/ingest"

[sinks.misses]
type = "null"

[infra]
miss = "misses"
"""
        )
        done = command("run", str(tmp_path / "h.toml"), "--report", str(tmp_path / "r.json"))
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    posted = [json.loads(x) for body in bodies for x in body.splitlines()]
    assert len(posted) == report["delivered"]["web"] > 80
    assert all("level" in p["payload"] for p in posted)


def test_demo_delivers_every_record_in_virtual_time_and_exits_0() -> None:
    done = command("demo", "--count", "2000")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("2,000 lines -> SlowSink(NullSink('slow_bkh'), per_record=0.1)")
    assert "delivered       2,000  (slow_bkh)" in done.stdout
    assert "undelivered         0" in done.stdout
    assert "200.0 s of virtual time" in done.stdout
    assert "unaccounted         0" in done.stdout
    assert "drain.complete sink=slow_bkh" in done.stderr  # the drain's log lines


def test_demo_past_the_drain_deadline_lists_the_rest_by_id_and_exits_3() -> None:
    done = command("demo", "--count", "2000", "--drain-timeout", "60", "--quiet")
    assert done.returncode == 3, done.stderr
    assert "delivered         512  (slow_bkh)" in done.stdout
    assert "undelivered     1,488" in done.stdout
    assert "not delivered, by id: 512, 513," in done.stdout
    assert "(ids 512..1999)" in done.stdout
    assert "unaccounted         0" in done.stdout
    assert "drain.progress" not in done.stderr


def test_demo_with_a_bad_option_exits_2() -> None:
    done = command("demo", "--drain-timeout", "-1")
    assert done.returncode == 2
    assert "drain_timeout must be a finite number of seconds >= 0" in done.stderr
    assert done.stdout == ""


def test_json_logs_are_one_object_a_line_with_the_events_fields(seed: Path) -> None:
    done = command("run", str(seed), "--log-format", "json")
    assert done.returncode == 0, done.stderr
    logged = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    complete = [x for x in logged if x.get("event") == "drain.complete"]
    assert {x["sink"] for x in complete} == {"errors", "requests", "archive", "misses"}
    assert all(x["level"] == "INFO" and x["logger"] == "trio_sink.drain" for x in complete)


def test_the_seed_runs_with_the_cli_extra_alone(seed: Path) -> None:
    """Without coredis and httpx (the redis and http extras), as after
    ``pip install 'trio_sink[cli]'``: nothing imports them for a config that uses neither."""
    code = (
        "import sys\n"
        "sys.modules['coredis'] = None\n"  # an import of it raises ImportError
        "sys.modules['httpx'] = None\n"
        "from trio_sink._cli import main\n"
        f"sys.exit(main(['run', {str(seed)!r}, '--quiet']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
