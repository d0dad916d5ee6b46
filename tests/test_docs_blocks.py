"""Every ```python block of README.md and docs/*.md runs as written, and prints what the
text says it prints.

The rules the pages follow, and these tests hold them to:

- A page's ```python blocks run in order, in one namespace, as the blocks of one module
  would (named ``__main__``, in a fresh working directory): a block may use what an
  earlier block of its page defined. Each page has one or more tests here, marked
  ``@covers(page)``; each runs the page's blocks through a :class:`Page` and ends with
  :meth:`Page.done`, which fails unless every block of the page has run.
  ``test_every_page_with_code_is_covered`` fails for a page with blocks and no test. A
  sketch that is not meant to run (a signature) is a ```text block, and no other fence
  names Python (``py``, ``python3``, ``pycon``...), so no code escapes these rules.
- A line that calls ``print`` ends with a comment that is exactly what it prints: a
  block's output must be those comments, in order, and a block without one prints nothing.
- A program (``if __name__ == "__main__":``) runs as one. docs/faults.md's runs in this
  process in real time, as its text says (about two seconds); docs/daemon.md's runs in a
  subprocess whose standard input is a pipe, and is stopped by a real SIGTERM.
- docs/testing.md's code is a test module: it is written to a temporary directory next to
  the pytest configuration the page shows, and pytest runs it in a subprocess, as a reader
  would.
- docs/scaling.md's worker needs a Redis server: its test starts one (skipped only when no
  ``redis-server`` can be found, see tests/redis_helpers.py) and runs the program twice,
  in subprocesses, until SIGTERM.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tokenize
import tomllib
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import attrs
import coredis
import coredis.exceptions
import msgspec
import pytest
import trio
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis_helpers import running_redis

from trio_sink import DeliveryReport, RescueStore
from trio_sink._parse_rules import Rule, make_parse, validate_rules
from trio_sink.extra import prometheus

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON_NAMES = {"py", "py3", "python3", "pycon", "ipython", "python-repl"}
"""Fence names of Python code other than ``python``: no page may use them."""

F = TypeVar("F", bound=Callable[..., Any])
COVERED: set[str] = set()


def covers(page: str) -> Callable[[F], F]:
    """Mark a test as one that runs the blocks of ``page`` (a path from the root)."""

    def mark(test: F) -> F:
        COVERED.add(page)
        return test

    return mark


@attrs.frozen
class Block:
    lang: str
    line: int
    """The line of the page where the block's code starts (1-based)."""
    code: str


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown page, with the name its fence gives it."""
    blocks: list[Block] = []
    opening: tuple[str, str, int] | None = None
    lines: list[str] = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = re.match(r"\s*(`{3,}|~{3,})\s*([^\s`]*)", text)
        if opening is None:
            if fence:
                opening = (fence.group(1), fence.group(2), number + 1)
                lines = []
        elif fence and fence.group(1).startswith(opening[0]) and not fence.group(2):
            blocks.append(Block(opening[1], opening[2], "".join(f"{x}\n" for x in lines)))
            opening = None
        else:
            lines.append(text)
    assert opening is None, f"{path}:{opening[2] - 1}: a fence that is never closed"
    return blocks


def python_blocks(path: Path) -> list[Block]:
    return [block for block in fenced_blocks(path) if block.lang == "python"]


def printed(block: Block, where: str) -> list[str]:
    """What the block's ``print`` calls print, as their comments say, in order."""
    tokens = list(tokenize.generate_tokens(io.StringIO(block.code).readline))
    said: list[str] = []
    for i, token in enumerate(tokens):
        if not (token.type == tokenize.NAME and token.string == "print"):
            continue
        if tokens[i + 1].string != "(":
            continue
        depth, j = 0, i + 1
        while True:
            depth += {"(": 1, ")": -1}.get(tokens[j].string, 0)
            if depth == 0:
                break
            j += 1
        comment = tokens[j + 1]
        line = block.line + token.start[0] - 1
        assert comment.type == tokenize.COMMENT, (
            f"{where}:{line}: a print without a comment saying what it prints"
        )
        said.append(comment.string.removeprefix("#").strip())
    return said


