"""hookstream on a broker that admits only authenticated clients and denies whatever no ACL
allows: SASL_SSL with a SCRAM user per component holding only the ACLs of
hookstream.control.acls, mutual TLS, and the error each misconfiguration gets."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from connectors.delivery.redrive import redrive
from hookstream.config import Settings
from hookstream.control import admin
from hookstream.control.replay import ReplayJob, replay
from hookstream.errors import KafkaFailed
from hookstream.io import create_topics
from hookstream.io import kafka as kafka_io
from hookstream.io.kafka_link import KafkaLink
from hookstream.records import (
    ATTEMPTS,
    DELIVERIES,
    ITEM_CHANGES,
    AttemptRecord,
    DeliveryRequest,
    make_event,
)
from processors.processor import Processor
from tests.conftest import FIXTURES
from tests.fake_glpi import FakeGlpiSender
from tests.integration.harness import (
    RunningDelivery,
    apply_webhooks,
    publish,
    read,
    request_for,
    wait_until,
)
from tests.integration.logstore_harness import RunningLogStore
from tests.integration.test_ingest import SECRET, RunningIngest, apply_instances, post_all
from tests.receiver import Receiver
from tests.secure_kafka import (
    MTLS_CLIENT,
    OAUTH_CLIENT,
    SecureKafka,
    make_ca,
    secure_kafka,
)

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
             for user in ("operator", "processor", "ingest", "delivery", "logstore", "admin")}
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
                # a replay, as the admin API runs it (a group and a transaction of its own)
                replayed = replay(users["admin"], ReplayJob("ok", "secure", 0))
                assert (replayed.count.matched, replayed.count.replayed) == (1, 1)
                again = receiver.wait_for(2, path="/ok", timeout_s=60)
                assert len(again) == 2 and again[1].body == delivered.body
        finally:
            processor.stopping.set()
            thread.join(30)
    assert not thread.is_alive()


def creates_every_topic(kafka: SecureKafka, tmp_path: Path, prefix: str, principal: str,
                        **connection: str) -> None:
    """A client connecting with `connection`, holding the operator's ACLs as `principal`
    (the name the broker gives it), creates every topic."""
    settings = Settings(topic_prefix=prefix, state_dir=str(tmp_path / "state"), partitions=1,
                        kafka_ssl_ca_location=str(kafka.ca_file), **connection)
    kafka.grant_component("operator", principal, prefix)
    report = create_topics(settings)
    assert {state for _, state in report} == {"created"}


def test_a_client_certificate_is_the_principal_on_the_mutual_tls_listener(
    kafka: SecureKafka, tmp_path: Path, prefix: str
) -> None:
    creates_every_topic(
        kafka, tmp_path, prefix, MTLS_CLIENT,
        bootstrap_servers=kafka.broker.mtls_bootstrap, kafka_security_protocol="SSL",
        kafka_ssl_certificate_location=str(kafka.folder / f"{MTLS_CLIENT}.crt"),
        kafka_ssl_key_location=str(kafka.folder / f"{MTLS_CLIENT}.key"),
    )


def test_a_missing_acl_is_one_line_naming_who_what_and_where_and_granting_it_recovers(
    kafka: SecureKafka, tmp_path: Path, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    operator = as_user(kafka, "operator", tmp_path, prefix)
    create_topics(operator)
    apply_webhooks(operator, tmp_path, {"id": "ok", "url": "http://127.0.0.1:9/in",
                                        "allowed_networks": ["127.0.0.0/8"]})
    publish(operator, [make_event("glpi-a", "Ticket", 1, "new", {"id": 1}, entities_id=0,
                                  occurred_at=1_700_000_000_000)], ITEM_CHANGES)
    deliveries = f"{prefix}hookstream.deliveries"
    kafka.grant_component("processor", "processor", prefix, but=f"{deliveries},Resource")
    processor = Processor(kafka.settings("processor", tmp_path, prefix))
    thread = threading.Thread(target=processor.run, daemon=True)
    with caplog.at_level(logging.WARNING):
        thread.start()
        try:
            expected = f"Kafka denies User:processor WRITE on topic {deliveries}"
            assert wait_until(lambda: expected in caplog.text, timeout_s=60)
            time.sleep(5)  # the processor keeps trying meanwhile, quietly
            assert caplog.text.count(expected) == 1
            assert not processor.ready.is_set()
            assert processor.stats["deliveries"] == 0
            assert "Traceback" not in caplog.text
            # the operator grants the ACL: the same process goes on, nothing lost
            kafka.grant_component("processor", "processor", prefix)
            assert wait_until(lambda: processor.stats["deliveries"] == 1, timeout_s=60)
            assert processor.ready.is_set()
        finally:
            processor.stopping.set()
            thread.join(30)
    assert len(read(operator, DELIVERIES, DeliveryRequest)) == 1


def test_a_table_topic_it_may_not_read_is_named_with_the_principal(
    kafka: SecureKafka, tmp_path: Path, prefix: str
) -> None:
    create_topics(as_user(kafka, "operator", tmp_path, prefix))
    instances = f"{prefix}hookstream.instances"
    kafka.grant_component("ingest", "ingest", prefix, but=f"{instances},Resource")
    ingest = RunningIngest(kafka.settings("ingest", tmp_path, prefix))
    with pytest.raises(RuntimeError) as failed:
        ingest.__enter__()
    assert f"Kafka denies User:ingest READ on topic {instances}: an ACL is missing" in str(
        failed.value)


@pytest.mark.parametrize(("change", "cause"), [
    ({"kafka_sasl_password": "wrong"},
     "the brokers refused the credentials of User:operator"),
    ({"kafka_ssl_ca_location": "rogue-ca"},
     "is not signed by a trusted CA (check kafka_ssl_ca_location)"),
    ({"bootstrap_servers": "localhost"},  # the broker's certificate names 127.0.0.1 only
     "is not issued for that host name"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT"}, "Kafka unreachable"),
])
def test_each_misconfiguration_ends_in_one_line_naming_its_cause(
    kafka: SecureKafka, tmp_path: Path, prefix: str, change: dict[str, str], cause: str,
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the process's link as a fresh process has it, on a logger of its own: clients of
    # earlier tests (gauge threads polling brokers long stopped) log on the shared one
    link = KafkaLink(logger=logging.getLogger("test.link"))
    monkeypatch.setattr(kafka_io, "LINK", link)
    if change.get("kafka_ssl_ca_location"):
        change = {"kafka_ssl_ca_location": str(make_ca(tmp_path, "rogue-ca")[0])}
    if change.get("bootstrap_servers"):
        change = {"bootstrap_servers": kafka.broker.bootstrap.replace("127.0.0.1", "localhost")}
    settings = dataclasses.replace(kafka.settings("operator", tmp_path, prefix), **change)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(KafkaFailed) as failed:
        create_topics(settings, timeout_s=10)
    assert time.monotonic() - started < 30  # never a hang
    assert cause in str(failed.value)
    assert kafka.passwords["operator"] not in str(failed.value) + caplog.text
    assert not link.ok()  # /readyz says not ready
    unreachable = [r for r in caplog.records if r.name == "test.link"]
    assert len(unreachable) == 1, caplog.text  # one line, not one per retry
    assert unreachable[0].getMessage().startswith("Kafka unreachable: ")


def test_oauthbearer_clients_get_their_token_from_the_oidc_endpoint(
    kafka: SecureKafka, tmp_path: Path, prefix: str
) -> None:
    oidc = kafka.oidc
    creates_every_topic(  # the principal is the token's sub
        kafka, tmp_path, prefix, OAUTH_CLIENT,
        bootstrap_servers=kafka.broker.bootstrap, kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="OAUTHBEARER", kafka_oauth_token_url=f"{oidc.url}/token",
        kafka_oauth_client_id=OAUTH_CLIENT, kafka_oauth_client_secret=oidc.clients[OAUTH_CLIENT],
        kafka_oauth_scope="kafka",
    )
    assert oidc.tokens_issued >= 1



def test_delivery_without_write_on_attempts_says_so_once_is_unready_and_recovers(
    kafka: SecureKafka, tmp_path: Path, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    operator = as_user(kafka, "operator", tmp_path, prefix)
    create_topics(operator)
    with Receiver() as receiver:
        apply_webhooks(operator, tmp_path, {"id": "ok", "url": receiver.url("/ok"),
                                            "allowed_networks": ["127.0.0.0/8"]})
        publish(operator, [request_for("ok", receiver.url("/ok"), n) for n in range(3)])
        attempts = f"{prefix}hookstream.attempts"
        kafka.grant_component("delivery", "delivery", prefix, but=f"{attempts},Resource")
        with caplog.at_level(logging.WARNING), \
                RunningDelivery(kafka.settings("delivery", tmp_path, prefix)) as running:
            expected = f"Kafka denies User:delivery WRITE on topic {attempts}"
            assert wait_until(lambda: expected in caplog.text, timeout_s=60)
            time.sleep(5)  # retried every second meanwhile, quietly
            assert caplog.text.count(expected) == 1
            assert "Traceback" not in caplog.text
            assert running.service is not None and not running.service.is_ready()
            kafka.grant_component("delivery", "delivery", prefix)
            assert wait_until(lambda: len(read(operator, ATTEMPTS, AttemptRecord)) == 3,
                              timeout_s=60)
    assert len(receiver.requests("/ok")) == 3  # sent once each: only the record waited
