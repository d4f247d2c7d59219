"""Errors of the Twig engine, located by line and column. The messages name the construct,
never a value of the context (values may be secrets)."""

from __future__ import annotations

__all__ = ["TwigError", "TwigRuntimeError", "TwigSyntaxError"]


class TwigError(Exception):
    def __init__(self, message: str, line: int = 0, col: int = 0) -> None:
        self.message = message
        self.line = line
        self.col = col
        super().__init__(f"line {line}, column {col}: {message}" if line else message)


class TwigSyntaxError(TwigError):
    """The template does not parse, or uses what the sandbox does not allow."""


class TwigRuntimeError(TwigError):
    """The template failed while rendering."""
