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
fails silently when an event arrives. See search_options for the option tables, matchers
for the value tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from hookstream.errors import InvalidCriteria
from hookstream.matching.matchers import (
    AncestorsOf,
    Item,
    ItemTest,
    MatchContext,
    option_test,
    path_test,
)
from hookstream.matching.search_options import (
    ALL_SEARCHTYPES,
    SEARCH_OPTIONS,
    STATUSES,
    SearchOption,
    option_getter,
    path_getter,
)

__all__ = [
    "MATCH_ALL",
    "Criteria",
    "CriteriaResult",
    "compile_criteria",
    "criteria_problems",
    "evaluate",
    "matches",
]

# Accepted filter inputs: JSON text, decoded criteria, or a whole saved search.
RawCriteria: TypeAlias = "str | Sequence[Mapping[str, Any]] | Mapping[str, Any] | None"

_LINKS = {"AND": ("AND", False), "OR": ("OR", False), "AND NOT": ("AND", True),
          "OR NOT": ("OR", True)}
_NEGATIVE = {"notequals": "equals", "notcontains": "contains", "notunder": "under"}
_TREE_PATH_ENDS = {"entity", "category", "location"}
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")


@dataclass(frozen=True, slots=True)
class CriteriaResult:
    """Whether an item passed a filter; `failed` explains the first failed condition."""

    matched: bool
    failed: str | None = None


@dataclass(frozen=True, slots=True)
class _Condition:
    label: str  # "status (12) equals notold"
    test: ItemTest
    show: Callable[[Item], str]  # "item status is 6 (Closed)", built only on failure


@dataclass(frozen=True, slots=True)
class _Group:
    label: str  # where it sits in the filter, e.g. "criteria[2]"
    # OR of AND-chains of (negated, node): SQL precedence, resolved at compile time.
    disjuncts: tuple[tuple[tuple[bool, _Node], ...], ...]

    def test(self, item: Item, ctx: MatchContext) -> bool:
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
    ctx = MatchContext(ancestors_of, now)
    if root.test(item, ctx):
        return _MATCHED
    return CriteriaResult(False, _explain(root, item, ctx))


def matches(criteria: Criteria, item: Item, ctx: MatchContext) -> bool:
    """Whether `item` passes: `evaluate` without the explanation of a failure, for the
    processor's hot path, with a context the caller builds once per event."""
    root = criteria.root
    return root is None or root.test(item, ctx)


def _explain(group: _Group, item: Item, ctx: MatchContext) -> str:
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
            test = path_test(getter, positive, text, path[-2] if len(path) > 1 else None)
        else:
            name = option.label
            label = f"{option.label} ({option.id}) {searchtype} {text}".rstrip()
            getter = option_getter(option)
            test = option_test(option, getter, positive, text, STATUSES.get(self.itemtype))
        if isinstance(test, str):
            self.problems.append(f"{at}: {label}: {test}")
            return None
        if positive != searchtype:
            test = _negate(test)

        def show(item: Item) -> str:
            return f"item {name} is {_render(getter(item))}"

        return _Condition(label, test, show)


def _negate(test: ItemTest) -> ItemTest:
    return lambda item, ctx: not test(item, ctx)


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
