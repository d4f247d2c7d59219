"""GLPI search options that webhook filters may name, mapped onto the HL API v2 item.

The option tables, and the getters that read an option's value off an item;
`criteria` compiles filters against them. Option ids, labels and
allowed searchtypes follow GLPI 11 (`CommonITILObject::getSearchOptionsMain/Actors`,
`Ticket::rawSearchOptions`, `Computer::rawSearchOptions`, `SearchOption::getActionsFor`);
see fixtures/README.md section 7. Each option says where its value sits on the item
the webhook carries, since hookstream evaluates filters on that item, not in SQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

# Searchtype sets, as SearchOption::getActionsFor() derives them. A forced `equals`
# also enables `notequals`, as a forced `contains` enables `notcontains`.
TEXT = frozenset({"contains", "notcontains", "empty"})
NUMBER = frozenset({"contains", "notcontains", "empty"})  # contains is labelled "is"
FORCED_EQUALS = frozenset({"equals", "notequals", "empty"})
DROPDOWN = frozenset({"contains", "notcontains", "equals", "notequals", "empty"})
TREE = DROPDOWN | {"under", "notunder"}
DATETIME = frozenset(
    {"equals", "notequals", "lessthan", "morethan", "contains", "notcontains", "empty"}
)
ALL_SEARCHTYPES = DATETIME | {"under", "notunder"}


class Kind(Enum):
    """How an option's value is read and compared."""

    TEXT = "text"  # a string; LIKE semantics
    NUMBER = "number"  # an integer; contains means "is", with optional < <= > >=
    SCALE = "scale"  # urgency/impact/priority: 0 all, -n at least n, n exactly n
    STATUS = "status"  # ITIL status id, with the itemtype's keyword groups
    CHOICE = "choice"  # a plain integer enum (ticket type)
    DROPDOWN = "dropdown"  # {id, name[, completename]} or a list of them
    DATETIME = "datetime"  # an RFC 3339 string
    ACTOR = "actor"  # members of item.team with a given role and type


@dataclass(frozen=True, slots=True)
class SearchOption:
    """One search option: its id, where its value is on the item, what it allows."""

    id: int
    label: str
    kind: Kind
    path: tuple[str, ...]  # key path on the HL item (the object, for dropdowns)
    searchtypes: frozenset[str]
    tree: str | None = None  # ancestors_of kind when under/notunder apply
    role: str | None = None  # actors: team role (requester, assigned, observer)
    member_type: str | None = None  # actors: User, Group or Supplier
    maximum: int = 0  # scales and choices: highest valid value


def _opt(
    id_: int, label: str, kind: Kind, key: str, searchtypes: frozenset[str],
    tree: str | None = None, maximum: int = 0,
) -> SearchOption:
    return SearchOption(id_, label, kind, (key,), searchtypes, tree=tree, maximum=maximum)


def _actor(id_: int, label: str, role: str, member_type: str) -> SearchOption:
    is_group = member_type == "Group"
    return SearchOption(
        id_, label, Kind.ACTOR, ("team",), TREE if is_group else DROPDOWN,
        tree="group" if is_group else None, role=role, member_type=member_type,
    )


_ITIL: tuple[SearchOption, ...] = (
    _opt(1, "title", Kind.TEXT, "name", TEXT),
    _opt(2, "id", Kind.NUMBER, "id", NUMBER),
    _opt(3, "priority", Kind.SCALE, "priority", FORCED_EQUALS, maximum=6),
    _opt(7, "category", Kind.DROPDOWN, "category", TREE, tree="category"),
    _opt(10, "urgency", Kind.SCALE, "urgency", FORCED_EQUALS, maximum=5),
    _opt(11, "impact", Kind.SCALE, "impact", FORCED_EQUALS, maximum=5),
    _opt(12, "status", Kind.STATUS, "status", FORCED_EQUALS),
    _opt(15, "opening date", Kind.DATETIME, "date", DATETIME),
    # 16-18 exist on HL API 2.1+ items only (fixtures/latest); absent means null.
    _opt(16, "closing date", Kind.DATETIME, "date_close", DATETIME),
    _opt(17, "resolution date", Kind.DATETIME, "date_solve", DATETIME),
    _opt(18, "time to resolve", Kind.DATETIME, "resolution_date", DATETIME),
    _opt(19, "last update", Kind.DATETIME, "date_mod", DATETIME),
    _opt(21, "description", Kind.TEXT, "content", TEXT),
    _opt(22, "writer", Kind.DROPDOWN, "user_recipient", DROPDOWN),
    _opt(80, "entity", Kind.DROPDOWN, "entity", TREE, tree="entity"),
    _opt(83, "location", Kind.DROPDOWN, "location", TREE, tree="location"),
    _actor(4, "requester", "requester", "User"),
    _actor(5, "technician", "assigned", "User"),
    _actor(6, "assigned supplier", "assigned", "Supplier"),
    _actor(8, "technician group", "assigned", "Group"),
    _actor(65, "observer group", "observer", "Group"),
    _actor(66, "observer", "observer", "User"),
    _actor(71, "requester group", "requester", "Group"),
)

