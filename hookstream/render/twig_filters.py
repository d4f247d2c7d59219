"""Twig's filters, with Twig's semantics, for the template sandbox."""

from __future__ import annotations

import functools
import math
import re
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from jinja2.runtime import Undefined
from markupsafe import Markup

from hookstream.render.budget import LimitExceeded, current_budget
from hookstream.render.glpi_json import php_json_encode
from hookstream.render.php_date import format_date, to_datetime
from hookstream.render.twig_values import is_empty, to_text, values_of

__all__ = ["ARROW_FILTERS", "FILTERS"]


def _arity(fn: Callable[..., Any]) -> int:
    code = getattr(fn, "__code__", None)
    return int(code.co_argcount) if code is not None else 1


def _apply(fn: Callable[..., Any], *args: Any) -> Any:
    # Arrow functions are applied here, not through the sandbox's call(): count them.
    current_budget().step()
    return fn(*args[: _arity(fn)])


def _f_filter(value: Any, arrow: Callable[..., Any]) -> Any:
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if _apply(arrow, v, k)}
    return [v for i, v in enumerate(values_of(value)) if _apply(arrow, v, i)]


def _f_map(value: Any, arrow: Callable[..., Any]) -> Any:
    if isinstance(value, Mapping):
        return {k: _apply(arrow, v, k) for k, v in value.items()}
    return [_apply(arrow, v, i) for i, v in enumerate(values_of(value))]


def _f_reduce(value: Any, arrow: Callable[..., Any], initial: Any = None) -> Any:
    carry = initial
    items = value.items() if isinstance(value, Mapping) else enumerate(values_of(value))
    for key, item in items:
        carry = _apply(arrow, carry, item, key)
    return carry


def _f_sort(value: Any, arrow: Callable[..., Any] | None = None) -> Any:
    def compare(a: Any, b: Any) -> int:
        result = _apply(arrow, a, b) if arrow else (a > b) - (a < b)
        return int(result > 0) - int(result < 0)

    key = functools.cmp_to_key(compare)
    if isinstance(value, Mapping):  # asort: keep keys
        return dict(sorted(value.items(), key=lambda kv: key(kv[1])))
    return sorted(values_of(value), key=key)


def _f_batch(value: Any, size: int, fill: Any = None) -> list[list[Any]]:
    items = values_of(value)
    size = max(int(size), 1)
    rows = [items[i:i + size] for i in range(0, len(items), size)]
    if fill is not None and rows and len(rows[-1]) < size:
        rows[-1] = rows[-1] + [fill] * (size - len(rows[-1]))
    return rows


def _f_column(value: Any, name: Any) -> list[Any]:
    return [row[name] for row in values_of(value) if isinstance(row, Mapping) and name in row]


def _f_date(value: Any = None, fmt: str | None = None, timezone: Any = None) -> str:
    return format_date(to_datetime(value, current_budget().now_s, timezone), fmt or "F j, Y H:i")


def _f_default(value: Any, default: Any = "") -> Any:
    return default if is_empty(value) else value


_HTML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#039;"})


def _f_escape(value: Any, strategy: str = "html") -> Markup:
    if isinstance(value, Markup):
        return value
    if strategy in ("html", "html_attr"):
        return Markup(to_text(value).translate(_HTML))
    if strategy == "url":
        return Markup(_f_url_encode(value))
    raise ValueError("unsupported escape strategy")


def _f_first(value: Any) -> Any:
    if isinstance(value, str):
        return value[:1]
    items = values_of(value)
    return items[0] if items else None


def _f_last(value: Any) -> Any:
    if isinstance(value, str):
        return value[-1:]
    items = values_of(value)
    return items[-1] if items else None


_FORMAT_SPEC = re.compile(r"%[-+ #0']*(\d*)(?:\.(\d+))?")


def _f_format(value: Any, *args: Any) -> str:
    fmt = to_text(value)
    for width, precision in _FORMAT_SPEC.findall(fmt):
        if len(width) > 4 or len(precision) > 3:  # "%999999999s" would allocate gigabytes
            raise LimitExceeded("format width too large")
    plain = tuple(a if isinstance(a, (int, float)) and not isinstance(a, bool) else to_text(a)
                  for a in args)
    return fmt % plain


def _f_join(value: Any, glue: str = "", last: str | None = None) -> str:
    items = [to_text(v) for v in values_of(value)]
    if last is not None and len(items) > 1:
        return glue.join(items[:-1]) + last + items[-1]
    return glue.join(items)


def _f_json_encode(value: Any, options: Any = 0) -> Markup:
    flags = 128 if options is True else int(options or 0)
    text = php_json_encode(value, pretty=bool(flags & 128))  # JSON_PRETTY_PRINT
    if flags & 64:  # JSON_UNESCAPED_SLASHES
        text = text.replace("\\/", "/")
    return Markup(text)


def _f_keys(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.keys())
    return list(range(len(values_of(value))))


def _f_length(value: Any) -> int:
    if isinstance(value, (str, Mapping, list, tuple)):
        return len(value)
    if value is None or isinstance(value, Undefined):
        return 0
    return len(to_text(value))


