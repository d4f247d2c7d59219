"""hookstream on a broker that admits only authenticated clients and denies whatever no ACL
allows: SASL_SSL with a SCRAM user per component holding only the ACLs of
hookstream.control.acls, mutual TLS, and the error each misconfiguration gets."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from connectors.redrive import redrive
from hookstream.config import Settings
from hookstream.control import admin
from hookstream.io import create_topics
from hookstream.records import ATTEMPTS, AttemptRecord
from processors.processor import Processor
from tests.conftest import FIXTURES
from tests.fake_glpi import FakeGlpiSender
from tests.integration.harness import RunningDelivery, apply_webhooks, read, wait_until
from tests.integration.logstore_harness import RunningLogStore
from tests.integration.test_ingest import SECRET, RunningIngest, apply_instances, post_all
from tests.receiver import Receiver
from tests.secure_kafka import MTLS_CLIENT, SecureKafka, secure_kafka

TICKET = FIXTURES / "webhook_default_payloads" / "Ticket_new.json"


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    with secure_kafka(tmp_path_factory.mktemp("secure"), Settings().cache_path) as secured:
        yield secured


@pytest.fixture
def prefix() -> str:
    return f"s{uuid.uuid4().hex[:8]}."


def as_user(kafka: SecureKafka, user: str, tmp_path: Path, prefix: str, **extra: object
            ) -> Settings:
    """`user`'s settings, holding exactly the ACLs of the component of the same name."""
    kafka.grant_component(user, user, prefix)
    return kafka.settings(user, tmp_path, prefix, **extra)


def outcomes(settings: Settings, webhook_id: str) -> list[str]:
    return [a.outcome for a in read(settings, ATTEMPTS, AttemptRecord)
            if a.webhook_id == webhook_id]


def test_the_pipeline_runs_with_each_component_as_its_own_least_privileged_principal(
    kafka: SecureKafka, tmp_path: Path, prefix: str
) -> None:
    users = {user: as_user(kafka, user, tmp_path, prefix)
             for user in ("operator", "processor", "ingest", "delivery", "logstore")}
    operator = users["operator"]
    create_topics(operator)
    apply_instances(operator, tmp_path)
    tree = tmp_path / "entities.yaml"
    tree.write_text(yaml.safe_dump({"instance": "glpi-a", "entities": [
        {"id": 0, "parent_id": None, "name": "Root entity"}]}))
    admin.apply_entities(operator, tree)
    with Receiver() as receiver:
        receiver.on("/gone", statuses=[410])
        allow = {"allowed_networks": ["127.0.0.0/8"], "entities_id": 0, "is_recursive": True}
        apply_webhooks(operator, tmp_path,
                       {"id": "ok", "url": receiver.url("/ok"), **allow},
                       {"id": "gone", "url": receiver.url("/gone"), "sent_try": 0, **allow})
        processor = Processor(users["processor"])
        thread = threading.Thread(target=processor.run, daemon=True)
        thread.start()
        try:
            with RunningIngest(users["ingest"]) as ingest, \
                    RunningDelivery(users["delivery"]), \
                    RunningLogStore(users["logstore"]):
                glpi = FakeGlpiSender(SECRET)
                row = glpi.queue(f"{ingest.url}/glpi/glpi-a/Ticket", TICKET.read_bytes(),
                                 int(time.time()))
                assert asyncio.run(post_all([row], glpi)) == [200]
                [delivered] = receiver.wait_for(1, path="/ok", timeout_s=60)
                assert delivered.body == TICKET.read_bytes()
                assert wait_until(lambda: outcomes(operator, "gone") == ["dead_lettered"])
                # redrive, as the operator (a transaction of its own): sent once more
                assert redrive(operator) == 1
                assert wait_until(lambda: outcomes(operator, "gone") == ["dead_lettered"] * 2)
                assert len(receiver.requests("/gone")) == 2
        finally:
            processor.stopping.set()
            thread.join(30)
    assert not thread.is_alive()


def test_a_client_certificate_is_the_principal_on_the_mutual_tls_listener(
    kafka: SecureKafka, tmp_path: Path, prefix: str
) -> None:
    certs = kafka.folder
    settings = Settings(
        bootstrap_servers=kafka.broker.mtls_bootstrap, topic_prefix=prefix,
        state_dir=str(tmp_path / "state"), partitions=1,
        kafka_security_protocol="SSL", kafka_ssl_ca_location=str(kafka.ca_file),
        kafka_ssl_certificate_location=str(certs / f"{MTLS_CLIENT}.crt"),
        kafka_ssl_key_location=str(certs / f"{MTLS_CLIENT}.key"),
    )
    kafka.grant_component("operator", MTLS_CLIENT, prefix)
    report = create_topics(settings)
    assert {state for _, state in report} == {"created"}
