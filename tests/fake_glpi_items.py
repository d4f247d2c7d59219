"""The fake GLPI's API extended for the poller: items that change over time, GLPI's search
engine on date_mod, getMultipleItems, sub-items (the actor links of a ticket) and the trash.

Shapes from GLPI's apirest.md: `search/:itemtype` answers `{"totalcount", "count", "sort",
"order", "data": [{"<search option id>": value}], "content-range"}` with `criteria[n][field]`,
`[searchtype]`, `[value]`, `sort`, `order`, `range`, `forcedisplay[n]` and `is_deleted`;
`getMultipleItems?items[n][itemtype]=..&items[n][items_id]=..` answers the items in order
and 404 as soon as one is missing (it calls getItem for each); `:itemtype/:id/:sub_itemtype`
lists the sub-items. Dates are GLPI's local time, 'YYYY-MM-DD HH:MM:SS'.

The search engine orders by the sort column only: rows of the same second come back in an
order that changes between calls here (shuffled), as a database gives no order for ties.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import re
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from tests.fake_glpi import API_USER_ID, FakeGlpiApi

# Search options as GLPI 10.0 numbers them (listSearchOptions): 15 is the opening date of
# an ITIL item and does not exist on assets, 12 its status, 21 its description; 80 is the
# entity's complete name.
SEARCH_OPTIONS = {"2": "id", "19": "date_mod", "1": "name", "80": "entity"}
ITIL_SEARCH_OPTIONS = {**SEARCH_OPTIONS, "15": "date", "12": "status", "21": "content"}
ITIL = ("Ticket", "Change", "Problem")
HUMAN_USER = (2, "glpi")  # who changes items in GLPI's UI, in the tests
SOLVED, CLOSED = 5, 6
ALREADY_SOLVED = "The item is already solved, did anyone pushed a solution before you?"
# GLPI 10.0 stores rich text sanitized: & < > as numeric entities (quotes stay raw)
_SANITIZED = (("&", "&#38;"), ("<", "&#60;"), (">", "&#62;"))
_INDEXED = re.compile(r"^(\w+)\[(\d+)\]\[(\w+)\]$")


def _indexed(query: Any, name: str) -> list[dict[str, str]]:
    """`name[0][field]=..&name[0][value]=..` as a list of dicts, by index."""
    found: dict[int, dict[str, str]] = {}
    for key, value in query.items():
        match = _INDEXED.match(key)
        if match and match[1] == name:
            found.setdefault(int(match[2]), {})[match[3]] = value
    return [found[i] for i in sorted(found)]


class FakeGlpiItems(FakeGlpiApi):
    """A FakeGlpiApi whose items carry date_creation, date_mod and is_deleted, on a clock
    the test moves (`tick`); ITIL items also their last updater and GLPI's history (Log)
    of who changed them, the API's user for changes made through the API."""

    def __init__(self, app_token: str, user_token: str, seed: int | None = 7):
        """`seed=None`: ties in id order, and a faster search (benchmarks)."""
        super().__init__(app_token, user_token)
        for itemtype in (*ITIL, "Computer", "ITILFollowup", "TicketTask", "Notepad", "Log"):
            self.items.setdefault(itemtype, {})
        self.now = datetime(2025, 11, 4, 10, 0, 0)  # after the seeded ticket 4211
        self._random = random.Random(seed) if seed is not None else None
        # Beyond this many searches, a search waits until the test sets it back to None:
        # holds a client mid-stream however fast the machine is.
        self.searches_allowed: int | None = None
        self.unavailable = False  # True: every call answers 503, as a GLPI that is down
        for itemtype in ("ITILSolution", "Group_Ticket", "Ticket_User"):
            self.items.setdefault(itemtype, {})

    # -- what a user does in GLPI --------------------------------------------------------

    def stamp(self) -> str:
        return self.now.strftime("%Y-%m-%d %H:%M:%S")

    def tick(self, seconds: float = 1.0) -> None:
        self.now += timedelta(seconds=seconds)

    def create(self, itemtype: str, by: tuple[int, str] = HUMAN_USER, **fields: Any) -> int:
        base = {"is_deleted": 0, "date_creation": self.stamp(), "date_mod": self.stamp()}
        ident = self.add(itemtype, **{**base, **fields})
        self._changed(itemtype, ident, by)
        return ident

    def update(self, itemtype: str, items_id: int, by: tuple[int, str] = HUMAN_USER,
               **fields: Any) -> None:
        self.items[itemtype][items_id].update(fields, date_mod=self.stamp())
        self._changed(itemtype, items_id, by)

    def _changed(self, itemtype: str, items_id: int, by: tuple[int, str]) -> None:
        """CommonITILObject: the last updater, and a history row naming 'name (id)'."""
        if itemtype not in ITIL:
            return
        row = self.items[itemtype][items_id]
        row["users_id_lastupdater"] = by[0]
        self.add("Log", itemtype=itemtype, items_id=items_id, date_mod=row["date_mod"],
                 user_name=f"{by[1]} ({by[0]})", linked_action=0)

    def changed_by_api(self, itemtype: str, ident: int, created: bool) -> None:
        """An add or update through the API dates the item; a followup or task added to an
        ITIL item moves that item's date_mod and last updater (updateDateMod)."""
        row, api_user = self.items[itemtype][ident], (API_USER_ID, "hookstream")
        if itemtype in (*ITIL, "Computer"):  # the items the poller reads
            if created:
                row.setdefault("date_creation", self.stamp())
                row.setdefault("is_deleted", 0)
            row["date_mod"] = self.stamp()
            self._changed(itemtype, ident, api_user)
        elif row.get("itemtype") in ITIL and itemtype in ("ITILFollowup", "TicketTask"):
            self.update(row["itemtype"], int(row["items_id"]), by=api_user)
        elif itemtype == "ITILSolution" and created:  # ITILSolution::post_addItem
            self.update(row["itemtype"], int(row["items_id"]), by=api_user, status=SOLVED,
                        solvedate=self.stamp())
        if itemtype == "Ticket" and created:
            self._link_actors(ident, row.pop("_actors", {}))

    def _link_actors(self, tickets_id: int, actors: dict[str, Any]) -> None:
        """Ticket::post_addItem: `_users_id_<role>` and `_groups_id_<role>` as actor rows."""
        roles = {"requester": 1, "assign": 2, "observer": 3}
        for key, ident in actors.items():
            kind, _, role = key.removeprefix("_").partition("_id_")
            table, column = ("Ticket_User", "users_id") if kind == "users" else (
                "Group_Ticket", "groups_id")
            self.add(table, tickets_id=tickets_id, type=roles[role], **{column: int(ident)})

    def prepare_add(self, itemtype: str, fields: dict[str, Any]) -> dict[str, Any] | web.Response:
        """As GLPI 10's prepareInputForAdd: rich text sanitized; a ticket is new, or
        assigned when an assignee is given; a solution on a solved ticket is refused."""
        row = super().prepare_add(itemtype, fields)
        if isinstance(row, web.Response) or itemtype not in (*ITIL, "ITILFollowup",
                                                             "ITILSolution"):
            return row
        if isinstance(row.get("content"), str):
            for raw, stored in _SANITIZED:
                row["content"] = row["content"].replace(raw, stored)
        if itemtype == "Ticket":
            assigned = fields.get("_groups_id_assign") or fields.get("_users_id_assign")
            row.setdefault("status", 2 if assigned else 1)
            row["_actors"] = {k: v for k, v in fields.items()
                              if k.startswith(("_users_id_", "_groups_id_")) and v}
        if itemtype == "ITILSolution":
            parent = self.items[row["itemtype"]].get(int(row["items_id"]), {})
            if int(parent.get("status", 0)) in (SOLVED, CLOSED):
                return self.error(400, "ERROR_GLPI_ADD", ALREADY_SOLVED, doc=False)
        return row

    def deleted_by_api(self, itemtype: str, ident: int, purge: bool) -> None:
        if purge or "is_deleted" not in self.items[itemtype][ident]:
            super().deleted_by_api(itemtype, ident, purge)
        else:
            self.trash(itemtype, ident, by=(API_USER_ID, "hookstream"))

    def trash(self, itemtype: str, items_id: int, by: tuple[int, str] = HUMAN_USER) -> None:
        # CommonDBTM::deleteFromDB without force: is_deleted = 1 and date_mod = now, written
        # directly: the last updater stays (a history row names who did it)
        row = self.items[itemtype][items_id]
        updater = row.get("users_id_lastupdater")
        self.update(itemtype, items_id, by=by, is_deleted=1)
        if updater is not None:
            row["users_id_lastupdater"] = updater

    def restore(self, itemtype: str, items_id: int) -> None:
        self.update(itemtype, items_id, is_deleted=0)

    def calls_to(self, prefix: str) -> int:
        return sum(1 for _, path in self.calls if path.startswith(prefix))

    # -- the API -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/apirest.php/{path:.*}", self.handle_items)
        return app

    async def handle_items(self, request: web.Request) -> web.Response:
        if self.unavailable:
            return web.Response(status=503, text="Service Unavailable")
        path = request.match_info["path"].strip("/")
        parts = path.split("/")
        ours = parts[0] in ("search", "getMultipleItems") or (
            len(parts) == 3 and parts[1].isdigit())
        if not ours or request.method != "GET":
            return await self.handle(request)
        self.calls.append((request.method, path))
        refused = self.refused(request)
        if refused is not None:
            return refused
        if parts[0] == "search":
            while (self.searches_allowed is not None
                   and self.calls_to("search") > self.searches_allowed):
                await asyncio.sleep(0.05)
            return self._search(parts[1], request)
        if parts[0] == "getMultipleItems":
            return self._multiple(request)
        return self._sub_items(parts[0], int(parts[1]), parts[2], request)

    def _search(self, itemtype: str, request: web.Request) -> web.Response:
        """Search::showList through the API: rows matching the criteria (an unknown
        searchtype matches nothing), sorted, with the columns asked plus the name (1) and,
        with several entities, the entity (80); sort and order come back as lists."""
        query, options = request.query, ITIL_SEARCH_OPTIONS if itemtype in ITIL else SEARCH_OPTIONS
        rows = [r for r in self.items.get(itemtype, {}).values()
                if int(r.get("is_deleted", 0)) == int(query.get("is_deleted", "0"))]
        for criterion in _indexed(query, "criteria"):
            field = options.get(criterion.get("field", ""))
            if field is None:
                return self.error(400, "ERROR", "Bad field ID in search criteria")
            if criterion["searchtype"] == "morethan":
                rows = [r for r in rows if str(r.get(field, "")) > criterion["value"]]
            elif criterion["searchtype"] == "lessthan":
                rows = [r for r in rows if str(r.get(field, "")) < criterion["value"]]
            elif criterion["searchtype"] == "contains":  # SQL LIKE '%value%', any case
                rows = [r for r in rows
                        if criterion["value"].lower() in str(r.get(field, "")).lower()]
            else:
                rows = []
        sort = query.get("sort", "1")
        first, _, last = query.get("range", "0-49").partition("-")
        start, end = int(first), int(last)
        total = len(rows)
        if self._random is not None:
            self._random.shuffle(rows)  # ties in any order
            rows.sort(key=lambda r: str(r.get(options[sort], "")),
                      reverse=query.get("order") == "DESC")
        else:
            rows = heapq.nsmallest(end + 1, rows, key=lambda r: str(r.get(options[sort], "")))
        if total and start >= total:
            return self.error(400, "ERROR_RANGE_EXCEED_TOTAL",
                              f"Provided range exceed total count of data: {total}")
        shown = ["2", *(v for k, v in query.items() if re.match(r"^forcedisplay\[\d+\]$", k)),
                 "1", *(["80"] if len(self.items["Entity"]) > 1 else [])]
        page = [{opt: self._column(r, options[opt]) for opt in dict.fromkeys(shown)}
                for r in rows[start:end + 1]]
        span = f"{start}-{start + len(page) - 1}/{total}"
        answer: dict[str, Any] = {"totalcount": total, "count": len(page), "sort": [int(sort)],
                                  "order": [query.get("order", "ASC")]}
        headers = {"Accept-Range": f"{itemtype} 1000"}
        if page:
            answer["data"] = page
            headers["Content-Range"] = span
        answer["content-range"] = span
        status = 206 if start + len(page) < total else 200
        return web.json_response(answer, status=status, headers=headers)

    def _column(self, row: dict[str, Any], field: str) -> Any:
        if field != "entity":
            return row.get(field)
        entity = self.items["Entity"].get(int(row.get("entities_id") or 0), {})
        return entity.get("completename")

    def _multiple(self, request: web.Request) -> web.Response:
        out = []
        for wanted in _indexed(request.query, "items"):
            row = self.items.get(wanted["itemtype"], {}).get(int(wanted["items_id"]))
            if row is None:
                return self.error(404, "ERROR_ITEM_NOT_FOUND", "Item not found", doc=False)
            out.append(row)
        return web.json_response(out)

    def _sub_items(self, itemtype: str, items_id: int, sub: str, request: web.Request
                   ) -> web.Response:
        if items_id not in self.items.get(itemtype, {}):
            return self.error(404, "ERROR_ITEM_NOT_FOUND", "Item not found", doc=False)
        fk = f"{itemtype.lower()}s_id"
        rows = [r for r in self.items.get(sub, {}).values()
                if r.get(fk) == items_id or (r.get("itemtype") == itemtype
                                             and r.get("items_id") == items_id)]
        if request.query.get("sort") == "id":
            rows.sort(key=lambda r: int(r["id"]), reverse=request.query.get("order") == "DESC")
        first, _, last = request.query.get("range", "0-49").partition("-")
        page = rows[int(first):int(last) + 1]
        headers = {"Accept-Range": f"{sub} 1000"}
        if page:
            headers["Content-Range"] = f"{first}-{int(first) + len(page) - 1}/{len(rows)}"
        return web.json_response(page, status=206 if len(page) < len(rows) else 200,
                                 headers=headers)


