"""The syslog parser (trio_sink/_syslog.py): RFC 5424 and RFC 3164, examples from the
RFCs, round trips of messages built from drawn parts, and malformed input, which raises
SyslogFormatError and nothing else."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from trio_sink import Infra, Miss, Pipeline, Route, TrioSinkError
from trio_sink._syslog import FIELDS, unparsed_fields
from trio_sink.sinks import CollectSink
from trio_sink.sources import SyslogFormatError, parse_syslog


def fields(**given: Any) -> dict[str, Any]:
    """Every key of FIELDS: None, ``structured_data`` {}, then ``given``."""
    out: dict[str, Any] = dict.fromkeys(FIELDS)
    out["structured_data"] = {}
    out.update(given)
    return out


# -- RFC 5424 ---------------------------------------------------------------------------


def test_rfc5424_examples() -> None:
    # RFC 5424, section 6.5, examples 1 to 4.
    one = "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \ufeff'su root' failed"
    assert parse_syslog(one) == fields(
        format="rfc5424",
        priority=34,
        facility=4,
        severity=2,
        timestamp="2003-10-11T22:14:15.003Z",
        hostname="mymachine.example.com",
        app_name="su",
        msgid="ID47",
        message="'su root' failed",
        raw=one,
    )
    two = "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time"
    parsed = parse_syslog(two)
    assert (parsed["timestamp"], parsed["procid"], parsed["msgid"]) == (
        "2003-08-24T05:14:15.000003-07:00",
        "8710",
        None,
    )
    assert parsed["message"] == "%% It's time"
    three = (
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47"
        ' [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
        " \ufeffAn application event log entry..."
    )
    parsed = parse_syslog(three)
    assert parsed["structured_data"] == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"}
    }
    assert parsed["message"] == "An application event log entry..."
    four = (
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47"
        ' [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
        '[examplePriority@32473 class="high"]'
    )
    parsed = parse_syslog(four)
    assert parsed["structured_data"]["examplePriority@32473"] == {"class": "high"}
    assert parsed["message"] == ""


def test_rfc5424_nil_values_and_no_message() -> None:
    assert parse_syslog("<0>1 - - - - - -") == fields(
        format="rfc5424", priority=0, facility=0, severity=0, message="", raw="<0>1 - - - - - -"
    )
    assert parse_syslog("<191>1 - - - - - - ")["message"] == ""
    assert parse_syslog("<191>1 - - - - - -  two spaces")["message"] == " two spaces"


def test_rfc5424_structured_data_escapes() -> None:
    text = r'<13>1 - - - - - [id q="a\"b" b="c\\d" r="e\]f" o="g\nh" u="]"] m'
    assert parse_syslog(text)["structured_data"] == {
        "id": {"q": 'a"b', "b": "c\\d", "r": "e]f", "o": "g\\nh", "u": "]"}
    }


def test_rfc5424_a_name_given_twice_has_the_list_of_its_values() -> None:
    text = '<13>1 - - - - - [origin ip="192.0.2.1" ip="192.0.2.2"][x a="1"][origin ip="3"] m'
    assert parse_syslog(text)["structured_data"] == {
        "origin": {"ip": ["192.0.2.1", "192.0.2.2", "3"]},
        "x": {"a": "1"},
    }


def test_rfc5424_the_byte_order_mark_is_stripped_once() -> None:
    assert parse_syslog("<13>1 - - - - - - \ufeff\ufeffx")["message"] == "\ufeffx"


# -- RFC 3164 ---------------------------------------------------------------------------


def test_rfc3164_examples() -> None:
    # RFC 3164, section 5.4.
    one = "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8"
    assert parse_syslog(one) == fields(
        format="rfc3164",
        priority=34,
        facility=4,
        severity=2,
        timestamp="Oct 11 22:14:15",
        hostname="mymachine",
        app_name="su",
        message="'su root' failed for lonvick on /dev/pts/8",
        raw=one,
    )
    two = "<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!"
    assert parse_syslog(two) == fields(
        format="rfc3164",
        priority=13,
        facility=1,
        severity=5,
        timestamp="Feb  5 17:32:18",
        hostname="10.0.0.99",
        message="Use the BFG!",
        raw=two,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A local syslog(3) sends no hostname: a tag follows the timestamp.
        ("<13>Oct  9 22:33:20 sshd[4321]: Accepted", ("sshd", "4321", None, "Accepted")),
        ("<13>Oct  9 22:33:20 cron: job", ("cron", None, None, "job")),
        ("<13>Oct 9 22:33:20 host app[1]: x", ("app", "1", "host", "x")),
        ("<13>Oct 09 22:33:20 host postfix/smtpd[7]: y", ("postfix/smtpd", "7", "host", "y")),
        ("<13>2026-01-02T03:04:05.678+01:00 host app: z", ("app", None, "host", "z")),
        ("<13>Oct  9 22:33:20 host", (None, None, None, "host")),
        ("<13>Oct  9 22:33:20", (None, None, None, "")),
        ("<13>app[9]: no timestamp", ("app", "9", None, "no timestamp")),
        ("<13>just text: with a colon", (None, None, None, "just text: with a colon")),
        ("<13>", (None, None, None, "")),
        ("<13>1", (None, None, None, "1")),
        ("<13>2 - - -", (None, None, None, "2 - - -")),
        ("<13>tag[]:", ("tag", None, None, "")),
    ],
)
def test_rfc3164_variants(text: str, expected: tuple[Any, ...]) -> None:
    parsed = parse_syslog(text)
    assert parsed["format"] == "rfc3164"
    assert (parsed["app_name"], parsed["procid"], parsed["hostname"], parsed["message"]) == (
        expected
    )


# -- malformed --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no <PRI> at the start"),
        ("hello", "no <PRI> at the start"),
        ("<>x", "no <PRI> at the start"),
        ("<1234>x", "no <PRI> at the start"),
        ("<a>x", "no <PRI> at the start"),
        (" <13>x", "no <PRI> at the start"),
        ("<192>x", "PRI 192 out of range"),
        ("<13>1 ", "RFC 5424: the header ends early"),
        ("<13>1 - - - - -", "RFC 5424: the header ends early"),
        ("<13>1 -  - - - -", "RFC 5424: empty HOSTNAME"),
        ("<13>1 2003-10-11 - - - - -", "RFC 5424: TIMESTAMP '2003-10-11' is not RFC 3339"),
        ("<13>1 2003-10-11T22:14:15 - - - - -", "is not RFC 3339"),
        ("<13>1 2003-10-11t22:14:15z - - - - -", "is not RFC 3339"),
        ("<13>1 - - - - - ", "STRUCTURED-DATA must be - or [...]"),
        ("<13>1 - - - - - x", "STRUCTURED-DATA must be - or [...]"),
        ("<13>1 - - - - - [", "no SD-ID"),
        ("<13>1 - - - - - [ a]", "no SD-ID"),
        ('<13>1 - - - - - [id a="b"', "not closed by ]"),
        ("<13>1 - - - - - [id a=b]", 'expected PARAM-NAME="value"'),
        ('<13>1 - - - - - [id a="b]', 'expected PARAM-NAME="value"'),
        ('<13>1 - - - - - [id a="b\\"]', 'expected PARAM-NAME="value"'),
        ('<13>1 - - - - - [id ="b"]', 'expected PARAM-NAME="value"'),
        ('<13>1 - - - - - [id  a="b"]', 'expected PARAM-NAME="value"'),
        ("<13>1 - - - - - [id]x", "'x' after STRUCTURED-DATA"),
        ("<13>1 - - - - - -x", "'x' after STRUCTURED-DATA"),
    ],
)
def test_malformed_messages_raise_syslog_format_error(text: str, reason: str) -> None:
    with pytest.raises(SyslogFormatError, match=reason.replace("[", r"\[").replace(".", r"\.")):
        parse_syslog(text)


def test_syslog_format_error_is_a_miss_a_trio_sink_error_and_a_value_error() -> None:
    with pytest.raises(SyslogFormatError) as info:
        parse_syslog("no")
    assert isinstance(info.value, Miss)
    assert isinstance(info.value, TrioSinkError)
    assert isinstance(info.value, ValueError)
    assert info.value.reason == str(info.value)


def test_as_a_pipelines_parse_what_is_no_syslog_goes_to_miss() -> None:
    sink, misses = CollectSink("all"), CollectSink("miss")
    pipeline = Pipeline(
        ["<13>hello", "nothing", "<14>1 - - - - - - x"],
        parse=parse_syslog,
        routes=[Route("all", sink)],
        infra=Infra(miss=misses),
    )
    report = trio.run(pipeline.run)
    report.check()
    assert [r.payload["message"] for r in sink.records] == ["hello", "x"]
    assert [r.raw for r in misses.records] == ["nothing"]


def test_pathological_input_ends() -> None:
    # Each would backtrack for ages under a careless regular expression.
    for text in [
        '<13>1 - - - - - [a b="' + "\\" * 100_001,
        '<13>1 - - - - - [a b="' + 'x\\"' * 50_000,
        "<13>1 - - - - - " + "[a]" * 50_000 + "x",
        "<13>" + "a" * 100_000 + "[" * 1000,
        "<13>Oct  9 22:33:20 " + " " * 100_000,
    ]:
        with contextlib.suppress(SyslogFormatError):
            parse_syslog(text)


def test_unparsed_fields() -> None:
    assert unparsed_fields("x y") == fields(message="x y", raw="x y")


# -- properties -------------------------------------------------------------------------

ASCII = st.characters(min_codepoint=33, max_codepoint=126)
SD_NAME = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='="]'),
    min_size=1,
    max_size=32,
)


def header_field(max_size: int) -> st.SearchStrategy[str | None]:
    return st.none() | st.text(ASCII, min_size=1, max_size=max_size).filter(lambda x: x != "-")


@st.composite
def rfc3339(draw: st.DrawFn) -> str:
    date = draw(st.dates()).isoformat()
    time = draw(st.times()).strftime("%H:%M:%S")
    fraction = draw(st.sampled_from(["", ".1", ".123", ".000003", ".999999"]))
    offset = draw(st.sampled_from(["Z", "+00:00", "-07:00", "+14:00"]))
    return f"{date:0>10}T{time}{fraction}{offset}"


def escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


@st.composite
def rfc5424_messages(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A message built from drawn parts, and the fields it must parse into."""
    facility, severity = draw(st.integers(0, 23)), draw(st.integers(0, 7))
    timestamp = draw(st.none() | rfc3339())
    hostname, app_name = draw(header_field(255)), draw(header_field(48))
    procid, msgid = draw(header_field(128)), draw(header_field(32))
    elements = draw(
        st.dictionaries(
            SD_NAME,
            st.dictionaries(SD_NAME, st.lists(st.text(max_size=20), min_size=1, max_size=3)),
            max_size=3,
        )
    )
    message = draw(st.none() | st.text().filter(lambda m: not m.startswith("\ufeff")))
    bom = draw(st.booleans())
    sd = "".join(
        f"[{sd_id}"
        + "".join(f' {name}="{escaped(v)}"' for name, values in params.items() for v in values)
        + "]"
        for sd_id, params in elements.items()
    )
    header = [timestamp, hostname, app_name, procid, msgid]
    text = f"<{facility * 8 + severity}>1 " + " ".join("-" if h is None else h for h in header)
    text += " " + (sd or "-")
    if message is not None:
        text += " " + ("\ufeff" if bom else "") + message
    expected = fields(
        format="rfc5424",
        priority=facility * 8 + severity,
        facility=facility,
        severity=severity,
        timestamp=timestamp,
        hostname=hostname,
        app_name=app_name,
        procid=procid,
        msgid=msgid,
        structured_data={
            sd_id: {n: v[0] if len(v) == 1 else v for n, v in params.items()}
            for sd_id, params in elements.items()
        },
        message=message or "",
        raw=text,
    )
    return text, expected


