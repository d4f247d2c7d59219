"""The console's operational events page and the Enable action of a disabled webhook,
against the admin app (FastAPI TestClient) over a real SQLite log store; the admin context
is a fake that records what it is asked (tests/unit/test_console_web.py's, extended)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert

from connectors.admin import create_app, new_token, parse_tokens
from connectors.logstore import migrate
from connectors.logstore.schema import operations
from hookstream.control.switch import disabled, enabled
from hookstream.records import WebhookDefinition
from tests.unit.test_console_web import NOW, FakeContext, flash_of, login

REASON = "every attempt failed since 2027-01-10T08:00:00Z (5.0 days; threshold 5.0 days)"


def hook(webhook_id: str, instance: str) -> WebhookDefinition:
    return WebhookDefinition(id=webhook_id, version=1, instance=instance, name=webhook_id,
                             itemtype="Ticket", event="new", url="https://t.example/h",
                             secret_encrypted="x", is_active=True)


@dataclass
class Context(FakeContext):
    hooks: dict[str, WebhookDefinition] = field(default_factory=dict)
    enabled: list[str] = field(default_factory=list)

    def webhooks(self) -> dict[str, Any]:
        return dict(self.hooks)

    def webhook(self, webhook_id: str) -> Any:
        return self.hooks.get(webhook_id)

    def enable_webhook(self, webhook: WebhookDefinition) -> tuple[WebhookDefinition, bool]:
        if webhook.is_active:
            return webhook, False
        self.enabled.append(webhook.id)
        self.hooks[webhook.id] = enabled(webhook, int(NOW * 1000))
        return self.hooks[webhook.id], True


@pytest.fixture
def setup(tmp_path: Path) -> tuple[TestClient, Context, dict[str, str]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    migrate(engine)
    with engine.begin() as conn:
        for n, (kind, webhook_id, instance) in enumerate((
                ("webhook.disabled", "down-a", "glpi-a"),
                ("delivery.dead_lettered", "hook-b", "glpi-b"),
                ("circuit.opened", "down-a", "glpi-a"))):
            conn.execute(insert(operations).values(
                event_id=f"{n:032x}", type=kind, at_ms=int(NOW * 1000) + n, instance=instance,
                webhook_id=webhook_id, reason=f"reason {n}",
                delivery_id="ab" * 16 if kind == "delivery.dead_lettered" else None,
                origin="https://t.example:443" if kind == "circuit.opened" else None))
    plain, lines = {}, []
    for name, instances, mode in (("admin", "*", "rw"), ("reader", "*", "ro"),
                                  ("team-b", "glpi-b", "rw")):
        plain[name], line = new_token(name, instances, mode)
        lines.append(line)
    ctx = Context(engine, hooks={
        "down-a": disabled(hook("down-a", "glpi-a"), REASON, int(NOW * 1000) - 60_000),
        "hook-b": hook("hook-b", "glpi-b")})
    client = TestClient(create_app(ctx, parse_tokens(lines)),  # type: ignore[arg-type]
                        base_url="http://console.test", follow_redirects=False)
    return client, ctx, plain


def test_a_disabled_webhook_says_why_and_since_when_and_enables_after_a_confirm(
        setup: Any) -> None:
    client, ctx, plain = setup
    csrf = login(client, plain["admin"])
    page = client.get("/webhooks/down-a")
    assert page.status_code == 200
    assert "Disabled by hookstream" in page.text and REASON in page.text
    assert 'id="disabled-since"><time datetime="2027-01-15T07:59:00.000Z">' in page.text
    assert 'action="/webhooks/down-a/enable"' in page.text
    listed = client.get("/webhooks").text
    assert "<td>disabled</td>" in listed

    asked = client.post("/webhooks/down-a/enable", data={"csrf": csrf})
    assert asked.status_code == 200 and ctx.enabled == []
    assert REASON in asked.text and 'name="confirm" value="yes"' in asked.text
    done = client.post("/webhooks/down-a/enable", data={"csrf": csrf, "confirm": "yes"})
    assert done.status_code == 303 and done.headers["location"] == "/webhooks/down-a"
    assert ctx.enabled == ["down-a"]
    assert ctx.audited[-1] == ("admin", "webhook.enable", "down-a", "enabled", "glpi-a",
                               "console")
    again = client.get("/webhooks/down-a")
    assert flash_of(again) == ("success", "Enabled: down-a receives new events again (v3).")
    assert "Disabled by hookstream" not in again.text


def test_enable_needs_a_writable_token_that_sees_the_webhook(setup: Any) -> None:
    client, ctx, plain = setup
    csrf = login(client, plain["reader"])
    assert 'id="enable"' not in client.get("/webhooks/down-a").text
    refused = client.post("/webhooks/down-a/enable", data={"csrf": csrf, "confirm": "yes"})
    assert refused.status_code == 403 and ctx.enabled == []
    client.cookies.clear()
    csrf = login(client, plain["team-b"])
    hidden = client.post("/webhooks/down-a/enable", data={"csrf": csrf, "confirm": "yes"})
    assert hidden.status_code == 404 and ctx.enabled == []


def test_the_operations_page_lists_events_newest_first_within_the_scope(setup: Any) -> None:
    client, _, plain = setup
    login(client, plain["admin"])

    def types(path: str) -> list[str]:
        return re.findall(r'<tr data-type="([^"]+)">', client.get(path).text)

    assert types("/operations") == ["circuit.opened", "delivery.dead_lettered",
                                    "webhook.disabled"]
    assert types("/operations?webhook=down-a") == ["circuit.opened", "webhook.disabled"]
    client.cookies.clear()
    login(client, plain["team-b"])
    assert types("/operations") == ["delivery.dead_lettered"]


def test_the_api_enables_once_and_audits_it(setup: Any) -> None:
    client, ctx, plain = setup
    auth = {"Authorization": f"Bearer {plain['admin']}"}
    first = client.post("/v1/webhooks/down-a/enable", headers=auth)
    assert first.status_code == 200 and first.json()["state"] == "enabled"
    assert first.json()["webhook"]["is_active"] is True
    second = client.post("/v1/webhooks/down-a/enable", headers=auth)
    assert second.json()["state"] == "already active"
    assert [a[1:4] for a in ctx.audited] == [("webhook.enable", "down-a", "enabled"),
                                             ("webhook.enable", "down-a", "already active")]
    listed = client.get("/v1/operations?webhook_id=down-a", headers=auth).json()["items"]
    assert [e["type"] for e in listed] == ["circuit.opened", "webhook.disabled"]
    reader = {"Authorization": f"Bearer {plain['reader']}"}
    assert client.post("/v1/webhooks/hook-b/enable", headers=reader).status_code == 403


def test_disabled_and_enabled_are_new_versions() -> None:
    off = disabled(hook("h", "glpi-a"), REASON, 5)
    assert (off.version, off.is_active, off.disabled_reason, off.disabled_at_ms) == (
        2, False, REASON, 5)
    on = enabled(off, 9)
    assert (on.version, on.is_active, on.disabled_reason, on.disabled_at_ms,
            on.enabled_at_ms) == (3, True, "", 0, 9)
    assert dataclasses.replace(on, version=1, enabled_at_ms=0) == hook("h", "glpi-a")
