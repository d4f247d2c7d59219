"""Kafka connection security: the settings, the client properties they make, the link
watch's log lines, and the ACL table."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from connectors import delivery
from connectors.logstore import service as logstore
from hookstream.cli.pipeline import COMPONENTS as RUNNABLE
from hookstream.config import load_settings, redacted_settings
from hookstream.control.acls import COMPONENTS, acls, as_kafka_acls_commands, as_strimzi_user
from hookstream.errors import ConfigError
from hookstream.io.kafka import (
    BOUNDED_PREFETCH,
    check_client_config,
    client_config,
    security_config,
)
from hookstream.io.kafka_link import KafkaLink, Throttled
from processors import processor

PASSWORD = "s3cr3t-Pa55word-never-shown"


def sasl(**extra: str) -> dict[str, str]:
    return {"HOOKSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "HOOKSTREAM_KAFKA_SASL_USERNAME": "delivery", **extra}


def test_sasl_ssl_settings_become_librdkafka_properties(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")  # as a mounted Secret or `echo` leaves it
    settings = load_settings(env=sasl(HOOKSTREAM_KAFKA_SASL_PASSWORD_FILE=str(secret)),
                             check_dns=False)
    assert settings.kafka_sasl_password == PASSWORD
    assert security_config(settings) == {
        "security.protocol": "SASL_SSL", "ssl.endpoint.identification.algorithm": "https",
        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "delivery",
        "sasl.password": PASSWORD,
    }


def test_oauthbearer_uses_librdkafkas_own_oidc_client() -> None:
    settings = load_settings(env={
        "HOOKSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "HOOKSTREAM_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
        "HOOKSTREAM_KAFKA_OAUTH_TOKEN_URL": "https://idp.example/token",
        "HOOKSTREAM_KAFKA_OAUTH_CLIENT_ID": "hookstream",
        "HOOKSTREAM_KAFKA_OAUTH_CLIENT_SECRET": PASSWORD,
        "HOOKSTREAM_KAFKA_OAUTH_SCOPE": "kafka",
        "HOOKSTREAM_KAFKA_SSL_VERIFY_HOSTNAME": "false",
    }, check_dns=False)
    config = security_config(settings)
    assert config["sasl.oauthbearer.method"] == "oidc"
    assert config["sasl.oauthbearer.client.secret"] == PASSWORD
    assert config["ssl.endpoint.identification.algorithm"] == "none"
    check_client_config(settings)  # librdkafka accepts them


def test_every_security_problem_is_listed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={
            "HOOKSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "HOOKSTREAM_KAFKA_SSL_CA_LOCATION": str(tmp_path / "nowhere.pem"),
            "HOOKSTREAM_KAFKA_SSL_CERTIFICATE_LOCATION": str(tmp_path / "client.pem"),
            "HOOKSTREAM_KAFKA_CONFIG": "linger.ms",
        }, check_dns=False)
    message = str(caught.value)
    assert "kafka_sasl_username and kafka_sasl_password are needed" in message
    assert f"kafka_ssl_ca_location: no file {tmp_path / 'nowhere.pem'}" in message
    assert "kafka_ssl_certificate_location and kafka_ssl_key_location go together" in message
    assert "kafka_config entry 'linger.ms' must be name=value" in message
    with pytest.raises(ConfigError, match="kafka_security_protocol 'TLS' is not one of"):
        load_settings(env={"HOOKSTREAM_KAFKA_SECURITY_PROTOCOL": "TLS"}, check_dns=False)
    with pytest.raises(ConfigError, match="set both"):
        load_settings(env=sasl(HOOKSTREAM_KAFKA_SASL_PASSWORD="a",
                               HOOKSTREAM_KAFKA_SASL_PASSWORD_FILE="/etc/hostname"),
                      check_dns=False)
    with pytest.raises(ConfigError, match="kafka_sasl_password: cannot read /nonexistent"):
        load_settings(env=sasl(HOOKSTREAM_KAFKA_SASL_PASSWORD_FILE="/nonexistent"),
                      check_dns=False)


@pytest.mark.parametrize(("entry", "error"), [
    ("linge.ms=5", 'No such configuration property: "linge.ms"'),
    ("enable.idempotence=false", "enable.idempotence is set by hookstream's delivery"),
    ("sasl.username=x", "sasl.username is set by the kafka_sasl_username setting"),
    ("group.instance.id=d-0", "group.instance.id is set by the group_instance_id setting"),
    ("compression.type=zstd", "compression.type is set by the kafka_compression setting"),
    ("ssl.keystore.password=x", "ssl.keystore.password is a secret"),
])
def test_kafka_config_is_checked_at_start_up(entry: str, error: str) -> None:
    settings = load_settings(env={"HOOKSTREAM_KAFKA_CONFIG": entry}, check_dns=False)
    with pytest.raises(ConfigError, match=error):
        check_client_config(settings)


def test_kafka_config_reaches_every_client() -> None:
    settings = load_settings(env={"HOOKSTREAM_KAFKA_CONFIG": "socket.keepalive.enable=true"},
                             check_dns=False)
    assert client_config(settings)["socket.keepalive.enable"] == "true"
    check_client_config(settings)


def test_kafka_config_changes_a_default_and_not_what_hookstream_owns() -> None:
    """The delivery consumer's bounded read-ahead is a default: kafka_config may raise it."""
    settings = load_settings(
        env={"HOOKSTREAM_KAFKA_CONFIG": "queued.max.messages.kbytes=16384"}, check_dns=False)
    chosen = client_config(settings, BOUNDED_PREFETCH, **{"fetch.wait.max.ms": 20})
    assert chosen["queued.max.messages.kbytes"] == "16384"
    assert chosen["fetch.max.bytes"] == BOUNDED_PREFETCH["fetch.max.bytes"]
    assert chosen["fetch.wait.max.ms"] == 20
    plain = client_config(load_settings(env={}, check_dns=False), BOUNDED_PREFETCH)
    assert plain["queued.max.messages.kbytes"] == BOUNDED_PREFETCH["queued.max.messages.kbytes"]