def seed_ticket_4211(api: FakeGlpiApi) -> None:
    """The GLPI 10 rows behind tests/fixtures/Ticket.json (and its linked rows)."""
    for ident, name, parent, complete in (
        (0, "Root entity", None, "Root entity"), (1, "Europe", 0, "Root entity > Europe"),
        (3, "France", 1, "Root entity > Europe > France"),
    ):
        api.add("Entity", id=ident, name=name, entities_id=parent, completename=complete)
    api.add("ITILCategory", id=12, name="Imprimantes", completename="Matériel > Imprimantes")
    api.add("Location", id=8, name="Lyon - Bâtiment A - 2e étage")
    api.add("RequestType", id=2, name="E-Mail")
    api.add("User", id=57, name="h.lefevre", realname="Lefèvre", firstname="Hélène")
    api.add("User", id=23, name="l.martin", realname="Martin", firstname="Lucas")
    api.add("Group", id=5, name="Support niveau 1", completename="Support niveau 1")
    api.add("Ticket_User", id=1, tickets_id=4211, users_id=57, type=1)
    api.add("Ticket_User", id=2, tickets_id=4211, users_id=23, type=2)
    api.add("Group_Ticket", id=1, tickets_id=4211, groups_id=5, type=2)
    api.items.setdefault("Supplier_Ticket", {})
    api.add("Ticket", **TICKET_4211)


