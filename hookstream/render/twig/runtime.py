"""What compiled templates call while rendering: the render's state (`Ctx`), attribute
access (dict and list lookups only), Twig's `in`, `matches`, ranges and the bounds.

Nothing here touches a Python attribute of a value: a template can reach dict keys and list
items of its JSON context, and the values its own expressions build, nothing else.
"""

from __future__ import annotations

import random
import re
from datetime import datetime
from typing import Any

from hookstream.render.budget import Budget, LimitExceeded
from hookstream.render.twig.compare import compare
from hookstream.render.twig.php import (
    INT_MAX,
    Markup,
    PhpError,
    array_items,
        is_array,
    normalize_key,
    to_number,
    to_str,
)

__all__ = [
    "MISSING",
    "Ctx",
    "get_attr",
    "has_attr",
    "in_",
    "matches",
    "php_range",
    "printable",
]

MISSING: Any = object()
_MAX_DEPTH = 50


class Ctx:
    """One render: variables in scope, the budget, the output size so far."""

    __slots__ = ("budget", "depth", "macros", "size", "timezone", "vars")

    def __init__(self, variables: dict[str, Any], budget: Budget, macros: dict[str, Any],
                 timezone: str) -> None:
        self.vars = variables
        self.budget = budget
        self.macros = macros
        self.timezone = timezone
        self.size = 0
        self.depth = 0

    @property
    def rng(self) -> random.Random:
        if self.budget.rng is None:
            self.budget.rng = random.Random()
        return self.budget.rng

    def emit(self, out: list[str], text: str) -> None:
        self.size += len(text)
        if self.size > self.budget.limits.max_body_bytes:
            raise LimitExceeded("output larger than the body size limit")
        out.append(text)

    def enter(self) -> None:
        self.budget.step()
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise LimitExceeded("macro recursion too deep")


def get_attr(obj: Any, key: Any) -> Any:
    """`obj.key` / `obj[key]`: a key of an array, else null (Twig, strict_variables off)."""
    if isinstance(obj, dict):
        if key in obj and not isinstance(key, (bool, float)):
            return obj[key]
        norm = normalize_key(key)
        if norm in obj:
            return obj[norm]
        if isinstance(norm, int):
            return obj.get(str(norm))
        return None
    if isinstance(obj, list):
        norm = key if type(key) is int else normalize_key(key)
        if isinstance(norm, int) and 0 <= norm < len(obj):
            return obj[norm]
        return None
    if isinstance(obj, datetime):
        raise PhpError("dates have no attributes here")
    return None


def has_attr(obj: Any, key: Any) -> bool:
    if isinstance(obj, dict):
        norm = normalize_key(key)
        return key in obj or norm in obj or (isinstance(norm, int) and str(norm) in obj)
    if isinstance(obj, list):
        norm = normalize_key(key)
        return isinstance(norm, int) and 0 <= norm < len(obj)
    return False


def printable(value: Any) -> str:
    """A printed value (PHP's echo)."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        raise PhpError("a date cannot be printed, use the date filter")
    return to_str(value)


def in_(value: Any, seq: Any) -> bool:
    """Twig's `in`: substring for strings, loose membership (twig_compare) for arrays."""
    if isinstance(seq, str):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            text = to_str(value)
            return text == "" or text in seq
        return False
    if not is_array(seq):
        return False
    return any(compare(value, item) == 0 for _, item in array_items(seq))


_REGEX_FLAGS = {"i": re.I, "m": re.M, "s": re.S, "x": re.X, "u": 0, "D": 0, "U": 0}
_PAIRS = {"(": ")", "{": "}", "[": "]", "<": ">"}


def matches(subject: Any, pattern: Any) -> int:
    """Twig's `matches`: PHP's preg_match with a `/.../flags` pattern."""
    text = to_str(pattern)
    if len(text) < 2 or text[0].isalnum() or text[0] == "\\" or text[0].isspace():
        raise PhpError("matches needs a delimited regular expression")
    closing = _PAIRS.get(text[0], text[0])
    end = text.rfind(closing)
    if end <= 0:
        raise PhpError("matches: no ending delimiter")
    flags = 0
    for flag in text[end + 1:]:
        if flag not in _REGEX_FLAGS:
            raise PhpError("matches: unknown modifier")
        flags |= _REGEX_FLAGS[flag]
    try:
        return int(re.search(text[1:end], to_str(subject), flags) is not None)  # preg_match: 0 or 1
    except re.error as e:
        raise PhpError("matches: invalid regular expression") from e


def php_range(ctx: Ctx, low: Any, high: Any, step: Any = 1) -> list[Any]:
    """PHP's range(): inclusive, numbers or single letters, bounded by the range limit."""
    letters = (isinstance(low, str) and isinstance(high, str) and len(low) >= 1
               and len(high) >= 1 and not low[:1].isdigit() and not high[:1].isdigit())
    if letters:
        start, stop = ord(low[0]), ord(high[0])
        size = abs(to_number(step))
        stride = int(size) if size >= 1 else 1
    else:
        start_n, stop_n = to_number(low or 0), to_number(high or 0)
        size = abs(to_number(step))
        if size == 0:
            raise PhpError("range(): step cannot be 0")
        if isinstance(start_n, float) or isinstance(stop_n, float) or isinstance(size, float):
            count = int(abs(stop_n - start_n) / size) + 1
            _check_range(ctx, count)
            sign = 1 if stop_n >= start_n else -1
            return [float(start_n) + sign * i * float(size) for i in range(count)]
        start, stop, stride = int(start_n), int(stop_n), int(size)
    count = abs(stop - start) // stride + 1
    _check_range(ctx, count)
    values = range(start, stop + 1, stride) if stop >= start else range(start, stop - 1, -stride)
    return [chr(v) for v in values] if letters else list(values)


def _check_range(ctx: Ctx, count: int) -> None:
    if count > ctx.budget.limits.max_range or count > INT_MAX:
        raise LimitExceeded("range() longer than the range limit")


def markup(text: str) -> str:
    """A capture as Twig keeps it: Markup, except that an empty capture is ''."""
    return Markup(text) if text else ""
