"""The compiled form of parse rules: one matcher a rule, and typed-field converters.

A matcher is a function ``line -> payload | None``: None when its rule does not match
the line, :class:`~trio_sink.Residue` for a partial parse, and :class:`Unconvertible`
raised when the rule matched but a typed field's text is not of its type; the parse
function of several rules (:mod:`._parse_rules`) tries them in turn. A rule that is
alone is its own parse function: built with ``miss``, the reason of its misses, it
raises :class:`~trio_sink.Miss` instead (with the conversion that failed, if one
did), and no wrapper call is paid. Builders take plain values, already validated.

Everything a matcher needs is prepared when it is built, so that a call allocates
the payload dict and little else: these run once per line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from ._record import Miss, Residue

__all__ = [
    "BOOL_TEXTS",
    "Convert",
    "Matcher",
    "Unconvertible",
    "converters",
    "finisher",
    "json_matcher",
    "none_matcher",
    "regex_matcher",
    "split_matcher",
]

Matcher = Callable[[Any], Any]
Convert = tuple[str, Callable[[Any], Any], str]
"""One typed field: its name, the function that converts its value, and what it
expects (for the reason of a miss: ``"an int"``)."""

BOOL_TEXTS = {
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "on": True,
    "off": False,
    "1": True,
    "0": False,
}
"""The texts a ``bool`` field accepts (compared in lower case), and their values."""


class Unconvertible(Exception):
    """A rule matched, but the value of a typed field is not of its type.

    Internal: the rule then counts as not matching, and the text of this exception
    (``regex #0 (field 'n': 'x' is not an int)``) ends up in the reason of the
    :class:`~trio_sink.Miss` if no other rule matches.
    """

    def __init__(self, label: str, field: str, value: Any, expected: str) -> None:
        shown = repr(value)
        if len(shown) > 40:
            shown = shown[:36] + "..." + shown[-1]
        super().__init__(f"{label} (field {field!r}: {shown} is not {expected})")
        self.label = label


def _unconvertible(
    label: str, field: str, value: Any, expected: str, miss: str | None
) -> Exception:
    """What a matcher raises when a field does not convert: :class:`Unconvertible`,
    or for a lone rule (``miss`` not None) the :class:`~trio_sink.Miss` itself."""
    exc = Unconvertible(label, field, value, expected)
    return exc if miss is None else Miss(f"no rule matched: {exc}")


# -- converters -------------------------------------------------------------------------


def _text_bool(text: str) -> bool:
    value = BOOL_TEXTS.get(text.lower())
    if value is None:
        raise ValueError(text)
    return value


def _json_int(value: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is str:
        return int(value)
    raise TypeError(value)


def _json_float(value: Any) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    if type(value) is str:
        return float(value)
    raise TypeError(value)


def _json_bool(value: Any) -> bool:
    if type(value) is bool:
        return value
    if type(value) is str:
        return _text_bool(value)
    raise TypeError(value)


_encode_json = msgspec.json.Encoder().encode


def _json_str(value: Any) -> str:
    if type(value) is str:
        return value
    return _encode_json(value).decode()


def _time(time_format: str | None) -> tuple[Callable[[str], datetime], str]:
    if time_format is None:
        return datetime.fromisoformat, "a time in ISO 8601"

    def strptime(text: str) -> datetime:
        return datetime.strptime(text, time_format)

    return strptime, f"a time in the format {time_format!r}"


def converters(
    fields: Mapping[str, str], time_format: str | None, *, json: bool
) -> tuple[Convert, ...]:
    """The converters of ``fields`` (name -> type name, validated), in their order.

    For text (``json`` false), ``str`` needs no conversion and is left out. For JSON
    values, a value of the right type is kept, a string is read as text, and ``str``
    turns any other value into its JSON text.
    """
    to_time, time_expected = _time(time_format)
    text: dict[str, tuple[Callable[[Any], Any], str]] = {
        "int": (int, "an int"),
        "float": (float, "a float"),
        "bool": (_text_bool, "a bool"),
        "time": (to_time, time_expected),
    }
    if json:
        text.update(
            int=(_json_int, "an int"),
            float=(_json_float, "a float"),
            bool=(_json_bool, "a bool"),
            str=(_json_str, "a str"),
        )
    return tuple((name, *text[kind]) for name, kind in fields.items() if kind in text)


def _convert(
    payload: dict[str, Any], convs: tuple[Convert, ...], label: str, miss: str | None
) -> None:
    """Convert the typed fields of ``payload`` in place. A field that is absent or
    None is left as it is."""
    for name, convert, expected in convs:
        value = payload.get(name)
        if value is not None:
            try:
                payload[name] = convert(value)
            except (ValueError, TypeError, OverflowError):
                raise _unconvertible(label, name, value, expected, miss) from None


# -- matchers ---------------------------------------------------------------------------


def finisher(
    convs: tuple[Convert, ...], add: Mapping[str, Any], label: str, miss: str | None
) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """What every matcher but regex's does to its payload after a match, or None when
    there is nothing to do."""
    if not convs and not add:
        return None
    fixed = dict(add)

    def finish(payload: dict[str, Any]) -> dict[str, Any]:
        if convs:
            _convert(payload, convs, label, miss)
        if fixed:
            payload.update(fixed)
        return payload

    return finish


def regex_matcher(
    rx: re.Pattern[str],
    mode: str,
    convs: tuple[Convert, ...],
    add: Mapping[str, Any],
    rest: str | None,
    label: str,
    miss: str | None,
) -> Matcher:
    """A matcher for a compiled pattern: its named groups (minus ``rest``) are the
    payload. ``mode`` is ``search``, ``match`` or ``fullmatch``."""
    match = getattr(rx, mode)
    if not convs and not add and rest is None:
        if miss is not None:
            # A lone rule with nothing more to do: the hand-written parse, to the letter.
            def parse(line: Any) -> Any:
                m = match(line)
                if m is None:
                    raise Miss(miss)
                return m.groupdict()

            return parse

        def plain(line: Any) -> Any:
            m = match(line)
            return None if m is None else m.groupdict()

        return plain
    fixed = dict(add)

    def regex(line: Any) -> Any:
        m = match(line)
        if m is None:
            if miss is not None:
                raise Miss(miss)
            return None
        payload = m.groupdict()
        for name, convert, expected in convs:  # _convert, inlined: every group is there
            value = payload[name]
            if value is not None:
                try:
                    payload[name] = convert(value)
                except (ValueError, TypeError, OverflowError):
                    raise _unconvertible(label, name, value, expected, miss) from None
        if fixed:
            payload.update(fixed)
        if rest is not None:
            left = payload.pop(rest)
            if left:
                return Residue(payload, left)
        return payload

    return regex


def json_matcher(
    convs: tuple[Convert, ...], add: Mapping[str, Any], label: str, miss: str | None
) -> Matcher:
    """A matcher for lines that are one JSON object: the object is the payload."""
    decode = msgspec.json.Decoder(dict[str, Any]).decode
    finish = finisher(convs, add, label, miss)

    def json(line: Any) -> Any:
        try:
            payload = decode(line)
        except ValueError:  # not JSON, not an object, or a str that is not UTF-8
            if miss is not None:
                raise Miss(miss) from None
            return None
        return payload if finish is None else finish(payload)

    return json


def split_matcher(
    sep: str | None,
    names: Sequence[str],
    convs: tuple[Convert, ...],
    add: Mapping[str, Any],
    label: str,
    miss: str | None,
) -> Matcher:
    """A matcher that splits a line at ``sep`` (whitespace when None) into one part
    per name, the last taking the rest of the line."""
    names = tuple(names)
    count = len(names)
    maxsplit = count - 1
    finish = finisher(convs, add, label, miss)

    def split(line: Any) -> Any:
        parts = line.split(sep, maxsplit)
        if len(parts) < count:
            if miss is not None:
                raise Miss(miss)
            return None
        payload = dict(zip(names, parts, strict=True))
        return payload if finish is None else finish(payload)

    return split


def none_matcher(field: str, add: Mapping[str, Any]) -> Matcher:
    """A matcher that takes every line whole, as the value of ``field``."""
    fixed = dict(add)

    def none(line: Any) -> Any:
        return {field: line, **fixed}

    return none
