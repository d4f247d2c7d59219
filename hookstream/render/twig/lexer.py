"""Twig 3's lexer: template text into tokens, with Twig's whitespace control (`-`, `~`),
its newline rule (one newline right after `%}` or `#}` is dropped, none after `}}`),
`verbatim` sections and double-quoted string interpolation (`"#{expr}"`).

It follows Twig's `Lexer` state machine so that templates split exactly as in GLPI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hookstream.render.twig.errors import TwigSyntaxError

__all__ = ["Token", "tokenize"]

TEXT, VAR_START, VAR_END, BLOCK_START, BLOCK_END = "text", "{{", "}}", "{%", "%}"
NAME, NUMBER, STRING, OPERATOR, PUNCT = "name", "number", "string", "operator", "punctuation"
INTERP_START, INTERP_END, ARROW, EOF = "#{", "}#", "=>", "end of template"

_LINE_CHARS = " \t\0\x0b"
_OPERATORS = [
    "=", "not", "-", "+", "or", "and", "b-or", "b-xor", "b-and", "==", "!=", "<=>", "<", ">",
    ">=", "<=", "not in", "in", "matches", "starts with", "ends with", "has some",
    "has every", "..", "~", "*", "/", "//", "%", "is", "is not", "**", "??",
]


def _operator_regex() -> re.Pattern[str]:
    parts = []
    for op in sorted(set(_OPERATORS), key=len, reverse=True):
        pattern = re.escape(op)
        if op[-1].isalpha():  # a word operator must end before a space, ( [ or {
            pattern += r"(?=[\s()\[{])"
        if op[0].isalpha():  # ...and not follow a dot or a pipe (`a.not`, `a|in`)
            pattern = r"(?<![.|])" + pattern
        parts.append(pattern.replace(r"\ ", r"\s+"))
    return re.compile("|".join(parts))


_OPERATOR = _operator_regex()
_TOKEN_START = re.compile(r"(\{\{|\{%|\{#)(-|~)?")
_VAR_END = re.compile(r"\s*(?:-\}\}\s*|~\}\}[ \t\0\x0b]*|\}\})")
_BLOCK_END = re.compile(r"\s*(?:-%\}\s*\n?|~%\}[ \t\0\x0b]*|%\}\n?)")
_COMMENT_END = re.compile(r"(?:-#\}\s*\n?|~#\}[ \t\0\x0b]*|#\}\n?)")
_VERBATIM = re.compile(r"\s*verbatim\s*(?:-%\}\s*|~%\}[ \t\0\x0b]*|%\})")
_VERBATIM_END = re.compile(r"\{%(-|~)?\s*endverbatim\s*(?:-%\}\s*|~%\}[ \t\0\x0b]*|%\})")
_LINE_TAG = re.compile(r"\s*line\s+(\d+)\s*%\}")
_WHITESPACE = re.compile(r"\s+")
_NAME = re.compile(r"[a-zA-Z_\x7f-\U0010ffff][a-zA-Z0-9_\x7f-\U0010ffff]*")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?([Ee][+\-][0-9]+)?")
_STRING = re.compile(r"\"([^#\"\\]*(?:\\.[^#\"\\]*)*)\"|'([^'\\]*(?:\\.[^'\\]*)*)'", re.S)
_DQ_PART = re.compile(r"[^#\"\\]*(?:(?:\\.|#(?!\{))[^#\"\\]*)*", re.S)
_INTERP_START = re.compile(r"#\{\s*")
_INTERP_END = re.compile(r"\s*\}")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "f": "\f", "a": "\a", "b": "\b",
            "\\": "\\"}
_CSLASH = re.compile(r"\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|.)", re.S)


@dataclass(slots=True)
class Token:
    kind: str
    value: str | int | float
    line: int
    col: int
    pos: int  # offset in the (newline-normalised) source


def _stripcslashes(text: str) -> str:
    """PHP's stripcslashes: C escapes, octal and hex bytes; `\\q` is `q`."""

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] == "x" and len(code) > 1:
            return chr(int(code[1:], 16))
        if code[0] in "01234567":
            return chr(int(code, 8) & 0xFF)
        return _ESCAPES.get(code, code)

    return _CSLASH.sub(one, text) if "\\" in text else text


