"""GLPI's legacy REST API items (apirest.php, GLPI 10) in the shape of GLPI 11 webhooks.

GLPI 11 puts the High-Level API v2 object in its webhook payloads (tests/fixtures): nested
`status`, `entity`, `category`, users and groups as `{id, name}`, a `team` for ITIL items,
dates in RFC 3339 with GLPI's offset. The legacy API gives flat rows with foreign keys
(`itilcategories_id: 12`); the poller fetches the rows those keys point at (`names`) and
this module builds the v2 object, keys in the fixtures' order, so templates, filters and
the default payload work on both versions.

Rules: a field the legacy row does not carry, or whose linked row was not readable, is
absent, never invented; a foreign key of 0 is `null` (as GLPI 11 gives it). README
("Poller") lists the fields of the fixtures a GLPI 10 item cannot yield. Rows reach
`to_hl` with their strings unsanitized (`unsanitized_row`, at the API's edge).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

Row = Mapping[str, Any]
# (itemtype, id) -> the legacy row of a linked item (dropdown, user, group, entity)
Names = Mapping[tuple[str, int], Row]

# Status labels (tests/fixtures/README.md 5.1-5.3): GLPI's getAllStatusArray, in English.
STATUS_NAMES: dict[str, dict[int, str]] = {
    "Ticket": {1: "New", 2: "Processing (assigned)", 3: "Processing (planned)", 4: "Pending",
               5: "Solved", 6: "Closed"},
    "Change": {1: "New", 9: "Evaluation", 10: "Approval", 7: "Accepted", 4: "Pending",
               11: "Testing", 12: "Qualification", 5: "Applied", 8: "Review", 6: "Closed",
               14: "Cancelled", 13: "Refused"},
    "Problem": {1: "New", 7: "Accepted", 2: "Processing (assigned)", 3: "Processing (planned)",
                4: "Pending", 5: "Solved", 8: "Under observation", 6: "Closed"},
}
ITIL = frozenset(STATUS_NAMES)

# Actor link tables of an ITIL item: (link itemtype, foreign key, linked itemtype, href page).
TEAM_LINKS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "Ticket": (("Ticket_User", "users_id", "User", "user"),
               ("Group_Ticket", "groups_id", "Group", "group"),
               ("Supplier_Ticket", "suppliers_id", "Supplier", "supplier")),
    "Change": (("Change_User", "users_id", "User", "user"),
               ("Change_Group", "groups_id", "Group", "group"),
               ("Change_Supplier", "suppliers_id", "Supplier", "supplier")),
    "Problem": (("Problem_User", "users_id", "User", "user"),
                ("Group_Problem", "groups_id", "Group", "group"),
                ("Problem_Supplier", "suppliers_id", "Supplier", "supplier")),
}
ROLES = {1: "requester", 2: "assigned", 3: "observer"}

# One field of the v2 object: (v2 key, kind, legacy field, linked itemtype).
# kinds: int, bool, str, date, html (content), status, entity, link ({id,name} or null),
# links (a list of {id,name}: GLPI 11 allows several groups where GLPI 10 has one).
Spec = tuple[str, str, str, str]

_ITIL_HEAD: tuple[Spec, ...] = (
    ("id", "int", "id", ""), ("name", "str", "name", ""), ("content", "html", "content", ""),
    ("is_deleted", "bool", "is_deleted", ""), ("urgency", "int", "urgency", ""),
    ("impact", "int", "impact", ""), ("priority", "int", "priority", ""),
    ("actiontime", "int", "actiontime", ""), ("date_creation", "date", "date_creation", ""),
    ("date_mod", "date", "date_mod", ""), ("date", "date", "date", ""),
)
_ITIL_TAIL: tuple[Spec, ...] = (
    ("status", "status", "status", ""),
    ("category", "link", "itilcategories_id", "ITILCategory"),
    ("location", "link", "locations_id", "Location"),
)
SPECS: dict[str, tuple[Spec, ...]] = {
    "Ticket": (*_ITIL_HEAD, ("type", "int", "type", ""), ("external_id", "str", "externalid", ""),
               *_ITIL_TAIL, ("request_type", "link", "requesttypes_id", "RequestType"),
               ("entity", "entity", "entities_id", "Entity")),
    "Change": (*_ITIL_HEAD, *_ITIL_TAIL, ("entity", "entity", "entities_id", "Entity")),
    "Problem": (*_ITIL_HEAD, *_ITIL_TAIL, ("entity", "entity", "entities_id", "Entity")),
}


# GLPI 10 stores every string sanitized (Glpi\Toolbox\Sanitizer): & < > as numeric entities,
# or, in data from before 10.0, < > as &lt; &gt;; its API gives them so, GLPI 11 gives them raw.
_SANITIZED = (("&#60;", "<"), ("&#62;", ">"), ("&#38;", "&"))
_LEGACY_SANITIZED = (("&lt;", "<"), ("&gt;", ">"))
_RAW_SPECIAL = re.compile(r"<|>|&(?!#?[a-z0-9]+;)", re.I)
_ENCODED = re.compile("&#60;|&#62;|&#38;|&lt;|&gt;")
_LEGACY_IMG = re.compile(r"&lt;img\s+(alt|src|width)=&quot;")


def unsanitized(value: str) -> str:
    """Sanitizer::decodeHtmlSpecialChars of GLPI 10.0: a string holding no raw < > & and
    some entity of the sanitizer is decoded; any other string is raw already (GLPI 11)."""
    if _RAW_SPECIAL.search(value) or not _ENCODED.search(value):
        return value
    mapping = _SANITIZED if any(e in value for e, _ in _SANITIZED) else _LEGACY_SANITIZED
    if mapping is _LEGACY_SANITIZED and _LEGACY_IMG.search(value):
        mapping += (("&quot;", '"'),)  # old followups whose quotes were encoded too
    for entity, char in mapping:  # & last, as GLPI: "&#38;#60;" is "&#60;", not "<"
        value = value.replace(entity, char)
    return value


def unsanitized_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row of GLPI's legacy API with its strings as GLPI 11 would give them. A tree's
    `completename` joins sanitized names with a raw " > ": each name is decoded alone."""
    return {k: (unsanitized_completename(v) if k == "completename" else unsanitized(v))
            if isinstance(v, str) else v for k, v in row.items()}


