"""trio_sink.testing.quiet_library_logs: trio_sink's logs muted for a block."""

from __future__ import annotations

import logging

import pytest
import trio.testing

from trio_sink import Pipeline, Route
from trio_sink.testing import FlakySink, quiet_library_logs


def test_it_mutes_every_trio_sink_logger_and_restores_the_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    logger = logging.getLogger("trio_sink")
    before = logger.level
    logger.setLevel(logging.INFO)
    try:
        with quiet_library_logs():
            logging.getLogger("trio_sink.sink").critical("muted")
            logging.getLogger("trio_sink").error("muted")
            logging.getLogger("other").info("kept")
        assert logger.level == logging.INFO
        logging.getLogger("trio_sink.drain").info("after")
    finally:
        logger.setLevel(before)
    assert [r.getMessage() for r in caplog.records] == ["kept", "after"]


def test_it_restores_the_level_when_the_block_raises() -> None:
    logger = logging.getLogger("trio_sink")
    before = logger.level
    with pytest.raises(KeyError), quiet_library_logs():
        raise KeyError
    assert logger.level == before


async def test_a_run_with_failing_writes_logs_nothing(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_sink")
    pipeline = Pipeline(range(4), routes=[Route("r", FlakySink(fail_on={0}))], batch_size=1)
    with quiet_library_logs():
        report = await pipeline.run()
    assert len(report.undelivered) == 1
    assert caplog.records == []
