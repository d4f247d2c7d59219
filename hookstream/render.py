"""GLPI's Twig webhook templates (URL, header values, custom body) on Jinja2's sandbox.

Decisions, where GLPI/Twig and hookstream differ or Jinja2 needed help:

- Allow-list as GLPI: tags `apply` (also Jinja's `filter`), `autoescape`, `block`, `if`,
  `for`, `macro`, `set`; the filters of `_FILTER_IMPLS`, the functions of `_FUNCTION_IMPLS`.
  Anything else (include, import, extends, call, with, unknown filters/functions/tests,
  method calls, names or attributes starting with `_`, Jinja globals such as `self`,
  `namespace`, `cycler`, `lipsum`) is an `InvalidTemplate` listing every problem.
- Twig spellings: `x|json_encode`, `~`, `is defined/null/empty/iterable`, `item.a.b`,
  `item['a']`, `for k, v in hash` (key/value pairs; `for v in hash` gives values as in Twig),
  arrow functions in `filter`, `map`, `reduce`, `sort` (`v => ...`, `(a, b) => ...`; they
  see their parameters and every variable in scope, loop and macro ones included).
  Not supported: `..`, `??`, `?:`, `<=>`, two-word tests (`same as`, `divisible by`: use
  `sameas`, `divisibleby`).
- A JSON template is one whose text, past leading `{% %}` tags and comments, opens with
  `[` or a `{` that does not start a tag.
- Undefined values follow Twig's default `strict_variables=false`: a missing key or variable
  is null, `item.missing.deeper` too; using one in arithmetic is a render error.
- Attribute access reads mapping keys, sequence items and `loop.*` only; any attribute of any
  other object is a `RenderError`. Every call goes through the sandbox: only allowed functions
  and the template's own macros can be called.
- Output escaping: no HTML escaping anywhere (GLPI HTML-escapes; its JSON bodies break).
  In a JSON template each `{{ }}` is JSON escaped (strings without their quotes, null,
  true/false, numbers, arrays/hashes as compact PHP JSON); values marked safe
  (`json_encode`, `raw`, `escape`) are left alone.
  Other bodies, URLs and header values print values as Twig does (null and false as '',
  true as '1'); URL values are inserted raw (use `url_encode`). Arrays print as compact JSON
  where Twig would print "Array".
- Bounds (`RenderLimits`): wall time, output bytes, loop iterations plus calls, `range()`
  length, string/list/number growth by operators, filters, `~` and captures, and macro
  recursion depth. Every failure is a `RenderError` with a short reason, never a half body.
"""

from __future__ import annotations

import calendar
import functools
import json
import math
import random
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.runtime import ChainableUndefined, Context, LoopContext, Macro, Undefined
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

from hookstream.errors import InvalidTemplate, RenderError
from hookstream.glpi_json import default_payload, php_float, php_json_encode

__all__ = [
    "CompiledTemplates",
    "RenderLimits",
    "RenderedRequest",
    "compile_templates",
    "render_request",
]


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """Per-render bounds; exceeding any of them is a `RenderError`."""

    max_body_bytes: int = 1_048_576
    max_render_s: float = 0.5
    max_loop_iterations: int = 100_000  # loop iterations, calls and arrow applications
    max_range: int = 10_000


@dataclass(frozen=True, slots=True)
class RenderedRequest:
    """What a webhook sends for one event: the rendered URL, headers and body."""

    url: str
    headers: dict[str, str]
    body: bytes


# --- per-render budget ---
# Filters, the loop guard, calls and operators read the budget of the render in progress
# from a ContextVar: generated template code has no other channel to them, and a ContextVar
# keeps concurrent renders (threads, tasks) apart.

_MAX_INT_BITS = 4096
_MAX_CALL_DEPTH = 50


class _LimitExceeded(Exception):
    """A bound was hit; the message is the short reason shown to the user."""


class _Budget:
    __slots__ = ("deadline", "depth", "limits", "now_s", "rng", "steps_left")

    def __init__(self, limits: RenderLimits, now_s: float) -> None:
        self.limits = limits
        self.now_s = now_s
        self.steps_left = limits.max_loop_iterations
        self.deadline = time.monotonic() + limits.max_render_s
        self.depth = 0
        self.rng: random.Random | None = None

    def step(self) -> None:
        self.steps_left -= 1
        if self.steps_left < 0:
            raise _LimitExceeded("too many loop iterations or calls")
        if time.monotonic() > self.deadline:
            raise _LimitExceeded("render time limit exceeded")

    def check_size(self, value: object) -> None:
        if isinstance(value, str):
            too_big = len(value) > self.limits.max_body_bytes
        elif isinstance(value, (list, tuple, dict)):
            too_big = len(value) > self.limits.max_loop_iterations
        else:
            return
        if too_big:
            raise _LimitExceeded("value larger than the size limits")


