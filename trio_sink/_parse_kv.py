"""The ``kv`` parse rule's grammar: ``a=1 b="x y" c='z'``, and its matcher.

The grammar, with ``=`` standing for ``kv_sep`` and ``,`` for a given ``pair_sep``
(both single characters, neither whitespace, a quote nor a backslash):

- A line is one or more pairs, with optional whitespace before the first and after
  the last. Pairs are separated by whitespace (``pair_sep`` None) or by ``,`` with
  optional whitespace around it.
- A pair is ``key=value``, with no whitespace around ``=``. A key is one or more
  characters that are neither whitespace, a quote nor a separator.
- A value is quoted, ``"..."`` or ``'...'``, in which a backslash escapes a backslash
  or a quote (and is kept before any other character); or bare: it does not start
  with a quote, and holds no whitespace (``pair_sep`` None), or no ``,`` and neither
  starts nor ends with whitespace (``pair_sep`` given: ``msg=disk full, code=7``).
  A bare value may be empty.

A line with no quote is read with ``str.split`` and ``str.partition`` (the common
case, several times faster); a line with a quote by two regular expressions that
run in linear time. Both read a line the same way (tests/test_parse_rules.py
compares them on random lines).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._parse_matchers import Convert, Matcher, finisher
from ._record import Miss

__all__ = ["kv_grammar", "kv_matcher"]

_UNESCAPE = re.compile(r"""\\([\\"'])""")
_SPACE = re.compile(r"\s")


def kv_grammar(pair_sep: str | None, kv_sep: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Two patterns: one for the whole line (``fullmatch`` it), one for each pair
    (``findall`` gives ``(key, double-quoted, single-quoted, bare)`` text, escapes
    not undone)."""
    kv = re.escape(kv_sep)
    if pair_sep is None:
        key = rf"""[^\s"'{kv}]+"""
        sep = r"\s+"
        bare = r"""(?:[^\s"']\S*)?"""
        end = r"(?=\s|\Z)"
    else:
        ps = re.escape(pair_sep)
        key = rf"""[^\s"'{kv}{ps}]+"""
        sep = rf"\s*{ps}\s*"
        bare = rf"""(?:[^\s"'{ps}](?:[^{ps}]*[^\s{ps}])?)?"""
        end = rf"(?=\s*(?:{ps}|\Z))"

    def pair(g: str) -> str:
        # The quoted values unrolled ([^"\\]*(?:\\.[^"\\]*)*): no alternation per character.
        dq = rf"""({g}[^"\\]*(?:\\.[^"\\]*)*)"""
        sq = rf"""({g}[^'\\]*(?:\\.[^'\\]*)*)"""
        return rf"""({g}{key}){kv}(?:"{dq}"|'{sq}'|({g}{bare})){end}"""

    whole = re.compile(rf"\s*{pair('?:')}(?:{sep}{pair('?:')})*\s*", re.S)
    return whole, re.compile(pair(""), re.S)


def _unescape(text: str) -> str:
    return _UNESCAPE.sub(r"\1", text) if "\\" in text else text


def kv_matcher(
    pair_sep: str | None,
    kv_sep: str,
    convs: tuple[Convert, ...],
    add: Mapping[str, Any],
    label: str,
    miss: str | None,
) -> Matcher:
    """A matcher for lines of ``key=value`` pairs; a key given twice has its last
    value. Separators are single characters, validated."""
    whole, pair = kv_grammar(pair_sep, kv_sep)
    is_pairs = whole.fullmatch
    pairs = pair.findall
    has_space = _SPACE.search
    finish = finisher(convs, add, label, miss)

    def quoted(line: str) -> dict[str, Any] | None:
        if is_pairs(line) is None:
            return None
        return {k: bare if not (d or s) else _unescape(d or s) for k, d, s, bare in pairs(line)}

    def plain(line: str) -> dict[str, Any] | None:
        payload = {}
        if pair_sep is None:
            for token in line.split():
                k, found, v = token.partition(kv_sep)
                if not (found and k):
                    return None
                payload[k] = v
        else:
            for part in line.split(pair_sep):
                k, found, v = part.strip().partition(kv_sep)
                if not (found and k) or has_space(k) or v[:1].isspace():
                    return None
                payload[k] = v
        return payload or None

    def kv(line: Any) -> Any:
        payload = quoted(line) if '"' in line or "'" in line else plain(line)
        if payload is None:
            if miss is not None:
                raise Miss(miss)
            return None
        return payload if finish is None else finish(payload)

    return kv