def test_secrets_are_redacted_in_the_settings_dump_and_absent_from_help() -> None:
    env = sasl(HOOKSTREAM_KAFKA_SASL_PASSWORD=PASSWORD)
    settings = load_settings(env=env, check_dns=False)
    shown = redacted_settings(settings)
    assert shown["kafka_sasl_password"] == "<redacted>"
    assert shown["kafka_oauth_client_secret"] == ""  # unset: nothing to hide
    assert PASSWORD not in json.dumps(shown) + repr(settings)
    for argv in (["settings"], ["--help"], ["kafka", "--help"]):
        run = subprocess.run([sys.executable, "-m", "hookstream.cli", *argv],
                             env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True,
                             text=True, check=True)
        assert PASSWORD not in run.stdout + run.stderr


# -- the link watch -----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def transport(broker: str, cause: str = "Connection refused") -> KafkaError:
    return KafkaError(KafkaError._TRANSPORT,
                      f"{broker}/1: Connect to ipv4#{broker} failed: {cause} "
                      "(after 0ms in state CONNECT)")


def stats(clock: Clock, *up: str, up_for_s: float = 0.0) -> str:
    """librdkafka's statistics at `clock`'s time: `up` connected `up_for_s` ago."""
    return json.dumps({"ts": int(clock.now * 1e6), "brokers": {
        f"{b}/1": {"state": "UP", "stateage": int(up_for_s * 1e6)} for b in up}})


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_an_outage_is_one_line_a_summary_a_minute_and_one_line_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    link = KafkaLink(clock)
    with caplog.at_level(logging.INFO, "hookstream.kafka"):
        for _ in range(500):  # librdkafka's retries, ~every 50 ms per client
            link.on_error(transport("10.0.0.1:9092"))
            link.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
            clock.now += 0.05
        assert not link.ok()
        clock.now += 40
        link.on_stats(stats(clock))  # still down
        # made before the outage, served after it: no recovery
        link.on_stats(stats(clock, "10.0.0.1:9092", up_for_s=120))
        assert not link.ok()
        link.on_stats(stats(clock, "10.0.0.1:9092"))
    assert messages(caplog) == [
        "Kafka unreachable: 10.0.0.1:9092: Connect to ipv4#10.0.0.1:9092 failed: "
        "Connection refused",
        "Kafka still unreachable after 1m5s: 500 connection errors; last: 10.0.0.1:9092: "
        "Connect to ipv4#10.0.0.1:9092 failed: Connection refused",
        "Kafka reachable again after 1m5s",
    ]
    assert link.ok() and link.cause() is None