def _f_merge(value: Any, other: Any) -> Any:
    if isinstance(value, Mapping) and isinstance(other, Mapping):
        return {**value, **other}
    return values_of(value) + values_of(other)


def _f_nl2br(value: Any) -> str:
    return re.sub(r"(\r\n|\n\r|\n|\r)", r"<br />\1", to_text(value))


def _f_raw(value: Any) -> Markup:
    return value if isinstance(value, Markup) else Markup(to_text(value))


def _f_replace(value: Any, search: Any, replacement: Any = None) -> str:
    text = to_text(value)
    if isinstance(search, Mapping):  # Twig: strtr with a hash, longest keys first
        pairs = {str(k): to_text(v) for k, v in search.items() if str(k)}
        if not pairs:
            return text
        pattern = "|".join(re.escape(k) for k in sorted(pairs, key=len, reverse=True))
        return re.sub(pattern, lambda m: pairs[m[0]], text)
    return text.replace(to_text(search), to_text(replacement))


def _f_reverse(value: Any) -> Any:
    if isinstance(value, str):
        return value[::-1]
    if isinstance(value, Mapping):
        return dict(reversed(list(value.items())))
    return values_of(value)[::-1]


def _f_round(value: Any, precision: int = 0, method: str = "common") -> float:
    number = float(value or 0)
    scale = 10.0 ** int(precision)
    if method == "ceil":
        return math.ceil(number * scale) / scale
    if method == "floor":
        return math.floor(number * scale) / scale
    quantum = Decimal(1).scaleb(-int(precision))
    return float(Decimal(repr(number)).quantize(quantum, rounding=ROUND_HALF_UP))


def _f_slice(value: Any, start: int, length: int | None = None) -> Any:
    is_map = isinstance(value, Mapping)
    seq: Any = list(value.items()) if is_map else value
    seq = seq if isinstance(seq, (str, list)) else values_of(seq)
    size = len(seq)
    begin = start if start >= 0 else max(size + start, 0)
    end = size if length is None else min(begin + length, size) if length >= 0 else size + length
    part = seq[begin:max(end, begin)]
    return dict(part) if is_map else part


def _f_split(value: Any, delimiter: str, limit: int | None = None) -> list[str]:
    text = to_text(value)
    if delimiter == "":
        size = max(int(limit or 1), 1)
        return [text[i:i + size] for i in range(0, len(text), size)] or [""]
    if limit is None or limit == 0:
        return text.split(delimiter)
    if limit > 0:
        return text.split(delimiter, limit - 1)
    return text.split(delimiter)[:limit]


def _f_striptags(value: Any, allowed: str = "") -> str:
    keep = {t.lower() for t in re.findall(r"<(\w+)>", allowed)}

    def strip(match: re.Match[str]) -> str:
        return match[0] if match[1] and match[1].lower() in keep else ""

    text = re.sub(r"<!--.*?-->", "", to_text(value), flags=re.S)
    return re.sub(r"</?(\w+)?[^>]*>", strip, text)


def _f_trim(value: Any, chars: str | None = None, side: str = "both") -> str:
    text = to_text(value)
    if side == "left":
        return text.lstrip(chars)
    if side == "right":
        return text.rstrip(chars)
    return text.strip(chars)


def _f_url_encode(value: Any) -> str:
    if isinstance(value, Mapping):  # http_build_query with RFC 3986 encoding
        return "&".join(_query_pairs(value, ""))
    return urllib.parse.quote(to_text(value), safe="")


def _query_pairs(value: Mapping[Any, Any], prefix: str) -> Iterator[str]:
    for key, item in value.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(item, (Mapping, list, tuple)):
            nested = item if isinstance(item, Mapping) else dict(enumerate(item))
            yield from _query_pairs(nested, name)
        elif item is not None:
            text = to_text(int(item) if isinstance(item, bool) else item)
            yield f"{urllib.parse.quote(name, safe='')}={urllib.parse.quote(text, safe='')}"


def _f_capitalize(value: Any) -> str:
    text = to_text(value)
    return text[:1].upper() + text[1:].lower()


FILTERS: dict[str, Callable[..., Any]] = {
    "abs": abs, "batch": _f_batch, "capitalize": _f_capitalize, "column": _f_column,
    "date": _f_date, "default": _f_default, "escape": _f_escape, "filter": _f_filter,
    "first": _f_first, "format": _f_format, "join": _f_join, "json_encode": _f_json_encode,
    "keys": _f_keys, "last": _f_last, "length": _f_length,
    "lower": lambda v: to_text(v).lower(), "map": _f_map, "merge": _f_merge, "nl2br": _f_nl2br,
    "raw": _f_raw, "reduce": _f_reduce, "replace": _f_replace, "reverse": _f_reverse,
    "round": _f_round, "slice": _f_slice, "sort": _f_sort, "split": _f_split,
    "striptags": _f_striptags, "title": lambda v: to_text(v).title(), "trim": _f_trim,
    "upper": lambda v: to_text(v).upper(), "url_encode": _f_url_encode,
}
ARROW_FILTERS = frozenset({"filter", "map", "reduce", "sort"})
