"""Settings: defaults, then a YAML file, then HOOKSTREAM_* variables; every problem listed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hookstream.config import Settings, load_settings
from hookstream.errors import ConfigError


def test_layers_file_then_environment_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("partitions: 3\ntopic_prefix: file.\nretry_tiers: [5s, 2m]\n")
    settings = load_settings(path, env={"HOOKSTREAM_TOPIC_PREFIX": "env."}, check_dns=False,
                             max_in_flight=7)
    assert (settings.partitions, settings.topic_prefix, settings.max_in_flight) == (3, "env.", 7)
    assert settings.retry_tiers == ("5s", "2m")
    assert settings.retry_tiers_s == (5, 120)
    assert settings.topic("hookstream.dlq") == "env.hookstream.dlq"


def test_defaults() -> None:
    settings = load_settings(env={}, check_dns=False)
    assert settings == Settings()
    assert settings.retry_tiers_s == (10, 60, 600, 3600, 21600)


def test_environment_spellings() -> None:
    env = {"HOOKSTREAM_RETRY_TIERS": "1s, 2s ,", "HOOKSTREAM_PARTITIONS": "2",
           "HOOKSTREAM_CIRCUIT_COOLDOWN_S": "1.5"}
    settings = load_settings(env=env, check_dns=False)
    assert settings.retry_tiers == ("1s", "2s")
    assert (settings.partitions, settings.circuit_cooldown_s) == (2, 1.5)


def test_every_coercion_and_validation_problem_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("partitions: many\nretry_tiers: [soon]\ncolour: blue\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={"HOOKSTREAM_MAX_IN_FLIGHT": "x"}, check_dns=False)
    message = str(caught.value)
    assert "setting partitions" in message
    assert "setting max_in_flight" in message
    assert "unknown setting(s) colour" in message


def test_validation_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"HOOKSTREAM_PARTITIONS": "0", "HOOKSTREAM_RETRY_TIERS": "soon",
                           "HOOKSTREAM_LOG_LEVEL": "LOUD", "HOOKSTREAM_BROKER_PORT": "70000",
                           "HOOKSTREAM_TICKETER_RATE_PER_S": "0"},
                      check_dns=False)
    lines = str(caught.value).splitlines()
    assert lines[0] == "invalid settings:"
    assert "  - partitions must be at least 1" in lines
    assert "  - retry tier 'soon' is not a delay such as 10s, 1m, 1h" in lines
    assert "  - broker_port must be between 1 and 65534" in lines
    assert ("  - ticketer_rate_per_s must be more than 0 and ticketer_backoff_max_s at least 1"
            in lines)
    assert any("log_level 'LOUD'" in line for line in lines)


@pytest.mark.parametrize(("raw", "expected"), [
    ("10.0.0.0/8, 192.168.4.7", ("10.0.0.0/8", "192.168.4.7")),
    ("fd00::/8", ("fd00::/8",)),
    ("*", ("*",)),
])
def test_trusted_proxies_are_addresses_or_networks(raw: str, expected: tuple[str, ...]) -> None:
    settings = load_settings(env={"HOOKSTREAM_TRUSTED_PROXIES": raw}, check_dns=False)
    assert settings.trusted_proxies == expected


@pytest.mark.parametrize(("raw", "problem"), [
    ("ingress-nginx", "'ingress-nginx' is not an IP address or network"),
    ("10.0.0.1/8", "'10.0.0.1/8' is not an IP address or network"),  # host bits: a typo
    ("*,10.0.0.0/8", '"*" stands alone'),
])
def test_a_trusted_proxy_the_server_would_ignore_is_refused(raw: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"trusted_proxies: {problem}")):
        load_settings(env={"HOOKSTREAM_TRUSTED_PROXIES": raw}, check_dns=False)


def test_unresolvable_bootstrap_host_is_named() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.invalid"):
        load_settings(env={"HOOKSTREAM_BOOTSTRAP_SERVERS": "kafka.invalid:9092"})


def test_secret_key_is_not_in_repr() -> None:
    assert "s3cr3t" not in repr(Settings(secret_key="s3cr3t"))


@pytest.mark.parametrize("url", [
    "https://alice:pa55w0rd@registry.example:8081",
    "https://alice:pa55w0rd@registry.example/apis/ccompat/v7",
    "http://:pa55w0rd@registry.example",
    "http://alice@registry.example",
])
def test_a_registry_url_with_credentials_is_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(env={}, check_dns=False, schema_registry_url=url)
    message = str(refused.value)
    assert "schema_registry_username and schema_registry_password" in message
    assert "HOOKSTREAM_SCHEMA_REGISTRY_PASSWORD_FILE" in message
    assert "pa55w0rd" not in message and "registry.example" not in message


def test_schema_registry_settings_are_checked_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(env={}, check_dns=False, schema_registry_url="ftp://registry",
                      schema_registry_username="alice", schema_registry_token="t0ken",
                      schema_registry_ca_location=str(tmp_path / "none.pem"))
    message = str(refused.value)
    assert "http:// or https://" in message
    assert "schema_registry_username and schema_registry_password go together" in message
    assert "none.pem" in message and "t0ken" not in message


def test_schema_registry_secrets_come_from_files(tmp_path: Path) -> None:
    (tmp_path / "password").write_text("pa55w0rd\n")
    settings = load_settings(env={
        "HOOKSTREAM_SCHEMA_REGISTRY_URL": "https://registry.example",
        "HOOKSTREAM_SCHEMA_REGISTRY_USERNAME": "alice",
        "HOOKSTREAM_SCHEMA_REGISTRY_PASSWORD_FILE": str(tmp_path / "password"),
        "HOOKSTREAM_SCHEMA_REGISTRY_AUTO_REGISTER": "false",
    }, check_dns=False)
    assert settings.schema_registry_password == "pa55w0rd"
    assert not settings.schema_registry_auto_register
    assert "pa55w0rd" not in repr(settings)


@pytest.mark.parametrize("name", ["hookstream-delivery-0", "delivery.1", "d_2", "x" * 249])
def test_a_group_instance_id_is_what_kafka_takes(name: str) -> None:
    settings = load_settings(env={"HOOKSTREAM_GROUP_INSTANCE_ID": name}, check_dns=False)
    assert settings.group_instance_id == name
    assert load_settings(env={}, check_dns=False).group_instance_id == ""  # dynamic


@pytest.mark.parametrize("name", ["delivery 0", "d/0", "é", ".", "..", "x" * 250])
def test_a_group_instance_id_kafka_would_refuse_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=r"group_instance_id .* must be 1 to 249"):
        load_settings(env={"HOOKSTREAM_GROUP_INSTANCE_ID": name}, check_dns=False)


def test_static_membership_is_for_the_group_consumers_only() -> None:
    from hookstream.io import static_membership

    assert static_membership(Settings()) == {}
    assert static_membership(Settings(group_instance_id="d-0")) == {"group.instance.id": "d-0"}
