"""HttpSink, against a real HTTP server on 127.0.0.1 (http.server, in threads).

Real time throughout: under an autojump clock a wait on the server counts as idle, and
would jump to the sink's timeout. The one test of the timeout holds the answer until the
test releases it, after the sink gave up: the outcome never depends on the machine.
"""

from __future__ import annotations

import copy
import json
import logging
import pickle
import socket
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sink_helpers import HOST, Answer, HttpServer, http_server, recs

from trio_sink import NO_RETRY, ConfigError, PermanentError, Pipeline, Route
from trio_sink._json_lines import JsonLines
from trio_sink.sinks import HttpRejectedError, HttpSink, SinkConnectionError, SinkTimeoutError
from trio_sink.testing import check_sink


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with http_server() as s:
        yield s


def retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("sink.retry")]


# -- what is sent -------------------------------------------------------------------------


async def test_a_batch_is_posted_as_json_lines(server: HttpServer) -> None:
    sink = HttpSink(server.url, headers={"X-Token": "t0ken"})
    await sink.write(recs(0, 3))
    await sink.aclose()
    [request] = server.requests
    assert request.path == "/ingest"
    assert request.headers["content-type"] == "application/x-ndjson"
    assert request.headers["x-token"] == "t0ken"
    assert request.body == JsonLines().lines(recs(0, 3))
    assert server.taken_records() == recs(0, 3)


async def test_a_batch_is_posted_as_a_json_array(server: HttpServer) -> None:
    sink = HttpSink(server.url, format="json")
    await sink.write(recs(0, 2))
    await sink.aclose()
    [request] = server.requests
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == [
        {"id": 0, "raw": "raw0", "payload": {"i": 0}},
        {"id": 1, "raw": "raw1", "payload": {"i": 1}},
    ]


async def test_headers_may_replace_the_content_type(server: HttpServer) -> None:
    sink = HttpSink(server.url, headers={"content-type": "application/jsonl"})
    await sink.write(recs(0, 1))
    await sink.aclose()
    assert server.requests[0].headers["content-type"] == "application/jsonl"


async def test_an_empty_batch_sends_nothing(server: HttpServer) -> None:
    sink = HttpSink(server.url)
    await sink.write([])
    await sink.aclose()
    assert server.requests == []


async def test_a_pipeline_posts_every_record(server: HttpServer) -> None:
    sink = HttpSink(server.url, name="api")
    report = await Pipeline(range(50), routes=[Route("all", sink)], batch_size=8).run()
    report.check()
    assert report.delivered["api"] == 50
    assert [r.payload for r in server.taken_records()] == list(range(50))
    assert len(server.requests) == 7


# -- the answers --------------------------------------------------------------------------


async def test_a_5xx_then_a_2xx_the_pipeline_retries_and_delivers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with http_server([Answer(500, b"try later")]) as server:
        sink = HttpSink(server.url, name="api")
        with caplog.at_level(logging.WARNING, logger="trio_sink.sink"):
            report = await Pipeline(range(3), routes=[Route("all", sink)]).run()
        report.check()
        assert report.ok
        assert [r.payload for r in server.taken_records()] == [0, 1, 2]
        assert [r.body for r in server.requests] == [server.requests[0].body] * 2
    [retry] = retries(caplog)
    assert retry.startswith("sink.retry sink=api attempt=1 ")
    assert retry.endswith(
        f'error="SinkConnectionError: api: http://{HOST}:{server.port}/ingest answered'
        ' 500 Internal Server Error: try later"'
    )


@pytest.mark.parametrize("status", [500, 503, 429, 408])
async def test_answers_that_say_later_raise_connection_error(status: int) -> None:
    with http_server([Answer(status, b"  busy,\n  come back  ")]) as server:
        sink = HttpSink(server.url, name="api")
        with pytest.raises(SinkConnectionError, match=f"^api: .* answered {status} ") as caught:
            await sink.write(recs(0, 1))
        await sink.aclose()
    assert caught.value.status == status
    assert str(caught.value).endswith(": busy, come back")
    assert isinstance(caught.value, ConnectionError)


async def test_a_4xx_raises_permanent_error_with_the_status_and_the_body() -> None:
    body = b'{"error": "field x is required"}' + b" " * 10 + b"z" * 500
    with http_server([Answer(400, body)]) as server:
        sink = HttpSink(server.url, name="api")
        with pytest.raises(HttpRejectedError) as caught:
            await sink.write(recs(0, 1))
        await sink.aclose()
    error = caught.value
    assert isinstance(error, PermanentError)
    assert error.status == 400
    assert error.body.startswith('{"error": "field x is required"} zzz')
    assert error.body.endswith("zzz...")
    assert len(error.body) == 200
    assert str(error) == f"api: {server.url} answered 400 Bad Request: {error.body}"


async def test_a_4xx_in_a_pipeline_is_reported_and_never_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with http_server([Answer(422, b"no"), Answer(200)]) as server:
        sink = HttpSink(server.url, name="api")
        with caplog.at_level(logging.WARNING, logger="trio_sink.sink"):
            report = await Pipeline(range(4), routes=[Route("all", sink)], batch_size=2).run()
        report.check()
        assert report.delivered["api"] == 2
        assert [u.record.id for u in report.undelivered] == [0, 1]
        assert {u.reason for u in report.undelivered} == {
            f"sink raised HttpRejectedError: api: {server.url} answered 422"
            " Unprocessable Entity: no"
        }
        assert len(server.requests) == 2  # one a batch: no retry
    assert retries(caplog) == []