TICKET_4211: dict[str, Any] = {
    "id": 4211,
    "entities_id": 3,
    "name": "Imprimante du 2e étage : bourrage papier à répétition",
    "date": "2025-11-04 09:15:32",
    "closedate": None,
    "solvedate": None,
    "date_mod": "2025-11-04 09:15:32",
    "users_id_lastupdater": 23,
    "status": 2,
    "users_id_recipient": 57,
    "requesttypes_id": 2,
    # GLPI 10.0 stores every string sanitized: & < > as numeric entities, quotes raw
    "content": "&#60;p&#62;Bonjour,&#60;/p&#62;&#60;p&#62;L'imprimante HP LaserJet M507 du 2e "
               "étage (salle « Rhône ») affiche « Bourrage papier » toutes les 10 pages "
               "depuis ce matin.&#60;/p&#62;&#60;p&#62;Voir aussi &#60;a href=\"https://"
               "intranet.example.fr/kb/imprimantes/2025/11/04\"&#62;la note de l'intranet"
               "&#60;/a&#62;.&#60;/p&#62;&#60;p&#62;Merci d'avance,&#60;br&#62;Hélène&#60;/p&#62;",
    "urgency": 4,
    "impact": 3,
    "priority": 4,
    "itilcategories_id": 12,
    "type": 1,
    "global_validation": 1,
    "slas_id_ttr": 0,
    "time_to_resolve": None,
    "actiontime": 0,
    "is_deleted": 0,
    "locations_id": 8,
    "validation_percent": 0,
    "date_creation": "2025-11-04 09:15:32",
    # no externalid: GLPI 10.0 has no such column (GLPI 11's external_id)
}


GLPI11_ONLY_KEYS = ("external_id",)  # Ticket keys GLPI 10.0 has no column for


def polled_from_glpi10(item: dict[str, Any]) -> dict[str, Any]:
    """A GLPI 11 fixture item as the poller gets it from GLPI 10.0: less GLPI 11's keys."""
    return {k: v for k, v in item.items() if k not in GLPI11_ONLY_KEYS}


def polled_payload_from_glpi10(glpi11_payload: bytes) -> bytes:
    """GLPI 11's default payload bytes less the lines of the keys GLPI 10.0 lacks."""
    lines = glpi11_payload.split(b"\n")
    return b"\n".join(line for line in lines
                       if not any(f'"{k}"'.encode() in line for k in GLPI11_ONLY_KEYS))


def main() -> None:
    """Serve a FakeGlpiItems on loopback until killed (`make run`'s GLPI for alert tickets):
    `python -m tests.fake_glpi_items PORT APP_TOKEN USER_TOKEN`."""
    import sys

    from aiohttp import web

    port, app_token, user_token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    web.run_app(FakeGlpiItems(app_token, user_token).app(), host="127.0.0.1", port=port,
                print=None)


if __name__ == "__main__":
    main()