def unsanitized_completename(value: str) -> str:
    return " > ".join(unsanitized(name) for name in value.split(" > "))


def asset_specs(itemtype: str) -> tuple[Spec, ...]:
    """The v2 fields of an asset (Computer, Monitor, ...): AssetController's _BaseAsset."""
    low = itemtype.lower()
    return (
        ("id", "int", "id", ""), ("name", "str", "name", ""), ("comment", "str", "comment", ""),
        ("date_creation", "date", "date_creation", ""), ("date_mod", "date", "date_mod", ""),
        ("is_recursive", "bool", "is_recursive", ""), ("contact", "str", "contact", ""),
        ("contact_num", "str", "contact_num", ""), ("serial", "str", "serial", ""),
        ("otherserial", "str", "otherserial", ""), ("uuid", "str", "uuid", ""),
        ("is_deleted", "bool", "is_deleted", ""),
        ("status", "link", "states_id", "State"),
        ("location", "link", "locations_id", "Location"),
        ("entity", "entity", "entities_id", "Entity"),
        ("type", "link", f"{low}types_id", f"{itemtype}Type"),
        ("manufacturer", "link", "manufacturers_id", "Manufacturer"),
        ("model", "link", f"{low}models_id", f"{itemtype}Model"),
        ("user", "link", "users_id", "User"),
        ("user_tech", "link", "users_id_tech", "User"),
        ("group", "links", "groups_id", "Group"),
        ("group_tech", "links", "groups_id_tech", "Group"),
        ("network", "link", "networks_id", "Network"),
        ("autoupdatesystem", "link", "autoupdatesystems_id", "AutoUpdateSystem"),
    )


def specs_for(itemtype: str) -> tuple[Spec, ...]:
    return SPECS.get(itemtype) or asset_specs(itemtype)


def glpi_time(value: Any, tz: ZoneInfo) -> str | None:
    """'2025-11-04 09:15:32' (GLPI's local time) as RFC 3339, '2025-11-04T09:15:32+01:00'."""
    if not value:
        return None
    return parse_glpi_time(str(value), tz).isoformat()


