"""Pure parts of the GLPI connectors: provisioning plan, webhook import, Content-Range."""

from __future__ import annotations

import json

import pytest

from connectors.glpi import content_range
from connectors.glpi.importer import convert
from connectors.glpi.provision import plan, wanted
from hookstream.policy import Accept, IncomingRequest, IngestInstance, assess, glpi_signature
from hookstream.policy.ingest import EXACT_SAMPLE


@pytest.mark.parametrize(("header", "parsed"), [
    ("0-49/200", (0, 49, 200)), (" 150-199/200 ", (150, 199, 200)), ("0--1/0", (0, -1, 0)),
    ("", None), (None, None), ("items 0-9/10", None),
])
def test_content_range(header: str | None, parsed: tuple[int, int, int] | None) -> None:
    assert content_range(header) == parsed


def test_plan_matches_glpi_webhooks_by_url_and_event() -> None:
    desired = wanted("glpi-a", "https://hs.example/", ["Ticket"])
    assert [d["url"] for d in desired] == ["https://hs.example/glpi/glpi-a/Ticket"] * 3
    existing = [
        {**desired[0], "id": 5},  # same: unchanged (GLPI answers numbers as strings too)
        {**desired[1], "id": 6, "is_active": "0", "name": "renamed"},
        {**desired[2], "id": 7, "url": "https://other.example/glpi/glpi-a/Ticket"},
    ]
    existing[0]["is_active"] = "1"
    actions = plan(existing, desired)
    assert [(a.verb, a.glpi_id, a.changed) for a in actions] == [
        ("unchanged", 5, ()),
        ("update", 6, ("name", "is_active")),
        ("create", None, ()),
    ]


def test_convert_keeps_glpi_fields_and_notes_what_it_cannot_carry() -> None:
    hook = {"id": 3, "name": "n", "itemtype": "Ticket", "event": "new", "url": "https://h/x",
            "is_active": 1, "is_recursive": 0, "use_default_payload": 0,
            "payload": '{"t": "{{ item.name }}"}', "http_method": "PUT", "use_oauth": 1,
            "oauth_url": "https://idp/token", "clientid": "cid", "sent_try": 5}
    imported = convert("glpi-a", hook, [], (10, 60))
    d = imported.definition
    assert (d["id"], d["http_method"], d["is_active"], d["is_recursive"], d["sent_try"]) == (
        "glpi-a-3", "put", True, False, 5)
    assert d["payload"] == hook["payload"] and d["use_default_payload"] is False
    assert [n.split(":")[0] for n in imported.notes] == ["secret", "clientsecret"]
    assert imported.commented  # apply would refuse OAuth without its client secret
    assert d["use_oauth"] is True and d["clientid"] == "cid"
    assert d["retry_policy"] == "glpi"  # written out: GLPI retried any status >= 400


def test_an_imported_webhook_keeps_glpis_retry_rule_in_its_yaml() -> None:
    hook = {"id": 4, "name": "n", "itemtype": "Ticket", "event": "new", "url": "https://h/x"}
    imported = convert("glpi-a", hook, [], (10, 60))
    assert not imported.commented
    assert "\nretry_policy: glpi\n" in imported.yaml_text()


def test_a_body_hookstream_would_encode_otherwise_is_accepted_and_flagged() -> None:
    secret = "k" * 40
    body = b'{"item": {"id": 1, "extra": {}}, "event": "new"}'  # PHP never writes {} here
    for ts in range(1_764_000_000, 1_764_000_400):  # find a request the sample checks
        request = IncomingRequest("Ticket", "POST", body, glpi_signature(secret, body, ts),
                                  str(ts), None, "127.0.0.1")
        verdict = assess(request, IngestInstance("a", secret), ts, 10_000)
        assert isinstance(verdict, Accept)
        if verdict.dedup_key[0] % EXACT_SAMPLE == 0:
            assert verdict.exact is False
            assert json.loads(verdict.event.item) == {"id": 1, "extra": {}}
            return
        assert verdict.exact is None
    pytest.fail("no sampled request in 400 timestamps")
