"""Syslog messages parsed into fields: RFC 5424 and RFC 3164 (BSD). Pure: no I/O.

:func:`parse_syslog` takes one message as text (its transport framing already removed)
and returns a dict of its fields, or raises :class:`SyslogFormatError`, and nothing
else, for any text: the regular expressions here cannot backtrack more than linearly.
"""

from __future__ import annotations

import re
from typing import Any

from ._exceptions import TrioSinkError
from ._record import Miss

__all__ = ["FIELDS", "SyslogFormatError", "parse_syslog", "unparsed_fields"]

FIELDS = (
    "format",
    "priority",
    "facility",
    "severity",
    "timestamp",
    "hostname",
    "app_name",
    "procid",
    "msgid",
    "structured_data",
    "message",
    "raw",
)
"""The keys of every dict :func:`parse_syslog` returns, in this order."""


class SyslogFormatError(Miss, TrioSinkError, ValueError):
    """The text is not a syslog message (RFC 5424 or RFC 3164): ``reason`` says where.

    The only error :func:`parse_syslog` raises. It is a :class:`~trio_sink.Miss`: as a
    pipeline's ``parse``, ``parse_syslog`` sends such a record to the ``miss`` group. It
    says nothing about the transport: the bytes were read and decoded.
    """


_PRI = re.compile(r"<(\d{1,3})>")
_RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)"
_TIMESTAMP = re.compile(_RFC3339 + r"\Z")
_BSD_TIMESTAMP = re.compile(
    r"(?:(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (?: \d|\d\d?) \d\d:\d\d:\d\d"
    rf"|{_RFC3339})(?= |\Z)"
)
_NAME = r'[^\x00-\x20="\]\x7f-\U0010ffff]+'
"""SD-NAME: printable US-ASCII except ``=``, ``]`` and ``"``."""
_SD_NAME = re.compile(_NAME)
_SD_PARAM = re.compile(rf' ({_NAME})="((?:[^"\\]|\\.)*)"', re.S)
_SD_ESCAPE = re.compile(r'\\(["\\\]])')
_TAG = re.compile(r"([^\s:\[\]]{1,48})(?:\[([^\s\]]*)\])?:(?: |\Z)")
_BOM = "\ufeff"
_HEADER = ("TIMESTAMP", "HOSTNAME", "APP-NAME", "PROCID", "MSGID")


def parse_syslog(text: str) -> dict[str, Any]:
    """The fields of one syslog message, RFC 5424 or RFC 3164 (BSD).

    A message whose ``<PRI>`` is followed by ``1`` and a space is read as RFC 5424 and
    must be one; any other message with a valid ``<PRI>`` is read as RFC 3164, whose
    header parts are all optional. Returns a dict with the keys of :data:`FIELDS`:

    - ``format``: ``"rfc5424"`` or ``"rfc3164"``;
    - ``priority``, ``facility``, ``severity``: ints (``priority == facility * 8 +
      severity``; severity 0 is emergency, 7 debug);
    - ``timestamp``, ``hostname``, ``app_name``, ``procid``, ``msgid``: the text as
      written, or None where the message has none (RFC 5424's ``-``). The timestamp is
      not interpreted; an RFC 3164 one has no year. RFC 3164 has no ``msgid``; its
      ``TAG[PID]:`` gives ``app_name`` and ``procid``;
    - ``structured_data``: ``{SD-ID: {PARAM-NAME: value}}`` with the escapes ``\\"``,
      ``\\\\`` and ``\\]`` undone; a name given twice in one element (or in two elements
      with the same SD-ID) has the list of its values. Empty when there is none;
    - ``message``: the MSG part, ``""`` when there is none, without RFC 5424's UTF-8
      byte order mark;
    - ``raw``: ``text`` itself.

    Raises :class:`SyslogFormatError` for anything else, with a reason.
    """
    match = _PRI.match(text)
    if match is None:
        raise SyslogFormatError("no <PRI> at the start (it must be <0> to <191>)")
    priority = int(match[1])
    if priority > 191:
        raise SyslogFormatError(f"PRI {priority} out of range (0 to 191)")
    fields: dict[str, Any] = dict.fromkeys(FIELDS)
    fields["priority"] = priority
    fields["facility"], fields["severity"] = divmod(priority, 8)
    fields["raw"] = text
    pos = match.end()
    if text.startswith("1 ", pos):
        _rfc5424(text, pos + 2, fields)
    else:
        _rfc3164(text, pos, fields)
    return fields


