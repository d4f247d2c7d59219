"""The ticketer's decisions, table-driven, and the ticket it opens."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from hookstream.alerting.rules import compile_rule
from hookstream.alerting.tickets import (
    Followup,
    Open,
    Reopen,
    Resolve,
    Unchanged,
    after,
    decide,
    followup_text,
    ticket_fields,
    ticket_marker,
)
from hookstream.errors import RenderError
from hookstream.records import AlertEvent, AlertRule, AlertTicket
from hookstream.render import RenderLimits

RULE = AlertRule(id="r", version=1, instance="glpi-lyon", entities_id=3,
                 name_template="[{{ alert.labels.severity }}] {{ alert.name }}",
                 content_template="{{ alert.annotations.summary }} since "
                                  "{{ alert.starts_at|date('H:i') }}",
                 urgency_label="severity", urgency_values={"critical": 5},
                 repeat_followup_after_s=60, groups_id_assign=6, requesttypes_id=8)
FIRING = AlertEvent(event_id="e1", instance="glpi-lyon", source="alertmanager",
                    fingerprint="f1", status="firing", name="DiskFull",
                    starts_at=1_765_000_000_000, received_at=1_765_000_001_000,
                    labels={"severity": "critical"}, annotations={"summary": "disk <full>"})
RESOLVED = replace(FIRING, event_id="e2", status="resolved", received_at=FIRING.received_at + 5)


def ticket(state: str, **changes: Any) -> AlertTicket:
    base = AlertTicket(instance="glpi-lyon", source="alertmanager", fingerprint="f1",
                       rule_id="r", tickets_id=42, state=state, marker="m",
                       opened_at=FIRING.received_at, last_firing_at=FIRING.received_at,
                       alert_offset=10)
    return replace(base, **changes)


LATER = 61_000  # past the rule's quiet period


@pytest.mark.parametrize(("event", "current", "rule", "expected"), [
    (FIRING, None, RULE, Open(ticket_marker(FIRING))),
    (FIRING, ticket("open"), RULE, Unchanged()),
    (replace(FIRING, received_at=FIRING.received_at + LATER), ticket("open"), RULE, Followup()),
    (replace(FIRING, received_at=FIRING.received_at + LATER), ticket("open"),
     replace(RULE, repeat_followup_after_s=0), Unchanged()),
    (FIRING, ticket("open", last_followup_at=FIRING.received_at + LATER), RULE, Unchanged()),
    (FIRING, ticket("resolved"), RULE, Followup()),
    (FIRING, ticket("solved"), RULE, Reopen()),
    (FIRING, ticket("solved"), replace(RULE, on_refire="new"), Open(ticket_marker(FIRING))),
    (RESOLVED, ticket("open"), RULE, Resolve(solve=True)),
    (RESOLVED, ticket("open"), replace(RULE, solve_on_resolved=False), Resolve(solve=False)),
    (RESOLVED, None, RULE, Unchanged()),
    (RESOLVED, ticket("solved"), RULE, Unchanged()),
    (RESOLVED, ticket("resolved"), RULE, Unchanged()),
])
def test_decisions(event: AlertEvent, current: AlertTicket | None, rule: AlertRule,
                   expected: object) -> None:
    assert decide(event, rule, current, offset=11) == expected


def test_an_event_already_applied_is_skipped_as_a_replay() -> None:
    assert decide(RESOLVED, RULE, ticket("open"), offset=10) == Unchanged(replayed=True)
    assert decide(FIRING, RULE, ticket("solved"), offset=3) == Unchanged(replayed=True)


def test_the_map_entry_after_each_decision() -> None:
    opened = after(None, Open("mk"), FIRING, RULE, 42, 11, now_ms=9)
    assert opened is not None
    assert (opened.tickets_id, opened.state, opened.marker, opened.alert_offset,
            opened.opened_at, opened.key()) == (42, "open", "mk", 11, FIRING.received_at,
                                                "glpi-lyon:alertmanager:f1")
    solved = after(opened, Resolve(True), RESOLVED, RULE, 42, 12, now_ms=10)
    assert solved is not None and (solved.state, solved.alert_offset,
                                   solved.last_followup_at) == ("solved", 12, RESOLVED.received_at)
    left = after(opened, Resolve(False), RESOLVED, RULE, 42, 12, now_ms=10)
    assert left is not None and left.state == "resolved"
    reopened = after(solved, Reopen(), FIRING, RULE, 42, 13, now_ms=11)
    assert reopened is not None and (reopened.state, reopened.tickets_id) == ("open", 42)
    assert after(opened, Unchanged(), FIRING, RULE, 42, 14, now_ms=12) is None
    assert after(None, Unchanged(), RESOLVED, RULE, 0, 14, now_ms=12) is None


def test_the_marker_is_stable_per_event_and_survives_sanitizing() -> None:
    marker = ticket_marker(FIRING)
    assert marker == ticket_marker(FIRING) != ticket_marker(RESOLVED)
    assert marker.replace("-", "").isalnum() and marker.startswith("hookstream-alert-")


def test_ticket_fields_from_the_rule_and_the_alert() -> None:
    limits = RenderLimits(timezone="Europe/Paris")
    fields = ticket_fields(RULE, compile_rule(RULE), FIRING, "mk", 0, limits)
    assert fields == {"name": "[critical] DiskFull",
                      "content": "disk <full> since 06:46\n\nmk",
                      "entities_id": 3, "type": 1, "urgency": 5, "impact": 3,
                      "requesttypes_id": 8, "_groups_id_assign": 6}
    text = followup_text(compile_rule(RULE), RESOLVED, 42, 0, limits)
    assert text == f"Alert DiskFull resolved (alertmanager f1).\n\n{ticket_marker(RESOLVED)}"


def test_a_failing_template_is_a_render_error() -> None:
    rule = replace(RULE, content_template="{{ alert.labels|join(1, 2, 3) }}")
    with pytest.raises(RenderError):
        ticket_fields(rule, compile_rule(rule), FIRING, "mk", 0, RenderLimits())
