"""The GLPI calls of the ticketer, each safe to repeat after a crash.

- `find(marker)`: GLPI's search engine on the ticket's description (search option 21,
  `contains`): the ticket an earlier try opened before its map entry was written. The
  marker is letters, digits and dashes, which GLPI 10's sanitizing stores as they are.
- `followup`: the ticket's followups are read first; one holding the event's marker is
  not added again.
- `solve`: the caller reads the ticket's status first; a solved or closed ticket gets no
  second solution (GLPI refuses one anyway: "The item is already solved").
Statuses are GLPI's: 1 new, 2 assigned, 3 planned, 4 waiting, 5 solved, 6 closed.
"""

from __future__ import annotations

from typing import Any

from connectors.glpi import GlpiApiError, GlpiSessions

INCOMING, ASSIGNED, SOLVED, CLOSED = 1, 2, 5, 6
CONTENT_OPTION = "21"  # Ticket's description in GLPI's search options (10.0)


class TicketDesk:
    def __init__(self, sessions: GlpiSessions):
        self._sessions = sessions

    def find(self, instance: str, marker: str) -> int | None:
        """The id of the live ticket whose description holds `marker`, if any."""
        answer = self._sessions.paced(instance).request("GET", "search/Ticket", params={
            "criteria[0][field]": CONTENT_OPTION, "criteria[0][searchtype]": "contains",
            "criteria[0][value]": marker, "forcedisplay[0]": "2", "range": "0-0",
        }).json()
        rows = (answer.get("data") or []) if isinstance(answer, dict) else []
        return int(rows[0]["2"]) if rows else None

    def open(self, instance: str, fields: dict[str, Any]) -> int:
        return self._sessions.paced(instance).add_item("Ticket", fields)

    def status(self, instance: str, tickets_id: int) -> int | None:
        """The ticket's status, None when it is gone (purged) or in the trash."""
        try:
            ticket = self._sessions.paced(instance).get_item("Ticket", tickets_id)
        except GlpiApiError as e:
            if e.code == "ERROR_ITEM_NOT_FOUND":
                return None
            raise
        return None if int(ticket.get("is_deleted") or 0) else int(ticket["status"])

    def followup(self, instance: str, tickets_id: int, content: str, marker: str) -> None:
        client = self._sessions.paced(instance)
        present = client.request("GET", f"Ticket/{tickets_id}/ITILFollowup",
                                 params={"range": "0-9999"}).json()
        if any(marker in str(f.get("content", "")) for f in present if isinstance(f, dict)):
            return
        self._sessions.paced(instance).add_item("ITILFollowup", {
            "itemtype": "Ticket", "items_id": tickets_id, "content": content})

    def solve(self, instance: str, tickets_id: int, content: str, solutiontypes_id: int) -> None:
        """GLPI's solution, which solves the ticket (ITILSolution::post_addItem)."""
        fields = {"itemtype": "Ticket", "items_id": tickets_id, "content": content}
        if solutiontypes_id:
            fields["solutiontypes_id"] = solutiontypes_id
        self._sessions.paced(instance).add_item("ITILSolution", fields)

    def reopen(self, instance: str, tickets_id: int, assigned: bool) -> None:
        """Back to new, or assigned when the rule assigns a group (as GLPI would set it)."""
        self._sessions.paced(instance).update_item(
            "Ticket", tickets_id, {"status": ASSIGNED if assigned else INCOMING})
