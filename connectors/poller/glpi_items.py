"""The GLPI API calls of the poller, on the instance's GlpiClient (its one session).

- `changed`: GLPI's search engine (`search/:itemtype`), the only listing of the legacy API
  that filters on a date range: `date_mod` (search option 19) after a moment, sorted by it,
  the trash (`is_deleted=1`) or not, showing only the id (2) and date_mod columns.
- `items`: the full rows of a page at once (`getMultipleItems`); GLPI answers 404 for the
  whole call when one item was purged meanwhile, so the rows are then read one by one.
- `linked`: the rows behind foreign keys (dropdowns, users, groups, entities), by batch.
- `actors`: the actor link rows of an ITIL item (`Ticket/4211/Ticket_User`...).
- `history`: an item's latest GLPI history rows (`Ticket/4211/Log`), to tell the
  integration's own changes from others'; `user_id`: that user, from the session.

Every call goes through `on_call`, which counts it (metrics; tests count the load). The
rows come back with their strings as GLPI 11 gives them (GLPI 10 sanitizes: `&#60;p&#62;`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from connectors.glpi import GlpiApiError, GlpiClient
from hookstream.records.cursor import Change
from hookstream.records.legacy import TEAM_LINKS, unsanitized_row

DATE_MOD_OPTION = 19  # Ticket, Change, Problem and the assets: "Last update"
ID_OPTION = 2
# getMultipleItems takes its list in the query string, ~75 bytes an item: 80 items stay
# under the 8 KiB request line of Apache (LimitRequestLine 8190) and aiohttp
MULTIPLE_MAX = 80
HISTORY_ROWS = 200  # an item's history rows read to find who changed it since the cursor


class PollerApi:
    """The calls the poller makes, on one GlpiClient; `on_call()` runs before each."""

    def __init__(self, client: GlpiClient, on_call: Callable[[], None] = lambda: None):
        self.client, self._on_call = client, on_call

    def _get(self, path: str, params: Sequence[tuple[str, str]] | dict[str, str]) -> Any:
        self._on_call()
        response = self.client.request("GET", path, params=params)
        return response.json() if response.content else None

    def changed(self, itemtype: str, after: str, trashed: bool, count: int) -> list[Change]:
        """Up to `count` items modified strictly after `after`, oldest first."""
        params = [
            ("criteria[0][field]", str(DATE_MOD_OPTION)),
            ("criteria[0][searchtype]", "morethan"),
            ("criteria[0][value]", after),
            ("sort", str(DATE_MOD_OPTION)),
            ("order", "ASC"),
            ("range", f"0-{count - 1}"),
            ("forcedisplay[0]", str(ID_OPTION)),
            ("forcedisplay[1]", str(DATE_MOD_OPTION)),
            ("is_deleted", "1" if trashed else "0"),
        ]
        answer = self._get(f"search/{itemtype}", params)
        rows = answer.get("data", []) if isinstance(answer, dict) else []
        return [
            Change(int(row[str(ID_OPTION)]), str(row[str(DATE_MOD_OPTION)]))
            for row in rows
            if row.get(str(ID_OPTION)) is not None and row.get(str(DATE_MOD_OPTION))
        ]

    def items(self, pairs: Sequence[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
        """The rows of `pairs` (itemtype, id) that still exist, `MULTIPLE_MAX` a call."""
        found: dict[tuple[str, int], dict[str, Any]] = {}
        for n in range(0, len(pairs), MULTIPLE_MAX):
            found |= self._multiple(pairs[n:n + MULTIPLE_MAX])
        return found

    def _multiple(self, pairs: Sequence[tuple[str, int]]
                  ) -> dict[tuple[str, int], dict[str, Any]]:
        params = [("get_hateoas", "false")]
        for n, (itemtype, ident) in enumerate(pairs):
            params += [(f"items[{n}][itemtype]", itemtype), (f"items[{n}][items_id]", str(ident))]
        try:
            rows = self._get("getMultipleItems", params)
        except GlpiApiError as e:
            if e.status != 404:
                raise
            return self._one_by_one(pairs)
        found: dict[tuple[str, int], dict[str, Any]] = {}
        for (itemtype, _), row in zip(pairs, rows if isinstance(rows, list) else [], strict=False):
            if isinstance(row, dict) and "id" in row:
                found[(itemtype, int(row["id"]))] = unsanitized_row(row)
        return found

    def _one_by_one(self, pairs: Iterable[tuple[str, int]]
                    ) -> dict[tuple[str, int], dict[str, Any]]:
        found = {}
        for itemtype, ident in pairs:
            try:
                row = self._get(f"{itemtype}/{ident}", {"get_hateoas": "false"})
            except GlpiApiError as e:
                if e.status in (403, 404):  # purged, or not readable with this profile
                    continue
                raise
            if isinstance(row, dict):
                found[(itemtype, ident)] = unsanitized_row(row)
        return found

    def user_id(self) -> int:
        return self.client.user_id()

    def history(self, itemtype: str, items_id: int) -> list[dict[str, Any]]:
        """The item's latest history rows, newest first."""
        rows = self._get(f"{itemtype}/{items_id}/Log",
                         {"sort": "id", "order": "DESC", "range": f"0-{HISTORY_ROWS - 1}"})
        return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []

    def actors(self, itemtype: str, items_id: int) -> dict[str, list[dict[str, Any]]]:
        """The actor link rows of an ITIL item, by link itemtype."""
        out: dict[str, list[dict[str, Any]]] = {}
        for link, *_ in TEAM_LINKS[itemtype]:
            rows = self._get(f"{itemtype}/{items_id}/{link}",
                             {"get_hateoas": "false", "range": "0-999"})
            out[link] = [unsanitized_row(r) for r in rows if isinstance(r, dict)
                         ] if isinstance(rows, list) else []
        return out