async def test_a_redirect_is_not_followed(server: HttpServer) -> None:
    server.answers.append(Answer(307))
    sink = HttpSink(server.url)
    with pytest.raises(HttpRejectedError, match=r"answered 307 Temporary Redirect$"):
        await sink.write(recs(0, 1))
    await sink.aclose()


async def test_a_slow_answer_times_out(server: HttpServer) -> None:
    server.answers.append(Answer(200, hold=True))
    sink = HttpSink(server.url, name="api", timeout=0.2)
    with pytest.raises(
        SinkTimeoutError, match=r"^api: no answer from http://127\.0\.0\.1:\d+/ingest within 0\.2 s"
    ):
        await sink.write(recs(0, 1))
    server.release()
    await sink.aclose()


async def test_a_timed_out_request_is_retried_and_may_arrive_twice(server: HttpServer) -> None:
    # The endpoint took the batch, but its answer came too late: at least once.
    server.answers.append(Answer(200, hold=True))
    sink = HttpSink(server.url, timeout=0.2)
    report = await Pipeline(range(2), routes=[Route("all", sink)]).run()
    server.release()
    report.check()
    assert report.ok
    assert [r.id for r in server.taken_records()] == [0, 1, 0, 1]


async def test_no_server_raises_connection_error() -> None:
    with socket.socket() as bound:  # bound, not listening: connections are refused
        bound.bind((HOST, 0))
        url = f"http://{HOST}:{bound.getsockname()[1]}/ingest"
        sink = HttpSink(url, name="api")
        with pytest.raises(SinkConnectionError, match=r"^api: no answer from http://") as e:
            await sink.write(recs(0, 1))
        assert e.value.status is None
        report = await Pipeline(range(2), routes=[Route("all", sink)], retry=NO_RETRY).run()
        report.check()
        assert [u.record.id for u in report.undelivered] == [0, 1]


# -- the client ---------------------------------------------------------------------------


async def test_the_sink_closes_the_client_it_made(server: HttpServer) -> None:
    sink = HttpSink(server.url)
    await sink.write(recs(0, 1))
    client = sink._client
    assert client is not None
    assert not client.is_closed
    await sink.aclose()
    assert client.is_closed
    await sink.aclose()


async def test_a_client_given_stays_open_and_is_used(server: HttpServer) -> None:
    async with httpx.AsyncClient(headers={"User-Agent": "mine"}) as client:
        sink = HttpSink(server.url, client=client)
        await sink.write(recs(0, 1))
        await sink.aclose()
        assert not client.is_closed
        await sink.write(recs(1, 1))  # still the given client
    assert [r.headers["user-agent"] for r in server.requests] == ["mine", "mine"]


async def test_it_conforms(server: HttpServer) -> None:
    # A cancelled request may have reached the server whole: at least once.
    await check_sink(
        lambda: HttpSink(server.url, name="http"),
        delivered=lambda s: server.taken_records(),
        at_least_once=True,
    )


# -- settings -----------------------------------------------------------------------------


def test_without_httpx_making_one_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)  # an import of it raises ImportError
    with pytest.raises(ConfigError, match=r"HttpSink needs httpx.*pip install 'trio_sink\[http\]'"):
        HttpSink("http://127.0.0.1/")


def test_the_default_name_leaves_out_what_may_be_secret() -> None:
    sink = HttpSink("https://user:pw@example.com:8443/in/logs?key=secret")
    assert sink.name == "https://example.com:8443/in/logs"
    assert HttpSink("http://example.com/x", name="api").name == "api"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": ""}, "url must be a non-empty str, got ''"),
        ({"url": "ftp://example.com/"}, "url must be an http:// or https:// URL with a host"),
        ({"url": "http:///path"}, "url must be an http:// or https:// URL with a host"),
        ({"url": "http://[::1"}, "url must be an http:// or https:// URL, got"),
        ({"format": "xml"}, "format must be one of jsonl, json, got 'xml'"),
        ({"headers": {"a": 1}}, "headers must be a mapping of str to str"),
        ({"headers": [("a", "b")]}, "headers must be a mapping of str to str"),
        ({"timeout": 0}, "timeout must be a finite number of seconds > 0, got 0"),
        ({"client": object()}, "client must be an httpx.AsyncClient or None"),
        ({"name": ""}, "name must be a non-empty str"),
    ],
)
def test_settings_are_checked_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        HttpSink(**{"url": "http://127.0.0.1/in", **kwargs})


@pytest.mark.parametrize(
    "error",
    [
        HttpRejectedError("api: refused", status=400, body="no"),
        SinkConnectionError("api: busy", status=503),
        SinkTimeoutError("api: slow"),
    ],
)
def test_the_errors_survive_a_copy_and_pickling(error: Exception) -> None:
    for again in (copy.copy(error), pickle.loads(pickle.dumps(error))):
        assert type(again) is type(error)
        assert str(again) == str(error)
        assert vars(again) == vars(error)
