"""Printing a value in each output mode (Twig's echo, HTML escaping, hookstream's JSON
escaping) and locating a failed statement or print for the error message."""

from __future__ import annotations

from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any

from hookstream.render.budget import LimitExceeded
from hookstream.render.glpi_json import php_json_encode
from hookstream.render.twig import nodes as n
from hookstream.render.twig.errors import TwigRuntimeError
from hookstream.render.twig.escape import escape
from hookstream.render.twig.php import Markup, PhpError
from hookstream.render.twig.runtime import Ctx, printable

__all__ = [
    "St", "escaped", "guarded", "json_in_value", "json_string", "locate", "located_error",
    "printed",
]

St = Callable[[Ctx, list[str]], None]


def json_value(value: Any) -> str:
    if isinstance(value, str):
        return encode_basestring(value)[1:-1]
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return php_json_encode(value, pretty=False)


def guarded(node: n.Node, statement: St) -> St:
    """Failures of a statement, located at it, when no inner construct located them."""
    construct = type(node).__name__.lower()

    def run(ctx: Ctx, out: list[str]) -> None:
        try:
            statement(ctx, out)
        except (TwigRuntimeError, LimitExceeded, RecursionError):
            raise
        except PhpError as e:
            raise TwigRuntimeError(f"{construct}: {e}", node.line, node.col) from e
        except Exception as e:
            raise TwigRuntimeError(f"{construct} failed ({type(e).__name__})", node.line,
                                   node.col) from e

    return run


def located_error(node: n.Node, error: Exception) -> TwigRuntimeError:
    if isinstance(error, PhpError):
        return TwigRuntimeError(f"print: {error}", node.line, node.col)
    return TwigRuntimeError(f"print failed ({type(error).__name__})", node.line, node.col)


def locate(ctx: Ctx, printers: list[Callable[[Ctx], str]], prints: list[n.Print],
            error: Exception) -> TwigRuntimeError:
    """The print of a chunk that failed: the printers are pure, so run them again one by one."""
    for printer, node in zip(printers, prints, strict=True):
        try:
            printer(ctx)
        except Exception as e:
            return located_error(node, e)
    return located_error(prints[0], error)


def printed(value: Any) -> str:
    return value if type(value) is str else printable(value)


def escaped(value: Any, strategy: str) -> str:
    if isinstance(value, Markup):
        return value
    return escape(value, strategy) if isinstance(value, str) else printable(value)


def json_string(value: Any) -> str:
    if isinstance(value, Markup):
        return value
    return encode_basestring(printed(value))[1:-1]


def json_in_value(value: Any) -> str:
    if isinstance(value, Markup):
        return value
    return json_value(value)
