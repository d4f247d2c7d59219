"""The ticketer against a real GLPI 10: an alert opens a ticket, its repeat adds nothing, its
resolution adds a followup and solves it, its refire reopens it; the marker lookup finds
the ticket through GLPI's own search engine; a user without rights is refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from connectors.glpi import GlpiApiError, GlpiSessions
from connectors.ticketer import AlertHandler, CompiledRule, Refusal, TicketDesk
from hookstream.alerting.rules import build_rule, compile_rule
from hookstream.alerting.tickets import ticket_marker
from hookstream.config import Settings
from hookstream.control import alert_rules
from hookstream.records import ALERT_ACTIONS, ALERTS, TicketAction
from tests.fake_glpi_items import ALREADY_SOLVED
from tests.integration.harness import publish, read
from tests.integration.test_ticketer import Running, alert
from tests.real_glpi.conftest import INSTANCE, RealGlpi

pytestmark = pytest.mark.real_glpi

RULE = {"id": "disk", "instance": INSTANCE,
        "name": "[{{ alert.labels.severity }}] {{ alert.name }}",
        "content": "<p>{{ alert.annotations.summary }}</p>", "requesttypes_id": 1,
        "urgency": {"label": "severity", "values": {"critical": 5}},
        "on_resolved": {"solve": True, "solution": "{{ alert.name }} resolved"}}


def test_the_ticketer_opens_follows_up_solves_and_reopens_a_real_ticket(
        published: Settings, tmp_path: Path, real_glpi: RealGlpi) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(RULE))
    alert_rules.apply_rules(published, rules)
    settings = replace(published, ticketer_rate_per_s=50.0)
    firing = replace(alert("real-1"), instance=INSTANCE,
                     annotations={"summary": "disk <full> & \"more\""})
    running = Running(settings)
    try:
        repeat = replace(firing, event_id="repeat-1", received_at=firing.received_at + 1)
        publish(settings, [firing, repeat], ALERTS)
        assert running.until(lambda: len(read(settings, ALERT_ACTIONS, TicketAction)) == 2)
        [opened, repeat] = read(settings, ALERT_ACTIONS, TicketAction)
        assert (opened.action, repeat.action) == ("opened", "unchanged")
        with real_glpi.client() as glpi:
            ticket = glpi.get_item("Ticket", opened.tickets_id)
            assert ticket["name"] == "[critical] DiskFull"
            assert (ticket["urgency"], ticket["status"], ticket["requesttypes_id"]) == (5, 1, 1)
            assert ticket_marker(firing) in ticket["content"]  # left as it is by sanitizing
            desk = TicketDesk(GlpiSessions(lambda _name: real_glpi.client(), 50))
            assert desk.find(INSTANCE, ticket_marker(firing)) == opened.tickets_id
            assert desk.find(INSTANCE, ticket_marker(replace(firing, event_id="x"))) is None

            resolved = replace(firing, event_id="resolved-1", status="resolved",
                               received_at=firing.received_at + 2)
            publish(settings, [resolved], ALERTS)
            assert running.until(lambda: len(read(settings, ALERT_ACTIONS, TicketAction)) == 3)
            ticket = glpi.get_item("Ticket", opened.tickets_id)
            assert ticket["status"] in (5, 6)  # solved (closed when the entity auto-closes)
            followups = glpi.request("GET", f"Ticket/{opened.tickets_id}/ITILFollowup").json()
            solutions = glpi.request("GET", f"Ticket/{opened.tickets_id}/ITILSolution").json()
            assert [ticket_marker(resolved) in f["content"] for f in followups] == [True]
            assert [s["content"] for s in solutions] == ["DiskFull resolved"]
            with pytest.raises(GlpiApiError) as again:  # what the fake answers too
                glpi.add_item("ITILSolution", {"itemtype": "Ticket", "content": "again",
                                               "items_id": opened.tickets_id})
            assert (again.value.status, again.value.code, again.value.message) == (
                400, "ERROR_GLPI_ADD", ALREADY_SOLVED)

            refire = replace(firing, event_id="refire-1", received_at=firing.received_at + 3)
            publish(settings, [refire], ALERTS)
            assert running.until(lambda: len(read(settings, ALERT_ACTIONS, TicketAction)) == 4)
            last = read(settings, ALERT_ACTIONS, TicketAction)[-1]
            if ticket["status"] == 5:
                assert (last.action, last.tickets_id) == ("reopened", opened.tickets_id)
                assert glpi.get_item("Ticket", opened.tickets_id)["status"] == 1
            else:  # a closed ticket is not reopened: a new one is opened
                assert last.action == "opened" and last.tickets_id != opened.tickets_id
    finally:
        running.close()


def test_a_ticket_in_an_entity_out_of_reach_is_refused_with_glpis_message(
        real_glpi: RealGlpi) -> None:
    rule = build_rule({**RULE, "entities_id": 999_999}, None)
    sessions = GlpiSessions(lambda _name: real_glpi.client(), 50)
    handler = AlertHandler(TicketDesk(sessions), {"disk": CompiledRule(rule, compile_rule(rule))},
                           {})
    try:
        handled = handler.handle(replace(alert("real-2"), instance=INSTANCE), None, 0)
    finally:
        sessions.close()
    assert handled.refusal is not None and handled.entry is None
    assert handled.action is not None and handled.action.action == "refused"
    # what the fake answers for a user without the right (tests/fake_glpi.py, read_only)
    assert handled.refusal == Refusal(400, "ERROR_GLPI_ADD",
                                      "You don't have permission to perform this action.")