class Page:
    """The ```python blocks of one page, run in order, each at most once."""

    def __init__(self, page: str) -> None:
        assert page in COVERED, f"{page}: the test that runs it is not marked @covers"
        self.page = page
        self.path = ROOT / page
        self.blocks = python_blocks(self.path)
        assert self.blocks, f"{page} has no ```python block"
        self.next = 0
        self.namespace: dict[str, Any] = {"__name__": "__main__"}

    def run(self, count: int | None = None) -> dict[str, Any]:
        """Run the next ``count`` blocks (all that are left by default) in the page's
        namespace, checking that each prints what its comments say; the namespace."""
        end = len(self.blocks) if count is None else self.next + count
        assert end <= len(self.blocks), f"{self.page} has {len(self.blocks)} blocks"
        for block in self.blocks[self.next : end]:
            # Leading newlines: a traceback names the page's own line numbers. Not this
            # module's `from __future__ import annotations`: a class's annotations are
            # evaluated as a reader's run evaluates them (msgspec reads them).
            code = compile(
                "\n" * (block.line - 1) + block.code, str(self.path), "exec", dont_inherit=True
            )
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(code, self.namespace)
            assert out.getvalue().splitlines() == printed(block, self.page), (
                f"{self.page}:{block.line}: the block printed {out.getvalue()!r}"
            )
        self.next = end
        return self.namespace

    def script(self) -> str:
        """The page's blocks, all of them, as one module's source, to run elsewhere."""
        assert self.next == 0, "blocks already run here"
        assert not any(printed(block, self.page) for block in self.blocks), (
            "a page whose blocks print is run in this process, where the output is checked"
        )
        self.next = len(self.blocks)
        return "\n\n".join(block.code for block in self.blocks)

    def only(self, lang: str) -> str:
        """The code of the page's one block named ``lang`` (not Python: it does not run)."""
        (block,) = [block for block in fenced_blocks(self.path) if block.lang == lang]
        return block.code

    def done(self) -> None:
        assert self.next == len(self.blocks), (
            f"{self.page}: blocks from line {self.blocks[self.next].line} on never ran"
        )


