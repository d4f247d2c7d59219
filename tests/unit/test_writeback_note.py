"""The history note of an attempt, and the writer's pacing and idempotence (fake client)."""

from __future__ import annotations

from typing import Any

from connectors.glpi import GlpiSessions
from connectors.writeback import HistoryWriter
from hookstream.records import AttemptRecord, WebhookDefinition
from hookstream.records.history import history_entry, history_marker, history_note


def attempt(status: int | None = 200, n: int = 1) -> AttemptRecord:
    return AttemptRecord(delivery_id="d1", webhook_id="wh-1", instance="glpi-a",
                         itemtype="Ticket", items_id=7, event="new", attempt=n,
                         started_at=0, finished_at=1_762_243_200_000, outcome="delivered",
                         status_code=status, error="secret-ish error text")


HOOK = WebhookDefinition(id="wh-1", version=1, instance="glpi-a", name="ITSM", itemtype="Ticket",
                         event="new", url="https://x/?k=v", secret_encrypted="enc",
                         log_in_item_history=True)


def test_the_note_names_the_attempt_and_nothing_of_the_request() -> None:
    note = history_note(attempt(), "ITSM")
    assert note == ("[hookstream d1#1] Webhook 'ITSM' (wh-1), event new: attempt 1 answered "
                    "HTTP 200 (delivered) at 2025-11-04 08:00:00 UTC")
    assert history_note(attempt(status=None), "ITSM") is None  # GLPI logs responses only
    assert history_marker(attempt(n=2)) == "[hookstream d1#2]"


class FakeClient:
    def __init__(self) -> None:
        self.notes: list[dict[str, Any]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        notes = self.notes

        class Answer:
            def json(self) -> list[dict[str, Any]]:
                return notes

        return Answer()

    def add_item(self, itemtype: str, fields: dict[str, Any]) -> int:
        self.notes.append({"added_as": itemtype, **fields})
        return len(self.notes)

    def close(self) -> None:
        pass


def test_writer_is_idempotent_skips_unflagged_and_paces_per_instance() -> None:
    client, now, slept = FakeClient(), [100.0], []

    def sleep(s: float) -> None:
        slept.append(round(s, 3))
        now[0] += s

    writer = HistoryWriter(GlpiSessions(lambda name: client, rate_per_s=2.0,  # type: ignore[arg-type,return-value]
                                        clock=lambda: now[0], sleep=sleep))
    assert writer.write(attempt(), HOOK) == "written"
    assert writer.write(attempt(), HOOK) == "present"
    assert writer.write(attempt(n=2), None) == "skipped"
    off = WebhookDefinition(**{**HOOK.to_dict(), "log_in_item_history": False})
    assert writer.write(attempt(n=2), off) == "skipped"
    assert len(client.notes) == 1
    assert client.notes[0]["itemtype"] == "Ticket" and client.notes[0]["items_id"] == 7
    assert client.notes[0]["added_as"] == "ITILFollowup"
    assert slept == [0.5, 0.5]  # 2 calls a second: GET, POST, GET spaced by 0.5 s


def test_an_itil_item_gets_a_quiet_private_followup_and_an_asset_a_note() -> None:
    """GLPI 10 enables no notes on tickets, changes and problems (ERROR_GLPI_ADD)."""
    kind, fields = history_entry(attempt(), "text")
    assert kind == "ITILFollowup"
    assert fields == {"itemtype": "Ticket", "items_id": 7, "content": "text", "is_private": 1,
                      "_disablenotif": True, "_no_reopen": True,
                      "_do_not_compute_takeintoaccount": True}
    computer = AttemptRecord(**{**attempt().to_dict(), "itemtype": "Computer"})
    assert history_entry(computer, "text") == (
        "Notepad", {"itemtype": "Computer", "items_id": 7, "content": "text"})
