"""The item-history entry of a delivery attempt (`log_in_item_history`), as text.

GLPI logs, for each attempt that got a response, `Log::history(items_id, itemtype,
[30, old status, new status], queued webhook id, Log::HISTORY_SEND_WEBHOOK)`
(src/QueuedWebhook.php), shown as "queued webhook id (Status old -> new)". The legacy API
cannot write glpi_logs, so hookstream writes a note (Notepad) on the item instead, and on
tickets, changes and problems, where GLPI 10 enables no notes, a private followup by the
integration's user that notifies no one and reopens nothing (README, "History
write-back"). The text starts with a marker naming the delivery and the
attempt: the writer looks for it among the item's notes first, so an attempt written twice
makes one note. Nothing of the request (URL, headers, body) or of the webhook's secrets is
in it: only ids, the attempt number, the status and the outcome.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hookstream.records.events import AttemptRecord

ITIL_ITEMTYPES = frozenset({"Ticket", "Change", "Problem"})


def history_entry(attempt: AttemptRecord, text: str) -> tuple[str, dict[str, Any]]:
    """(GLPI itemtype, input) of the entry that holds `text` on the attempt's item."""
    where = {"itemtype": attempt.itemtype, "items_id": attempt.items_id, "content": text}
    if attempt.itemtype in ITIL_ITEMTYPES:
        return "ITILFollowup", {**where, "is_private": 1, "_disablenotif": True,
                                "_no_reopen": True, "_do_not_compute_takeintoaccount": True}
    return "Notepad", where


def history_marker(attempt: AttemptRecord) -> str:
    return f"[hookstream {attempt.delivery_id}#{attempt.attempt}]"


def history_note(attempt: AttemptRecord, webhook_name: str) -> str | None:
    """The note for `attempt`, or None when GLPI would log nothing (no response)."""
    if attempt.status_code is None:
        return None
    when = datetime.fromtimestamp(attempt.finished_at / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return (f"{history_marker(attempt)} Webhook {webhook_name!r} ({attempt.webhook_id}), "
            f"event {attempt.event}: attempt {attempt.attempt} answered HTTP "
            f"{attempt.status_code} ({attempt.outcome}) at {when} UTC")
