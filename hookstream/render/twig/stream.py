"""The token stream the parsers read: one token of lookahead and more, `expect` with
errors located at the offending token."""

from __future__ import annotations

from typing import Any

from hookstream.render.twig.errors import TwigSyntaxError
from hookstream.render.twig.lexer import Token

__all__ = ["TokenStream"]


class TokenStream:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.imports: set[str] = set()

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def look(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.tokens[self.index]
        if self.index < len(self.tokens) - 1:
            self.index += 1
        return token

    def test(self, kind: str, value: Any = None) -> bool:
        token = self.current
        return token.kind == kind and (value is None or token.value == value)

    def next_if(self, kind: str, value: Any = None) -> Token | None:
        return self.next() if self.test(kind, value) else None

    def expect(self, kind: str, value: Any = None, message: str | None = None) -> Token:
        token = self.current
        if not self.test(kind, value):
            wanted = f'"{value}"' if value is not None else kind
            raise TwigSyntaxError(message or f'unexpected {token.kind} "{token.value}" '
                                  f"({wanted} expected)", token.line, token.col)
        return self.next()

    def fail(self, message: str, token: Token | None = None) -> TwigSyntaxError:
        token = token or self.current
        return TwigSyntaxError(message, token.line, token.col)
