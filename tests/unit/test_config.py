"""Settings: defaults, then a YAML file, then HOOKSTREAM_* variables; every problem listed."""

from __future__ import annotations

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
                           "HOOKSTREAM_LOG_LEVEL": "LOUD", "HOOKSTREAM_BROKER_PORT": "70000"},
                      check_dns=False)
    lines = str(caught.value).splitlines()
    assert lines[0] == "invalid settings:"
    assert "  - partitions must be at least 1" in lines
    assert "  - retry tier 'soon' is not a delay such as 10s, 1m, 1h" in lines
    assert "  - broker_port must be between 1 and 65534" in lines
    assert any("log_level 'LOUD'" in line for line in lines)


def test_unresolvable_bootstrap_host_is_named() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.invalid"):
        load_settings(env={"HOOKSTREAM_BOOTSTRAP_SERVERS": "kafka.invalid:9092"})


def test_secret_key_is_not_in_repr() -> None:
    assert "s3cr3t" not in repr(Settings(secret_key="s3cr3t"))