_BUDGET: ContextVar[_Budget] = ContextVar("hookstream_render_budget")


def _budget() -> _Budget:
    return _BUDGET.get()  # LookupError outside a render: stops compile-time constant folding


# --- value conversions ---


def _text(value: Any) -> str:
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
        return _php_date(value, "c")
    raise SecurityError(f"a {type(value).__name__} cannot be printed")


def _finalize_text(value: Any) -> str:
    return value if isinstance(value, str) else _text(value)


def _finalize_json(value: Any) -> str:
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
    return _text(value)


def _values(value: Any) -> list[Any]:
    if value is None or isinstance(value, Undefined):
        return []
    if isinstance(value, Mapping):
        return list(value.values())
    if isinstance(value, str):
        return [value]
    return list(value)


def _empty(value: Any) -> bool:
    # Twig's empty: null, false, '', [] and empty countables; 0 and '0' are not empty.
    if value is None or value is False or isinstance(value, Undefined):
        return True
    if isinstance(value, (str, Mapping, list, tuple)):
        return len(value) == 0
    return False


# --- dates ---

_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]
_RELATIVE = re.compile(r"([+-]?\d+)\s*(second|sec|minute|min|hour|day|week)s?(\s+ago)?")
_RELATIVE_S = {"second": 1, "sec": 1, "minute": 60, "min": 60, "hour": 3600, "day": 86400,
               "week": 604800}


def _offset(dt: datetime, colon: bool) -> str:
    seconds = int(dt.utcoffset().total_seconds()) if dt.utcoffset() else 0  # type: ignore[union-attr]
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{sign}{hours:02d}{':' if colon else ''}{minutes:02d}"


def _suffix(day: int) -> str:
    if day in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


_DATE_CODES: dict[str, Callable[[datetime], str]] = {
    "d": lambda d: f"{d.day:02d}", "D": lambda d: _DAYS[d.weekday()][:3],
    "j": lambda d: str(d.day), "l": lambda d: _DAYS[d.weekday()],
    "N": lambda d: str(d.isoweekday()), "S": lambda d: _suffix(d.day),
    "w": lambda d: str(d.isoweekday() % 7), "z": lambda d: str(d.timetuple().tm_yday - 1),
    "W": lambda d: f"{d.isocalendar()[1]:02d}", "F": lambda d: _MONTHS[d.month - 1],
    "m": lambda d: f"{d.month:02d}", "M": lambda d: _MONTHS[d.month - 1][:3],
    "n": lambda d: str(d.month), "t": lambda d: str(calendar.monthrange(d.year, d.month)[1]),
    "L": lambda d: "1" if calendar.isleap(d.year) else "0", "o": lambda d: str(d.isocalendar()[0]),
    "Y": lambda d: str(d.year), "y": lambda d: f"{d.year % 100:02d}",
    "a": lambda d: "am" if d.hour < 12 else "pm", "A": lambda d: "AM" if d.hour < 12 else "PM",
    "g": lambda d: str(d.hour % 12 or 12), "G": lambda d: str(d.hour),
    "h": lambda d: f"{d.hour % 12 or 12:02d}", "H": lambda d: f"{d.hour:02d}",
    "i": lambda d: f"{d.minute:02d}", "s": lambda d: f"{d.second:02d}",
    "u": lambda d: f"{d.microsecond:06d}", "v": lambda d: f"{d.microsecond // 1000:03d}",
    "e": lambda d: getattr(d.tzinfo, "key", None) or _offset(d, True),
    "T": lambda d: (getattr(d.tzinfo, "key", None) and d.tzname()) or _offset(d, True),
    "P": lambda d: _offset(d, True), "O": lambda d: _offset(d, False),
    "p": lambda d: "Z" if not d.utcoffset() else _offset(d, True),
    "Z": lambda d: str(int(d.utcoffset().total_seconds()) if d.utcoffset() else 0),  # type: ignore[union-attr]
    "c": lambda d: _php_date(d, "Y-m-d\\TH:i:sP"), "r": lambda d: _php_date(d, "D, d M Y H:i:s O"),
    "U": lambda d: str(int(d.timestamp())),
}


def _php_date(dt: datetime, fmt: str) -> str:
    out: list[str] = []
    escaped = False
    for char in fmt:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            code = _DATE_CODES.get(char)
            out.append(code(dt) if code else char)
    return "".join(out)


