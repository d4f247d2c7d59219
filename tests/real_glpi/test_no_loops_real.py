"""No loops against the real GLPI 10: a change made through the API with a user's token
reaches Kafka with that user's id as `changed_by` (GLPI's last updater), in the scenario the
fake GLPI plays in tests/integration/test_poller_changed_by.py, with the same answers; and
integration users named by login are resolved through GLPI's own API."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.glpi import GlpiClient, user_ids_through_glpi
from connectors.poller import PollerApi
from connectors.poller.kafka_io import KafkaOut
from hookstream.config import Settings
from hookstream.control.instances import apply_instances
from hookstream.errors import InvalidDefinition
from hookstream.io import codec_for, read_all
from hookstream.records import ITEM_CHANGES, ItemChangeEvent
from tests.integration.test_poller_changed_by import (
    EXPECTED,
    INTEGRATION,
    PERSON,
    Recorded,
    Scenario,
    play,
)
from tests.real_glpi.conftest import INSTANCE, RealGlpi

GLPI_ADMIN = 2  # the `glpi` user of a fresh GLPI: the person here


class RealHands:
    """Each role through its own API session (its user token)."""

    def __init__(self, person: GlpiClient, integration: GlpiClient):
        self.clients = {PERSON: person, INTEGRATION: integration}

    def create(self, role: str, itemtype: str, name: str) -> int:
        return self.clients[role].add_item(itemtype, {"name": name, "content": "x"}
                                           if itemtype == "Ticket" else {"name": name})

    def update(self, role: str, itemtype: str, items_id: int, **fields: Any) -> None:
        self.clients[role].update_item(itemtype, items_id, fields)

    def followup(self, role: str, ticket: int) -> None:
        self.clients[role].add_item("ITILFollowup", {"itemtype": "Ticket", "items_id": ticket,
                                                     "content": f"{role}'s followup"})

    def trash(self, role: str, itemtype: str, items_id: int) -> None:
        self.clients[role].request("DELETE", f"{itemtype}/{items_id}")

    def tick(self) -> None:
        time.sleep(1.05)  # GLPI's date_mod counts seconds


class ToKafka(Recorded):
    """The poller's own Kafka output, recorded on the way."""

    def __init__(self, settings: Settings):
        super().__init__()
        self.kafka = KafkaOut(settings)

    def produce(self, events: Sequence[ItemChangeEvent]) -> None:
        self.kafka.produce(events)
        super().produce(events)


def test_changes_reach_kafka_with_their_users_id_as_the_fake_says(
        published: Settings, real_glpi: RealGlpi) -> None:
    out = ToKafka(published)
    with real_glpi.client(user_token=real_glpi.human_token) as person, \
            real_glpi.client() as integration:
        scenario = Scenario(RealHands(person, integration), PollerApi(integration),
                            {GLPI_ADMIN: PERSON, integration.user_id(): INTEGRATION}, out, {})
        assert play(scenario) == EXPECTED
        integration_id = integration.user_id()
    ours = {(e.itemtype, e.items_id) for e in out.events if (e.itemtype, e.items_id)
            in scenario.names}
    codec = codec_for(published)
    on_kafka = [codec.decode(m.value(), m.headers(), ItemChangeEvent)
                for m in read_all(published, published.topic(ITEM_CHANGES))]
    produced = [(e.event_id, e.changed_by) for e in out.events if (e.itemtype, e.items_id)
                in ours]
    assert sorted(((e.event_id, e.changed_by) for e in on_kafka  # partitions: order per item
                   if (e.itemtype, e.items_id) in ours), key=str) == sorted(produced, key=str)
    assert {by for _, by in produced} == {GLPI_ADMIN, integration_id, None}


def test_integration_users_named_by_login_are_resolved_through_glpi(
        published: Settings, real_glpi: RealGlpi, tmp_path: Path) -> None:
    with real_glpi.client() as integration:
        integration_id = integration.user_id()
        assert integration.user_ids(["hookstream", "GLPI", "hookstream-obs", "nobody"]) == {
            "hookstream": integration_id, "GLPI": GLPI_ADMIN}  # exact, case as GLPI ignores it
    path = tmp_path / "instances.yaml"

    def apply(users: list[int | str]) -> list[int]:
        path.write_text(yaml.safe_dump({
            "name": INSTANCE, "api_url": real_glpi.url, "app_token": real_glpi.app_token,
            "user_token": real_glpi.user_token, "secret": "conformance-webhook-secret-0123456789",
            "integration_users": users}))
        [(record, _)] = apply_instances(published, path, user_ids_through_glpi(published))
        return record.integration_users

    assert apply(["hookstream", 99]) == sorted([integration_id, 99])
    with pytest.raises(InvalidDefinition, match="GLPI knows no user with login ghost"):
        apply(["ghost"])