def unparsed_fields(text: str) -> dict[str, Any]:
    """The dict that stands for a text that is no syslog message: every key of
    :data:`FIELDS`, ``format`` and the header fields None, ``structured_data`` empty,
    ``message`` and ``raw`` the text."""
    fields: dict[str, Any] = dict.fromkeys(FIELDS)
    fields["structured_data"] = {}
    fields["message"] = fields["raw"] = text
    return fields


def _rfc5424(text: str, pos: int, fields: dict[str, Any]) -> None:
    """``HEADER SP STRUCTURED-DATA [SP MSG]`` from ``pos`` (after the version)."""
    parts = text[pos:].split(" ", 5)
    if len(parts) < 6:
        raise SyslogFormatError(
            "RFC 5424: the header ends early (expected TIMESTAMP HOSTNAME APP-NAME PROCID"
            " MSGID STRUCTURED-DATA after the version)"
        )
    timestamp, hostname, app_name, procid, msgid, rest = parts
    if "" in parts[:5]:
        name = _HEADER[parts.index("")]
        raise SyslogFormatError(f"RFC 5424: empty {name} (two spaces in the header)")
    if timestamp != "-" and _TIMESTAMP.match(timestamp) is None:
        raise SyslogFormatError(f"RFC 5424: TIMESTAMP {timestamp[:40]!r} is not RFC 3339")
    fields["format"] = "rfc5424"
    fields["timestamp"] = None if timestamp == "-" else timestamp
    fields["hostname"] = None if hostname == "-" else hostname
    fields["app_name"] = None if app_name == "-" else app_name
    fields["procid"] = None if procid == "-" else procid
    fields["msgid"] = None if msgid == "-" else msgid
    data, end = _structured_data(rest)
    fields["structured_data"] = data
    if end == len(rest):
        fields["message"] = ""
    elif rest[end] == " ":
        message = rest[end + 1 :]
        fields["message"] = message[1:] if message.startswith(_BOM) else message
    else:
        raise SyslogFormatError(f"RFC 5424: {rest[end : end + 20]!r} after STRUCTURED-DATA")


def _structured_data(text: str) -> tuple[dict[str, dict[str, Any]], int]:
    """The structured data at the start of ``text``, and where it ends."""
    if text.startswith("-"):
        return {}, 1
    if not text.startswith("["):
        raise SyslogFormatError(f"RFC 5424: STRUCTURED-DATA must be - or [...], got {text[:20]!r}")
    data: dict[str, dict[str, Any]] = {}
    pos = 0
    while text.startswith("[", pos):
        name = _SD_NAME.match(text, pos + 1)
        if name is None:
            raise SyslogFormatError(f"RFC 5424: no SD-ID at {text[pos : pos + 20]!r}")
        params = data.setdefault(name[0], {})
        pos = name.end()
        while (param := _SD_PARAM.match(text, pos)) is not None:
            value = param[2]
            if "\\" in value:
                value = _SD_ESCAPE.sub(r"\1", value)
            _add(params, param[1], value)
            pos = param.end()
        if text.startswith(" ", pos):
            raise SyslogFormatError(
                f'RFC 5424: expected PARAM-NAME="value" at {text[pos : pos + 20]!r}'
            )
        if not text.startswith("]", pos):
            raise SyslogFormatError(f"RFC 5424: an SD-ELEMENT not closed by ] at {pos}")
        pos += 1
    return data, pos


def _add(params: dict[str, Any], name: str, value: str) -> None:
    """Add one parameter; a name seen before gets the list of its values."""
    if name not in params:
        params[name] = value
    elif isinstance(params[name], list):
        params[name].append(value)
    else:
        params[name] = [params[name], value]


def _rfc3164(text: str, pos: int, fields: dict[str, Any]) -> None:
    """``[TIMESTAMP SP [HOSTNAME SP]] [TAG[PID]: ]MSG`` from ``pos`` (after the PRI).

    A word after the timestamp is the hostname, unless it is the last word or looks
    like a tag (``app:`` or ``app[pid]...``): messages sent by a local ``syslog(3)``
    have no hostname.
    """
    fields["format"] = "rfc3164"
    fields["structured_data"] = {}
    stamp = _BSD_TIMESTAMP.match(text, pos)
    if stamp is not None:
        fields["timestamp"] = stamp[0]
        pos = min(stamp.end() + 1, len(text))
        word_end = text.find(" ", pos)
        if word_end > pos:
            word = text[pos:word_end]
            if not word.endswith(":") and "[" not in word:
                fields["hostname"] = word
                pos = word_end + 1
    tag = _TAG.match(text, pos)
    if tag is not None:
        fields["app_name"] = tag[1]
        fields["procid"] = tag[2] or None
        pos = tag.end()
    fields["message"] = text[pos:]
