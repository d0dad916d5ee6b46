"""A fork server of pipelines over a FileSource, for tests/test_file_source_kill.py.

Usage: file_source_kill_child.py DIR

It imports everything once, then reads commands from its standard input, one a line:

- ``run slow`` / ``run final``: fork a worker that runs one pipeline (``final``: its slow
  sink does not wait, so the run reads the file to its end quickly), and print ``pid N``.
  The worker prints ``started`` once the pipeline runs, and ``done`` when it ended.
- ``reap``: wait for the last worker to end (the test SIGKILLs it, or it ends by itself)
  and print ``exit CODE`` (``-9`` for a SIGKILL). Until then the worker is not reaped, so
  its pid names it (or its zombie) when the test kills it: never another process.

A fresh interpreter costs about 0.3 s of imports a run; a fork costs a few milliseconds, so
the test can kill 30 runs in a few seconds. The worker forks before Trio runs: it starts
with no threads and no event loop.

The pipeline: ``FileSource(DIR/input.log, checkpoint=DIR/checkpoint.json)`` routed to two
sinks that append each line to a file (``fast.out``, ``slow.out``), the slow one after a
short sleep a batch, refusing (``PermanentError``) every batch that holds a line whose
number is a multiple of 101; its refused batches go to the rescue store ``DIR/rescue``.
Logs go to ``DIR/child.log``. A worker first cuts a torn last line off each output (a
SIGKILL in the middle of a write: that write never returned, so nothing in it was
acknowledged).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import trio

from trio_sink import PermanentError, Pipeline, Record, RescueStore, Route
from trio_sink.sources import FileSource

CAPACITY, BATCH = 2, 16
SLOW_DELAY = 0.01
"""Seconds the slow sink sleeps a batch."""
REFUSED_EVERY = 101


def say(line: str) -> None:
    os.write(1, f"{line}\n".encode())  # one write: lines of two processes never mix


class AppendSink:
    """Appends each record's line to a file, in one write a batch."""

    def __init__(self, name: str, path: Path, *, delay: float = 0.0, refuse: bool = False) -> None:
        self.name = name
        self.delay = delay
        self.refuse = refuse
        cut_torn_line(path)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def write(self, batch: Sequence[Record]) -> None:
        if self.delay:
            await trio.sleep(self.delay)
        if self.refuse and any(int(r.raw.split()[1]) % REFUSED_EVERY == 0 for r in batch):
            raise PermanentError("refused")
        data = "".join(f"{r.raw}\n" for r in batch).encode()
        while data:
            data = data[os.write(self.fd, data) :]

    async def aclose(self) -> None:
        os.close(self.fd)


def cut_torn_line(path: Path) -> None:
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


async def run_once(directory: Path, final: bool) -> None:
    source = FileSource(directory / "input.log", checkpoint=directory / "checkpoint.json")
    fast = AppendSink("fast", directory / "fast.out")
    slow = AppendSink(
        "slow", directory / "slow.out", delay=0.0 if final else SLOW_DELAY, refuse=True
    )
    with RescueStore(directory / "rescue") as store:
        pipeline = Pipeline(
            source,
            routes=[Route("all", [fast, slow])],
            capacity=CAPACITY,
            batch_size=BATCH,
            batch_timeout=0.005,
            rescue=store,
        )
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(pipeline.run)
            say("started")
            report = await handle.wait()
    report.check()
    assert report.acknowledged == report.received, (report.acknowledged, report.received)
    say("done")


def worker(directory: Path, final: bool) -> None:
    code = 0
    try:
        trio.run(run_once, directory, final)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def serve(directory: Path) -> None:
    pid = 0
    while command := sys.stdin.readline():
        match command.split():
            case ["run", mode]:
                pid = os.fork()
                if pid == 0:
                    worker(directory, final=mode == "final")
                say(f"pid {pid}")
            case ["reap"]:
                _, status = os.waitpid(pid, 0)
                say(f"exit {os.waitstatus_to_exitcode(status)}")
            case _:
                raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    # The runs' logs (the slow sink's refusals, acks ended by a kill...) go to a file;
    # the standard error is left for a worker that fails.
    logging.basicConfig(filename=Path(sys.argv[1]) / "child.log", level=logging.INFO)
    serve(Path(sys.argv[1]))
