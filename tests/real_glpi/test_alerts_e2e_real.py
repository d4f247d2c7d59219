"""Alerts into tickets end to end, with no loops (issue 24), on the real broker against the
real GLPI 10 of the conformance suite: tests/integration/test_alerts_e2e.py's scenario,
with its helpers, and the poller run the same way (`poller_skip_own_changes=false`, its
docstring says why).

An Alertmanager firing alert opens one ticket in GLPI; twenty repeats, across a SIGKILL and
restart of the ticketer, open none; the ticket's `new` event reaches the Slack-style webhook
that does not skip integration users only, a ticket the `glpi` administrator opens reaches
both; the resolved alert adds a followup and a solution, and GLPI solves the ticket (status
5: the root entity of a fresh GLPI never closes solved tickets by itself).

Other tests share this GLPI and the poller reads all its tickets: only this test's items
count, found by the markers of its own alert events and by id. GLPI 10's date_mod counts
seconds, so a change the poller must tell from the previous one comes over a second later.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.glpi import GlpiClient
from connectors.ticketer.desk import CONTENT_OPTION
from hookstream.alerting.tickets import ticket_marker
from hookstream.config import Settings
from hookstream.io import create_topics
from hookstream.records import ALERTS, AlertEvent
from tests.integration.harness import read, wait_until
from tests.integration.test_alerts_e2e import (
    ALL,
    RULE,
    SKIPS,
    Pipeline,
    actions,
    e2e_settings,
    handled,
    post,
    repeat_across_a_ticketer_kill,
    running_pipeline,
    tickets_announced,
)
from tests.real_glpi.conftest import INSTANCE, RealGlpi
from tests.receiver import Receiver

pytestmark = pytest.mark.real_glpi

NEW, SOLVED = 1, 5  # GLPI's ticket statuses
HELPDESK = 1  # a request source every GLPI 10 has
REAL_RULE = {**RULE, "instance": INSTANCE, "requesttypes_id": HELPDESK}


@dataclass
class RealStack:
    settings: Settings
    receiver: Receiver
    pipeline: Pipeline
    integration_user: int  # the API user the ticketer (and the poller) act as


@pytest.fixture
def stack(settings: Settings, tmp_path: Path, real_glpi: RealGlpi,
          glpi: GlpiClient) -> Iterator[RealStack]:
    fast = e2e_settings(settings)
    create_topics(fast)
    instance = {"name": INSTANCE, "api_url": real_glpi.url, "app_token": real_glpi.app_token,
                "user_token": real_glpi.user_token, "integration_users": [glpi.user_id()]}
    with Receiver() as receiver, \
            running_pipeline(fast, tmp_path, instance, REAL_RULE, receiver) as pipeline:
        yield RealStack(fast, receiver, pipeline, glpi.user_id())


def tickets_marked(glpi: GlpiClient, marker: str) -> set[int]:
    """The live tickets whose description holds `marker`, through GLPI's search engine."""
    answer = glpi.request("GET", "search/Ticket", params={
        "criteria[0][field]": CONTENT_OPTION, "criteria[0][searchtype]": "contains",
        "criteria[0][value]": marker, "forcedisplay[0]": "2", "range": "0-99"}).json()
    return {int(row["2"]) for row in answer.get("data") or []}


def opened_by_alerts(settings: Settings, glpi: GlpiClient) -> set[int]:
    """The tickets any of this test's alert events opened: each carries its event's marker."""
    return {tickets_id for event in read(settings, ALERTS, AlertEvent)
            for tickets_id in tickets_marked(glpi, ticket_marker(event))}


