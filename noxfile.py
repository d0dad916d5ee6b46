"""Developer sessions: ``nox -s tests lint typing demo bench bench_sinks bench_redis``."""

from __future__ import annotations

import os
import shutil

import nox

nox.options.sessions = ["tests", "lint", "typing"]
nox.options.default_venv_backend = "venv"

PYTHON = ["3.11"]
TEST_PYTHONS = ["3.11", "3.12", "3.13"]
"""The versions the classifiers name; nox skips one that is not installed."""


def redis_server(session: nox.Session) -> None:
    """Install Debian's redis-server when there is none (as root, as on CI); without
    root, say that the Redis tests will skip."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin", "/usr/sbin"])
    if shutil.which("redis-server", path=path):
        return
    if os.geteuid() != 0:
        session.warn("no redis-server, and no root to install it: the Redis tests will skip")
        return
    session.run("apt-get", "update", "-qq", external=True)
    session.run(
        "apt-get",
        "install",
        "-y",
        "-qq",
        "redis-server",
        external=True,
        env={"DEBIAN_FRONTEND": "noninteractive"},
    )


@nox.session(python=TEST_PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite (set CI=true for Hypothesis's ci profile). Installs redis-server
    first when missing (as root); TRIO_SINK_REQUIRE_REDIS=1 makes a missing one fail the
    Redis tests instead of skipping them."""
    redis_server(session)
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typing(session: nox.Session) -> None:
    """mypy --strict over the package, tests, examples and benchmarks."""
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The seed scenario: 10,000 lines behind a 100 ms sink, then the deadline case."""
    session.install("-e", ".")
    session.run("python", "examples/slower_sink.py", *session.posargs)
    session.run("python", "examples/slower_sink.py", "--drain-timeout", "60")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """trio_sink against the plain loop, hand-written pipelines and peers, each run in a
    fresh process (benchmarks/compare.py); writes benchmarks/RESULTS.md and results.png
    (``nox -s bench -- --quick`` for a short run). The quick in-process check of the same
    work is ``python benchmarks/throughput.py`` (trio_sink with ``when`` and with
    ``when_batch`` against the plain loop in interleaved rounds; ``--memory``,
    ``--hand-written``, ``--json FILE``)."""
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/compare.py", *session.posargs)


@nox.session(python=PYTHON)
def bench_sinks(session: nox.Session) -> None:
    """What fan-out costs: trio_sink with 1 to 128 sinks against the plain loop
    (benchmarks/sinks_scaling.py); writes benchmarks/sinks_scaling.png, after_sinks.json
    and its section of RESULTS.md, beside the figures of before_sinks.json
    (``nox -s bench_sinks -- --n 20000 --rounds 3`` for a short run)."""
    session.install("-e", ".", "matplotlib>=3.8")
    session.run(
        "python",
        "benchmarks/sinks_scaling.py",
        "--chart",
        "benchmarks/sinks_scaling.png",
        "--json",
        "benchmarks/after_sinks.json",
        "--before",
        "benchmarks/before_sinks.json",
        "--write",
        *session.posargs,
    )


@nox.session(python=PYTHON)
def bench_redis(session: nox.Session) -> None:
    """Throughput of 1, 2 and 4 worker processes on one Redis consumer group; writes its
    table into benchmarks/RESULTS.md (``nox -s bench_redis -- --quick`` for a short run)."""
    redis_server(session)
    session.install("-e", ".[redis]")
    session.run("python", "benchmarks/redis_scaleout.py", "--write", *session.posargs)
