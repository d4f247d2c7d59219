"""Operational events as records: stable ids, the Avro round trip, their topic, the event
the processor matches, and what a webhook about webhooks may say in its YAML."""

from __future__ import annotations

import json

from hookstream.config import load_settings
from hookstream.control import validate
from hookstream.records import (
    OPERATIONS,
    Codec,
    OperationType,
    as_item_change,
    avro_topics,
    operational_event,
    topic_specs,
)

HOOK = {"id": "ops", "instance": "glpi-a", "name": "ops", "itemtype": "Hookstream",
        "url": "https://ops.example/in"}


def test_the_same_event_twice_has_the_same_id_and_round_trips() -> None:
    one = operational_event(OperationType.DELIVERY_DEAD_LETTERED, 5, "glpi-a", "w", "HTTP 410",
                            "d1:0", delivery_id="d1")
    assert one == operational_event(OperationType.DELIVERY_DEAD_LETTERED, 5, "glpi-a", "w",
                                    "HTTP 410", "d1:0", delivery_id="d1")
    assert one.event_id != operational_event(OperationType.DELIVERY_DEAD_LETTERED, 5,
                                             "glpi-a", "w", "HTTP 410", "d1:1").event_id
    value, headers = Codec().encode(one, "p." + OPERATIONS)
    assert Codec().decode(value, headers, type(one)) == one


def test_the_topic_is_created_with_a_retention_and_holds_operational_events() -> None:
    settings = load_settings(env={}, check_dns=False, topic_prefix="p.")
    [spec] = [s for s in topic_specs(settings) if s.name == "p." + OPERATIONS]
    assert spec.config == {"cleanup.policy": "delete", "retention.ms": str(30 * 86_400_000)}
    assert avro_topics(settings)["p." + OPERATIONS] == "OperationalEvent"


def test_the_processor_matches_it_as_a_hookstream_event_of_the_webhooks_instance() -> None:
    event = operational_event(OperationType.CIRCUIT_OPENED, 7, "glpi-b", "w", "down", "x",
                              origin="https://t.example:443")
    change = as_item_change(event)
    assert (change.instance, change.itemtype, change.event, change.event_id) == (
        "glpi-b", "Hookstream", "circuit.opened", event.event_id)
    assert json.loads(change.item)["origin"] == "https://t.example:443"


def test_a_webhook_about_webhooks_takes_the_operational_types_only() -> None:
    assert validate({**HOOK, "event": "webhook.disabled"}, (10,)) == []
    assert validate({**HOOK, "event": "new"}, (10,)) == [
        "unknown event 'new': Hookstream webhooks take webhook.disabled, "
        "delivery.dead_lettered, circuit.opened"]
    assert validate({**HOOK, "itemtype": "Ticket", "event": "webhook.disabled"}, (10,)) == [
        "unknown event 'webhook.disabled': GLPI raises only new, update, delete"]
    assert "unknown field 'disabled_reason'" in validate(
        {**HOOK, "event": "webhook.disabled", "disabled_reason": "x"}, (10,))