def _to_datetime(value: Any, timezone: Any = None) -> datetime:
    """Twig's date converter. Dates with an offset keep it (GLPI wrote them in its own
    timezone); naive dates, timestamps and `now` are UTC unless a timezone is given."""
    now = datetime.fromtimestamp(_budget().now_s, UTC)
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif value is None or isinstance(value, Undefined) or value in ("", "now"):
        dt = now
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        dt = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        text = value.strip()
        relative = _RELATIVE.fullmatch(text)
        if re.fullmatch(r"-?\d+", text):
            dt = datetime.fromtimestamp(int(text), UTC)
        elif relative:
            amount = int(relative[1]) * _RELATIVE_S[relative[2]]
            dt = now + timedelta(seconds=-amount if relative[3] else amount)
        elif text in ("today", "midnight", "tomorrow", "yesterday"):
            day = now.replace(hour=0, minute=0, second=0, microsecond=0)
            dt = day + timedelta(days={"tomorrow": 1, "yesterday": -1}.get(text, 0))
        else:
            try:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError("unparseable date") from None
            dt = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    else:
        raise TypeError("not a date")
    if isinstance(timezone, str):
        dt = dt.astimezone(ZoneInfo(timezone))
    return dt


# --- filters (Twig semantics) ---


def _arity(fn: Callable[..., Any]) -> int:
    code = getattr(fn, "__code__", None)
    return int(code.co_argcount) if code is not None else 1


def _apply(fn: Callable[..., Any], *args: Any) -> Any:
    # Arrow functions are applied here, not through the sandbox's call(): count them.
    _budget().step()
    return fn(*args[: _arity(fn)])


def _f_filter(value: Any, arrow: Callable[..., Any]) -> Any:
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if _apply(arrow, v, k)}
    return [v for i, v in enumerate(_values(value)) if _apply(arrow, v, i)]


def _f_map(value: Any, arrow: Callable[..., Any]) -> Any:
    if isinstance(value, Mapping):
        return {k: _apply(arrow, v, k) for k, v in value.items()}
    return [_apply(arrow, v, i) for i, v in enumerate(_values(value))]


def _f_reduce(value: Any, arrow: Callable[..., Any], initial: Any = None) -> Any:
    carry = initial
    items = value.items() if isinstance(value, Mapping) else enumerate(_values(value))
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
    return sorted(_values(value), key=key)


def _f_batch(value: Any, size: int, fill: Any = None) -> list[list[Any]]:
    items = _values(value)
    size = max(int(size), 1)
    rows = [items[i:i + size] for i in range(0, len(items), size)]
    if fill is not None and rows and len(rows[-1]) < size:
        rows[-1] = rows[-1] + [fill] * (size - len(rows[-1]))
    return rows


def _f_column(value: Any, name: Any) -> list[Any]:
    return [row[name] for row in _values(value) if isinstance(row, Mapping) and name in row]


def _f_date(value: Any = None, fmt: str | None = None, timezone: Any = None) -> str:
    return _php_date(_to_datetime(value, timezone), fmt or "F j, Y H:i")


def _f_default(value: Any, default: Any = "") -> Any:
    return default if _empty(value) else value


_HTML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#039;"})


def _f_escape(value: Any, strategy: str = "html") -> Markup:
    if isinstance(value, Markup):
        return value
    if strategy in ("html", "html_attr"):
        return Markup(_text(value).translate(_HTML))
    if strategy == "url":
        return Markup(_f_url_encode(value))
    raise ValueError("unsupported escape strategy")


def _f_first(value: Any) -> Any:
    if isinstance(value, str):
        return value[:1]
    items = _values(value)
    return items[0] if items else None


def _f_last(value: Any) -> Any:
    if isinstance(value, str):
        return value[-1:]
    items = _values(value)
    return items[-1] if items else None


_FORMAT_SPEC = re.compile(r"%[-+ #0']*(\d*)(?:\.(\d+))?")


def _f_format(value: Any, *args: Any) -> str:
    fmt = _text(value)
    for width, precision in _FORMAT_SPEC.findall(fmt):
        if len(width) > 4 or len(precision) > 3:  # "%999999999s" would allocate gigabytes
            raise _LimitExceeded("format width too large")
    plain = tuple(a if isinstance(a, (int, float)) and not isinstance(a, bool) else _text(a)
                  for a in args)
    return fmt % plain


def _f_join(value: Any, glue: str = "", last: str | None = None) -> str:
    items = [_text(v) for v in _values(value)]
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
    return list(range(len(_values(value))))


def _f_length(value: Any) -> int:
    if isinstance(value, (str, Mapping, list, tuple)):
        return len(value)
    if value is None or isinstance(value, Undefined):
        return 0
    return len(_text(value))


def _f_merge(value: Any, other: Any) -> Any:
    if isinstance(value, Mapping) and isinstance(other, Mapping):
        return {**value, **other}
    return _values(value) + _values(other)


def _f_nl2br(value: Any) -> str:
    return re.sub(r"(\r\n|\n\r|\n|\r)", r"<br />\1", _text(value))


def _f_raw(value: Any) -> Markup:
    return value if isinstance(value, Markup) else Markup(_text(value))


