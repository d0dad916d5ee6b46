"""The seed scenario of trio-sink demo and examples/slower_sink.py, in virtual time."""

from __future__ import annotations

import trio
import trio.testing

from trio_sink._demo import SINK, heading, lines, parse, run_demo, summarize


def test_lines_parse_into_their_fields() -> None:
    first, second = lines(2)
    assert parse(first) == {
        "date": "2026-11-28",
        "time": "12:00:00",
        "level": "INFO",
        "user": "0",
        "msg": "hello",
    }
    assert parse(second)["level"] == "WARN"


async def test_every_record_is_delivered_at_a_tenth_of_a_second_each(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    report = await run_demo(300, None, 100.0)
    assert (report.received, report.delivered[SINK], len(report.undelivered)) == (300, 300, 0)
    assert trio.current_time() - start >= 30.0
    text = summarize(report, 0.5, virtual=True)
    assert "of virtual time, 0.50 s of wall time" in text
    assert "not delivered" not in text
    assert text.endswith("unaccounted         0")


async def test_past_the_deadline_the_rest_is_listed_by_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    report = await run_demo(1000, 30.0, 100.0)
    assert report.timed_out
    delivered = report.delivered[SINK]
    assert delivered == 256  # two batches of 128 in 30 s, at 12.8 s a batch
    assert sorted(u.record.id for u in report.undelivered) == list(range(delivered, 1000))
    text = summarize(report, 0.0, virtual=True)
    assert f"not delivered, by id: {delivered}, {delivered + 1}," in text
    assert f"(ids {delivered}..999)" in text
    assert "reason: drain deadline; sink: slow_bkh" in text
    assert text.endswith("unaccounted         0")


def test_the_heading_says_what_runs() -> None:
    assert heading(10_000, 60.0) == (
        "10,000 lines -> SlowSink(NullSink('slow_bkh'), per_record=0.1), drain_timeout=60.0"
    )
