"""Who made a GLPI change (ItemChangeEvent.changed_by), as GLPI itself records it.

GLPI 10.0 keeps a last updater, `users_id_lastupdater`, on Ticket, Change and Problem only
(src/CommonITILObject.php; assets and other itemtypes have no such column):
- an add or update through the UI or the API sets it to the session's user;
- a followup, task, actor or ticket link added to the item sets it too (`updateDateMod`):
  the session's user, or for a followup the mail collector adds, the followup's author;
- cron and automatic actions (`Session::isCron`) leave it as it was: an automatic closure
  keeps the previous updater; a ticket the mail collector opens has none (0);
- the trash (`CommonDBTM::delete`) moves `date_mod`, not the updater.

GLPI 11's webhook payload is the High-Level API item: Ticket, Change and Problem carry it
as `user_editor` from API 2.1 (GLPI 11.0.2 and later), not in 2.0. Followups and tasks
carry `user`, their author (the session's user unless the API caller names another), and
`user_editor`, which GLPI sets only when a followup's content is edited (a task's only
from its form): only their creation tells who.

A delete never tells who (the updater is the previous change's), so it is None, as is
every source that does not tell: None means unknown, never "nobody".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hookstream.records.events import ItemEvent
from hookstream.records.legacy import ITIL

TIMELINE = frozenset({"ITILFollowup", "TicketTask", "ChangeTask", "ProblemTask"})


def changed_by_in_row(itemtype: str, event: str, row: Mapping[str, Any]) -> int | None:
    """The poller's: the API row's `users_id_lastupdater` (of an ITIL item), None for a
    delete or when GLPI has none (0). When several changes fall between two polls, the
    event (the item's latest state) names the last one's user."""
    if itemtype not in ITIL or event == ItemEvent.DELETE:
        return None
    return _user_id(row.get("users_id_lastupdater"))


def changed_by_in_payload(itemtype: str, event: str, item: Mapping[str, Any]) -> int | None:
    """GLPI 11's webhook: an ITIL item's `user_editor` (API 2.1+), the author (`user`) of
    a new followup or task; None otherwise."""
    if event == ItemEvent.DELETE:
        return None
    if itemtype in ITIL:
        return _user_id(_ref_id(item.get("user_editor")))
    if itemtype in TIMELINE and event == ItemEvent.NEW:
        return _user_id(_ref_id(item.get("user")))
    return None


def _ref_id(ref: Any) -> Any:
    """The id of a High-Level API reference `{"id": 7, "name": ...}`."""
    return ref.get("id") if isinstance(ref, dict) else None


def _user_id(value: Any) -> int | None:
    """A positive user id; GLPI writes 0 (or nothing) where no user is known."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number > 0 else None
