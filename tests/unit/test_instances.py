"""Instance definitions without a broker: the time zone's validation and record, and the
preview in it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet

from hookstream.control.admin import preview
from hookstream.control.instances import load_instances
from hookstream.errors import InvalidDefinition
from hookstream.matching import EntityTable
from hookstream.policy import SecretBox
from hookstream.records import InstanceRecord, WebhookDefinition, make_event

BOX = SecretBox(Fernet.generate_key().decode())


def loaded(tmp_path: Path, *raws: dict[str, object]) -> list[InstanceRecord]:
    path = tmp_path / "instances.yaml"
    path.write_text(yaml.safe_dump({"instances": list(raws)}))
    return load_instances(path, BOX, {})


def test_the_timezone_defaults_to_utc_and_is_kept(tmp_path: Path) -> None:
    plain, paris = loaded(tmp_path, {"name": "glpi-a"},
                          {"name": "glpi-b", "timezone": "Europe/Paris"})
    assert (plain.timezone, paris.timezone) == ("UTC", "Europe/Paris")


def test_a_bad_timezone_is_listed_with_its_instance_and_value(tmp_path: Path) -> None:
    with pytest.raises(InvalidDefinition) as info:
        loaded(tmp_path, {"name": "glpi-a", "timezone": "Europe/Pariss"},
               {"name": "glpi-b", "timezone": 1, "timestamp_tolerance_s": 5},
               {"name": "glpi-c", "timezone": "europe/paris"})
    errors = info.value.errors
    assert len(errors) == 4  # every error of every instance, the tolerance's too
    assert "(glpi-a): timezone 'Europe/Pariss' is not an IANA time zone" in errors[0]
    assert "(glpi-b): timestamp_tolerance_s" in errors[1]
    assert "(glpi-b): timezone 1 is not" in errors[2]
    assert "(glpi-c): timezone 'europe/paris' is not" in errors[3]  # names are case-sensitive


def test_a_new_timezone_is_a_new_version(tmp_path: Path) -> None:
    path = tmp_path / "instances.yaml"
    path.write_text(yaml.safe_dump({"name": "glpi-a"}))
    [first] = load_instances(path, BOX, {})
    assert load_instances(path, BOX, {"glpi-a": first}) == [first]
    path.write_text(yaml.safe_dump({"name": "glpi-a", "timezone": "Asia/Tokyo"}))
    [moved] = load_instances(path, BOX, {"glpi-a": first})
    assert (moved.version, moved.timezone) == (first.version + 1, "Asia/Tokyo")


def test_preview_renders_dates_in_the_given_time_zone() -> None:
    hook = WebhookDefinition(
        id="dates", version=1, instance="glpi-a", name="dates", itemtype="Ticket", event="new",
        url="https://receiver.example/{{ 1714637700|date('H:i e') }}", secret_encrypted="",
        is_active=True, entities_id=0, is_recursive=True)
    now_ms = 1_762_245_332_000
    event = make_event("glpi-a", "Ticket", 1, "new", {"id": 1}, entities_id=0,
                       occurred_at=now_ms)
    assert preview(hook, event, EntityTable(), now_ms)["url"].endswith("/08:15 UTC")
    tokyo = preview(hook, event, EntityTable(), now_ms, "Asia/Tokyo")
    assert tokyo["url"].endswith("/17:15 Asia/Tokyo")