def parse_glpi_time(value: str, tz: ZoneInfo) -> datetime:
    return datetime.strptime(value[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=tz)


def _ids(value: Any) -> list[int]:
    """A foreign key as a list of ids: GLPI 10 has one (0 = none), GLPI 11 may give a list."""
    values = value if isinstance(value, list) else [value]
    return [int(v) for v in values if isinstance(v, int | str) and str(v).isdigit() and int(v)]


def lookups_needed(itemtype: str, row: Row, links: Mapping[str, Sequence[Row]] | None = None
                   ) -> set[tuple[str, int]]:
    """The linked rows `to_hl` needs for `row` (and its team links), to be fetched at once."""
    wanted: set[tuple[str, int]] = set()
    for _key, kind, field, linked in specs_for(itemtype):
        if kind in ("link", "links") and field in row:
            wanted |= {(linked, i) for i in _ids(row[field])}
        elif kind == "entity" and isinstance(row.get(field), int):
            wanted.add(("Entity", int(row[field])))
    for link, fk, linked, _page in TEAM_LINKS.get(itemtype, ()):
        for member in (links or {}).get(link, []):
            wanted |= {(linked, i) for i in _ids(member.get(fk))}
    return wanted


def _link(linked: str, ident: int, names: Names) -> dict[str, Any] | None:
    found = names.get((linked, ident))
    return None if found is None else {"id": ident, "name": str(found.get("name", ""))}


def _value(kind: str, value: Any, linked: str, itemtype: str, names: Names, tz: ZoneInfo
           ) -> tuple[bool, Any]:
    """(mappable, v2 value) of one legacy value."""
    if kind == "int":
        return True, None if value is None else int(value)
    if kind == "bool":
        return True, bool(int(value or 0))
    if kind == "str":
        return True, None if value is None else str(value)
    if kind == "date":
        return True, glpi_time(value, tz)
    if kind == "html":
        return True, "" if value is None else str(value)
    if kind == "status":
        label = STATUS_NAMES.get(itemtype, {}).get(int(value))
        return label is not None, {"id": int(value), "name": label}
    if kind == "entity":
        found = names.get(("Entity", int(value)))
        if found is None:
            return False, None
        return True, {"id": int(value), "name": str(found.get("name", "")),
                      "completename": str(found.get("completename") or found.get("name", ""))}
    ids = _ids(value)
    if kind == "link":
        if not ids:
            return True, None
        found = _link(linked, ids[0], names)
        return found is not None, found
    members = [_link(linked, i, names) for i in ids]  # links
    return all(m is not None for m in members), members


def display_name(user: Row) -> str:
    """GLPI's formatUserName: 'Realname Firstname', else the login."""
    parts = [str(user[k]) for k in ("realname", "firstname") if user.get(k)]
    return " ".join(parts) if parts else str(user.get("name", ""))


def team(itemtype: str, links: Mapping[str, Sequence[Row]], names: Names) -> list[dict[str, Any]]:
    """ITILController::getCleanTeam over the actor link rows (11.0.0 keys), sorted by name."""
    members = []
    for link, fk, linked, page in TEAM_LINKS[itemtype]:
        for row in links.get(link, []):
            ids, role = _ids(row.get(fk)), ROLES.get(int(row.get("type", 0)))
            found = names.get((linked, ids[0])) if ids else None
            if found is None or role is None:
                continue  # an anonymous requester (id 0, e-mail only) or an unreadable row
            user = linked == "User"
            members.append({
                "role": role,
                "name": str(found.get("name", "")),
                "realname": found.get("realname") if user else None,
                "firstname": found.get("firstname") if user else None,
                "display_name": display_name(found) if user else str(found.get("name", "")),
                "href": f"/front/{page}.form.php?id={ids[0]}",
            })
    return sorted(members, key=lambda m: str(m["display_name"]).lower())


def to_hl(
    itemtype: str,
    row: Row,
    names: Names,
    tz: ZoneInfo,
    links: Mapping[str, Sequence[Row]] | None = None,
) -> dict[str, Any]:
    """The v2 object of a legacy row. `links`: the actor rows of an ITIL item (team); None
    leaves `team` absent."""
    out: dict[str, Any] = {}
    for key, kind, field, linked in specs_for(itemtype):
        if field not in row:
            continue
        mappable, value = _value(kind, row[field], linked, itemtype, names, tz)
        if mappable:
            out[key] = value
    if itemtype in TEAM_LINKS and links is not None:
        out["team"] = team(itemtype, links, names)
    return out


def mapped_keys(itemtype: str) -> list[str]:
    """Every v2 key this module can yield for `itemtype` (README's coverage table)."""
    keys = [s[0] for s in specs_for(itemtype)]
    return keys + (["team"] if itemtype in TEAM_LINKS else [])
