"""The console's Alerts page against the admin app (FastAPI TestClient) over a real SQLite
log store: the rules with what they match and where their tickets go, the alerts with their
status, ticket link and last action, one alert's history, filters, scope, and escaping."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from connectors.admin import create_app, new_token, parse_tokens
from connectors.logstore import LogStore, migrate
from hookstream.records import AlertRule, TicketAction, alert_key
from tests.unit.test_console_web import login

NOW = 1_800_000_000.0
RULES = {
    "disk": AlertRule("disk", 1, "glpi-a", "{{ alert.name }}", "{{ alert.summary }}",
                      match_sources=["alertmanager"], match_labels={"team": "storage"},
                      match_labels_regex={"severity": "critical|warning"}, entities_id=3,
                      itilcategories_id=7, groups_id_assign=4, solve_on_resolved=False),
    "network": AlertRule("network", 1, "glpi-b", "Network", "down", on_refire="new"),
}
APIS = {"glpi-b": "https://glpi-b.example.org/apirest.php"}


def action(n: int, instance: str, fingerprint: str, kind: str, status: str = "firing",
           tickets_id: int = 0, name: str = "DiskFull", message: str = "") -> TicketAction:
    return TicketAction(f"{n:032x}", f"e{n}", alert_key(instance, "alertmanager", fingerprint),
                        instance, "alertmanager", fingerprint, name, status, kind,
                        int(NOW * 1000) + 1000 * n, "disk" if instance == "glpi-a" else "network",
                        tickets_id, 1500 if kind == "opened" else None, message)


ACTIONS = [
    action(1, "glpi-a", "disk-1", "opened", tickets_id=12),
    action(2, "glpi-a", "disk-1", "followup", "resolved", tickets_id=12),
    action(3, "glpi-b", "net-1", "refused", name="<b>LinkDown</b>",
           message="ERROR_RIGHT_MISSING: you cannot add"),
    action(4, "glpi-b", "net-2", "opened", tickets_id=5, name="LinkFlap"),
]


@dataclass
class FakeContext:
    """As much of AdminContext as the alerts pages (and the login) use."""

    engine: Any

    def clock(self) -> float:
        return NOW

    def webhooks(self) -> dict[str, Any]:
        return {}

    def alert_rules(self) -> dict[str, AlertRule]:
        return dict(RULES)

    def api_url(self, instance: str) -> str:
        return APIS.get(instance, "")

    def ready(self) -> bool:
        return True

    def audit(self, *record: Any) -> None:  # the login
        pass


@pytest.fixture
def client(tmp_path: Path) -> tuple[TestClient, dict[str, str]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    migrate(engine)
    LogStore(engine).write([], [], alert_action_rows=ACTIONS)
    plain, lines = {}, []
    for name, instances in (("admin", "*"), ("team-a", "glpi-a")):
        plain[name], line = new_token(name, instances, "ro")
        lines.append(line)
    app = create_app(FakeContext(engine), parse_tokens(lines))  # type: ignore[arg-type]
    return TestClient(app, base_url="http://console.test", follow_redirects=False), plain


def rows(html: str, attribute: str) -> list[str]:
    return re.findall(rf'data-{attribute}="([^"]+)"', html)


def test_the_alerts_page_lists_rules_and_alerts_with_their_tickets(client: Any) -> None:
    c, tokens = client
    assert c.get("/alerts").status_code == 303  # a session first
    login(c, tokens["admin"])
    page = c.get("/alerts")
    assert page.status_code == 200 and '<a href="/alerts">Alerts</a>' in page.text  # the nav
    assert rows(page.text, "rule") == ["disk", "network"]
    disk = page.text.split('data-rule="disk"')[1].split("</tr>")[0]
    for shown in ("alertmanager", 'team="storage"', 'severity=~"critical|warning"',
                  "incident in entity 3, category 7", "assigned to group 4",
                  "followup, reopen"):
        assert shown in disk, shown
    assert "solve, new ticket" in page.text.split('data-rule="network"')[1]
    assert rows(page.text, "alert") == ["glpi-b:alertmanager:net-2",
                                        "glpi-b:alertmanager:net-1",
                                        "glpi-a:alertmanager:disk-1"]
    assert ('<a href="https://glpi-b.example.org/front/ticket.form.php?id=5" rel="noopener" '
            'class="ticket">#5</a>') in page.text
    assert "#12" in page.text and "ticket.form.php?id=12" not in page.text  # no API URL
    assert "ERROR_RIGHT_MISSING: you cannot add" in page.text
    assert "&lt;b&gt;LinkDown&lt;/b&gt;" in page.text and "<b>LinkDown" not in page.text


@pytest.mark.parametrize("query, shown", [
    ("action=refused", ["glpi-b:alertmanager:net-1"]),
    ("status=resolved", ["glpi-a:alertmanager:disk-1"]),
    ("q=link&instance=glpi-b", ["glpi-b:alertmanager:net-2", "glpi-b:alertmanager:net-1"]),
    ("q=disk-", ["glpi-a:alertmanager:disk-1"]),
    ("q=nothing", []),
])
def test_the_alerts_list_filters(client: Any, query: str, shown: list[str]) -> None:
    c, tokens = client
    login(c, tokens["admin"])
    page = c.get(f"/alerts?{query}")
    assert page.status_code == 200 and rows(page.text, "alert") == shown
    if not shown:
        assert 'id="no-alerts"' in page.text


def test_a_filter_no_alert_can_match_is_said_plainly(client: Any) -> None:
    c, tokens = client
    login(c, tokens["admin"])
    for query, problem in (("status=burning", "status: one of firing, resolved"),
                           ("cursor=garbage", "cursor: not a cursor of this API")):
        page = c.get(f"/alerts?{query}")
        assert page.status_code == 400 and problem in page.text, query


def test_one_alerts_history_with_its_ticket(client: Any) -> None:
    c, tokens = client
    login(c, tokens["admin"])
    page = c.get("/alerts/glpi-a%3Aalertmanager%3Adisk-1")
    assert page.status_code == 200
    assert rows(page.text, "action") == ["opened", "followup"]
    assert "1.50 s" in page.text  # alert to ticket, the opened ticket
    assert "<code>disk</code>" in page.text
    net = c.get("/alerts/glpi-b:alertmanager:net-2")
    assert ('<a href="https://glpi-b.example.org/front/ticket.form.php?id=5" rel="noopener">'
            "#5 in GLPI</a>") in net.text
    assert c.get("/alerts/glpi-a:alertmanager:none").status_code == 404


def test_a_scoped_token_sees_its_instances_rules_and_alerts_only(client: Any) -> None:
    c, tokens = client
    login(c, tokens["team-a"])
    page = c.get("/alerts")
    assert rows(page.text, "rule") == ["disk"]
    assert rows(page.text, "alert") == ["glpi-a:alertmanager:disk-1"]
    assert rows(c.get("/alerts?instance=glpi-b").text, "alert") == []
    hidden = c.get("/alerts/glpi-b:alertmanager:net-2")
    assert hidden.status_code == 404 and "ticket.form.php" not in hidden.text
