"""plan(): which webhooks an event fires and the requests they render, without a broker."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from hookstream.matching import EntityTable, RenderFailure, WebhookIndex, build_tree, plan, why_not
from hookstream.records import DeliveryRequest, WebhookDefinition, delivery_id_for, make_event
from hookstream.render import RenderLimits
from tests.conftest import fixture_item

NOW_MS = 1_762_245_332_000
TICKET = fixture_item("Ticket.json")
# Root(0) > Europe(1) > France(3); Asia(2) under Root.
ENTITIES = EntityTable()
for entity in build_tree("glpi-a", [(0, -1, "Root"), (1, 0, "Europe"), (3, 1, "France"),
                                    (2, 0, "Asia")]):
    ENTITIES.put(entity)


def webhook(id: str, **fields: Any) -> WebhookDefinition:
    base: dict[str, Any] = {
        "version": 1, "instance": "glpi-a", "name": id, "itemtype": "Ticket", "event": "new",
        "url": "https://receiver.example/hook", "secret_encrypted": "", "is_active": True,
        "entities_id": 0, "is_recursive": True,
    }
    return WebhookDefinition(id=id, **{**base, **fields})


def ticket_event(entity: int, event: str = "new", **item: Any) -> Any:
    body = {**TICKET, **item, "entity": {"id": entity, "name": "e", "completename": "e"}}
    return make_event("glpi-a", "Ticket", body["id"], event, body, entities_id=entity,
                      occurred_at=NOW_MS)


def index_of(*definitions: WebhookDefinition) -> WebhookIndex:
    index = WebhookIndex()
    for d in definitions:
        index.put(d)
    return index


HOOKS = index_of(
    webhook("everywhere"),
    webhook("europe-recursive", entities_id=1),
    webhook("europe-only", entities_id=1, is_recursive=False),
    webhook("asia", entities_id=2),
    webhook("inactive", is_active=False),
    webhook("on-update", event="update"),
    webhook("other-instance", instance="glpi-b"),
    webhook("urgent-only", filter=json.dumps(
        [{"link": "AND", "field": "urgency", "searchtype": "equals", "value": 5}])),
    webhook("custom", use_default_payload=False, url="https://receiver.example/t/{{ item.id }}",
            payload='{"id": {{ item.id }}, "name": "{{ item.name }}"}'),
)


@pytest.mark.parametrize(("entity", "urgency", "fired"), [
    (3, 5, {"everywhere", "europe-recursive", "urgent-only", "custom"}),
    (1, 3, {"everywhere", "europe-recursive", "europe-only", "custom"}),
    (2, 3, {"everywhere", "asia", "custom"}),
    (0, 5, {"everywhere", "urgent-only", "custom"}),
])
def test_which_webhooks_fire(entity: int, urgency: int, fired: set[str]) -> None:
    event = ticket_event(entity, urgency=urgency)
    planned = plan(event, HOOKS, ENTITIES, NOW_MS)
    assert all(isinstance(p, DeliveryRequest) for p in planned)
    assert {p.webhook_id for p in planned} == fired  # type: ignore[union-attr]


def test_requests_carry_stable_ids_and_rendered_parts() -> None:
    event = ticket_event(3, urgency=1)
    planned = plan(event, HOOKS, ENTITIES, NOW_MS)
    custom = next(p for p in planned if isinstance(p, DeliveryRequest) and p.webhook_id == "custom")
    assert custom.delivery_id == delivery_id_for(event.event_id, "custom")
    assert custom.url == f"https://receiver.example/t/{TICKET['id']}"
    assert json.loads(custom.body) == {"id": TICKET["id"], "name": TICKET["name"]}
    assert custom.headers["Content-Type"] == "application/json"
    assert (custom.method, custom.created_at, custom.attempt) == ("POST", NOW_MS, 0)
    assert plan(event, HOOKS, ENTITIES, NOW_MS + 5)[0].delivery_id == planned[0].delivery_id  # type: ignore[union-attr]


def test_a_failing_template_is_a_render_failure_not_a_request() -> None:
    index = index_of(
        webhook("broken", use_default_payload=False, payload="{{ range(1, 10**9)|length }}"),
        webhook("fine"),
    )
    broken, fine = plan(ticket_event(0), index, ENTITIES, NOW_MS)
    assert isinstance(broken, RenderFailure) and broken.request.body == b""
    assert broken.request.last_error is not None
    assert broken.request.last_error.startswith("render_error: payload")
    assert isinstance(fine, DeliveryRequest) and fine.webhook_id == "fine"


def test_invalid_definitions_are_kept_aside_with_the_reason() -> None:
    index = index_of(webhook("bad-filter", filter=json.dumps(
        [{"link": "AND", "field": 12, "searchtype": "smells_like", "value": 1}])))
    assert len(index) == 0 and "bad-filter" in index.invalid
    index.put(webhook("bad-filter", version=2))  # fixed by a new version
    assert len(index) == 1 and "bad-filter" not in index.invalid


def test_a_new_version_replaces_the_old_one() -> None:
    index = index_of(webhook("w", event="new"))
    index.put(webhook("w", version=2, event="update"))
    assert index.candidates("glpi-a", "Ticket", "new") == []
    [compiled] = index.candidates("glpi-a", "Ticket", "update")
    assert compiled.definition.version == 2
    index.remove("w")
    assert len(index) == 0 and index.candidates("glpi-a", "Ticket", "update") == []


@pytest.mark.parametrize(("hook", "entity", "reason"), [
    ("inactive", 0, "webhook is not active"),
    ("asia", 3, "item entity 3 is outside webhook entity 2 (and its sub-entities)"),
    ("europe-only", 3, "item entity 3 is outside webhook entity 1 (only)"),
    ("on-update", 0, "webhook is for glpi-a/Ticket/update, event is glpi-a/Ticket/new"),
])
def test_why_not_names_the_first_failed_condition(hook: str, entity: int, reason: str) -> None:
    compiled = HOOKS.get(hook)
    assert compiled is not None
    event = ticket_event(entity, urgency=1)
    assert why_not(compiled, event, json.loads(event.item), ENTITIES) == reason


def test_why_not_names_the_filter() -> None:
    compiled = HOOKS.get("urgent-only")
    assert compiled is not None
    event = ticket_event(0, urgency=1)
    reason = why_not(compiled, event, json.loads(event.item), ENTITIES)
    assert reason is not None and reason.startswith("filter: ")


DATES = ("{{ item.date_mod|date('Y-m-d H:i T') }} / {{ 'now'|date('e') }} / "
         "{{ item.local_date|date('c') }}")


@pytest.mark.parametrize(("timezone", "body"), [
    ("UTC", "2025-11-04 08:15 UTC / UTC / 2024-05-02T10:15:00+00:00"),
    ("Europe/Paris", "2025-11-04 09:15 CET / Europe/Paris / 2024-05-02T10:15:00+02:00"),
])
def test_dates_render_in_the_time_zone_of_the_limits(timezone: str, body: str) -> None:
    """The processor passes each event's instance's limits; PHP 8.2's Twig gives these."""
    hooks = index_of(webhook("dates", use_default_payload=False, payload=DATES))
    event = ticket_event(3, local_date="2024-05-02 10:15:00")  # GLPI's local form: no offset
    [request] = plan(event, hooks, ENTITIES, NOW_MS, RenderLimits(timezone=timezone))
    assert isinstance(request, DeliveryRequest)
    assert request.body.decode() == body


