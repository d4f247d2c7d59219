"""Webhook filters: GLPI saved-search criteria, compiled once, evaluated per event.

GLPI evaluates a filter by running its search engine for the one item; hookstream
evaluates the same criteria on the HL API item the event carries. Semantics kept:

- Links. The first criterion's link is ignored except its NOT (GLPI's
  `constructCriteriaSQL` only writes a link once the WHERE is not empty); a missing
  link is AND. GLPI writes `a AND b OR NOT c`, so SQL precedence applies: NOT binds
  tightest, then AND, then OR. A filter is therefore an OR of AND-chains.
- Skipped criteria. As in GLPI, a criterion with a null or blank value (other than
  `empty`) and a group with no criteria add nothing, and do not count as "first".
- Missing values behave as SQL over LEFT JOINs would for a positive test (null
  equals, contains, under, lessthan, morethan are false; `empty` is true), and every
  negative searchtype is the exact complement of its positive one, so `notequals 5`
  on a null category is true. For multi-valued fields (actors, asset groups, paths
  through lists) a positive test holds when any value matches; a negative one when
  none does (what users mean; GLPI's row-per-member SQL can say otherwise).
- Text tests fold case and accents, as MySQL's utf8mb4_unicode_ci collation does.

Every problem is found at compile time (InvalidCriteria lists them all), so nothing
fails silently when an event arrives. See search_options for the option tables.
"""

from __future__ import annotations

import calendar
import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

from hookstream.errors import InvalidCriteria
from hookstream.search_options import (
    ALL_SEARCHTYPES,
    SEARCH_OPTIONS,
    STATUSES,
    Getter,
    Kind,
    SearchOption,
    StatusTable,
    option_getter,
    path_getter,
)

Item: TypeAlias = Mapping[str, Any]
AncestorsOf: TypeAlias = Callable[[str, int], tuple[int, ...]]

# Accepted filter inputs: JSON text, decoded criteria, or a whole saved search.
RawCriteria: TypeAlias = "str | Sequence[Mapping[str, Any]] | Mapping[str, Any] | None"

_LINKS = {"AND": ("AND", False), "OR": ("OR", False), "AND NOT": ("AND", True),
          "OR NOT": ("OR", True)}
_NEGATIVE = {"notequals": "equals", "notcontains": "contains", "notunder": "under"}
_TREE_PATH_ENDS = {"entity", "category", "location"}
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")


@dataclass(frozen=True, slots=True)
class _Context:
    ancestors_of: AncestorsOf
    now: datetime | None

    def clock(self) -> datetime:
        now = self.now or datetime.now(UTC)
        return now if now.tzinfo else now.replace(tzinfo=UTC)


_Test: TypeAlias = Callable[[Item, _Context], bool]


@dataclass(frozen=True, slots=True)
class CriteriaResult:
    """Whether an item passed a filter; `failed` explains the first failed condition."""

    matched: bool
    failed: str | None = None


@dataclass(frozen=True, slots=True)
class _Condition:
    label: str  # "status (12) equals notold"
    test: _Test
    show: Callable[[Item], str]  # "item status is 6 (Closed)", built only on failure


@dataclass(frozen=True, slots=True)
class _Group:
    label: str  # where it sits in the filter, e.g. "criteria[2]"
    # OR of AND-chains of (negated, node): SQL precedence, resolved at compile time.
    disjuncts: tuple[tuple[tuple[bool, _Node], ...], ...]

    def test(self, item: Item, ctx: _Context) -> bool:
        for chain in self.disjuncts:
            for negated, node in chain:
                if node.test(item, ctx) == negated:
                    break
            else:
                return True
        return False


_Node: TypeAlias = "_Condition | _Group"


@dataclass(frozen=True, slots=True)
class Criteria:
    """A compiled, immutable filter for one itemtype; `root` None matches everything."""

    itemtype: str
    root: _Group | None


MATCH_ALL = Criteria("*", None)
_MATCHED = CriteriaResult(True)


def evaluate(
    criteria: Criteria, item: Item, ancestors_of: AncestorsOf, *, now: datetime | None = None
) -> CriteriaResult:
    """Run a compiled filter on an HL API item.

    `ancestors_of(kind, id)` gives a tree node's ancestor ids, kind being entity,
    category, location or group; a resolver that returns () makes `under X` match
    X itself only. `now` (aware; default the wall clock) resolves relative dates
    such as `-1DAY`; pass the event time to make evaluation repeatable.
    """
    root = criteria.root
    if root is None:
        return _MATCHED
    ctx = _Context(ancestors_of, now)
    if root.test(item, ctx):
        return _MATCHED
    return CriteriaResult(False, _explain(root, item, ctx))