def _f_replace(value: Any, search: Any, replacement: Any = None) -> str:
    text = _text(value)
    if isinstance(search, Mapping):  # Twig: strtr with a hash, longest keys first
        pairs = {str(k): _text(v) for k, v in search.items() if str(k)}
        if not pairs:
            return text
        pattern = "|".join(re.escape(k) for k in sorted(pairs, key=len, reverse=True))
        return re.sub(pattern, lambda m: pairs[m[0]], text)
    return text.replace(_text(search), _text(replacement))


def _f_reverse(value: Any) -> Any:
    if isinstance(value, str):
        return value[::-1]
    if isinstance(value, Mapping):
        return dict(reversed(list(value.items())))
    return _values(value)[::-1]


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
    seq = seq if isinstance(seq, (str, list)) else _values(seq)
    size = len(seq)
    begin = start if start >= 0 else max(size + start, 0)
    end = size if length is None else min(begin + length, size) if length >= 0 else size + length
    part = seq[begin:max(end, begin)]
    return dict(part) if is_map else part


def _f_split(value: Any, delimiter: str, limit: int | None = None) -> list[str]:
    text = _text(value)
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

    text = re.sub(r"<!--.*?-->", "", _text(value), flags=re.S)
    return re.sub(r"</?(\w+)?[^>]*>", strip, text)


def _f_trim(value: Any, chars: str | None = None, side: str = "both") -> str:
    text = _text(value)
    if side == "left":
        return text.lstrip(chars)
    if side == "right":
        return text.rstrip(chars)
    return text.strip(chars)


def _f_url_encode(value: Any) -> str:
    if isinstance(value, Mapping):  # http_build_query with RFC 3986 encoding
        return "&".join(_query_pairs(value, ""))
    return urllib.parse.quote(_text(value), safe="")


def _query_pairs(value: Mapping[Any, Any], prefix: str) -> Iterator[str]:
    for key, item in value.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(item, (Mapping, list, tuple)):
            nested = item if isinstance(item, Mapping) else dict(enumerate(item))
            yield from _query_pairs(nested, name)
        elif item is not None:
            text = _text(int(item) if isinstance(item, bool) else item)
            yield f"{urllib.parse.quote(name, safe='')}={urllib.parse.quote(text, safe='')}"


def _f_capitalize(value: Any) -> str:
    text = _text(value)
    return text[:1].upper() + text[1:].lower()


_FILTER_IMPLS: dict[str, Callable[..., Any]] = {
    "abs": abs, "batch": _f_batch, "capitalize": _f_capitalize, "column": _f_column,
    "date": _f_date, "default": _f_default, "escape": _f_escape, "filter": _f_filter,
    "first": _f_first, "format": _f_format, "join": _f_join, "json_encode": _f_json_encode,
    "keys": _f_keys, "last": _f_last, "length": _f_length,
    "lower": lambda v: _text(v).lower(), "map": _f_map, "merge": _f_merge, "nl2br": _f_nl2br,
    "raw": _f_raw, "reduce": _f_reduce, "replace": _f_replace, "reverse": _f_reverse,
    "round": _f_round, "slice": _f_slice, "sort": _f_sort, "split": _f_split,
    "striptags": _f_striptags, "title": lambda v: _text(v).title(), "trim": _f_trim,
    "upper": lambda v: _text(v).upper(), "url_encode": _f_url_encode,
}
_ARROW_FILTERS = frozenset({"filter", "map", "reduce", "sort"})


# --- functions ---


def _fn_range(low: Any, high: Any, step: int = 1) -> list[Any]:
    """Twig's range: inclusive of `high`, integers or single letters."""
    letters = isinstance(low, str) and isinstance(high, str)
    start, stop = (ord(low[:1]), ord(high[:1])) if letters else (int(low), int(high))
    step = abs(int(step)) or 1
    if (abs(stop - start) // step) + 1 > _budget().limits.max_range:
        raise _LimitExceeded("range() longer than the range limit")
    numbers = range(start, stop + 1, step) if stop >= start else range(start, stop - 1, -step)
    return [chr(n) for n in numbers] if letters else list(numbers)


def _fn_max(*args: Any) -> Any:
    return max(_values(args[0]) if len(args) == 1 else args)


def _fn_min(*args: Any) -> Any:
    return min(_values(args[0]) if len(args) == 1 else args)


def _fn_random(values: Any = None, maximum: Any = None) -> Any:
    budget = _budget()
    if budget.rng is None:
        budget.rng = random.Random()
    rng = budget.rng
    if values is None:
        return rng.randint(0, 2_147_483_647) if maximum is None else rng.randint(0, int(maximum))
    if isinstance(values, int) and not isinstance(values, bool):
        low, high = (0, values) if maximum is None else (values, int(maximum))
        return rng.randint(min(low, high), max(low, high))
    items = list(values) if isinstance(values, str) else _values(values)
    return rng.choice(items) if items else None


def _fn_date(value: Any = None, timezone: Any = None) -> datetime:
    return _to_datetime(value, timezone)


_FUNCTION_IMPLS: dict[str, Callable[..., Any]] = {
    "date": _fn_date, "max": _fn_max, "min": _fn_min, "random": _fn_random, "range": _fn_range,
}


def _checked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter or function: it spends a step and its result must fit the limits."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        result = fn(*args, **kwargs)
        budget.check_size(result)
        return result

    return wrapper


def _t_sameas(value: Any, other: Any) -> bool:
    return value is other or (type(value) is type(other) and value == other)


_TESTS: dict[str, Callable[..., bool]] = {
    "defined": lambda v: not isinstance(v, Undefined),
    "undefined": lambda v: isinstance(v, Undefined),
    "null": lambda v: v is None or isinstance(v, Undefined),
    "none": lambda v: v is None or isinstance(v, Undefined),
    "empty": _empty,
    "iterable": lambda v: isinstance(v, (Mapping, list, tuple)),
    "even": lambda v: int(v) % 2 == 0, "odd": lambda v: int(v) % 2 == 1,
    "divisibleby": lambda v, n: int(v) % int(n) == 0, "sameas": _t_sameas,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str), "mapping": lambda v: isinstance(v, Mapping),
    "sequence": lambda v: isinstance(v, (list, tuple)),
}