def test_active_candidates_follow_every_change_of_their_key() -> None:
    index = index_of(webhook("a"), webhook("b", is_active=False), webhook("c", event="update"))
    assert [w.definition.id for w in index.active("glpi-a", "Ticket", "new")] == ["a"]
    index.put(webhook("b", version=2))  # activated
    assert [w.definition.id for w in index.active("glpi-a", "Ticket", "new")] == ["a", "b"]
    index.put(webhook("a", version=2, is_active=False))  # deactivated
    assert [w.definition.id for w in index.active("glpi-a", "Ticket", "new")] == ["b"]
    index.remove("b")
    assert index.active("glpi-a", "Ticket", "new") == ()
    assert [w.definition.id for w in index.candidates("glpi-a", "Ticket", "new")] == ["a"]
    assert [w.definition.id for w in index.active("glpi-a", "Ticket", "update")] == ["c"]


def test_an_item_is_parsed_only_for_a_candidate_in_scope() -> None:
    """Out of every candidate's entity scope, an event is rejected before its item is read:
    an item that is not JSON costs nothing there, and fails where a filter needs it."""
    europe_only = index_of(webhook("europe-only", entities_id=1, is_recursive=False))
    event = dataclasses.replace(ticket_event(2), item="{not json")
    assert plan(event, europe_only, ENTITIES, NOW_MS) == []
    with pytest.raises(ValueError):
        plan(dataclasses.replace(ticket_event(1), item="{not json"), europe_only, ENTITIES,
             NOW_MS)