@given(rfc5424_messages())
def test_rfc5424_round_trip(case: tuple[str, dict[str, Any]]) -> None:
    text, expected = case
    assert parse_syslog(text) == expected


MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
TAG = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":[]"),
    min_size=1,
    max_size=48,
)


@st.composite
def rfc3164_messages(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    facility, severity = draw(st.integers(0, 23)), draw(st.integers(0, 7))
    month, day = draw(st.sampled_from(MONTHS)), draw(st.integers(1, 31))
    time = draw(st.times()).strftime("%H:%M:%S")
    timestamp = f"{month} {day:2d} {time}"
    hostname = draw(
        st.none()
        | st.text(
            st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="["),
            min_size=1,
            max_size=64,
        ).filter(lambda h: not h.endswith(":"))
    )
    tag = draw(TAG)
    pid = draw(st.none() | st.text(ASCII.filter(lambda c: c != "]"), min_size=1, max_size=10))
    message = draw(st.text())
    text = f"<{facility * 8 + severity}>{timestamp} "
    text += "" if hostname is None else hostname + " "
    text += tag + ("" if pid is None else f"[{pid}]") + ": " + message
    expected = fields(
        format="rfc3164",
        priority=facility * 8 + severity,
        facility=facility,
        severity=severity,
        timestamp=timestamp,
        hostname=hostname,
        app_name=tag,
        procid=pid,
        message=message,
        raw=text,
    )
    return text, expected


