"""The console's search box and list filters: the pure parts with fixed vectors, then the
pages through the admin app (FastAPI TestClient) over a SQLite log store."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert

from connectors.admin import create_app, new_token, parse_tokens
from connectors.console.filters import page_link, parse_view
from connectors.console.search import destination, matching_webhooks, terms
from connectors.logstore import Cursor, DeliveryFilter, migrate
from connectors.logstore.queries import BadFilter
from connectors.logstore.schema import deliveries
from hookstream.records import WebhookDefinition
from tests.unit.test_console_web import FakeContext, login

NOW = 1_800_000_000.0
T0 = int(NOW * 1000) - 1_000_000


def hook(webhook_id: str, name: str, instance: str = "glpi-a") -> WebhookDefinition:
    return WebhookDefinition(id=webhook_id, version=1, instance=instance, name=name,
                             itemtype="Ticket", event="update", url="https://t.test/in",
                             secret_encrypted="", is_active=True)


HOOKS = [hook("to-helpdesk", "Helpdesk"), hook("to-helpdesk-2", "Helpdesk backup"),
         hook("to-crm", "CRM"), hook("to-b", "Other", "glpi-b")]


@pytest.mark.parametrize("text, item_path, id_prefix", [
    ("glpi-a:Ticket:42", "/items/glpi-a/Ticket/42", None),
    (" glpi a:Ticket:42 ", None, None),  # a space: not an item
    ("glpi/a:Ticket:1", "/items/glpi%2Fa/Ticket/1", None),
    ("3F9c", None, "3f9c"),
    ("to-crm", None, None),
    ("abc", None, "abc"),  # hex and maybe a webhook's name too
])
def test_what_a_search_text_can_name(text: str, item_path: str | None,
                                     id_prefix: str | None) -> None:
    t = terms(text)
    assert (t.item_path, t.id_prefix) == (item_path, id_prefix)


def test_webhooks_match_exactly_first_then_by_part() -> None:
    assert [w.id for w in matching_webhooks("helpdesk", HOOKS)] == ["to-helpdesk"]
    assert [w.id for w in matching_webhooks("HELPDESK backup", HOOKS)] == ["to-helpdesk-2"]
    assert [w.id for w in matching_webhooks("help", HOOKS)] == ["to-helpdesk", "to-helpdesk-2"]
    assert matching_webhooks("", HOOKS) == [] and matching_webhooks("zzz", HOOKS) == []


def test_one_match_goes_straight_to_it_else_to_a_list() -> None:
    assert destination(terms("glpi-a:Ticket:42"), [], []) == "/items/glpi-a/Ticket/42"
    assert destination(terms("ab"), [], ["ab12"]) == "/deliveries/ab12"
    assert destination(terms("ab"), [], ["ab12", "ab34"]) is None
    assert destination(terms("crm"), HOOKS[2:3], []) == "/webhooks/to-crm"
    assert destination(terms("cc"), HOOKS[2:3], ["cc12"]) is None  # two kinds: a list
    assert destination(terms("x"), [], []) is None


def test_list_filters_from_the_url_and_back() -> None:
    view = parse_view({"state": "dead_lettered", "status": "401", "since": "2026-12-07T10:00",
                       "until": "2026-12-07", "webhook": "to-crm", "id": "AB", "x": "1",
                       "outcome": ""})
    assert view.where == DeliveryFilter(state="dead_lettered", status_code=401,
                                        since_ms=1_796_637_600_000, until_ms=1_796_601_600_000,
                                        webhook_id="to-crm", id_prefix="ab")
    assert view.cursor is None and not view.newer
    at = Cursor(5, "ab").encode()
    assert view.link("/deliveries", at, newer=True) == (
        "/deliveries?state=dead_lettered&status=401&since=2026-12-07T10%3A00&until=2026-12-07"
        f"&webhook=to-crm&id=AB&cursor={at}&newer=1")
    assert page_link("/queue", {}) == "/queue"
    fixed = parse_view({"webhook": "other", "state": "waiting"}, DeliveryFilter(webhook_id="w"))
    assert fixed.where.webhook_id == "w" and fixed.where.state == "waiting"
    again = parse_view({"cursor": at, "newer": "1"})
    assert again.cursor == Cursor(5, "ab") and again.newer


@pytest.mark.parametrize("params, named", [
    ({"state": "lost"}, "state"), ({"outcome": "x"}, "outcome"), ({"status": "abc"}, "status"),
    ({"status": "99"}, "status"), ({"since": "yesterday"}, "since"), ({"id": "xyz"}, "id"),
    ({"cursor": "!!"}, "cursor"),
])
def test_a_bad_filter_value_says_which(params: dict[str, str], named: str) -> None:
    with pytest.raises(BadFilter, match=named):
        parse_view(params)


class SearchContext(FakeContext):
    def webhooks(self) -> dict[str, Any]:
        return {w.id: w for w in HOOKS}

    def webhook(self, webhook_id: str) -> Any:
        return self.webhooks().get(webhook_id)

    def preview(self, webhook: Any, event: Any) -> dict[str, Any]:
        return {"matches": False, "reason": "not in this test"}


@pytest.fixture
def client(tmp_path: Path) -> tuple[TestClient, list[dict[str, Any]]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    migrate(engine)
    rows = [{"delivery_id": f"{n:02x}" + "0" * 30 if n < 120 else "ff" + f"{n:030x}",
             "instance": "glpi-b" if n % 10 == 0 else "glpi-a",
             "webhook_id": "to-b" if n % 10 == 0 else "to-crm" if n % 2 else "to-helpdesk",
             "itemtype": "Ticket", "items_id": n % 4, "event": "update",
             "created_at": T0 + n * 1000, "attempts": 1,
             "state": "dead_lettered" if n % 3 == 0 else "delivered",
             "last_status": 401 if n % 3 == 0 else 200} for n in range(130)]
    with engine.begin() as conn:
        conn.execute(insert(deliveries), rows)
    plain, lines = {}, []
    for name, instances in (("admin", "*"), ("team-a", "glpi-a")):
        plain[name], line = new_token(name, instances, "ro")
        lines.append(line)
    app = create_app(SearchContext(engine), parse_tokens(lines))  # type: ignore[arg-type]
    c = TestClient(app, base_url="http://console.test", follow_redirects=False)
    login(c, plain["admin"])
    return c, rows


def shown(html: str) -> list[str]:
    return re.findall(r'data-delivery="([0-9a-f]+)"', html)


def test_search_box_goes_to_the_one_match(client: Any) -> None:
    c, _ = client
    assert c.get("/search?q=05").headers["location"] == "/deliveries/05" + "0" * 30
    assert c.get("/search?q=glpi-a:Ticket:3").headers["location"] == "/items/glpi-a/Ticket/3"
    assert c.get("/search?q=CRM").headers["location"] == "/webhooks/to-crm"
    assert c.get("/search?q=ff").headers["location"] == "/deliveries?id=ff"  # ten of them
    several = c.get("/search?q=helpdesk b")
    assert several.status_code == 303 and several.headers["location"] == "/webhooks/to-helpdesk-2"
    listed = c.get("/search?q=to-")
    assert listed.status_code == 200 and listed.text.count('href="/webhooks/to-') >= 4
    assert "Nothing matches" in c.get("/search?q=nothing-like-it").text


def test_filtered_pages_walk_the_whole_log_with_the_filters_kept(client: Any) -> None:
    c, rows = client
    want = [r["delivery_id"] for r in sorted(rows, key=lambda r: -r["created_at"])
            if r["state"] == "dead_lettered" and r["webhook_id"] == "to-crm"]
    seen, url = [], "/deliveries?state=dead_lettered&webhook=to-crm"
    page = c.get(url)
    while True:
        assert page.status_code == 200
        seen += shown(page.text)
        older = re.search(r'href="([^"]+)" id="page-older"', page.text)
        if older is None:
            break
        link = older.group(1).replace("&amp;", "&")
        assert "state=dead_lettered" in link and "webhook=to-crm" in link
        page = c.get(link)
    assert seen == want and len(want) > 0
    all_pages = c.get("/deliveries")
    assert len(shown(all_pages.text)) == 50 and 'id="page-older"' in all_pages.text
    newer = re.search(r'href="([^"]+)" id="page-newer"',
                      c.get(re.search(r'href="([^"]+)" id="page-older"', all_pages.text)
                            .group(1).replace("&amp;", "&")).text)  # type: ignore[union-attr]
    assert newer is not None
    assert shown(c.get(newer.group(1).replace("&amp;", "&")).text) == shown(all_pages.text)


def test_every_list_filters(client: Any) -> None:
    c, rows = client
    assert set(shown(c.get("/queue?status=401&instance=glpi-b").text)) == {
        r["delivery_id"] for r in rows if r["last_status"] == 401 and r["instance"] == "glpi-b"}
    hook_page = c.get("/webhooks/to-crm?state=delivered")
    assert set(shown(hook_page.text)) <= {r["delivery_id"] for r in rows
                                          if r["webhook_id"] == "to-crm"
                                          and r["state"] == "delivered"}
    assert 'name="state"' in hook_page.text and len(shown(hook_page.text)) == 43
    item = c.get("/items/glpi-a/Ticket/1?state=dead_lettered")
    assert set(shown(item.text)) == {r["delivery_id"] for r in rows if r["items_id"] == 1
                                     and r["instance"] == "glpi-a"
                                     and r["state"] == "dead_lettered"}


@pytest.mark.parametrize("path", ["/deliveries?state=lost", "/queue?status=abc",
                                  "/webhooks/to-crm?since=soon", "/queue/live?outcome=x",
                                  "/deliveries?cursor=garbage"])
def test_a_bad_filter_is_a_400_page_that_says_why(client: Any, path: str) -> None:
    c, _ = client
    answer = c.get(path)
    assert answer.status_code == 400 and "This list cannot be shown" in answer.text
