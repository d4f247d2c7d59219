"""The value tests of webhook filters, one per GLPI searchtype and field kind.

Each builder returns a test for the positive searchtype (equals, contains, under,
lessthan, morethan, empty), or a str naming what is wrong with the value; criteria
negates a test for the negative searchtypes.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

from hookstream.matching.search_options import Getter, Kind, SearchOption, StatusTable

__all__ = ["AncestorsOf", "Item", "ItemTest", "MatchContext", "option_test", "path_test"]

Item: TypeAlias = Mapping[str, Any]
AncestorsOf: TypeAlias = Callable[[str, int], tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class MatchContext:
    """What a test needs besides the item: tree ancestry and the clock for relative dates."""

    ancestors_of: AncestorsOf
    now: datetime | None

    def clock(self) -> datetime:
        now = self.now or datetime.now(UTC)
        return now if now.tzinfo else now.replace(tzinfo=UTC)


ItemTest: TypeAlias = Callable[[Item, MatchContext], bool]

_RELATIVE = re.compile(r"([+-]?\d+)(MINUTE|HOUR|DAY|WEEK|MONTH|YEAR)S?")
_DATE_PREFIX = re.compile(r"\d{4}-\d{2}-\d{2}( \d{2}(:\d{2}(:\d{2})?)?)?")
_NUMBER_IS = re.compile(r"\s*([<>]=?)?\s*(-?\d+(?:\.\d+)?)\s*")
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "": float.__eq__, "<": float.__lt__, "<=": float.__le__, ">": float.__gt__,
    ">=": float.__ge__,
}
_DATE_HELP = "expected a date (2025-11-04 09:15, optional offset), NOW or e.g. -2DAY"


def option_test(option: SearchOption, get: Getter, st: str, text: str,
                statuses: StatusTable | None) -> ItemTest | str:
    kind = option.kind
    if st == "empty":
        return lambda item, ctx: _is_empty(get(item))
    if kind is Kind.TEXT:
        like = _like(text)
        return lambda item, ctx: like(_as_text(get(item)))
    if kind is Kind.NUMBER:
        is_ = _number_is(text)
        if is_ is None:
            return "expected a number, or <n, <=n, >n, >=n"
        return lambda item, ctx: _number_ok(get(item), is_)
    if kind is Kind.SCALE or kind is Kind.CHOICE:
        n = _integer(text)
        low = -option.maximum if kind is Kind.SCALE else 1
        if n is None or not low <= n <= option.maximum:
            return f"expected an integer from {low} to {option.maximum}"
        # Scales (SQLProvider): 0 is every value, -n at least n, n exactly n.
        return lambda item, ctx: _number_ok(
            get(item), lambda v: v >= -n if n < 0 else (n == 0 or v == n))
    if kind is Kind.STATUS:
        ids = statuses.keyword(text.strip().lower()) if statuses else None
        if ids is None or statuses is None:
            known = ", ".join(str(i) for i in sorted(statuses.names)) if statuses else ""
            return f"unknown status; expected notold, notclosed, old, process, all or {known}"
        return lambda item, ctx: _id_of(get(item)) in ids
    if kind is Kind.DATETIME:
        return _date_test(get, st, text)
    return _nodes_test(get, st, text, option.tree)  # DROPDOWN, ACTOR


def _nodes_test(nodes_of: Getter, st: str, text: str, tree: str | None) -> ItemTest | str:
    if st == "contains":
        like = _like(text)

        def contains(item: Item, ctx: MatchContext) -> bool:
            nodes = nodes_of(item)
            return any(like(_node_text(n)) for n in nodes) if nodes else like(None)

        return contains
    ident = _integer(text)
    if ident is None or ident < 0:
        if text.strip().lower() in ("myself", "mygroups"):
            return "session values (myself, mygroups) have no meaning outside a GLPI session"
        return "expected an item id (a non-negative integer)"
    if st == "equals":
        return lambda item, ctx: any(n.get("id") == ident for n in nodes_of(item))
    kind = tree or ""
    return lambda item, ctx: any(_under(n.get("id"), ident, kind, ctx) for n in nodes_of(item))


def path_test(get: Getter, st: str, text: str, tree: str | None) -> ItemTest | str:
    if st == "empty":
        return lambda item, ctx: _is_empty(get(item))
    if st == "equals":
        equal = _scalar_equals(text)
        return lambda item, ctx: any(equal(leaf) for leaf in _leaves(get(item)))
    if st == "contains":
        like, is_ = _like(text), _number_is(text)

        def match(leaf: Any) -> bool:
            if isinstance(leaf, Mapping):
                return like(_node_text(leaf))
            if isinstance(leaf, int | float) and is_ is not None:
                return is_(float(leaf))  # numbers: contains means "is", as in GLPI
            return like(None if leaf is None else str(leaf))

        def contains(item: Item, ctx: MatchContext) -> bool:
            leaves = _leaves(get(item))
            return any(match(leaf) for leaf in leaves) if leaves else like(None)

        return contains
    if st == "under":
        ident = _integer(text)
        if ident is None or ident < 0:
            return "expected an item id (a non-negative integer)"
        kind = tree or ""
        return lambda item, ctx: any(_under(leaf, ident, kind, ctx) for leaf in _leaves(get(item)))
    number = _integer(text) if _integer(text) is not None else _float(text)
    if number is None:
        return _date_test(get, st, text)
    limit, less = float(number), st == "lessthan"
    return lambda item, ctx: any(
        _number_ok(leaf, lambda v: v < limit if less else v > limit)
        for leaf in _leaves(get(item)))


def _date_test(get: Getter, st: str, text: str) -> ItemTest | str:
    if st == "contains":
        like = _like(_dmy_to_iso(text))
        return lambda item, ctx: like(_wall_clock(get(item)))
    if st == "equals":
        # GLPI: a prefix of the stored "Y-m-d H:i:s" minus a trailing ":00", so
        # "2025-11-04" is the whole day and "2025-11-04 09:15:00" the minute.
        prefix = _dmy_to_iso(text.strip()).replace("T", " ")
        if not _DATE_PREFIX.fullmatch(prefix):
            return "expected a date such as 2025-11-04 or 2025-11-04 09:15"
        prefix = prefix.removesuffix(":00")
        return lambda item, ctx: (_wall_clock(get(item)) or "").startswith(prefix)
    bound = _date_bound(text)
    if isinstance(bound, str):
        return bound
    limit_of, aware = bound
    less = st == "lessthan"

    def compare(item: Item, ctx: MatchContext) -> bool:
        found = [d for d in map(_parse_date, _leaves(get(item))) if d is not None]
        limit = limit_of(ctx)
        for when in found:
            # Naive values compare with the wall-clock time GLPI stored (the item's
            # own offset dropped); aware ones and relative dates as instants.
            when = (when if when.tzinfo else when.replace(tzinfo=UTC)) if aware \
                else when.replace(tzinfo=None)
            if (when < limit) if less else (when > limit):
                return True
        return False

    return compare


def _date_bound(text: str) -> tuple[Callable[[MatchContext], datetime], bool] | str:
    upper = text.strip().upper()
    if upper == "NOW":
        return (lambda ctx: ctx.clock()), True
    relative = _RELATIVE.fullmatch(upper)
    if relative:
        n, unit = int(relative[1]), relative[2]
        return (lambda ctx: _shift(ctx.clock(), n, unit)), True
    absolute = _parse_date(_dmy_to_iso(text.strip()))
    if absolute is None:
        return _DATE_HELP
    return (lambda ctx: absolute), absolute.tzinfo is not None


def _shift(now: datetime, n: int, unit: str) -> datetime:
    if unit in ("MONTH", "YEAR"):
        months = now.month - 1 + n * (12 if unit == "YEAR" else 1)
        year, month = now.year + months // 12, months % 12 + 1
        day = min(now.day, calendar.monthrange(year, month)[1])
        return now.replace(year=year, month=month, day=day)
    minutes = {"MINUTE": 1, "HOUR": 60, "DAY": 1440, "WEEK": 10080}[unit]
    return now + timedelta(minutes=n * minutes)


def _like(value: str) -> Callable[[str | None], bool]:
    """GLPI's contains (SQL LIKE): substring, `^` anchors the start, `$` the end;
    `NULL` (and `^$`) match null or empty text, a lone `^` any non-null text."""
    text = value.strip()
    if text.lower() == "null" or text in ("^$", "$"):
        return lambda s: s is None or s == ""
    if text == "^":
        return lambda s: s is not None
    start, end = text.startswith("^"), text.endswith("$")
    text = text[1:].lstrip() if start else text
    text = text[:-1].rstrip() if end else text
    needle = _fold(text)
    if start and end:
        return lambda s: s is not None and _fold(s) == needle
    if start:
        return lambda s: s is not None and _fold(s).startswith(needle)
    if end:
        return lambda s: s is not None and _fold(s).endswith(needle)
    return lambda s: s is not None and needle in _fold(s)


def _fold(text: str) -> str:
    # utf8mb4_unicode_ci ignores case and accents: "etage" finds "étage".
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _scalar_equals(text: str) -> Callable[[Any], bool]:
    folded, number = _fold(text.strip()), _float(text)
    flag = {"true": True, "1": True, "false": False, "0": False}.get(text.strip().lower())

    def equal(leaf: Any) -> bool:
        if isinstance(leaf, Mapping):  # a dropdown object: its id, or else its name
            if number is not None:
                return equal(leaf.get("id"))
            names = (leaf.get("name"), leaf.get("completename"))
            return any(isinstance(n, str) and _fold(n) == folded for n in names)
        if isinstance(leaf, bool):
            return flag is leaf
        if isinstance(leaf, int | float):
            return number is not None and leaf == number
        return isinstance(leaf, str) and _fold(leaf) == folded

    return equal


def _number_is(text: str) -> Callable[[float], bool] | None:
    found = _NUMBER_IS.fullmatch(text)
    if not found:
        return None
    compare, operand = _COMPARE[found[1] or ""], float(found[2])
    return lambda v: compare(v, operand)


def _number_ok(value: Any, test: Callable[[float], bool]) -> bool:
    value = _id_of(value)  # a scale or choice the API returned as {id, name}
    return isinstance(value, int | float) and not isinstance(value, bool) and test(float(value))


def _under(node: Any, ident: int, tree: str, ctx: MatchContext) -> bool:
    if not isinstance(node, int) or isinstance(node, bool):
        return False
    # Every entity descends from the root, synced or not.
    return node == ident or (tree == "entity" and ident == 0) or ident in ctx.ancestors_of(
        tree, node)


def _leaves(value: Any) -> list[Any]:
    return value if isinstance(value, list) else ([] if value is None else [value])


def _is_empty(value: Any) -> bool:
    if isinstance(value, list):
        return all(_is_empty(v) for v in value)
    return value is None or value == "" or value == {}


def _id_of(value: Any) -> Any:
    return value.get("id") if isinstance(value, Mapping) else value


def _node_text(node: Mapping[str, Any]) -> str | None:
    # Entities carry completename (what GLPI's option 80 searches); others only name.
    text = node.get("completename") or node.get("name")
    return text if isinstance(text, str) else None


def _as_text(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else str(value)


def _integer(text: str) -> int | None:
    stripped = text.strip()
    return int(stripped) if stripped.lstrip("-").isdigit() else None


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _dmy_to_iso(text: str) -> str:
    # GLPI rewrites d-m-Y and d/m/Y to Y-m-d before comparing.
    return re.sub(r"\b(\d{1,2})[-/](\d{1,2})[-/](\d{4})\b",
                  lambda m: f"{m[3]}-{m[2]:0>2}-{m[1]:0>2}", text)


def _parse_date(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None


def _wall_clock(value: Any) -> str | None:
    # The "Y-m-d H:i:s" GLPI stored: the RFC 3339 value in its own offset, offset dropped.
    when = _parse_date(value)
    if when is None:
        return _as_text(value)
    return when.strftime("%Y-%m-%d %H:%M:%S")

