"""The processor's consumer as a static group member (`group_instance_id`): it joins under
its name, and leaves the group when the process stops, not when its clients are rebuilt."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from confluent_kafka.admin import AdminClient

from hookstream.config import Settings
from hookstream.io import create_topics
from hookstream.io.kafka import client_config
from hookstream.records import ITEM_CHANGES
from processors.clients import TransactionalClients
from processors.processor import GROUP
from tests.conftest import settings_for
from tests.integration.harness import wait_until


def members(settings: Settings) -> list[str]:
    client = AdminClient(client_config(settings))
    group = client.describe_consumer_groups([GROUP])[GROUP].result(timeout=10)
    return sorted(m.group_instance_id or "" for m in group.members)


def joined(clients: TransactionalClients) -> bool:
    clients.consume(1, 0.2)
    return bool(clients.consumer.assignment())


def test_the_processor_joins_under_its_name_and_leaves_only_when_it_stops(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = replace(settings_for(kafka_bootstrap, tmp_path), group_instance_id="processor-0")
    create_topics(settings)
    stopping = threading.Event()
    topic = settings.topic(ITEM_CHANGES)

    rebuilt = TransactionalClients(settings, GROUP, "t-processor-0", stopping, lambda _: None)
    rebuilt.start([topic])
    assert wait_until(lambda: joined(rebuilt), 30)
    assert members(settings) == ["processor-0"]
    rebuilt.close()  # a rebuild (not stopping): the member stays, for its successor
    assert members(settings) == ["processor-0"]

    clients = TransactionalClients(settings, GROUP, "t-processor-0", stopping, lambda _: None)
    clients.start([topic])
    assert wait_until(lambda: joined(clients), 30)  # under the same name
    assert members(settings) == ["processor-0"]
    stopping.set()
    clients.close()  # the process stops: it leaves
    assert members(settings) == []
