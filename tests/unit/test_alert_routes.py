"""Alert routes: the instances YAML's `alerts:` and the bearer and HMAC checks (no broker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet

from hookstream.alerting.auth import (
    TIMESTAMP_TOLERANCE_S,
    AlertInstance,
    AlertRoute,
    refusal,
    sign,
)
from hookstream.control.instances import alert_view, build, load_instances, redacted
from hookstream.errors import InvalidDefinition
from hookstream.policy import SecretBox
from hookstream.records import InstanceRecord

BOX = SecretBox(Fernet.generate_key().decode())
TOKEN = "am-token-0123456789abcdef"
KEY = "grafana-hmac-key-0123456789"
BODY = b'{"version": "4", "alerts": []}'
NOW = 1_765_120_000.0


def loaded(tmp_path: Path, *raws: dict[str, Any]) -> list[InstanceRecord]:
    path = tmp_path / "instances.yaml"
    path.write_text(yaml.safe_dump({"instances": list(raws)}))
    return load_instances(path, BOX, {})


ROUTES = {"alertmanager": {"auth": "bearer", "secret": TOKEN},
          "grafana": {"auth": "hmac", "secret": KEY}}


def test_routes_are_stored_encrypted_redacted_and_viewed_decrypted(tmp_path: Path) -> None:
    [record] = loaded(tmp_path, {"name": "glpi-a", "alerts": ROUTES})
    assert record.alert_auth == {"alertmanager": "bearer", "grafana": "hmac"}
    stored = json.dumps(record.to_dict())
    assert TOKEN not in stored and KEY not in stored
    shown = redacted(record)
    assert shown["alert_secrets"] == {"alertmanager": "<redacted>", "grafana": "<redacted>"}
    assert "alert_secrets_encrypted" not in shown and TOKEN not in json.dumps(shown)
    view = alert_view(record, BOX, env={})
    assert view == AlertInstance("glpi-a", {"alertmanager": AlertRoute("bearer", TOKEN),
                                            "grafana": AlertRoute("hmac", KEY)})
    assert TOKEN not in repr(view) and KEY not in repr(view)


def test_the_environment_overrides_a_route_secret(tmp_path: Path) -> None:
    [record] = loaded(tmp_path, {"name": "glpi-prod", "alerts": {"zabbix": {"auth": "hmac"}}})
    assert record.alert_secrets_encrypted == {}  # none given: none stored
    assert alert_view(record, BOX, env={}).routes["zabbix"] == AlertRoute("hmac", "")
    env = {"HOOKSTREAM_INSTANCE_GLPI_PROD_ALERTS_ZABBIX_SECRET": "from-the-environment"}
    assert alert_view(record, BOX, env).routes["zabbix"].secret == "from-the-environment"


def test_reapplying_keeps_omitted_secrets_and_versions_only_changes(tmp_path: Path) -> None:
    [first] = loaded(tmp_path, {"name": "glpi-a", "alerts": ROUTES})
    same = build({"name": "glpi-a", "alerts": ROUTES}, BOX, first)
    assert same is first
    omitted = {"alertmanager": {"auth": "bearer"}, "grafana": {"auth": "hmac"}}
    assert build({"name": "glpi-a", "alerts": omitted}, BOX, first) is first
    rotated = build({"name": "glpi-a", "alerts": {**ROUTES, "grafana": {
        "auth": "hmac", "secret": "another-key-0123456789"}}}, BOX, first)
    assert rotated.version == first.version + 1
    assert alert_view(rotated, BOX, env={}).routes["grafana"].secret == "another-key-0123456789"
    dropped = build({"name": "glpi-a"}, BOX, first)
    assert (dropped.version, dropped.alert_auth) == (first.version + 1, {})


def test_invalid_routes_are_listed(tmp_path: Path) -> None:
    with pytest.raises(InvalidDefinition) as info:
        loaded(tmp_path, {"name": "glpi-a", "alerts": {
            "nagios": {"auth": "bearer"},
            "grafana": {"auth": "basic", "secret": KEY},
            "zabbix": {"auth": "hmac", "secret": "short"},
            "alertmanager": {"auth": "bearer", "token": TOKEN},
        }}, {"name": "glpi-b", "alerts": ["alertmanager"]})
    text = "\n".join(info.value.errors)
    assert "alerts.nagios: unknown source" in text
    assert "alerts.grafana.auth must be bearer or hmac" in text
    assert "alerts.zabbix.secret must be a string of at least 16 characters" in text
    assert "alerts.alertmanager must be {auth: bearer|hmac, secret: ...}" in text
    assert "glpi-b): alerts must map sources" in text
    assert len(info.value.errors) == 5
    assert TOKEN not in text and KEY not in text


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": value}


BEARER = AlertRoute("bearer", TOKEN)
HMAC = AlertRoute("hmac", KEY)


@pytest.mark.parametrize(("headers", "why"), [
    (bearer(f"Bearer {TOKEN}"), None),
    (bearer(f"bearer  {TOKEN} "), None),  # the scheme is case-insensitive
    ({}, "missing Authorization: Bearer header"),
    (bearer(TOKEN), "missing Authorization: Bearer header"),
    (bearer(f"Basic {TOKEN}"), "missing Authorization: Bearer header"),
    (bearer("Bearer "), "missing Authorization: Bearer header"),
    (bearer(f"Bearer {TOKEN}x"), "bearer token does not match"),
    (bearer("Bearer é"), "bearer token does not match"),
])
def test_bearer(headers: dict[str, str], why: str | None) -> None:
    assert refusal(BEARER, "alertmanager", headers, BODY, NOW) == why


STAMP = str(int(NOW))


@pytest.mark.parametrize(("source", "headers", "why"), [
    ("grafana", {"X-Grafana-Alerting-Signature": sign(KEY, BODY)}, None),
    ("grafana", {"X-Grafana-Alerting-Signature": sign(KEY, BODY).upper()}, None),
    ("grafana", {"X-Grafana-Alerting-Signature": sign(KEY, BODY, STAMP),
                 "X-Grafana-Alerting-Timestamp": STAMP}, None),
    ("zabbix", {"X-Hookstream-Signature": sign(KEY, BODY, STAMP),
                "X-Hookstream-Timestamp": STAMP}, None),
    ("grafana", {}, "missing X-Grafana-Alerting-Signature header"),
    ("zabbix", {"X-Grafana-Alerting-Signature": sign(KEY, BODY)},
     "missing X-Hookstream-Signature header"),
    ("grafana", {"X-Grafana-Alerting-Signature": sign(KEY, BODY + b" ")},
     "signature does not match"),
    ("grafana", {"X-Grafana-Alerting-Signature": sign("another-key-0123", BODY)},
     "signature does not match"),
    ("grafana", {"X-Grafana-Alerting-Signature": sign(KEY, BODY)[:-1] + "é"},
     "signature does not match"),
    # signed without the timestamp that came with it, or with another one
    ("grafana", {"X-Grafana-Alerting-Signature": sign(KEY, BODY),
                 "X-Grafana-Alerting-Timestamp": STAMP}, "signature does not match"),
    ("grafana", {"X-Grafana-Alerting-Signature": sign(KEY, BODY, STAMP),
                 "X-Grafana-Alerting-Timestamp": str(int(NOW) + 1)}, "signature does not match"),
    ("grafana", {"X-Grafana-Alerting-Signature": sign(KEY, BODY, "x"),
                 "X-Grafana-Alerting-Timestamp": "x"}, "timestamp header is not Unix seconds"),
])
def test_hmac(source: str, headers: dict[str, str], why: str | None) -> None:
    assert refusal(HMAC, source, headers, BODY, NOW) == why


def test_hmac_timestamps_outside_the_tolerance_are_refused() -> None:
    for offset in (-TIMESTAMP_TOLERANCE_S - 1, TIMESTAMP_TOLERANCE_S + 1):
        stamp = str(int(NOW) + offset)
        headers = {"X-Grafana-Alerting-Signature": sign(KEY, BODY, stamp),
                   "X-Grafana-Alerting-Timestamp": stamp}
        assert refusal(HMAC, "grafana", headers, BODY, NOW) == (
            f"timestamp more than {TIMESTAMP_TOLERANCE_S}s from now")
    stamp = str(int(NOW) - TIMESTAMP_TOLERANCE_S)
    headers = {"X-Grafana-Alerting-Signature": sign(KEY, BODY, stamp),
               "X-Grafana-Alerting-Timestamp": stamp}
    assert refusal(HMAC, "grafana", headers, BODY, NOW) is None


def test_routes_without_a_secret_or_absent_refuse_everything() -> None:
    assert refusal(None, "grafana", {}, BODY, NOW) == "no grafana route on this instance"
    empty = AlertRoute("bearer", "")
    assert refusal(empty, "alertmanager", bearer("Bearer "), BODY, NOW) == (
        "the alertmanager route has no secret configured")


def test_no_refusal_carries_the_secret_or_what_was_sent() -> None:
    sent = "Bearer wrong-but-secret-looking-value"
    reasons = [refusal(BEARER, "alertmanager", bearer(sent), BODY, NOW),
               refusal(HMAC, "grafana", {"X-Grafana-Alerting-Signature": "ab" * 32}, BODY, NOW)]
    for why in reasons:
        assert why and TOKEN not in why and KEY not in why and "wrong-but" not in why