def child_env() -> dict[str, str]:
    """The environment of a subprocess that imports this checkout's trio_sink."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("PYTEST_ADDOPTS", None)
    return env


# -- every page -------------------------------------------------------------------------


def test_every_page_with_code_is_covered() -> None:
    with_code = {str(path.relative_to(ROOT)) for path in PAGES if python_blocks(path)}
    assert with_code == COVERED


@pytest.mark.parametrize("path", PAGES, ids=lambda path: str(path.relative_to(ROOT)))
def test_python_is_fenced_as_python_only(path: Path) -> None:
    names = {block.lang.lower() for block in fenced_blocks(path)}
    assert not names & PYTHON_NAMES


def test_a_block_that_prints_must_say_what() -> None:
    silent = Block("python", 7, 'x = 1\nprint(f"{x}")  # 1\nprint(x)\n')
    with pytest.raises(AssertionError, match=r"page.md:9: a print without a comment"):
        printed(silent, "page.md")
    said = Block("python", 1, 'print("a", (1, 2))  # a (1, 2)\nprint(\n    "b"\n)  # b\n')
    assert printed(said, "page.md") == ["a (1, 2)", "b"]


# -- README.md --------------------------------------------------------------------------


@covers("README.md")
def test_readme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    page = Page("README.md")
    namespace = page.run()
    page.done()
    report: DeliveryReport = namespace["report"]
    report.check()
    assert report.ok
    assert [r.raw for r in namespace["errors"].records] == ["ERROR disk full"]
    assert [r.raw for r in namespace["misses"].records] == ["garbage"]
    assert len((tmp_path / "all.jsonl").read_text().splitlines()) == 2


# -- docs/faults.md ---------------------------------------------------------------------


@covers("docs/faults.md")
def test_faults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The example is a program that runs in real time (about two seconds), as its page says.
    monkeypatch.chdir(tmp_path)
    page = Page("docs/faults.md")
    page.run()
    page.done()
    with RescueStore(tmp_path / "rescue") as store:
        assert store.pending() == 0


# -- docs/daemon.md ---------------------------------------------------------------------


def start_daemon(tmp_path: Path) -> subprocess.Popen[str]:
    page = Page("docs/daemon.md")
    (tmp_path / "collector.py").write_text(page.script())
    page.done()
    return subprocess.Popen(
        [sys.executable, "collector.py"],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )


def written(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@covers("docs/daemon.md")
def test_daemon_ends_with_its_input(tmp_path: Path) -> None:
    with start_daemon(tmp_path) as proc:
        try:
            out, err = proc.communicate("a\nb\n", timeout=30)
        finally:
            proc.kill()
    assert (proc.returncode, out) == (0, ""), err
    assert [json.loads(line)["raw"] for line in written(tmp_path / "all.jsonl")] == ["a", "b"]


@covers("docs/daemon.md")
def test_daemon_drains_at_sigterm(tmp_path: Path) -> None:
    # A real process, a real signal: the daemon's input stays open, so only the signal
    # ends it. Once the lines are in the file, serve() is running and owns SIGTERM.
    with start_daemon(tmp_path) as proc:
        assert proc.stdin is not None
        try:
            proc.stdin.write("a\nb\n")
            proc.stdin.flush()
            deadline = time.monotonic() + 30
            while len(written(tmp_path / "all.jsonl")) < 2:
                assert time.monotonic() < deadline, "the lines never reached the file"
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            proc.kill()
            proc.communicate()
    assert [json.loads(line)["raw"] for line in written(tmp_path / "all.jsonl")] == ["a", "b"]


# -- docs/rescue.md ---------------------------------------------------------------------


class CountingStore:
    """Counts the calls of ``sync()``, in the worker threads that make them."""

    def __init__(self) -> None:
        self.syncs = 0

    def sync(self) -> None:
        self.syncs += 1


@covers("docs/rescue.md")
def test_rescue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    page = Page("docs/rescue.md")
    namespace = page.run(1)
    assert namespace["report"].ok
    with RescueStore(tmp_path / "rescue") as store:
        assert store.pending() == 0  # the replay consumed everything
    namespace = page.run()
    page.done()
    # sync_every, in real time: a store synced every 20 ms for a tenth of a second.
    counting = CountingStore()

    async def sync_for_a_while() -> None:
        with trio.move_on_after(0.1):
            await namespace["sync_every"](counting, 0.02)

    trio.run(sync_for_a_while)
    assert 1 <= counting.syncs <= 5


# -- docs/sources.md ---------------------------------------------------------------------


@covers("docs/sources.md")
def test_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    page = Page("docs/sources.md")
    page.run()
    page.done()
    point = json.loads((tmp_path / "app.checkpoint").read_bytes())
    assert point["offset"] == (tmp_path / "app.log").stat().st_size
    assert sorted(os.listdir(tmp_path)) == ["app.checkpoint", "app.log", "requests.jsonl"]
    delivered = [json.loads(line)["raw"] for line in written(tmp_path / "requests.jsonl")]
    assert delivered == ["GET /about", "GET /contact"]


# -- docs/metrics.md --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape_until_up(port: int) -> dict[tuple[str, str], float]:
    """The samples of the metrics page on ``port`` labelled pipeline="ingest", once it has
    them: the collector is registered as the run starts."""
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
            text = page.read().decode()
        samples = {
            (sample.name, sample.labels.get("state", "")): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.labels.get("pipeline") == "ingest"
        }
        if samples or time.monotonic() > deadline:
            return samples
        time.sleep(0.01)


@covers("docs/metrics.md")
async def test_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Real time, a real HTTP server: the page is scraped while the run waits for input.
    monkeypatch.chdir(tmp_path)
    page = Page("docs/metrics.md")
    namespace = page.run(1)
    assert namespace["sink_metrics"] is prometheus
    namespace = page.run()
    page.done()
    port = free_port()
    send, receive = trio.open_memory_channel[str](0)
    reports: list[DeliveryReport] = []

    async def run_main() -> None:
        reports.append(await namespace["main"](receive, port))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_main)
        async with send:
            await send.send("a")
            samples = await trio.to_thread.run_sync(scrape_until_up, port)
            assert samples[("trio_sink_up", "")] == 1
            assert samples[("trio_sink_state", "running")] == 1
            await send.send("b")
    [report] = reports
    assert report.ok
    assert dict(report.delivered) == {"out.jsonl": 2}
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2
    assert b'pipeline="ingest"' not in generate_latest(REGISTRY)  # unregistered at the end


# -- docs/testing.md --------------------------------------------------------------------


def run_pytest(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=directory,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=300,
        check=False,
    )


@covers("docs/testing.md")
def test_testing(tmp_path: Path) -> None:
    # As a reader would: the page's code as a test module, the page's configuration, pytest.
    page = Page("docs/testing.md")
    module = page.script()
    page.done()
    tests = [
        node.name
        for node in ast.parse(module).body
        if isinstance(node, ast.AsyncFunctionDef) and node.name.startswith("test_")
    ]
    assert len(tests) == 3
    (tmp_path / "test_my_sinks.py").write_text(module)
    (tmp_path / "pyproject.toml").write_text(page.only("toml"))
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^3 passed\b", result.stdout, re.M), result.stdout
    # Without trio mode, as the page says, pytest runs none of them: each test fails.
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    result = run_pytest(tmp_path)
    assert re.search(r"^3 failed\b", result.stdout, re.M), result.stdout


# -- docs/scaling.md --------------------------------------------------------------------


async def _orders(url: str, n: int) -> None:
    async with coredis.Redis.from_url(url, decode_responses=True) as client:
        for i in range(n):
            await client.xadd("orders", {"order": f"o{i}", "cents": str(i) if i != 7 else "?"})


async def _billed(
    url: str,
) -> tuple[list[dict[str, str]], list[dict[str, str]], int | None, int]:
    """The charges, the dead letters, how many orders are pending (None: no group yet),
    and how many consumers the group has."""
    async with coredis.Redis.from_url(url, decode_responses=True) as client:
        charges = [_fields(e) for e in await client.xrange("charges")]
        dead = [_fields(e) for e in await client.xrange("orders:dead")]
        try:
            summary: Any = await client.xpending("orders", "billing")
            consumers = await client.xinfo_consumers("orders", "billing")
        except coredis.exceptions.StreamConsumerGroupError:
            return charges, dead, None, 0
        return charges, dead, summary.pending, len(consumers)


def _fields(entry: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in entry.field_values.items()}


@covers("docs/scaling.md")
def test_scaling_two_workers_share_the_orders_and_stop_at_sigterm(tmp_path: Path) -> None:
    # The page's worker as a program, twice, on a real redis-server; real SIGTERMs.
    page = Page("docs/scaling.md")
    (tmp_path / "worker.py").write_text(page.script())
    page.done()
    with running_redis(tmp_path / "redis") as server, contextlib.ExitStack() as stack:
        trio.run(_orders, server.url, 200)
        workers = []
        for k in (1, 2):
            log = stack.enter_context(open(tmp_path / f"worker-{k}.log", "w"))
            workers.append(
                stack.enter_context(
                    subprocess.Popen(
                        [sys.executable, "worker.py"],
                        cwd=tmp_path,
                        stderr=log,
                        env={**child_env(), "REDIS_URL": server.url, "CONSUMER": f"billing-{k}"},
                    )
                )
            )
            stack.callback(workers[-1].kill)  # before the with of Popen waits for it
        deadline = time.monotonic() + 60
        while True:
            # Until both workers run (each is a consumer of the group once it has read:
            # serve() has their signals then) and every order was billed.
            charges, dead, pending, consumers = trio.run(_billed, server.url)
            if len(charges) + len(dead) >= 200 and pending == 0 and consumers == 2:
                break
            assert time.monotonic() < deadline, (len(charges), len(dead), pending, consumers)
            time.sleep(0.05)
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        for k, proc in enumerate(workers, 1):
            assert proc.wait(30) == 0, (tmp_path / f"worker-{k}.log").read_text()
        charges, dead, pending, _ = trio.run(_billed, server.url)
    assert sorted(int(c["order"][1:]) for c in charges) == [i for i in range(200) if i != 7]
    assert all(c["cents"] == c["order"][1:] for c in charges)
    assert [(d["order"], d["cents"]) for d in dead] == [("o7", "?")]  # parse raised
    assert pending == 0


# -- docs/network_sources.md ------------------------------------------------------------


@covers("docs/network_sources.md")
def test_network_sources() -> None:
    # Real sockets on 127.0.0.1, port 0; each example waits for its own lines.
    page = Page("docs/network_sources.md")
    namespace = page.run()
    page.done()
    assert namespace["fields"]["format"] == "rfc3164"


# -- docs/sinks.md ----------------------------------------------------------------------


@covers("docs/sinks.md")
def test_sinks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Real files in a fresh folder; a TCP server and an HTTP endpoint on 127.0.0.1.
    monkeypatch.chdir(tmp_path)
    page = Page("docs/sinks.md")
    namespace = page.run()
    page.done()
    assert sorted(os.listdir(tmp_path / "out")) == [
        "events.jsonl",
        "events.jsonl.1.gz",
        "events.jsonl.2.gz",
    ]
    assert namespace["taken"] == [0, 1, 2]
    assert namespace["answers"] == []


# -- docs/conditions.md -----------------------------------------------------------------


@covers("docs/conditions.md")
def test_conditions() -> None:
    page = Page("docs/conditions.md")
    namespace = page.run()
    page.done()
    assert f"{namespace['error']}\n" == page.only("text")  # the message, as shown


# -- docs/parsing.md --------------------------------------------------------------------


@covers("docs/parsing.md")
def test_parsing() -> None:
    page = Page("docs/parsing.md")
    namespace = page.run()
    page.done()
    assert namespace["report"].ok
    assert namespace["problems"] == page.only("text").splitlines()
    # Each TOML example is a config's parse rules as the page says: they decode and are valid.
    tables = [tomllib.loads(b.code) for b in fenced_blocks(page.path) if b.lang == "toml"]
    assert len(tables) == 8
    for table in tables:
        rules = msgspec.convert(table["parse"], Rule | list[Rule])
        assert validate_rules(rules) == []
        make_parse(rules)
