"""The route condition language: its syntax tree, tokenizer and parser. Pure: no I/O.

:func:`parse` turns the text of a condition into a tree of the frozen node classes
below, or raises :class:`ConditionError`, and nothing else, for any text: the scanner
and the parser read each character a bounded number of times, and nesting is limited
to :data:`MAX_DEPTH` levels. The grammar is in docs/conditions.md; what a tree means
is decided by :mod:`trio_sink._conditions`, which compiles it.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import NoReturn, TypeAlias

import attrs

from ._exceptions import ConfigError

__all__ = [
    "COMPARISONS",
    "KEYWORDS",
    "MAX_DEPTH",
    "And",
    "Compare",
    "ConditionError",
    "Exists",
    "In",
    "Matches",
    "Node",
    "Not",
    "Or",
    "Path",
    "Value",
    "parse",
    "quote",
]

Value: TypeAlias = str | int | float | bool | None
"""A literal: a string, an int, a float, ``true``, ``false`` or ``null``."""

Path: TypeAlias = tuple[str, ...]
"""A field's path: ``("user", "id")`` for ``user.id``."""

COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
KEYWORDS = frozenset({"and", "or", "not", "in", "matches", "exists", "true", "false", "null"})
MAX_DEPTH = 32
"""How deeply parentheses and ``not`` may nest; deeper is a :class:`ConditionError`."""


class ConditionError(ConfigError):
    """The text of a route condition is not a valid condition.

    Raised by ``compile_condition``, never while records are evaluated. :attr:`text` is
    the condition, :attr:`position` the 0-based offset in it where the mistake was found
    (``len(text)`` when the text ended too soon), :attr:`reason` what is wrong there; the
    message adds the text with a caret under the position. It says nothing about records.
    """

    reason: str
    text: str
    position: int

    def __init__(self, reason: str, text: str, position: int) -> None:
        super().__init__(reason, text, position)  # args that pickle
        self.reason = reason
        self.text = text
        self.position = position

    def __str__(self) -> str:
        # The line of the text where the mistake is, at most 40 characters either side.
        start = max(self.text.rfind("\n", 0, self.position) + 1, self.position - 40)
        end = self.text.find("\n", self.position)
        end = min(len(self.text) if end < 0 else end, self.position + 40)
        before = self.text[start : self.position]
        pad = "".join("\t" if c == "\t" else " " for c in before)
        line = f"{before}{self.text[self.position : end]}"
        return f"{self.reason} at {self.position}\n    {line}\n    {pad}^"


# -- the syntax tree ----------------------------------------------------------------------


@attrs.frozen
class Compare:
    """``path op value``: ``op`` is one of :data:`COMPARISONS`."""

    path: Path
    op: str
    value: Value


@attrs.frozen
class In:
    """``path in [values...]``."""

    path: Path
    values: tuple[Value, ...]


@attrs.frozen
class Matches:
    """``path matches "pattern"``; ``regex`` is the pattern, compiled."""

    path: Path
    pattern: str
    regex: re.Pattern[str] = attrs.field(eq=False, repr=False)


@attrs.frozen
class Exists:
    """``exists path``."""

    path: Path


@attrs.frozen
class Not:
    operand: Node


@attrs.frozen
class And:
    """Two or more operands, as written: ``(a and b) and c`` is an And in an And."""

    operands: tuple[Node, ...]


@attrs.frozen
class Or:
    """Two or more operands, as written."""

    operands: tuple[Node, ...]


Node: TypeAlias = Compare | In | Matches | Exists | Not | And | Or