def _tilde(values: tuple[Any, ...]) -> str:
    """Twig's `~`: operands converted as Twig prints them (true is '1', null is '')."""
    return "".join(v if isinstance(v, str) else _text(v) for v in values)


def _loop_guard(iterable: Any, pairs: bool) -> Iterable[Any]:
    """Every `for` iterates through here: Twig's hash iteration, and the iteration budget."""
    if iterable is None or isinstance(iterable, Undefined):
        return ()
    if isinstance(iterable, Mapping):
        items: Iterable[Any] = iterable.items() if pairs else iterable.values()
    elif pairs:
        items = enumerate(_values(iterable))
    else:
        items = iterable if isinstance(iterable, (list, tuple, str)) else _values(iterable)
    return _counted(items, _budget())


def _counted(items: Iterable[Any], budget: _Budget) -> Iterator[Any]:
    for item in items:
        budget.step()
        yield item


# --- the environment: parser (arrows, apply), code generator, sandbox ---


# Jinja forbids custom node types, so an arrow function `(a, b) => body` is parsed into a
# Call of a marker InternalName (templates cannot create InternalNames) with a Tuple of
# InternalName parameters and the body; _CodeGenerator turns it into a Python lambda.
_ARROW = "arrow"


def _is_arrow(node: nodes.Node) -> bool:
    callee = getattr(node, "node", None)
    return isinstance(node, nodes.Call) and isinstance(callee, nodes.InternalName) and (
        callee.name == _ARROW)


class _BindParams(NodeTransformer):
    def __init__(self, params: dict[str, nodes.InternalName]) -> None:
        self.params = params

    def visit_Name(self, node: nodes.Name) -> nodes.Node:
        return self.params.get(node.name, node) if node.ctx == "load" else node


class _Parser(Parser):
    def _arrow(self, params: tuple[str, ...], lineno: int) -> nodes.Call:
        self.stream.expect("gt")
        idents = {name: self.free_identifier(lineno) for name in params}
        body = _BindParams(idents).visit(self.parse_expression())
        marker = self.free_identifier(lineno)
        marker.name = _ARROW
        args = [nodes.Tuple(list(idents.values()), "param", lineno=lineno), body]
        return nodes.Call(marker, args, [], None, None, lineno=lineno)

    def parse_call_args(self) -> tuple[list[nodes.Expr], list[nodes.Keyword], Any, Any]:
        """Jinja's argument parser, plus Twig arrow functions as positional arguments."""
        token = self.stream.expect("lparen")
        args: list[nodes.Expr] = []
        kwargs: list[nodes.Keyword] = []
        while self.stream.current.type != "rparen":
            if args or kwargs:
                self.stream.expect("comma")
                if self.stream.current.type == "rparen":
                    break
            current = self.stream.current
            if current.type == "name" and self.stream.look().type == "assign":
                self.stream.skip(2)
                if self.stream.current.type == "gt":  # v => body
                    args.append(self._arrow((current.value,), current.lineno))
                else:
                    kwargs.append(nodes.Keyword(current.value, self.parse_expression(),
                                                lineno=current.lineno))
                continue
            if kwargs:
                self.fail("positional argument after keyword argument", token.lineno)
            expr = self.parse_expression()
            if self.stream.current.type == "assign" and self.stream.look().type == "gt":
                names = expr.items if isinstance(expr, nodes.Tuple) else [expr]
                if not all(isinstance(n, nodes.Name) for n in names):
                    self.fail("arrow function parameters must be names", token.lineno)
                next(self.stream)
                expr = self._arrow(tuple(n.name for n in names), token.lineno)  # type: ignore[attr-defined]
            args.append(expr)
        self.stream.expect("rparen")
        return args, kwargs, None, None