def test_one_broker_of_a_cluster_away_is_said_of_that_broker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    link = KafkaLink(clock)
    with caplog.at_level(logging.INFO, "hookstream.kafka"):
        link.on_error(KafkaError(KafkaError._TRANSPORT, "GroupCoordinator: 10.0.0.2:9092: Connect"
                                 " to ipv4#10.0.0.2:9092 failed: Connection refused"))
        link.on_error(transport("10.0.0.2:9092"))
        link.on_error(KafkaError(KafkaError._TRANSPORT,
                                 "10.0.0.3:9092/3: Disconnected (after 600000ms in state UP)"))
        assert link.ok()  # the others serve
        link.on_stats(stats(clock, "10.0.0.1:9092"))  # the next statistics round tells it
        clock.now += 18
        link.on_stats(stats(clock, "10.0.0.1:9092", "10.0.0.2:9092"))
    assert messages(caplog) == [
        "Kafka broker 10.0.0.2:9092 unreachable: 10.0.0.2:9092: Connect to ipv4#10.0.0.2:9092"
        " failed: Connection refused",
        "Kafka broker 10.0.0.2:9092 reachable again after 18.0s",
    ]


def test_refused_credentials_name_the_principal() -> None:
    link = KafkaLink(Clock())
    link.connecting_as("User:delivery")
    link.on_error(KafkaError(KafkaError._AUTHENTICATION, "sasl_ssl://10.0.0.1:9093/bootstrap: "
                             "SASL authentication error: Authentication failed during "
                             "authentication due to invalid credentials with SASL mechanism "
                             "SCRAM-SHA-512"))
    assert not link.ok()
    assert link.cause() == (
        "the brokers refused the credentials of User:delivery: SASL authentication error: "
        "Authentication failed during "
        "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512")


def test_a_repeated_warning_is_said_once_a_minute_with_its_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    throttled = Throttled(logging.getLogger("t"), clock=clock)
    with caplog.at_level(logging.WARNING, "t"):
        for _ in range(121):
            throttled.warning("denied")
            clock.now += 1
    assert messages(caplog) == ["denied", "denied (again 60 times in 1m0s)",
                                "denied (again 60 times in 1m0s)"]


# -- the ACL table ------------------------------------------------------------------------


def test_every_runnable_component_has_acls_naming_its_own_groups() -> None:
    assert set(RUNNABLE) <= set(COMPONENTS)
    groups = {c: {a.name for a in acls(c, "User:x", "p.") if a.resource == "group"}
              for c in COMPONENTS}
    assert processor.GROUP in groups["processor"]
    assert delivery.GROUP in groups["delivery"]
    assert "p." + logstore.GROUP in groups["logstore"]


def test_the_acls_print_as_kafka_acls_commands_and_a_strimzi_user() -> None:
    rules = acls("delivery", "User:delivery", "prod.")
    commands = as_kafka_acls_commands(rules, "kafka:9093").splitlines()
    assert len(commands) == len(rules)
    assert ("kafka-acls.sh --bootstrap-server kafka:9093 --command-config admin.properties "
            "--add --allow-principal User:delivery --operation Write --topic "
            "prod.hookstream.retry. --resource-pattern-type prefixed") in commands
    user = as_strimzi_user(rules, "delivery", "my-cluster")
    assert "name: prod.hookstream.retry.\n        patternType: prefixed" in user
    assert "type: scram-sha-512" in user