class _Lexer:
    def __init__(self, source: str) -> None:
        self.code = source
        self.cursor = 0
        self.line = 1
        self.tokens: list[Token] = []
        self.brackets: list[tuple[str, int]] = []
        self.starts = list(_TOKEN_START.finditer(source))
        self.next_start = 0

    def fail(self, message: str, line: int | None = None) -> TwigSyntaxError:
        return TwigSyntaxError(message, line or self.line, self._col(self.cursor))

    def _col(self, pos: int) -> int:
        return pos - self.code.rfind("\n", 0, pos)

    def push(self, kind: str, value: str | int | float = "", pos: int | None = None) -> None:
        if kind == TEXT and value == "":
            return
        at = self.cursor if pos is None else pos
        self.tokens.append(Token(kind, value, self.line, self._col(at), at))

    def move(self, text: str) -> None:
        self.cursor += len(text)
        self.line += text.count("\n")

    def run(self) -> list[Token]:
        end = len(self.code)
        while self.cursor < end:
            self.lex_data()
        self.push(EOF)
        if self.brackets:
            expect, line = self.brackets[-1]
            raise self.fail(f'unclosed "{expect}"', line)
        return self.tokens

    def lex_data(self) -> None:
        while self.next_start < len(self.starts) and (
                self.starts[self.next_start].start() < self.cursor):
            self.next_start += 1
        if self.next_start == len(self.starts):
            self.push(TEXT, self.code[self.cursor:])
            self.move(self.code[self.cursor:])
            return
        start = self.starts[self.next_start]
        self.next_start += 1
        text = content = self.code[self.cursor:start.start()]
        if start.group(2) == "-":
            text = text.rstrip(" \t\n\r\0\x0b")
        elif start.group(2) == "~":
            text = text.rstrip(_LINE_CHARS)
        self.push(TEXT, text)
        self.move(content)
        tag_pos = self.cursor
        self.move(start.group(0))
        opener = start.group(1)
        if opener == "{#":
            found = _COMMENT_END.search(self.code, self.cursor)
            if found is None:
                raise self.fail("unclosed comment")
            self.move(self.code[self.cursor:found.end()])
        elif opener == "{%":
            verbatim = _VERBATIM.match(self.code, self.cursor)
            line_tag = _LINE_TAG.match(self.code, self.cursor)
            if verbatim:
                self.move(verbatim.group(0))
                self.lex_verbatim()
            elif line_tag:
                self.move(line_tag.group(0))
                self.line = int(line_tag.group(1))
            else:
                self.push(BLOCK_START, pos=tag_pos)
                self.lex_tag(_BLOCK_END, BLOCK_END, "block")
        else:
            self.push(VAR_START, pos=tag_pos)
            self.lex_tag(_VAR_END, VAR_END, "variable")

    def lex_verbatim(self) -> None:
        found = _VERBATIM_END.search(self.code, self.cursor)
        if found is None:
            raise self.fail('unclosed "verbatim" block')
        text = self.code[self.cursor:found.start()]
        self.move(self.code[self.cursor:found.end()])
        if found.group(1) == "-":
            text = text.rstrip(" \t\n\r\0\x0b")
        elif found.group(1) == "~":
            text = text.rstrip(_LINE_CHARS)
        self.push(TEXT, text)

    def lex_tag(self, closing: re.Pattern[str], kind: str, what: str) -> None:
        while True:
            if not self.brackets:
                found = closing.match(self.code, self.cursor)
                if found:
                    self.push(kind)
                    self.move(found.group(0))
                    return
            self.lex_expression(what)

    def lex_expression(self, what: str) -> None:
        code = self.code
        space = _WHITESPACE.match(code, self.cursor)
        if space:
            self.move(space.group(0))
            if self.cursor >= len(code):
                raise self.fail(f'unclosed "{what}"')
        if self.cursor >= len(code):
            raise self.fail(f'unclosed "{what}"')
        char = code[self.cursor]
        if code.startswith("=>", self.cursor):
            self.push(ARROW, "=>")
            self.move("=>")
        elif found := _OPERATOR.match(code, self.cursor):
            self.push(OPERATOR, re.sub(r"\s+", " ", found.group(0)))
            self.move(found.group(0))
        elif found := _NAME.match(code, self.cursor):
            self.push(NAME, found.group(0))
            self.move(found.group(0))
        elif found := _NUMBER.match(code, self.cursor):
            text = found.group(0)
            number: int | float = float(text)
            if text.isdigit() and int(text) <= 2**63 - 1:
                number = int(text)
            self.push(NUMBER, number)
            self.move(text)
        elif char in "()[]{}?:.,|":
            if char in "([{":
                self.brackets.append((char, self.line))
            elif char in ")]}":
                if not self.brackets:
                    raise self.fail(f'unexpected "{char}"')
                expect, line = self.brackets.pop()
                if char != {"(": ")", "[": "]", "{": "}"}.get(expect):
                    raise self.fail(f'unclosed "{expect}"', line)
            self.push(PUNCT, char)
            self.cursor += 1
        elif found := _STRING.match(code, self.cursor):
            self.push(STRING, _stripcslashes(found.group(0)[1:-1]))
            self.move(found.group(0))
        elif char == '"':
            self.brackets.append(('"', self.line))
            self.move('"')
            self.lex_dq_string()
        else:
            raise self.fail(f'unexpected character "{char}"')

    def lex_dq_string(self) -> None:
        """The inside of a "..." holding `#{`: string parts and interpolated expressions."""
        code = self.code
        while True:
            if found := _INTERP_START.match(code, self.cursor):
                self.brackets.append(("#{", self.line))
                self.push(INTERP_START)
                self.move(found.group(0))
                self.lex_interpolation()
            elif (found := _DQ_PART.match(code, self.cursor)) and found.group(0):
                self.push(STRING, _stripcslashes(found.group(0)))
                self.move(found.group(0))
            elif code.startswith('"', self.cursor):
                self.brackets.pop()
                self.cursor += 1
                return
            else:
                raise self.fail('unclosed "\\""')

    def lex_interpolation(self) -> None:
        while True:
            if self.brackets[-1][0] == "#{":
                found = _INTERP_END.match(self.code, self.cursor)
                if found:
                    self.brackets.pop()
                    self.push(INTERP_END)
                    self.move(found.group(0))
                    return
            self.lex_expression("variable")


def tokenize(source: str) -> list[Token]:
    """The tokens of a template; raises `TwigSyntaxError` with line and column."""
    return _Lexer(source.replace("\r\n", "\n").replace("\r", "\n")).run()
