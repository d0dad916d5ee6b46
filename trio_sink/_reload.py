"""Hot reload for ``trio-sink run``: SIGHUP (or a change of the file, with ``--watch``)
drains the running pipeline and starts the new config's, if the new config is valid.

The new file is checked first; a file with errors is refused (each error logged) and the
old pipeline keeps running. A valid one stops the old pipeline gracefully (Stop, the
drain, within its deadline: its source's last acknowledgement is made and it is
closed), and only then is the new pipeline built: a source that resumes from an
acknowledged position (a file's checkpoint, a consumer group) takes up where the old
one stopped, so nothing is lost or doubled beyond the in-flight window.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from ._config import ConfigFileError, LoadedConfig, load_config
from ._exceptions import ConfigError
from ._handle import PipelineHandle
from ._report import DeliveryReport, SourceError
from ._serve import serve
from ._stats import PipelineStatistics

__all__ = ["WATCH_INTERVAL", "Reloader"]

log = logging.getLogger("trio_sink.reload")

WATCH_INTERVAL = 1.0
"""Seconds between two looks at the config file's modification time (``--watch``)."""


class Reloader:
    """The generations of one ``run``: each a pipeline built from the config as it
    was when that generation started."""

    def __init__(self, path: Path, loaded: LoadedConfig) -> None:
        self.path = path
        self.loaded = loaded
        self.next: LoadedConfig | None = None
        self.handle: PipelineHandle | None = None
        self.latest: PipelineHandle | None = None
        self.generation = 0

    def request(self, why: str) -> None:
        """Check the file again: if it is valid, stop the running pipeline so that the
        new one follows it; if not, log every error and keep the running one."""
        try:
            loaded = load_config(self.path)
        except ConfigFileError as exc:
            for error in exc.errors:
                log.error("reload.refused why=%s error=%s", why, error)
            log.error("reload.refused why=%s: the running pipeline goes on", why)
            return
        log.info("reload.accepted why=%s generation=%d", why, self.generation + 1)
        self.next = loaded
        if self.handle is not None:
            self.handle.stop()

    def statistics(self) -> PipelineStatistics:
        """The statistics of the running pipeline (between two, the last one's)."""
        if self.latest is None:
            raise RuntimeError("no pipeline has started yet")
        return self.latest.statistics()

    async def signals(self) -> None:
        """Reload at each SIGHUP."""
        with trio.open_signal_receiver(signal.SIGHUP) as received:
            async for _ in received:
                self.request("SIGHUP")

    async def watch(self) -> None:
        """Reload when the file's modification time changes."""
        seen = _mtime(self.path)
        while True:
            await trio.sleep(WATCH_INTERVAL)
            now = _mtime(self.path)
            if now != seen:
                seen = now
                self.request("file changed")

    async def run(
        self,
        build: Callable[[LoadedConfig], Any],
        on_start: Callable[[PipelineHandle], object],
        failures: list[SourceError],
    ) -> tuple[DeliveryReport, ...]:
        """Run generation after generation until one ends without a reload (its source
        ended, or a signal stopped it); the reports of every generation, in order.
        ``build`` makes a :class:`~trio_sink._config_build.Built`; an error in a later
        one is logged and the previous config runs again. A generation whose source
        failed ends the run; its :class:`~trio_sink.SourceError` is put in
        ``failures``."""
        reports: list[DeliveryReport] = []
        loaded = self.loaded
        while True:
            try:
                built = build(loaded)
            except (ConfigError, OSError) as exc:
                if not reports:
                    raise
                log.error("reload.failed error=%s: the previous config runs again", exc)
                loaded = self.loaded
                built = build(loaded)
            self.loaded = loaded
            self.generation += 1
            try:
                async with contextlib.AsyncExitStack() as stack:
                    for resource in built.entered:  # one connection pool each
                        await stack.enter_async_context(resource)
                    async with trio.open_nursery() as nursery:
                        handle = await nursery.start(_serve, built.pipeline, failures)
                        self.handle = self.latest = handle
                        on_start(handle)
                        report = await handle.wait()
            finally:
                self.handle = None
                if built.store is not None:
                    built.store.close()
            reports.append(report)
            if self.next is None or failures or _stopped_by_signal():
                return tuple(reports)
            log.info("reload.start generation=%d", self.generation + 1)
            loaded, self.next = self.next, None


async def _serve(
    pipeline: Any, failures: list[SourceError], *, task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    """``serve(pipeline)``; a :class:`~trio_sink.SourceError` is kept in ``failures``
    (its report is the handle's)."""
    try:
        await serve(pipeline, ignore_after_stop=True, task_status=task_status)
    except SourceError as exc:
        failures.append(exc)


def _stopped_by_signal() -> bool:
    """Whether a signal stopped the run: ``serve`` then leaves SIGINT and SIGTERM
    ignored (``ignore_after_stop``)."""
    return signal.getsignal(signal.SIGTERM) is signal.SIG_IGN


def _mtime(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