@given(rfc3164_messages())
def test_rfc3164_round_trip(case: tuple[str, dict[str, Any]]) -> None:
    text, expected = case
    assert parse_syslog(text) == expected


def check_any(text: str) -> None:
    """``parse_syslog(text)`` raises SyslogFormatError, or returns well-formed fields."""
    error: SyslogFormatError | None = None
    try:
        parsed = parse_syslog(text)
    except SyslogFormatError as exc:
        error = exc
    if error is not None:
        assert error.reason
        return
    assert list(parsed) == list(FIELDS)
    assert parsed["raw"] == text
    assert parsed["format"] in ("rfc5424", "rfc3164")
    assert parsed["priority"] == parsed["facility"] * 8 + parsed["severity"]
    assert 0 <= parsed["priority"] <= 191
    assert isinstance(parsed["message"], str)
    assert parsed["message"] in text or parsed["message"] == ""
    for params in parsed["structured_data"].values():
        for value in params.values():
            assert isinstance(value, str | list)


PIECES = st.sampled_from(
    [
        *["<13>", "<13>1 ", "<999>", "1 ", "- ", "-", " ", "[", "]", '"', "\\", "=", "a"],
        *["\ufeff", "2003-10-11T22:14:15Z", "Oct  9 22:33:20", "x[1]: ", "\n", "\x00", "é"],
    ]
)


@given(st.text())
def test_any_text_parses_or_raises_syslog_format_error(text: str) -> None:
    check_any(text)


@given(st.lists(PIECES | st.text(max_size=3), max_size=30).map("".join))
def test_text_made_of_syslog_pieces_parses_or_raises_syslog_format_error(text: str) -> None:
    check_any(text)


@given(rfc5424_messages(), st.data())
def test_a_damaged_message_parses_or_raises_syslog_format_error(
    case: tuple[str, dict[str, Any]], data: st.DataObject
) -> None:
    text, _ = case
    cut = data.draw(st.integers(0, len(text)))
    check_any(text[:cut] + data.draw(PIECES) + text[cut + data.draw(st.integers(0, 3)) :])