def quote(text: str) -> str:
    """``text`` as a double-quoted string literal of the language."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


# -- tokens -------------------------------------------------------------------------------

_NAME = re.compile(r"[^\W\d]\w*")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_NUMBER_TAIL = re.compile(r"[\w.]+")
_OPERATOR_CHARS = "=!<>&|~"
_PUNCTUATION = "()[],"
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "r": "\r", "t": "\t"}
# Unknown operators, and the one each probably means.
_HINTS = {"=": "==", "===": "==", "!==": "!=", "<>": "!=", "=<": "<=", "=>": ">="}
_HINTS |= {"&": "and", "&&": "and", "|": "or", "||": "or", "!": "not", "=~": "matches"}


@attrs.frozen
class _Token:
    kind: str
    """"name", "keyword", "string", "number", "op", one of "()[]," or "end"."""
    text: str
    """As written (a name's dotted path, a literal's source)."""
    pos: int
    value: Value = None
    offsets: tuple[int, ...] = ()
    """For a string: the offset in the text of each character of its value."""

    def describe(self) -> str:
        if self.kind == "end":
            return "the end"
        return self.text if self.kind in ("string", "number") else quote(self.text)


class _Parser:
    """A recursive descent over the tokens of the whole text, scanned first."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[_Token] = []
        self.at = 0
        self.depth = 0
        pos = 0
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos == len(text):
                self.tokens.append(_Token("end", "", pos))
                break
            self.tokens.append(self.scan(pos))
            pos += len(self.tokens[-1].text)

    def fail(self, reason: str, at: _Token | int | None = None) -> NoReturn:
        at = self.token if at is None else at
        raise ConditionError(reason, self.text, at if isinstance(at, int) else at.pos)

    # -- tokens

    def scan(self, pos: int) -> _Token:
        char = self.text[pos]
        if char in _PUNCTUATION:
            return _Token(char, char, pos)
        if char in "\"'":
            return self.string(pos)
        if number := _NUMBER.match(self.text, pos):
            return self.number(number)
        if name := _NAME.match(self.text, pos):
            return self.name(pos, name.group())
        if char in _OPERATOR_CHARS:
            end = pos
            while end < len(self.text) and self.text[end] in _OPERATOR_CHARS:
                end += 1
            op = self.text[pos:end]
            if op in COMPARISONS:
                return _Token("op", op, pos)
            hint = f' (did you mean "{_HINTS[op]}"?)' if op in _HINTS else ""
            self.fail(f"unknown operator {quote(op)}{hint}", pos)
        if char == "-":
            self.fail('unexpected "-" (a negative number is written -5, with no space)', pos)
        self.fail(f"unexpected character {quote(char)}", pos)

    def name(self, pos: int, first: str) -> _Token:
        parts, end = [first], pos + len(first)
        while self.text.startswith(".", end):
            part = _NAME.match(self.text, end + 1)
            if part is None:
                self.fail('expected a field name after "."', end + 1)
            parts.append(part.group())
            end = part.end()
        if len(parts) == 1 and first in KEYWORDS:
            return _Token("keyword", first, pos)
        offset = pos
        for word in parts:
            if word in KEYWORDS:
                self.fail(f"{quote(word)} is a keyword, not a field name", offset)
            offset += len(word) + 1
        return _Token("name", self.text[pos:end], pos)

    def number(self, match: re.Match[str]) -> _Token:
        pos = match.start()
        tail = _NUMBER_TAIL.match(self.text, match.end())
        source = self.text[pos : tail.end() if tail else match.end()]
        if tail:
            self.fail(f"bad number {quote(source)}", pos)
        value: int | float
        try:
            value = float(source) if match.group(1) or match.group(2) else int(source)
        except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
            self.fail(f"number {quote(source[:20] + '...')} has too many digits", pos)
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(f"number {quote(source)} is too large for a float", pos)
        return _Token("number", source, pos, value)

    def string(self, pos: int) -> _Token:
        quote_char, text = self.text[pos], self.text
        chars: list[str] = []
        offsets: list[int] = []
        i = pos + 1
        while i < len(text) and text[i] != quote_char:
            # Any other backslash is kept as written: "\d+" is a regex's \d+.
            escape = text[i] == "\\" and text[i + 1 : i + 2] in _ESCAPES
            chars.append(_ESCAPES[text[i + 1]] if escape else text[i])
            offsets.append(i)
            i += 2 if escape else 1
        if i == len(text):
            self.fail("unterminated string", pos)
        return _Token("string", text[pos : i + 1], pos, "".join(chars), (*offsets, i))

    # -- the grammar

    @property
    def token(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def is_keyword(self, word: str) -> bool:
        return self.token.kind == "keyword" and self.token.text == word

    def expected(self, what: str, token: _Token | None = None) -> NoReturn:
        token = token or self.token
        got = "" if token.kind == "end" else f", got {token.describe()}"
        hint = ""
        if token.kind == "name" and token.text.lower() in KEYWORDS:
            hint = f" (keywords are lowercase: {quote(token.text.lower())})"
        self.fail(f"expected {what}{got}{hint}", token)

    def nest(self, opener: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"nested more than {MAX_DEPTH} levels deep", opener)

    def condition(self) -> Node:
        if self.token.kind == "end":
            self.fail("empty condition")
        node = self.or_()
        if self.token.kind == ")":
            self.fail('unbalanced ")"')
        if self.token.kind != "end":
            self.expected('"and" or "or"')
        return node

    def or_(self) -> Node:
        operands = [self.and_()]
        while self.is_keyword("or"):
            operands.append(self.and_(after=self.take()))
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_(self, after: _Token | None = None) -> Node:
        operands = [self.not_(after)]
        while self.is_keyword("and"):
            operands.append(self.not_(after=self.take()))
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def not_(self, after: _Token | None) -> Node:
        if not self.is_keyword("not"):
            return self.primary(after)
        keyword = self.take()
        self.nest(keyword)
        node = Not(self.not_(after=keyword))
        self.depth -= 1
        return node

    def primary(self, after: _Token | None) -> Node:
        token = self.token
        if token.kind == "(":
            self.take()
            self.nest(token)
            node = self.or_()
            if self.token.kind == "end":
                self.fail('unclosed "("', token)
            if self.token.kind != ")":
                self.expected('"and", "or" or ")"')
            self.take()
            self.depth -= 1
            return node
        if self.is_keyword("exists"):
            self.take()
            return Exists(self.path('a field name after "exists"'))
        if token.kind == "name":
            return self.test()
        if token.kind == "end" and after is not None:
            self.fail(f"expected a condition after {after.describe()}")
        if token.kind in ("string", "number") or token.text in ("true", "false", "null"):
            self.fail(
                f"expected a field name, got the value {token.text}"
                " (a comparison is written: field op value)"
            )
        self.expected('a condition (a field name, "exists", "not" or "(")')

    def path(self, what: str) -> Path:
        if self.token.kind != "name":
            self.expected(what)
        return tuple(self.take().text.split("."))

    def test(self) -> Node:
        name = self.token
        path = self.path("a field name")
        operator = self.token
        if operator.kind == "op":
            self.take()
            literal = self.token
            value = self.value(f"a value after {operator.describe()}")
            if operator.text not in ("==", "!=") and (value is None or isinstance(value, bool)):
                self.fail(
                    f"{operator.text} compares numbers or strings, not {literal.text}", literal
                )
            return Compare(path, operator.text, value)
        if self.is_keyword("in"):
            self.take()
            return In(path, self.values())
        if self.is_keyword("matches"):
            self.take()
            return self.regex(path)
        if self.is_keyword("not"):
            self.fail(f"a condition is negated before its field: not ({name.text} ...)")
        self.expected(f"an operator after {name.describe()} (==, !=, <, <=, >, >=, in, matches)")

    def value(self, what: str) -> Value:
        token = self.token
        if token.kind in ("string", "number"):
            return self.take().value
        if token.kind == "keyword" and token.text in ("true", "false", "null"):
            self.take()
            return {"true": True, "false": False, "null": None}[token.text]
        if token.kind == "name":
            hint = f"a string is quoted: {quote(token.text)}"
            if (lower := token.text.lower()) in ("true", "false", "null"):
                hint = f"did you mean {lower}?"
            self.fail(f"expected {what}, got the field name {token.text} ({hint})")
        self.expected(what)

    def values(self) -> tuple[Value, ...]:
        bracket = self.token
        if bracket.kind != "[":
            self.expected('"[" after "in"')
        self.take()
        values: list[Value] = []
        while self.token.kind != "]":
            if self.token.kind == "end":
                self.fail('unclosed "["', bracket)
            values.append(self.value("a value in the list"))
            if self.token.kind == ",":
                self.take()
            elif self.token.kind not in ("]", "end"):
                self.expected('"," or "]" in the list')
        self.take()
        return tuple(values)

    def regex(self, path: Path) -> Matches:
        token = self.token
        if token.kind != "string":
            self.expected('a string (the regex) after "matches"')
        self.take()
        assert isinstance(token.value, str)
        try:
            with warnings.catch_warnings():
                # A regex that Python warns about (a FutureWarning: "possible nested set")
                # means something else in a later version: refused like a bad one.
                warnings.simplefilter("error")
                regex = re.compile(token.value)
        except re.error as exc:
            at = token.offsets[exc.pos] if exc.pos is not None else token.pos
            raise ConditionError(f"bad regex: {exc.msg}", self.text, at) from None
        except Warning as warning:
            said = str(warning)
            where = re.search(r" at position (\d+)", said)
            at = token.offsets[int(where.group(1))] if where else token.pos
            said = said.replace(where.group(), "") if where else said
            raise ConditionError(f"bad regex: {said}", self.text, at) from None
        return Matches(path, token.value, regex)


def parse(text: str) -> Node:
    """The syntax tree of ``text``, or :class:`ConditionError`."""
    if not isinstance(text, str):
        raise ConfigError(f"a condition must be a str, got {text!r}")
    return _Parser(text).condition()
