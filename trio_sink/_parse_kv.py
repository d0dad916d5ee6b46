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
case, the fastest); a line with a quote by one regular expression (:func:`kv_tokens`),
in one pass, in linear time. Both read every line as :func:`kv_grammar` does
(tests/test_parse_rules.py compares them on random lines).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._parse_matchers import Convert, Matcher, finisher
from ._record import Miss

__all__ = ["kv_grammar", "kv_matcher", "kv_tokens"]

_UNESCAPE = re.compile(r"""\\([\\"'])""")
_SPACE = re.compile(r"\s")


def _pair(pair_sep: str | None, kv_sep: str, g: str) -> str:
    """The pattern of one pair and what must follow it; ``g`` is ``""`` for capturing
    groups ``(key, double-quoted, single-quoted, bare)``, ``"?:"`` for none."""
    kv = re.escape(kv_sep)
    if pair_sep is None:
        key = rf"""[^\s"'{kv}]+"""
        bare = r"""(?:[^\s"']\S*)?"""
        end = r"(?=\s|\Z)"
    else:
        ps = re.escape(pair_sep)
        key = rf"""[^\s"'{kv}{ps}]+"""
        bare = rf"""(?:[^\s"'{ps}](?:[^{ps}]*[^\s{ps}])?)?"""
        end = rf"(?=\s*(?:{ps}|\Z))"
    # The quoted values unrolled ([^"\\]*(?:\\.[^"\\]*)*): no alternation per character.
    dq = rf"""({g}[^"\\]*(?:\\.[^"\\]*)*)"""
    sq = rf"""({g}[^'\\]*(?:\\.[^'\\]*)*)"""
    return rf"""({g}{key}){kv}(?:"{dq}"|'{sq}'|({g}{bare})){end}"""


def kv_grammar(pair_sep: str | None, kv_sep: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The grammar as two patterns: the whole line (``fullmatch`` it), and each pair
    (``findall`` gives ``(key, double-quoted, single-quoted, bare)`` text, escapes not
    undone). The reference the tests hold the matcher to; the matcher itself reads a
    line in one pass, with :func:`kv_tokens`."""
    sep = r"\s+" if pair_sep is None else rf"\s*{re.escape(pair_sep)}\s*"
    plain = _pair(pair_sep, kv_sep, "?:")
    whole = re.compile(rf"\s*{plain}(?:{sep}{plain})*\s*", re.S)
    return whole, re.compile(_pair(pair_sep, kv_sep, ""), re.S)


def kv_tokens(pair_sep: str | None, kv_sep: str) -> re.Pattern[str]:
    """A pattern that cuts a whole line into pairs and junk, for ``findall``: a pair
    gives ``(key, double-quoted, single-quoted, bare)``, junk (anything that is not a
    pair where one should be) ``("", "", "", "")``, an empty key. A line is pairs
    (:func:`kv_grammar`'s) exactly when it gives at least one token and no empty key.

    Every token starts where the previous one ended (after whitespace, or after a
    separator): a pair's lookahead and junk's extent leave nothing for ``findall`` to
    skip, but trailing whitespace.
    """
    pair = _pair(pair_sep, kv_sep, "")
    if pair_sep is None:
        return re.compile(rf"\s*(?:{pair}|\S+)", re.S)
    ps = re.escape(pair_sep)
    return re.compile(rf"(?:^|\s*{ps})\s*(?:{pair}|[^{ps}]*)", re.S)


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
    tokens = kv_tokens(pair_sep, kv_sep).findall
    has_space = _SPACE.search
    finish = finisher(convs, add, label, miss)

    def quoted(line: str) -> dict[str, Any] | None:
        payload = {k: b if not (d or s) else _unescape(d or s) for k, d, s, b in tokens(line)}
        return None if not payload or "" in payload else payload

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