_TICKET_ONLY: tuple[SearchOption, ...] = (
    _opt(9, "request source", Kind.DROPDOWN, "request_type", DROPDOWN),
    _opt(14, "type", Kind.CHOICE, "type", FORCED_EQUALS, maximum=2),
)

_COMPUTER: tuple[SearchOption, ...] = (
    _opt(1, "name", Kind.TEXT, "name", TEXT),
    _opt(2, "id", Kind.NUMBER, "id", NUMBER),
    _opt(3, "location", Kind.DROPDOWN, "location", TREE, tree="location"),
    _opt(4, "type", Kind.DROPDOWN, "type", DROPDOWN),
    _opt(5, "serial number", Kind.TEXT, "serial", TEXT),
    _opt(6, "inventory number", Kind.TEXT, "otherserial", TEXT),
    _opt(7, "alternate username", Kind.TEXT, "contact", TEXT),
    _opt(8, "alternate username number", Kind.TEXT, "contact_num", TEXT),
    _opt(16, "comments", Kind.TEXT, "comment", TEXT),
    _opt(19, "last update", Kind.DATETIME, "date_mod", DATETIME),
    _opt(23, "manufacturer", Kind.DROPDOWN, "manufacturer", DROPDOWN),
    _opt(24, "technician in charge", Kind.DROPDOWN, "user_tech", DROPDOWN),
    # GLPI's states form a tree, but nothing feeds their ancestors: a plain dropdown.
    _opt(31, "status", Kind.DROPDOWN, "status", DROPDOWN),
    _opt(32, "network", Kind.DROPDOWN, "network", DROPDOWN),
    _opt(40, "model", Kind.DROPDOWN, "model", DROPDOWN),
    _opt(42, "update source", Kind.DROPDOWN, "autoupdatesystem", DROPDOWN),
    _opt(47, "uuid", Kind.TEXT, "uuid", TEXT),
    _opt(49, "group in charge", Kind.DROPDOWN, "group_tech", TREE, tree="group"),
    _opt(70, "user", Kind.DROPDOWN, "user", DROPDOWN),
    _opt(71, "group", Kind.DROPDOWN, "group", TREE, tree="group"),
    _opt(80, "entity", Kind.DROPDOWN, "entity", TREE, tree="entity"),
    _opt(121, "creation date", Kind.DATETIME, "date_creation", DATETIME),
)


def _table(*groups: tuple[SearchOption, ...]) -> dict[int, SearchOption]:
    return {o.id: o for group in groups for o in group}


SEARCH_OPTIONS: dict[str, dict[int, SearchOption]] = {
    "Ticket": _table(_ITIL, _TICKET_ONLY),
    "Change": _table(_ITIL),
    "Problem": _table(_ITIL),
    "Computer": _table(_COMPUTER),
}


@dataclass(frozen=True, slots=True)
class StatusTable:
    """An ITIL itemtype's statuses and GLPI's groups of them (fixtures/README.md 5.1-5.3)."""

    names: dict[int, str]
    solved: frozenset[int]
    closed: frozenset[int]
    process: frozenset[int]

    def keyword(self, value: str) -> frozenset[int] | None:
        """The ids a status filter value selects (SQLProvider::addWhere); None if unknown."""
        every = frozenset(self.names)
        groups = {
            "notold": every - self.solved - self.closed,
            "notclosed": every - self.closed,
            "old": self.solved | self.closed,
            "process": self.process,
            "all": every,
        }
        if value in groups:
            return groups[value]
        if value.lstrip("-").isdigit() and int(value) in self.names:
            return frozenset({int(value)})
        return None