def _explain(group: _Group, item: Item, ctx: _Context) -> str:
    # Every AND-chain failed; name the first failing literal of the first chain.
    for negated, node in group.disjuncts[0]:
        if node.test(item, ctx) != negated:
            continue
        if isinstance(node, _Group):
            return f"NOT ({node.label}) matched" if negated else _explain(node, item, ctx)
        return f"{'NOT ' if negated else ''}{node.label}: {node.show(item)}"
    return f"{group.label} did not match"


def compile_criteria(itemtype: str, raw: RawCriteria) -> Criteria:
    """Compile GLPI search criteria (JSON text or decoded) for `itemtype`.

    None, blank text, `null` and `[]` give MATCH_ALL. A mapping with a `criteria` key
    (a whole saved search) is accepted too. Raises InvalidCriteria listing every
    problem: malformed shape, bad link, unknown field or searchtype, a searchtype the
    field does not allow, a value the field cannot take.
    """
    criteria, problems = _compile(itemtype, raw)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise InvalidCriteria(f"filter for {itemtype}: {len(problems)} problem(s)\n{lines}")
    return criteria


def criteria_problems(itemtype: str, raw: RawCriteria) -> list[str]:
    """Every problem compile_criteria would report, or [] when the filter is valid."""
    return _compile(itemtype, raw)[1]


def _compile(itemtype: str, raw: object) -> tuple[Criteria, list[str]]:
    if isinstance(raw, str):
        if not raw.strip():
            return MATCH_ALL, []
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            return MATCH_ALL, [f"criteria: not JSON ({e})"]
    if isinstance(raw, Mapping) and "criteria" in raw:
        raw = raw["criteria"]
    if raw is None:
        return MATCH_ALL, []
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
        return MATCH_ALL, [f"criteria: expected a list of criteria, got {type(raw).__name__}"]
    compiler = _Compiler(itemtype)
    root = compiler.group(raw, "criteria", "criteria")
    return Criteria(itemtype, root), compiler.problems


class _Compiler:
    def __init__(self, itemtype: str) -> None:
        self.itemtype = itemtype
        self.options = SEARCH_OPTIONS.get(itemtype, {})
        self.problems: list[str] = []

    def group(self, rows: Sequence[object], where: str, label: str) -> _Group | None:
        terms: list[tuple[str, bool, _Node]] = []
        for i, row in enumerate(rows):
            at = f"{where}[{i}]"
            if not isinstance(row, Mapping):
                self.problems.append(f"{at}: expected an object, got {type(row).__name__}")
                continue
            link = self.link(row.get("link"), at)
            node: _Node | None
            if row.get("meta"):
                self.problems.append(f"{at}: meta criteria (on another itemtype) are not supported")
                continue
            if "criteria" in row:
                sub = row["criteria"]
                if isinstance(sub, str | bytes) or not isinstance(sub, Sequence):
                    self.problems.append(f"{at}.criteria: expected a list")
                    continue
                node = self.group(sub, f"{at}.criteria", at)
            else:
                node = self.condition(row, at)
            if node is not None and link is not None:
                terms.append((link[0], link[1], node))
        if not terms:
            return None
        chains: list[list[tuple[bool, _Node]]] = []
        for n, (op, negated, node) in enumerate(terms):
            if n == 0 or op == "OR":  # the first link is ignored, its NOT is not
                chains.append([])
            chains[-1].append((negated, node))
        return _Group(label, tuple(tuple(chain) for chain in chains))

    def link(self, raw: object, at: str) -> tuple[str, bool] | None:
        if raw is None:
            return _LINKS["AND"]
        parsed = _LINKS.get(" ".join(raw.upper().split())) if isinstance(raw, str) else None
        if parsed is None:
            self.problems.append(f"{at}: link {raw!r} is not one of AND, OR, AND NOT, OR NOT")
        return parsed

    def condition(self, row: Mapping[str, Any], at: str) -> _Condition | None:
        field, searchtype, value = row.get("field"), row.get("searchtype"), row.get("value")
        before = len(self.problems)
        if not isinstance(searchtype, str):
            self.problems.append(f"{at}: searchtype is missing")
        elif searchtype not in ALL_SEARCHTYPES:
            self.problems.append(f"{at}: unknown searchtype {searchtype!r}")
        option, path = self.field(field, at)
        if len(self.problems) > before or not isinstance(searchtype, str):
            return None
        if option is not None and searchtype not in option.searchtypes:
            allowed = ", ".join(sorted(option.searchtypes))
            self.problems.append(f"{at}: searchtype {searchtype!r} is not allowed for "
                                 f"{option.label} ({option.id}); allowed: {allowed}")
            return None
        tree = path[-2] if len(path) >= 2 and path[-1] == "id" else None
        if option is None and searchtype in ("under", "notunder") and tree not in _TREE_PATH_ENDS:
            self.problems.append(f"{at}: {searchtype} needs a tree field (entity.id, "
                                 f"category.id, location.id), not {'.'.join(path)!r}")
            return None
        if searchtype == "empty":
            text = ""
        elif value is None or (isinstance(value, str) and not value.strip()):
            return None  # GLPI drops a criterion without a value
        elif isinstance(value, bool) or not isinstance(value, str | int | float):
            self.problems.append(f"{at}: value must be a string or a number, got {value!r}")
            return None
        else:
            text = str(value)
        return self.build(option, path, searchtype, text, at)

    def field(self, field: object, at: str) -> tuple[SearchOption | None, tuple[str, ...]]:
        if isinstance(field, int) and not isinstance(field, bool):
            field = str(field)
        if not isinstance(field, str) or not field.strip():
            self.problems.append(f"{at}: field must be a search option id or a dotted path")
            return None, ()
        field = field.strip()
        if field.isdigit():
            option = self.options.get(int(field))
            if option is None:
                hint = "" if self.options else " (none are known for it; use a dotted path)"
                self.problems.append(f"{at}: unknown field {field} for {self.itemtype}{hint}")
            return option, option.path if option else ()
        if not _PATH.fullmatch(field):
            self.problems.append(f"{at}: field {field!r} is neither an option id nor a path")
            return None, ()
        return None, tuple(field.split("."))

    def build(self, option: SearchOption | None, path: tuple[str, ...], searchtype: str,
              text: str, at: str) -> _Condition | None:
        positive = _NEGATIVE.get(searchtype, searchtype)
        if option is None:
            name = ".".join(path)
            label = f"{name} {searchtype} {text}".rstrip()
            getter = path_getter(path)
            test = _path_test(getter, positive, text, path[-2] if len(path) > 1 else None)
        else:
            name = option.label
            label = f"{option.label} ({option.id}) {searchtype} {text}".rstrip()
            getter = option_getter(option)
            test = _option_test(option, getter, positive, text,
                                      STATUSES.get(self.itemtype))
        if isinstance(test, str):
            self.problems.append(f"{at}: {label}: {test}")
            return None
        if positive != searchtype:
            test = _negate(test)

        def show(item: Item) -> str:
            return f"item {name} is {_render(getter(item))}"

        return _Condition(label, test, show)