class _ApplyTag(Extension):
    """Twig's `{% apply filter %}...{% endapply %}`, Jinja's `{% filter %}` block."""

    tags = {"apply"}  # noqa: RUF012 - Jinja reads this class attribute

    def parse(self, parser: Parser) -> nodes.Node:
        node = nodes.FilterBlock(lineno=next(parser.stream).lineno)
        node.filter = parser.parse_filter(None, start_inline=True)  # type: ignore[assignment]
        node.body = parser.parse_statements(("name:endapply",), drop_needle=True)
        return node


class _CodeGenerator(CodeGenerator):
    def visit_Call(
        self, node: nodes.Call, frame: Frame, forward_caller: bool = False
    ) -> None:
        if not _is_arrow(node):
            super().visit_Call(node, frame, forward_caller=forward_caller)
            return
        params, body = node.args
        self.write(f"(lambda {', '.join(p.name for p in params.items)}: ")  # type: ignore[attr-defined]
        self.visit(body, frame)
        self.write(")")


_LOOP_ATTRS = frozenset({"index", "index0", "revindex", "revindex0", "first", "last",
                         "length", "depth", "depth0", "previtem", "nextitem"})


class _Sandbox(SandboxedEnvironment):
    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%", "//"})

    def __init__(self, finalize: Callable[[Any], str]) -> None:
        super().__init__(autoescape=False, undefined=ChainableUndefined, finalize=finalize,
                         extensions=[_ApplyTag], auto_reload=False, cache_size=0)
        self.globals.clear()
        self.globals.update({name: _checked(fn) for name, fn in _FUNCTION_IMPLS.items()})
        self.filters = {name: _checked(fn) for name, fn in _FILTER_IMPLS.items()}
        self.filters["_loop_guard"] = _loop_guard
        self.filters["_tilde"] = _checked(_tilde)
        self.tests = dict(_TESTS)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return _Parser(self, source, name, filename).parse()

    def concat(self, parts: Iterable[str]) -> str:
        """Joins macro output and `{% set %}` captures: checked against the size limit."""
        parts = list(parts)
        budget = _BUDGET.get(None)
        if budget is not None and sum(map(len, parts)) > budget.limits.max_body_bytes:
            raise _LimitExceeded("value larger than the body size limit")
        return "".join(parts)

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`a.b`: a key of a mapping, an item of a sequence or a `loop` field, nothing else."""
        if isinstance(obj, LoopContext) and attribute in _LOOP_ATTRS:
            return getattr(obj, attribute)
        if isinstance(obj, (str, list, tuple)) and not attribute.isdigit():  # 'a'.format
            raise SecurityError(f"cannot read {attribute:.40} of a {type(obj).__name__}")
        return self.getitem(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        """`a[b]` with the same rules as `a.b`; missing keys are undefined (Twig non-strict)."""
        if isinstance(obj, Mapping):
            if argument in obj:
                return obj[argument]
            if isinstance(argument, int) and str(argument) in obj:
                return obj[str(argument)]
            return self.undefined(obj=obj, name=argument)
        if isinstance(obj, (list, tuple, str)):
            index = argument
            if isinstance(argument, str) and argument.lstrip("-").isdigit():
                index = int(argument)
            if isinstance(index, (int, slice)) and not isinstance(index, bool):
                try:
                    return obj[index]
                except IndexError:
                    return self.undefined(obj=obj, name=argument)
            return self.undefined(obj=obj, name=argument)
        if obj is None or isinstance(obj, Undefined):
            return self.undefined(obj=obj, name=argument)
        raise SecurityError(f"cannot read {argument!s:.40} of a {type(obj).__name__}")

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Only allowed functions and the template's macros; depth and result size bounded."""
        if not isinstance(__obj, Macro) and __obj not in __self.globals.values():
            raise SecurityError("only the allowed functions and macros can be called")
        budget = _budget()
        budget.step()
        budget.depth += 1
        try:
            if budget.depth > _MAX_CALL_DEPTH:
                raise _LimitExceeded("macro recursion too deep")
            result = __context.call(__obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        budget.check_size(result)
        return result

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Arithmetic that cannot allocate unbounded strings, lists or integers."""
        budget = _budget()
        if operator == "%" and isinstance(left, str):
            raise SecurityError("string formatting with % is not allowed; use |format")
        ints = isinstance(left, int) and isinstance(right, int)
        if ints and operator == "**" and right > 0 and abs(left) > 1:
            bits = right * abs(left).bit_length()
        elif ints and operator == "*":
            bits = left.bit_length() + right.bit_length()
        else:
            bits = 0
        if bits > _MAX_INT_BITS:
            raise _LimitExceeded("number too large")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                sized = isinstance(seq, (str, list, tuple)) and isinstance(count, int)
                if sized and len(seq) * count > budget.limits.max_body_bytes:
                    raise _LimitExceeded("value larger than the size limits")
        result = self.binop_table[operator](left, right)
        budget.check_size(result)
        return result


_TEXT_ENV = _Sandbox(_finalize_text)
_JSON_ENV = _Sandbox(_finalize_json)


# --- compile-time checks ---

_ALLOWED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.If, nodes.For, nodes.Macro,
    nodes.Assign, nodes.AssignBlock, nodes.Block, nodes.FilterBlock,
    nodes.ScopedEvalContextModifier, nodes.EvalContextModifier, nodes.Scope, nodes.Keyword,
    nodes.Name, nodes.Const, nodes.Tuple, nodes.List, nodes.Dict, nodes.Pair, nodes.CondExpr,
    nodes.BinExpr, nodes.UnaryExpr, nodes.Compare, nodes.Operand, nodes.Concat,
    nodes.Getattr, nodes.Getitem, nodes.Slice, nodes.Filter, nodes.Test, nodes.Call,
    nodes.InternalName,  # only arrow functions make them
)
# Jinja's own globals and special names: reaching them is a sandbox probe, not a typo.
_RESERVED_NAMES = frozenset({"self", "namespace", "cycler", "joiner", "lipsum", "dict",
                             "caller", "environment", "context"})
_TAG_NAMES: dict[type[nodes.Node], str] = {
    nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from",
    nodes.Extends: "extends", nodes.CallBlock: "call", nodes.With: "with",
}


def _problems(tree: nodes.Template) -> list[tuple[int, str]]:
    """Everything outside the allow-list, with line numbers."""
    macros = {m.name for m in tree.find_all(nodes.Macro)}
    called: set[int] = set()
    arrow_args: set[int] = set()
    found: list[tuple[int, str]] = []
    for node in _walk(tree):
        line = node.lineno
        if not isinstance(node, _ALLOWED_NODES):
            tag = _TAG_NAMES.get(type(node))
            found.append((line, f"tag '{tag}' is not allowed" if tag else
                          f"{type(node).__name__} is not allowed"))
        elif isinstance(node, nodes.For) and node.recursive:
            found.append((line, "recursive loops are not allowed"))
        elif _is_arrow(node):
            if id(node) not in arrow_args:
                found.append((line, "arrow functions only go to filter, map, reduce and sort"))
        elif isinstance(node, nodes.Call):
            callee = node.node
            if not isinstance(callee, nodes.Name):
                found.append((line, "method calls are not allowed"))
            elif callee.name not in _FUNCTION_IMPLS and callee.name not in macros:
                found.append((line, f"unknown function '{callee.name}'"))
            called.add(id(callee))
        elif isinstance(node, (nodes.Filter, nodes.Test)):
            kind, known = ("filter", _FILTER_IMPLS) if isinstance(node, nodes.Filter) else (
                "test", _TESTS)
            if node.name not in known:
                found.append((line, f"unknown {kind} '{node.name}'"))
            elif kind == "filter" and node.name in _ARROW_FILTERS:
                arrow_args.update(id(a) for a in node.args)
        elif isinstance(node, nodes.Name):
            if node.name.startswith("_") or node.name in _RESERVED_NAMES:
                found.append((line, f"name '{node.name}' is not allowed"))
            elif node.name in _FUNCTION_IMPLS and id(node) not in called:
                found.append((line, f"function '{node.name}' can only be called"))
        elif isinstance(node, (nodes.Getattr, nodes.Getitem)):
            key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", "")
            if isinstance(key, str) and key.startswith("_"):
                found.append((line, f"attribute '{key}' is not allowed"))
    return found


def _walk(node: nodes.Node) -> Iterator[nodes.Node]:
    # Parents before children: a Call or Filter is seen before its arguments.
    yield node
    for child in node.iter_child_nodes():
        yield from _walk(child)


def _rewrite(tree: nodes.Template) -> None:
    """Route every `for` iterable through the loop guard and every `~` through Twig's
    concatenation; as filters that need a render budget, neither is folded at compile time."""
    for loop in tree.find_all(nodes.For):
        pairs = isinstance(loop.target, nodes.Tuple) and len(loop.target.items) == 2
        loop.iter = nodes.Filter(loop.iter, "_loop_guard", [nodes.Const(pairs)], [], None, None,
                                 lineno=loop.lineno)
    for concat in tree.find_all(nodes.Concat):
        operands = nodes.Tuple(concat.nodes, "load", lineno=concat.lineno)
        concat.nodes = [nodes.Filter(operands, "_tilde", [], [], None, None, lineno=concat.lineno)]


# --- public API ---

_Template = Any  # jinja2.Template; Any keeps mypy --strict quiet about its loose typing


@dataclass(frozen=True, slots=True)
class CompiledTemplates:
    """A webhook's templates, compiled once per definition version; immutable, shareable."""

    url: _Template
    headers: tuple[tuple[str, _Template], ...]
    payload: _Template | None  # None: GLPI's default payload
    payload_is_json: bool


def _compile(env: _Sandbox, label: str, source: str) -> tuple[_Template | None, list[str]]:
    try:
        tree = env.parse(source)
        problems = _problems(tree)
        if problems:
            return None, [f"{label}: line {line}: {message}" for line, message in problems]
        _rewrite(tree)
        code = env.compile(tree, name=label, filename=f"<{label}>")
        return env.template_class.from_code(env, code, env.make_globals(None), None), []
    except TemplateSyntaxError as e:
        return None, [f"{label}: line {e.lineno}: {e.message}"]


def compile_templates(
    url: str, headers: Mapping[str, str], payload: str | None, use_default_payload: bool
) -> CompiledTemplates:
    """Compile a webhook's URL, header value and payload templates.

    Raises `InvalidTemplate` listing every failing template with line numbers.
    """
    errors: list[str] = []
    url_template, found = _compile(_TEXT_ENV, "url", url)
    errors += found
    header_templates: list[tuple[str, _Template]] = []
    for name, value in headers.items():
        template, found = _compile(_TEXT_ENV, f"header {name}", value)
        errors += found
        header_templates.append((name, template))
    body_template = None
    is_json = False
    if not use_default_payload and payload and payload.strip():
        is_json = _is_json_template(payload)
        body_template, found = _compile(_JSON_ENV if is_json else _TEXT_ENV, "payload", payload)
        errors += found
    if errors:
        raise InvalidTemplate("invalid template(s):\n" + "\n".join(f"  - {e}" for e in errors))
    return CompiledTemplates(url_template, tuple(header_templates), body_template, is_json)


def render_request(
    templates: CompiledTemplates,
    event: str,
    item: Mapping[str, Any],
    parent_item: Mapping[str, Any] | None,
    now_s: float,
    limits: RenderLimits = RenderLimits(),
    rng: random.Random | None = None,
) -> RenderedRequest:
    """Render URL, headers and body for one event; `now_s` is the clock for `date`.

    `rng` seeds `random()` (tests pass a seeded one). Raises `RenderError`, never returns a
    partly rendered request.
    """
    budget = _Budget(limits, now_s)
    budget.rng = rng
    token = _BUDGET.set(budget)
    context = {"event": event, "item": item, "parent_item": parent_item}
    label = "url"
    try:
        url = _render(templates.url, context, budget)
        headers: dict[str, str] = {}
        for name, template in templates.headers:
            label = f"header {name}"
            value = _render(template, context, budget).strip()
            if "\r" in value or "\n" in value:
                raise _LimitExceeded("line break in a header value")
            if value:
                headers[name] = value
        label = "payload"
        if templates.payload is None:
            body, is_json = default_payload(item, event, parent_item), True
        else:
            body = _render(templates.payload, context, budget).encode("utf-8")
            if len(body) > limits.max_body_bytes:
                raise _LimitExceeded("body larger than the size limit")
            is_json = _parses_as_json(body)
    except _LimitExceeded as e:
        raise RenderError(f"{label}: {e}") from e
    except Exception as e:  # a template's failure, whatever it is, is this webhook's problem
        raise RenderError(f"{label}{_where(e, label)}: {_reason(e)}") from e
    finally:
        _BUDGET.reset(token)
    if is_json and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    return RenderedRequest(url, headers, body)


_LEADING_TAGS = re.compile(r"\s*(?:\{%.*?%\}|\{#.*?#\}|\s)*", re.S)


def _is_json_template(source: str) -> bool:
    """A body whose text, past leading `{% %}` tags and comments, opens `{` or `[` is JSON."""
    text = source[_LEADING_TAGS.match(source).end():]  # type: ignore[union-attr]
    return text[:1] == "[" or (text[:1] == "{" and text[1:2] not in ("{", "%", "#"))


def _render(template: _Template, context: dict[str, Any], budget: _Budget) -> str:
    parts: list[str] = []
    size = 0
    for chunk in template.generate(context):
        size += len(chunk)
        if size > budget.limits.max_body_bytes:
            raise _LimitExceeded("output larger than the body size limit")
        if time.monotonic() > budget.deadline:
            raise _LimitExceeded("render time limit exceeded")
        parts.append(chunk)
    return "".join(parts)


def _parses_as_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _where(error: BaseException, label: str) -> str:
    # Jinja rewrites tracebacks so template frames carry the template's own line numbers.
    line = None
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == f"<{label}>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" line {line}" if line else ""


def _reason(error: BaseException) -> str:
    # Only messages we wrote ourselves are shown: Python's may quote values (secrets).
    if isinstance(error, SecurityError):
        return f"not allowed: {error}"
    if isinstance(error, RecursionError):
        return "recursion too deep"
    if isinstance(error, ZeroDivisionError):
        return "division by zero"
    return type(error).__name__