STATUSES: dict[str, StatusTable] = {
    "Ticket": StatusTable(
        names={1: "New", 2: "Processing (assigned)", 3: "Processing (planned)", 4: "Pending",
               5: "Solved", 6: "Closed"},
        solved=frozenset({5}), closed=frozenset({6}), process=frozenset({2, 3}),
    ),
    "Change": StatusTable(
        names={1: "New", 9: "Evaluation", 10: "Approval", 7: "Accepted", 4: "Pending",
               11: "Testing", 12: "Qualification", 5: "Applied", 8: "Review", 6: "Closed",
               14: "Cancelled", 13: "Refused"},
        solved=frozenset({8, 5}), closed=frozenset({6, 14, 13}), process=frozenset({7, 12, 11}),
    ),
    "Problem": StatusTable(
        names={1: "New", 7: "Accepted", 2: "Processing (assigned)", 3: "Processing (planned)",
               4: "Pending", 5: "Solved", 8: "Under observation", 6: "Closed"},
        solved=frozenset({8, 5}), closed=frozenset({6}), process=frozenset({7, 2, 3}),
    ),
}


# Where an option's value sits on the HL API item. Dropdowns and actors read as a
# list of {id, name[, completename]} nodes so that single objects (category), lists
# (an asset's groups) and team members share one set of tests.

Getter = Callable[[Mapping[str, Any]], Any]
_HREF = re.compile(r"/front/(user|group|supplier)\.form\.php\?id=(\d+)")
_HREF_TYPES = {"user": "User", "group": "Group", "supplier": "Supplier"}


def dropdown_nodes(value: Any) -> list[Mapping[str, Any]]:
    """A dropdown value as a list of nodes: null gives [], an object [object]."""
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def team_members(team: Any, role: str, member_type: str) -> list[Mapping[str, Any]]:
    """Members of `item.team` with this role and type, as {id, name} nodes.

    HL API 2.0 members lack `id` and `type` (added later), so both fall back to the
    member's `href` (`/front/user.form.php?id=57`), which every version has.
    """
    members: list[Mapping[str, Any]] = []
    for member in team if isinstance(team, list) else ():
        if not isinstance(member, Mapping) or member.get("role") != role:
            continue
        kind, ident = member.get("type"), member.get("id")
        if kind is None or ident is None:
            found = _HREF.search(str(member.get("href") or ""))
            if found:
                kind = kind or _HREF_TYPES[found[1]]
                ident = ident if ident is not None else int(found[2])
        if kind == member_type:
            members.append({"id": ident, "name": member.get("name")})
    return members


def walk(value: Any, path: tuple[str, ...]) -> Any:
    """The value at a dotted path; through a list it maps over the elements (flattened),
    unless the segment is an index. Missing keys give None."""
    for i, key in enumerate(path):
        if isinstance(value, Mapping):
            value = value.get(key)
        elif isinstance(value, list):
            if key.isdigit():
                value = value[int(key)] if int(key) < len(value) else None
                continue
            found: list[Any] = []
            for element in value:
                sub = walk(element, path[i:])
                found.extend(sub if isinstance(sub, list) else [sub])
            return found
        else:
            return None
    return value


def option_getter(option: SearchOption) -> Getter:
    """A function reading the option's value from an item."""
    key = option.path[0]
    if option.kind is Kind.ACTOR:
        role, member_type = option.role or "", option.member_type or ""
        return lambda item: team_members(item.get("team"), role, member_type)
    if option.kind is Kind.DROPDOWN:
        return lambda item: dropdown_nodes(item.get(key))
    return lambda item: item.get(key)


def path_getter(path: tuple[str, ...]) -> Getter:
    """A function reading a dotted path from an item."""
    if len(path) == 1:
        key = path[0]
        return lambda item: item.get(key)
    return lambda item: walk(item, path)