def _negate(test: _Test) -> _Test:
    return lambda item, ctx: not test(item, ctx)


# Value tests. Each builder returns a test for the positive searchtype (equals,
# contains, under, lessthan, morethan, empty), or a str naming what is wrong with the
# value; negatives are wrapped by _negate.

_RELATIVE = re.compile(r"([+-]?\d+)(MINUTE|HOUR|DAY|WEEK|MONTH|YEAR)S?")
_DATE_PREFIX = re.compile(r"\d{4}-\d{2}-\d{2}( \d{2}(:\d{2}(:\d{2})?)?)?")
_NUMBER_IS = re.compile(r"\s*([<>]=?)?\s*(-?\d+(?:\.\d+)?)\s*")
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "": float.__eq__, "<": float.__lt__, "<=": float.__le__, ">": float.__gt__,
    ">=": float.__ge__,
}
_DATE_HELP = "expected a date (2025-11-04 09:15, optional offset), NOW or e.g. -2DAY"


def _option_test(option: SearchOption, get: Getter, st: str, text: str,
                 statuses: StatusTable | None) -> _Test | str:
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


def _nodes_test(nodes_of: Getter, st: str, text: str, tree: str | None) -> _Test | str:
    if st == "contains":
        like = _like(text)

        def contains(item: Item, ctx: _Context) -> bool:
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


def _path_test(get: Getter, st: str, text: str, tree: str | None) -> _Test | str:
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

        def contains(item: Item, ctx: _Context) -> bool:
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


def _date_test(get: Getter, st: str, text: str) -> _Test | str:
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

    def compare(item: Item, ctx: _Context) -> bool:
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


def _date_bound(text: str) -> tuple[Callable[[_Context], datetime], bool] | str:
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


def _under(node: Any, ident: int, tree: str, ctx: _Context) -> bool:
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


def _render(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "empty"
    if isinstance(value, list):
        return ", ".join(_render(v) for v in value)
    if isinstance(value, Mapping) and "id" in value:
        name = value.get("name") or value.get("completename")
        return f"{value['id']} ({name})" if name is not None else str(value["id"])
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return repr(text[:77] + "..." if len(text) > 80 else text) if isinstance(value, str) \
        else text
