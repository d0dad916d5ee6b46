"""The framers (trio_sink/_framing.py): lines, and TCP syslog's two framings. However
the bytes are cut into reads, the frames are the same, and what a framer holds between
reads stays under its limit."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from trio_sink import Undecodable
from trio_sink._framing import Frame, LineFramer, SyslogFramer


class Counts:
    """A framer's tally."""

    def __init__(self) -> None:
        self.over_long = 0


def cut(data: bytes, sizes: Sequence[int]) -> list[bytes]:
    """``data`` in pieces of ``sizes`` (cycled), the last one whatever is left."""
    pieces, pos, i = [], 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)] if sizes else len(data)
        pieces.append(data[pos : pos + size])
        pos += size
        i += 1
    return pieces


def frames_of(framer: LineFramer | SyslogFramer, pieces: list[bytes], bound: int) -> list[Frame]:
    out: list[Frame] = []
    for piece in pieces:
        out += framer.feed(piece)
        assert framer.pending <= bound
    return out + list(framer.end())


Seen = tuple[bool, bytes]
"""A frame as a test sees it: whether it is over the limit, and its bytes."""


def data_of(frames: list[Frame]) -> list[Seen]:
    return [(True, f.data) if isinstance(f, Undecodable) else (False, f) for f in frames]


def seen(data: bytes, limit: int) -> Seen:
    """What a framer with ``limit`` makes of the frame ``data``."""
    return (True, data[:limit]) if len(data) > limit else (False, data)


# -- lines ------------------------------------------------------------------------------


def expected_lines(data: bytes, limit: int) -> list[Seen]:
    """The model: every line, a last one without its newline too, without its ``\r``."""
    *lines, last = data.split(b"\n")
    if last:
        lines.append(last)
    stripped = [line.removesuffix(b"\r") for line in lines]
    return [seen(line, limit) for line in stripped]


@given(
    st.lists(st.sampled_from([b"a", b"b", b"\n", b"\r", b"\r\n", b"\xff"]), max_size=60).map(
        b"".join
    ),
    st.lists(st.integers(1, 9), max_size=5),
    st.integers(1, 6),
)
def test_lines_are_the_same_however_the_reads_cut_them(
    data: bytes, sizes: list[int], limit: int
) -> None:
    counts = Counts()
    framer = LineFramer(limit, counts)
    got = data_of(frames_of(framer, cut(data, sizes), limit + 1))
    whole = data_of(frames_of(LineFramer(limit, Counts()), [data], limit + 1))
    assert got == whole == expected_lines(data, limit)
    assert counts.over_long == sum(over for over, _ in got)


def test_lines_examples() -> None:
    framer = LineFramer(5, Counts())
    too_long = Undecodable(b"longe", "utf-8", framer._reason)
    assert framer.feed(b"ab\r\ncd\n\nlonger line\nx") == [b"ab", b"cd", b"", too_long]
    assert framer.pending == 1
    assert framer.feed(b"yzzzzzzzzzzzzz") == [Undecodable(b"xyzzz", "utf-8", framer._reason)]
    assert framer.pending == 0
    assert framer.feed(b"zz\nok\r") == []
    assert framer.end() == [b"ok"]
    assert framer.end() == []


# -- syslog over TCP --------------------------------------------------------------------

MESSAGE = st.binary(min_size=1, max_size=12)
LINE_MESSAGE = st.binary(max_size=11).map(
    lambda m: b"<" + m.replace(b"\n", b"").replace(b"\r", b"")
)


@st.composite
def syslog_streams(draw: st.DrawFn) -> tuple[bytes, list[Seen], int]:
    """A stream of messages, each framed either way, and the frames expected."""
    limit = draw(st.integers(1, 10))
    data, expected = b"", []
    for counted, message in draw(
        st.lists(st.tuples(st.booleans(), MESSAGE) | st.tuples(st.just(False), LINE_MESSAGE))
    ):
        if counted:
            data += b"%d %s" % (len(message), message)
        elif b"\n" in message or message.endswith(b"\r") or message[:1] != b"<":
            continue
        else:
            data += message + draw(st.sampled_from([b"\n", b"\r\n", b"\n\n", b"\r\n\r\n"]))
        expected.append(seen(message, limit))
    return data, expected, limit


@given(syslog_streams(), st.lists(st.integers(1, 9), max_size=5))
def test_syslog_frames_are_the_same_however_the_reads_cut_them(
    stream: tuple[bytes, list[Seen], int], sizes: list[int]
) -> None:
    data, expected, limit = stream
    counts = Counts()
    got = frames_of(SyslogFramer(limit, counts), cut(data, sizes), limit + 11)
    assert data_of(got) == expected
    assert counts.over_long == sum(over for over, _ in expected)


@given(st.binary(max_size=200), st.lists(st.integers(1, 30), max_size=5), st.integers(1, 20))
def test_syslog_framer_takes_any_bytes(data: bytes, sizes: list[int], limit: int) -> None:
    frames = frames_of(SyslogFramer(limit, Counts()), cut(data, sizes), limit + 11)
    assert all(
        0 < len(f) <= limit if isinstance(f, bytes) else len(f.data) <= limit for f in frames
    )


def test_syslog_framing_examples() -> None:
    framer = SyslogFramer(20, Counts())
    assert framer.feed(b"3 abc<1>x\n12") == [b"abc", b"<1>x"]
    assert framer.pending == 2  # digits: maybe a count
    assert framer.feed(b" abcdefghijkl") == [b"abcdefghijkl"]  # it was: 12 octets
    assert framer.feed(b"1234567890") == []  # ten digits: maybe a count still
    assert framer.feed(b"1") == []  # eleven: a line that starts with digits
    assert framer.feed(b"\n") == [b"12345678901"]
    assert framer.feed(b"20 abc") == []
    assert framer.end() == [
        Undecodable(b"abc", "utf-8", "the connection closed 3 bytes into a message of 20 bytes")
    ]


def test_syslog_over_long_messages() -> None:
    framer = SyslogFramer(8, Counts())
    too_long = framer._reason
    assert "longer than 8 bytes" in too_long
    assert framer.feed(b"12 0123456789ab3 xyz") == [
        Undecodable(b"01234567", "utf-8", too_long),
        b"xyz",
    ]
    assert framer.feed(b"9 012345678") == [Undecodable(b"01234567", "utf-8", too_long)]
    assert framer.feed(b"<1>34567890") == [Undecodable(b"<1>34567", "utf-8", too_long)]
    assert framer.pending == 0  # the rest of that line is dropped as it comes
    assert framer.feed(b"more\n<1>last\r") == []
    assert framer.end() == [b"<1>last"]
