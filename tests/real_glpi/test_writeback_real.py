"""The history write-back against a real GLPI 10: a private followup on a ticket (GLPI 10
enables no notes on tickets), a note on a computer, each written once; what each does to
its item, measured; and the poller, which must not echo hookstream's own followup as a
change while it still sees a person's change made beside it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import REGISTRY

from connectors.glpi import GlpiSessions
from connectors.poller import InstancePoller, PollerApi, PollerConfig
from connectors.writeback.writer import HistoryWriter
from hookstream.records import AttemptRecord, ItemChangeEvent, PollCursor, WebhookDefinition
from hookstream.records.cursor import LIVE
from hookstream.records.history import history_marker
from tests.real_glpi.conftest import INSTANCE, RealGlpi


class Recorded:
    def __init__(self) -> None:
        self.events: list[ItemChangeEvent] = []

    def produce(self, events: Sequence[ItemChangeEvent]) -> None:
        self.events += events

    def save(self, cursor: PollCursor) -> None:
        pass


def attempt(itemtype: str, items_id: int, n: int) -> AttemptRecord:
    return AttemptRecord(delivery_id=f"d-{itemtype}-{items_id}", webhook_id="wh-1",
                         instance=INSTANCE, itemtype=itemtype, items_id=items_id,
                         event="update", attempt=n, started_at=1_762_243_200_000,
                         finished_at=1_762_243_200_150, outcome="delivered", status_code=200)


HOOK = WebhookDefinition(id="wh-1", version=1, instance=INSTANCE, name="CMDB & chat",
                         itemtype="Ticket", event="update", url="https://x.example/h",
                         secret_encrypted="", log_in_item_history=True)


def drained(poller: InstancePoller, out: Recorded) -> list[tuple[str, int, str]]:
    before = len(out.events)
    for itemtype in poller.config.itemtypes:
        while poller.poll(itemtype, LIVE) > 0:
            pass
    return [(e.itemtype, e.items_id, e.event) for e in out.events[before:]]


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    return {k for k in before if k != "links" and before[k] != after.get(k)}


def own_changes() -> float:
    return REGISTRY.get_sample_value("hookstream_poller_own_changes_total", {
        "glpi_instance": INSTANCE, "itemtype": "Ticket"}) or 0.0


def test_a_followup_and_a_note_written_once_and_no_echo_of_them(real_glpi: RealGlpi) -> None:
    config = PollerConfig(itemtypes=("Ticket", "Computer"), intervals_s={},
                          default_interval_s=1, page_size=20, tz=ZoneInfo("UTC"))
    writer = HistoryWriter(GlpiSessions(lambda _name: real_glpi.client(), rate_per_s=50))
    with real_glpi.client(user_token=real_glpi.human_token) as person, \
            real_glpi.client() as integration:
        ticket = person.add_item("Ticket", {"name": "write-back", "content": "x"})
        computer = person.add_item("Computer", {"name": "PC-WRITEBACK"})
        out = Recorded()
        poller = InstancePoller(INSTANCE, PollerApi(integration), out, {}, config)
        ours = {("Ticket", ticket), ("Computer", computer)}  # GLPI holds other tests' too
        assert [e for e in drained(poller, out) if e[:2] in ours] == [
            ("Ticket", ticket, "new"), ("Computer", computer, "new")]
        before = {"Ticket": integration.get_item("Ticket", ticket),
                  "Computer": integration.get_item("Computer", computer)}
        time.sleep(1.05)  # so that a moved date_mod shows

        assert writer.write(attempt("Ticket", ticket, 1), HOOK) == "written"
        assert writer.write(attempt("Ticket", ticket, 1), HOOK) == "present"
        assert writer.write(attempt("Computer", computer, 1), HOOK) == "written"
        followups = integration.request("GET", f"Ticket/{ticket}/ITILFollowup").json()
        assert [(f["is_private"], f["users_id"]) for f in followups] == [
            (1, integration.user_id())]
        assert followups[0]["content"].startswith(history_marker(attempt("Ticket", ticket, 1)))
        assert "CMDB &#38; chat" in followups[0]["content"]  # GLPI 10 stores it sanitized
        notes = integration.request("GET", f"Computer/{computer}/Notepad").json()
        marker = history_marker(attempt("Computer", computer, 1))
        assert [n["content"][:len(marker)] for n in notes] == [marker]
        # measured: a followup moves the ticket's date_mod and last updater (and nothing
        # else: no status, no take-into-account date); a note moves nothing
        after_ticket = integration.get_item("Ticket", ticket)
        assert changed_fields(before["Ticket"], after_ticket) == {
            "date_mod", "users_id_lastupdater"}
        assert after_ticket["users_id_lastupdater"] == integration.user_id()
        assert changed_fields(before["Computer"],
                              integration.get_item("Computer", computer)) == set()

        skipped = own_changes()
        assert drained(poller, out) == []  # hookstream's own followup is no change
        assert own_changes() == skipped + 1

        time.sleep(1.05)
        person.update_item("Ticket", ticket, {"urgency": 2})
        assert writer.write(attempt("Ticket", ticket, 2), HOOK) == "written"
        assert drained(poller, out) == [("Ticket", ticket, "update")]  # the person's change
        assert '"urgency": 2' in out.events[-1].item
    writer.close()


def test_writeback_on_an_item_glpi_refuses_is_counted_refused(real_glpi: RealGlpi) -> None:
    """A purged ticket: GLPI refuses the followup; the attempt is skipped, not retried."""
    writer = HistoryWriter(GlpiSessions(lambda _name: real_glpi.client(), rate_per_s=50))
    with real_glpi.client() as integration:
        ticket = integration.add_item("Ticket", {"name": "purged", "content": "x"})
        integration.request("DELETE", f"Ticket/{ticket}", params={"force_purge": "true"})
    assert writer.write(attempt("Ticket", ticket, 1), HOOK) == "refused"
    writer.close()