def test_an_alert_opens_one_real_ticket_repeats_none_its_resolution_solves_it_and_no_loop(
        stack: RealStack, real_glpi: RealGlpi, glpi: GlpiClient) -> None:
    settings, receiver = stack.settings, stack.receiver
    alerts, components = stack.pipeline.alerts, stack.pipeline.components

    # 1. a firing alert: one ticket in GLPI, found by the event's marker, with the rule's fields
    first = post(alerts, "firing", INSTANCE)
    [event] = read(settings, ALERTS, AlertEvent, lambda e: e.event_id == first)
    assert wait_until(lambda: tickets_marked(glpi, ticket_marker(event)), 120), \
        f"no ticket opened within 120 s{components.tails()}"
    [tickets_id] = tickets_marked(glpi, ticket_marker(event))
    ticket = glpi.get_item("Ticket", tickets_id)
    assert ticket["name"] == "[CRITICAL] ProbeFailure on https://server.example.org"
    assert "BlackBox Probe Failure: https://server.example.org" in ticket["content"]
    assert ticket_marker(event) in ticket["content"]
    assert (ticket["urgency"], ticket["type"], ticket["requesttypes_id"], ticket["entities_id"],
            ticket["status"]) == (5, 1, HELPDESK, 0, NEW)
    assert ticket["users_id_lastupdater"] == stack.integration_user

    # 2. twenty repeats, the ticketer SIGKILLed among them and restarted: no second ticket
    repeat_across_a_ticketer_kill(stack.pipeline, settings, first, tickets_id, INSTANCE)
    assert opened_by_alerts(settings, glpi) == {tickets_id}, \
        "a repeat of a firing alert opened another ticket"
    assert glpi.request("GET", f"Ticket/{tickets_id}/ITILFollowup").json() == []
    assert glpi.get_item("Ticket", tickets_id)["status"] == NEW

    # 3. the ticket's `new` event reaches only the webhook that does not skip its user...
    assert wait_until(lambda: tickets_announced(receiver, ALL, tickets_id), 120), \
        f"the alert's ticket never reached {ALL}{components.tails()}"
    announced_at = time.monotonic()
    # ...and a person's ticket reaches both (the skipping webhook does send)
    time.sleep(1.05)
    with real_glpi.client(user_token=real_glpi.human_token) as person:
        by_person = person.add_item("Ticket", {"name": "Printer jammed", "content": "paper",
                                               "entities_id": 0})
    assert wait_until(lambda: tickets_announced(receiver, ALL, by_person)
                      and tickets_announced(receiver, SKIPS, by_person), 120), \
        f"the person's ticket did not reach both webhooks{components.tails()}"
    time.sleep(max(0.0, announced_at + 5 - time.monotonic()))  # room for a late request
    ours = [(r.path, json.loads(r.body)["ticket"]) for r in receiver.requests()
            if json.loads(r.body)["ticket"] in (tickets_id, by_person)]
    assert (SKIPS, tickets_id) not in ours, \
        "the webhook with skip_integration_users sent the ticket the integration user opened"
    assert sorted(ours) == sorted([(ALL, tickets_id), (ALL, by_person), (SKIPS, by_person)]), \
        f"an event was sent twice or not at all: {ours}"
    [request] = [r for r in receiver.requests(ALL) if json.loads(r.body)["ticket"] == tickets_id]
    assert json.loads(request.body)["text"] == f"New ticket #{tickets_id}: {ticket['name']}"

    # 4. the alert resolves: a followup and a solution, the ticket solved
    time.sleep(1.05)
    resolved = post(alerts, "resolved", INSTANCE)
    assert wait_until(lambda: resolved in handled(settings), 120), \
        f"the resolved alert was not handled{components.tails()}"
    [resolved_event] = read(settings, ALERTS, AlertEvent, lambda e: e.event_id == resolved)
    assert glpi.get_item("Ticket", tickets_id)["status"] == SOLVED
    followups = glpi.request("GET", f"Ticket/{tickets_id}/ITILFollowup").json()
    solutions = glpi.request("GET", f"Ticket/{tickets_id}/ITILSolution").json()
    assert [ticket_marker(resolved_event) in f["content"] for f in followups] == [True]
    assert [s["content"] for s in solutions] == ["ProbeFailure resolved"]
    assert [a.action for a in actions(settings) if a.alert_event_id == resolved] == ["solved"]
    assert opened_by_alerts(settings, glpi) == {tickets_id}
