"""GLPI's sandbox policy, checked while parsing: the allowed tags, filters and functions of
`TemplateManager::getSecurityPolicy()`, and what hookstream refuses on top of it.

GLPI's Twig reports a disallowed tag, filter or function when rendering; here it is a
compile error with its line and column. Refused beyond GLPI's policy, each harmless for
templates over JSON data: method calls (always null on arrays in Twig), the `constant`
test (it reads PHP constants), names and keys starting with `_` other than `_self`
(Twig internals, and sandbox probes), and names that were Jinja globals.
"""

from __future__ import annotations

from typing import Any

from hookstream.render.twig.errors import TwigSyntaxError
from hookstream.render.twig.lexer import Token

__all__ = [
    "ALLOWED_FILTERS", "ALLOWED_FUNCTIONS", "ALLOWED_TAGS", "check_attribute", "check_filter",
    "check_function", "check_name", "check_tag", "check_test",
]

ALLOWED_TAGS = frozenset({"apply", "autoescape", "block", "if", "for", "macro", "set"})
ALLOWED_FILTERS = frozenset({
    "abs", "batch", "capitalize", "column", "date", "default", "escape", "filter", "first",
    "format", "join", "json_encode", "keys", "last", "length", "lower", "map", "merge", "nl2br",
    "raw", "reduce", "replace", "reverse", "round", "slice", "sort", "split", "striptags",
    "title", "trim", "upper", "url_encode",
})
ALLOWED_FUNCTIONS = frozenset({"date", "max", "min", "random", "range"})
_RESERVED_NAMES = frozenset({"self", "namespace", "cycler", "joiner", "lipsum", "dict",
                             "caller", "environment", "context"})


def _fail(message: str, token: Token) -> TwigSyntaxError:
    return TwigSyntaxError(message, token.line, token.col)


def check_tag(name: str, token: Token) -> None:
    if name not in ALLOWED_TAGS:
        raise _fail(f'tag "{name}" is not allowed', token)


def check_filter(name: str, token: Token) -> None:
    if name not in ALLOWED_FILTERS:
        raise _fail(f'filter "{name}" is not allowed', token)


def check_function(name: str, token: Token) -> None:
    if name not in ALLOWED_FUNCTIONS:
        raise _fail(f'function "{name}" is not allowed', token)


def check_test(name: str, token: Token) -> None:
    if name == "constant":
        raise _fail('test "constant" is not allowed', token)


def check_name(name: str, token: Token) -> None:
    if (name.startswith("_") and name != "_self") or name in _RESERVED_NAMES:
        raise _fail(f'name "{name}" is not allowed', token)
    if name in ALLOWED_FUNCTIONS:
        raise _fail(f'function "{name}" can only be called', token)


def check_attribute(key: Any, token: Token) -> None:
    if isinstance(key, str) and key.startswith("_"):
        raise _fail(f'attribute "{key}" is not allowed', token)
