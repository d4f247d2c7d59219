"""Twig's view of values: how they print (as text or inside JSON), iterate, test and join."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.runtime import Undefined
from markupsafe import Markup

from hookstream.render.glpi_json import php_float, php_json_encode
from hookstream.render.php_date import format_date

__all__ = [
    "TESTS", "finalize_json", "finalize_text", "is_empty", "tilde", "to_text", "values_of",
]


def to_text(value: Any) -> str:
    """A value as Twig prints it outside JSON templates."""
    if isinstance(value, str):
        return value
    if value is None or value is False or isinstance(value, Undefined):
        return ""
    if value is True:
        return "1"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return php_float(value, precision=14, exponent="E")  # PHP's echo uses precision=14
    if isinstance(value, (Mapping, list, tuple)):
        return php_json_encode(value, pretty=False)
    if isinstance(value, datetime):
        return format_date(value, "c")
    raise SecurityError(f"a {type(value).__name__} cannot be printed")


def finalize_text(value: Any) -> str:
    return value if isinstance(value, str) else to_text(value)


def finalize_json(value: Any) -> str:
    if isinstance(value, Markup):
        return value
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)[1:-1]
    if value is None or isinstance(value, Undefined):
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Mapping, list, tuple)):
        return php_json_encode(value, pretty=False)
    return to_text(value)


def values_of(value: Any) -> list[Any]:
    if value is None or isinstance(value, Undefined):
        return []
    if isinstance(value, Mapping):
        return list(value.values())
    if isinstance(value, str):
        return [value]
    return list(value)


def is_empty(value: Any) -> bool:
    # Twig's empty: null, false, '', [] and empty countables; 0 and '0' are not empty.
    if value is None or value is False or isinstance(value, Undefined):
        return True
    if isinstance(value, (str, Mapping, list, tuple)):
        return len(value) == 0
    return False


def _t_sameas(value: Any, other: Any) -> bool:
    return value is other or (type(value) is type(other) and value == other)


TESTS: dict[str, Callable[..., bool]] = {
    "defined": lambda v: not isinstance(v, Undefined),
    "undefined": lambda v: isinstance(v, Undefined),
    "null": lambda v: v is None or isinstance(v, Undefined),
    "none": lambda v: v is None or isinstance(v, Undefined),
    "empty": is_empty,
    "iterable": lambda v: isinstance(v, (Mapping, list, tuple)),
    "even": lambda v: int(v) % 2 == 0, "odd": lambda v: int(v) % 2 == 1,
    "divisibleby": lambda v, n: int(v) % int(n) == 0, "sameas": _t_sameas,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str), "mapping": lambda v: isinstance(v, Mapping),
    "sequence": lambda v: isinstance(v, (list, tuple)),
}


def tilde(values: tuple[Any, ...]) -> str:
    """Twig's `~`: operands converted as Twig prints them (true is '1', null is '')."""
    return "".join(v if isinstance(v, str) else to_text(v) for v in values)
