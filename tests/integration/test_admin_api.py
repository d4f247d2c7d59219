"""The admin API served by uvicorn on loopback, over the real broker and log store:
auth and scopes on every route, webhooks CRUD, the queries log, force send and redrive,
and no secret in any answer or log line."""

from __future__ import annotations

import dataclasses
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

from connectors.admin import AdminContext, create_app, new_token, parse_tokens
from connectors.logstore import AlertFilter, list_alerts, open_engine, queue_view
from hookstream.config import Settings
from hookstream.control import current_webhooks
from hookstream.control.instances import apply_instances
from hookstream.records import (
    ALERT_ACTIONS,
    ALERT_RULES,
    ATTEMPTS,
    AUDIT,
    DELIVERIES,
    DLQ,
    ITEM_CHANGES,
    AlertRule,
    AttemptRecord,
    AuditRecord,
    DeliveryRequest,
    TicketAction,
    alert_key,
    make_event,
)
from hookstream.records.replays import replay_delivery_id
from tests.integration.harness import (
    RunningDelivery,
    apply_webhooks,
    publish,
    read,
    request_for,
    wait_until,
)
from tests.integration.logstore_harness import RunningLogStore
from tests.receiver import Receiver

SECRET = "glpi-secret-Zq8wX1v0"  # a webhook secret: must appear in no answer
GLPI_B_API = "https://glpi-b.example.org/glpi/apirest.php"
ALERT_RULES_SHOWN = [
    AlertRule("disk", 1, "glpi-a", "{{ alert.labels.alertname }}", "{{ alert.summary }}",
              match_labels={"team": "storage"}, entities_id=3, itilcategories_id=7),
    AlertRule("network", 1, "glpi-b", "Network: {{ alert.name }}", "down",
              match_sources=["zabbix"], groups_id_assign=4),
]


def _action(n: int, instance: str, fingerprint: str, action: str, status: str = "firing",
            tickets_id: int = 0, message: str = "") -> TicketAction:
    key = alert_key(instance, "alertmanager", fingerprint)
    rule = "disk" if instance == "glpi-a" else "network"
    return TicketAction(f"{n:032x}", f"event-{n}", key, instance, "alertmanager", fingerprint,
                        f"Alert {fingerprint}", status, action, 1_700_000_000_000 + n, rule,
                        tickets_id, 250 if action == "opened" else None, message)


# glpi-a: disk-1 opened then solved; glpi-b: net-1 refused by GLPI, net-2 opened
ALERT_ACTIONS_SHOWN = [
    _action(1, "glpi-a", "disk-1", "opened", tickets_id=12),
    _action(2, "glpi-b", "net-1", "refused", message="ERROR_RIGHT_MISSING: you cannot add"),
    _action(3, "glpi-a", "disk-1", "solved", "resolved", tickets_id=12),
    _action(4, "glpi-b", "net-2", "opened", tickets_id=5),
]
CLIENT_SECRET = "oauth-client-secret-Kp2"


@dataclasses.dataclass
class Api:
    url: str
    tokens: dict[str, str]
    settings: Settings
    receiver: Receiver
    ids: dict[str, list[str]]
    answers: list[str]

    def call(self, method: str, path: str, token: str | None = "admin", **kw: Any
             ) -> httpx.Response:
        bearer = self.tokens.get(token, token) if token is not None else None
        headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
        answer = httpx.request(method, self.url + path, headers=headers, timeout=60, **kw)
        self.answers.append(answer.text)
        return answer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def api(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    from tests.conftest import settings_for

    tmp = tmp_path_factory.mktemp("admin")
    plain, lines = {}, []
    for name, instances, mode in (("admin", "*", "rw"), ("reader", "*", "ro"),
                                  ("team-a", "glpi-a", "rw"), ("team-b", "glpi-b", "ro")):
        plain[name], line = new_token(name, instances, mode)
        lines.append(line)
    settings = dataclasses.replace(settings_for(kafka_bootstrap, tmp), admin_tokens=tuple(lines))
    with Receiver() as receiver:
        receiver.on("/a", statuses=[200])
        receiver.on("/b", statuses=[410])
        allow = {"allowed_networks": ["127.0.0.0/8"], "sent_try": 0}
        apply_webhooks(settings, tmp,
                       {"id": "hook-a", "url": receiver.url("/a"), "secret": SECRET, **allow},
                       {"id": "hook-b", "instance": "glpi-b", "url": receiver.url("/b"),
                        **allow})
        a = [request_for("hook-a", receiver.url("/a"), n) for n in range(3)]
        b = [dataclasses.replace(request_for("hook-b", receiver.url("/b"), n),
                                 instance="glpi-b") for n in range(2)]
        publish(settings, a + b)
        publish(settings, [make_event(i, "Ticket", 9, "new", {"id": 9, "name": f"seen in {i}"},
                                      occurred_at=int(time.time() * 1000), entities_id=0)
                           for i in ("glpi-a", "glpi-b")], ITEM_CHANGES)  # type: ignore[list-item]
        with RunningDelivery(settings):
            assert wait_until(lambda: len(read(settings, ATTEMPTS, AttemptRecord)) >= 5, 60)
        publish(settings, ALERT_RULES_SHOWN, ALERT_RULES)
        publish(settings, ALERT_ACTIONS_SHOWN, ALERT_ACTIONS)
        instances = tmp / "instances.yaml"
        instances.write_text(yaml.safe_dump({"name": "glpi-b", "api_url": GLPI_B_API}))
        apply_instances(settings, instances)
        engine = open_engine(settings)
        with RunningLogStore(settings):
            assert wait_until(lambda: queue_view(engine)["totals"]["dead_lettered"] == 2, 60)
            assert wait_until(lambda: len(list_alerts(engine, AlertFilter()).items) == 3, 60)
        ctx = AdminContext(settings, engine)
        ctx.wait_ready()
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(ctx, parse_tokens(lines)),
                                               host="127.0.0.1", port=port, log_level="info"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        assert wait_until(lambda: server.started, 30)
        try:
            yield Api(f"http://127.0.0.1:{port}", plain, settings, receiver,
                      {"a": [r.delivery_id for r in a], "b": [r.delivery_id for r in b]}, [])
        finally:
            server.should_exit = True
            thread.join(30)
            ctx.close()
            engine.dispose()


def routes(api: Api) -> list[tuple[str, str]]:
    """Every /v1 route of the served OpenAPI, with its path parameters filled in."""
    spec = httpx.get(api.url + "/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    filled = []
    for path, methods in spec["paths"].items():
        concrete = (path.replace("{webhook_id}", "hook-a").replace("{delivery_id}", api.ids["a"][0])
                    .replace("{instance}", "glpi-a").replace("{itemtype}", "Ticket")
                    .replace("{items_id}", "1").replace("{replay_id}", "r1")
                    .replace("{rule_id}", "disk")
                    .replace("{alert_key}", alert_key("glpi-a", "alertmanager", "disk-1")))
        filled += [(method.upper(), concrete) for method in methods]
    return filled


WRITES = {"PUT", "DELETE", "POST"}


def test_every_route_needs_a_valid_token(api: Api) -> None:
    all_routes = routes(api)
    assert len(all_routes) >= 11
    for method, path in all_routes:
        for token in (None, "not-a-token", "hsk_" + "x" * 43):
            answer = api.call(method, path, token=token, json={})
            assert answer.status_code == 401, (method, path, token)
            assert answer.headers["www-authenticate"] == "Bearer"
            assert answer.json() == {"errors": ["a valid bearer token is required"]}
    assert current_webhooks(api.settings).keys() == {"hook-a", "hook-b"}  # nothing changed


def test_a_read_only_token_cannot_act(api: Api) -> None:
    before = len(read(api.settings, ATTEMPTS, AttemptRecord))
    for method, path in routes(api):
        if method in WRITES and not path.endswith("/preview"):
            answer = api.call(method, path, token="reader", json={"name": "x"})
            assert answer.status_code == 403, (method, path)
            assert answer.json()["errors"] == ["token reader is read-only"]
    assert len(read(api.settings, ATTEMPTS, AttemptRecord)) == before  # no force send
    assert current_webhooks(api.settings)["hook-a"].version == 1


def test_a_token_scoped_to_one_instance_sees_nothing_of_another(api: Api) -> None:
    b_id = api.ids["b"][0]
    for path in ("/v1/webhooks/hook-b", f"/v1/deliveries/{b_id}",
                 "/v1/webhooks/hook-b/deliveries", "/v1/items/glpi-b/Ticket/0/deliveries"):
        assert api.call("GET", path, token="team-a").status_code == 404, path
        assert api.call("GET", path, token="admin").status_code == 200, path
    assert api.call("POST", f"/v1/deliveries/{b_id}/send", token="team-a").status_code == 404
    assert api.call("DELETE", "/v1/webhooks/hook-b", token="team-a").status_code == 404
    assert api.call("PUT", "/v1/webhooks/hook-b", token="team-a",
                    json={"instance": "glpi-a"}).status_code == 404
    assert api.call("POST", "/v1/dlq/redrive", token="team-a",
                    json={"webhook_id": "hook-b"}).status_code == 404
    listed = api.call("GET", "/v1/deliveries?limit=100", token="team-a").json()["items"]
    assert {d["instance"] for d in listed} == {"glpi-a"} and len(listed) == 3
    assert [w["id"] for w in api.call("GET", "/v1/webhooks", token="team-a").json()["items"]
            ] == ["hook-a"]
    queue = api.call("GET", "/v1/queue", token="team-a").json()
    assert queue["totals"]["dead_lettered"] == 0 and queue["groups"] == []
    assert api.call("GET", "/v1/queue", token="team-b").json()["totals"]["dead_lettered"] == 2
    # team-b sees its own instance, read-only
    assert api.call("GET", "/v1/webhooks/hook-b", token="team-b").status_code == 200
    assert api.call("POST", f"/v1/deliveries/{b_id}/send", token="team-b").status_code == 403
    assert current_webhooks(api.settings)["hook-b"].version == 1


def test_queries_log_pages_and_detail(api: Api) -> None:
    first = api.call("GET", "/v1/webhooks/hook-a/deliveries?limit=2").json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = api.call("GET", f"/v1/webhooks/hook-a/deliveries?limit=2&cursor={first['next_cursor']}"
                    ).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    ids = {d["delivery_id"] for d in first["items"] + rest["items"]}
    assert ids == set(api.ids["a"])
    assert all(d["state"] == "delivered" and d["last_status"] == 200 for d in first["items"])
    dead = api.call("GET", "/v1/deliveries?state=dead_lettered&status_code=410").json()
    assert {d["delivery_id"] for d in dead["items"]} == set(api.ids["b"])
    detail = api.call("GET", f"/v1/deliveries/{api.ids['a'][0]}").json()
    assert detail["request"]["method"] == "POST"
    assert [a["outcome"] for a in detail["attempt_log"]] == ["delivered"]
    assert detail["attempt_log"][0]["duration_ms"] >= 0
    item = api.call("GET", "/v1/items/glpi-a/Ticket/1/deliveries").json()["items"]
    assert [d["items_id"] for d in item] == [1]
    bad = api.call("GET", "/v1/deliveries?cursor=garbage&limit=0&state=nope")
    assert bad.status_code == 422 and len(bad.json()["errors"]) == 2  # limit and state
    assert api.call("GET", "/v1/deliveries?cursor=garbage").status_code == 422


def test_queries_log_filters_and_pages_both_ways(api: Api) -> None:
    every = api.call("GET", "/v1/deliveries?limit=500").json()["items"]
    assert {d["delivery_id"] for d in every} >= set(api.ids["a"] + api.ids["b"])
    b = api.call("GET", "/v1/deliveries?instance=glpi-b&webhook_id=hook-b"
                        "&outcome=dead_lettered&status_code=410").json()["items"]
    assert {d["delivery_id"] for d in b} == set(api.ids["b"])
    one = api.ids["a"][1]
    found = api.call("GET", f"/v1/deliveries?id_prefix={one[:10]}").json()["items"]
    assert [d["delivery_id"] for d in found] == [one]
    newest = every[0]["created_at"]
    assert api.call("GET", f"/v1/deliveries?since_ms={newest + 1}").json()["items"] == []
    first = api.call("GET", "/v1/deliveries?limit=2").json()
    assert first["prev_cursor"] is None
    second = api.call("GET", f"/v1/deliveries?limit=2&cursor={first['next_cursor']}").json()
    back = api.call("GET", f"/v1/deliveries?limit=2&newer=true&cursor={second['prev_cursor']}"
                    ).json()
    assert back["items"] == first["items"] and back["prev_cursor"] is None
    scoped = api.call("GET", "/v1/deliveries?webhook_id=hook-b", token="team-a").json()
    assert scoped["items"] == []
    for bad in ("outcome=maybe", "status_code=99", "id_prefix=XYZ", "webhook_id=%20x"):
        answer = api.call("GET", f"/v1/deliveries?{bad}")
        assert answer.status_code == 422, bad
        assert answer.json()["errors"][0].startswith("query." + bad.split("=")[0]), bad


def test_alert_rules_are_listed_within_the_tokens_scope(api: Api) -> None:
    rules = api.call("GET", "/v1/alert-rules").json()["items"]
    assert [(r["id"], r["instance"]) for r in rules] == [("disk", "glpi-a"),
                                                         ("network", "glpi-b")]
    disk = api.call("GET", "/v1/alert-rules/disk").json()
    assert (disk["match_labels"], disk["entities_id"], disk["itilcategories_id"]) == (
        {"team": "storage"}, 3, 7)
    assert [r["id"] for r in api.call("GET", "/v1/alert-rules", token="team-a").json()["items"]
            ] == ["disk"]
    assert api.call("GET", "/v1/alert-rules/network", token="team-a").status_code == 404
    assert api.call("GET", "/v1/alert-rules/nothing").json() == {
        "errors": ["no alert rule nothing"]}


def test_alerts_list_their_ticket_and_latest_action(api: Api) -> None:
    page = api.call("GET", "/v1/alerts").json()
    assert [(a["alert_key"], a["last_action"], a["tickets_id"]) for a in page["items"]] == [
        ("glpi-b:alertmanager:net-2", "opened", 5),
        ("glpi-a:alertmanager:disk-1", "solved", 12),
        ("glpi-b:alertmanager:net-1", "refused", 0),
    ]
    assert page["items"][0]["ticket_url"] == (
        "https://glpi-b.example.org/glpi/front/ticket.form.php?id=5")
    assert page["items"][1]["ticket_url"] is None  # glpi-a has no API URL here
    assert page["items"][2]["message"] == "ERROR_RIGHT_MISSING: you cannot add"
    refused = api.call("GET", "/v1/alerts?action=refused&instance=glpi-b").json()["items"]
    assert [a["fingerprint"] for a in refused] == ["net-1"]
    assert [a["fingerprint"] for a in api.call("GET", "/v1/alerts?search=DISK").json()["items"]
            ] == ["disk-1"]
    first = api.call("GET", "/v1/alerts?limit=2").json()
    rest = api.call("GET", f"/v1/alerts?limit=2&cursor={first['next_cursor']}").json()
    assert [a["alert_key"] for a in first["items"] + rest["items"]] == [
        a["alert_key"] for a in page["items"]]
    back = api.call("GET", f"/v1/alerts?limit=2&newer=true&cursor={rest['prev_cursor']}").json()
    assert back["items"] == first["items"]
    scoped = api.call("GET", "/v1/alerts", token="team-a").json()["items"]
    assert [a["instance"] for a in scoped] == ["glpi-a"]
    assert api.call("GET", "/v1/alerts?instance=glpi-b", token="team-a").json()["items"] == []
    for bad in ("status=burning", "action=closed", "cursor=garbage", "limit=0"):
        answer = api.call("GET", f"/v1/alerts?{bad}")
        assert answer.status_code == 422, bad
        assert answer.json()["errors"][0].startswith(("query." + bad.split("=")[0], "cursor")), bad


def test_one_alert_has_its_history_and_ticket(api: Api) -> None:
    key = alert_key("glpi-b", "alertmanager", "net-2")
    found = api.call("GET", f"/v1/alerts/{key}").json()
    assert (found["tickets_id"], found["ticket_url"]) == (
        5, "https://glpi-b.example.org/glpi/front/ticket.form.php?id=5")
    assert [(a["action"], a["tickets_id"], a["latency_ms"], a["ticket_url"])
            for a in found["history"]] == [
        ("opened", 5, 250, "https://glpi-b.example.org/glpi/front/ticket.form.php?id=5")]
    disk = api.call("GET", "/v1/alerts/glpi-a:alertmanager:disk-1", token="team-a").json()
    assert [(a["action"], a["alert_status"]) for a in disk["history"]] == [
        ("opened", "firing"), ("solved", "resolved")]
    assert api.call("GET", f"/v1/alerts/{key}", token="team-a").status_code == 404
    assert api.call("GET", "/v1/alerts/glpi-a:alertmanager:none").status_code == 404


def test_webhooks_crud_uses_the_apply_validation_and_the_topic(api: Api) -> None:
    body = {"instance": "glpi-a", "name": "new", "itemtype": "Ticket", "event": "update",
            "url": "https://example.test/hook", "secret": SECRET, "use_oauth": True,
            "oauth_url": "https://example.test/token", "clientid": "c",
            "clientsecret": CLIENT_SECRET}
    made = api.call("PUT", "/v1/webhooks/hook-new", token="team-a", json=body)
    assert made.status_code == 200 and made.json()["state"] == "created"
    assert made.json()["webhook"]["secret"] == "<redacted>"
    assert current_webhooks(api.settings)["hook-new"].itemtype == "Ticket"
    again = api.call("PUT", "/v1/webhooks/hook-new", token="team-a", json=body)
    assert again.json()["state"] == "unchanged"
    wrong = api.call("PUT", "/v1/webhooks/hook-new", token="team-a",
                     json={**body, "event": "sometimes", "url": "", "colour": "red"})
    assert wrong.status_code == 422
    errors = wrong.json()["errors"]
    assert len(errors) >= 3 and any("colour" in e for e in errors)
    assert any("url" in e for e in errors) and any("event" in e for e in errors)
    assert api.call("PUT", "/v1/webhooks/hook-new", token="team-a",
                    json={**body, "instance": "glpi-b"}).status_code == 403
    assert api.call("PUT", "/v1/webhooks/other", json={"id": "x"}).status_code == 422
    shown = api.call("GET", "/v1/webhooks/hook-new").json()
    assert shown["clientsecret"] == "<redacted>" and shown["version"] == 1
    preview = api.call("POST", "/v1/webhooks/hook-a/preview", json={"event": {
        "itemtype": "Ticket", "items_id": 5, "event": "new", "entities_id": 0,
        "item": {"id": 5, "name": "printer on fire"}}}).json()
    assert preview["matches"] is True and "printer on fire" in preview["body"]
    assert api.call("POST", "/v1/webhooks/hook-a/preview",
                    json={"event": {"itemtype": "Ticket"}}).status_code == 422
    last = api.call("POST", "/v1/webhooks/hook-a/preview", token="team-a", json={
        "item": {"instance": "glpi-a", "itemtype": "Ticket", "items_id": 9}})
    assert last.status_code == 200 and "seen in glpi-a" in last.json()["body"], last.text
    for ref in ({"instance": "glpi-b", "itemtype": "Ticket", "items_id": 9},  # not its own
                {"instance": "glpi-a", "itemtype": "Ticket", "items_id": 10}):  # never seen
        assert api.call("POST", "/v1/webhooks/hook-a/preview", token="team-a",
                        json={"item": ref}).status_code == 404
    assert api.call("POST", "/v1/webhooks/hook-a/preview", json={}).status_code == 422
    assert api.call("DELETE", "/v1/webhooks/hook-new", token="team-a").status_code == 204
    assert api.call("GET", "/v1/webhooks/hook-new").status_code == 404
    assert "hook-new" not in current_webhooks(api.settings)


def test_preview_renders_dates_in_the_instance_time_zone(api: Api, tmp_path: Path) -> None:
    body = {"instance": "glpi-a", "name": "dates", "itemtype": "Ticket", "event": "new",
            "is_active": True, "entities_id": 0, "url": "https://example.test/hook",
            "use_default_payload": False, "payload": "{{ item.date_mod|date('c e') }}"}
    assert api.call("PUT", "/v1/webhooks/hook-dates", json=body).status_code == 200
    event = {"itemtype": "Ticket", "items_id": 5, "event": "new", "entities_id": 0,
             "item": {"id": 5, "date_mod": "2024-05-02 10:15:00"}}  # GLPI's local time

    def shown() -> str:
        answer = api.call("POST", "/v1/webhooks/hook-dates/preview", json={"event": event})
        return str(answer.json().get("body"))

    assert shown() == "2024-05-02T10:15:00+00:00 UTC"  # no instance published: UTC
    path = tmp_path / "instances.yaml"
    path.write_text(yaml.safe_dump({"name": "glpi-a", "timezone": "Asia/Tokyo"}))
    apply_instances(api.settings, path)
    assert wait_until(lambda: shown() == "2024-05-02T10:15:00+09:00 Asia/Tokyo", 10), shown()
    assert api.call("DELETE", "/v1/webhooks/hook-dates").status_code == 204


def test_force_send_and_redrive_through_the_api(api: Api, caplog: pytest.LogCaptureFixture
                                               ) -> None:
    dead_id = api.ids["b"][0]
    api.receiver.on("/b", statuses=[200])
    with caplog.at_level(logging.INFO, logger="connectors.admin.context"):
        sent = api.call("POST", f"/v1/deliveries/{dead_id}/send")
    assert sent.status_code == 200 and sent.json() == {
        "outcome": "delivered", "status_code": 200, "error": None}
    # the component's log line names the token (never its secret)
    assert (f"token admin (api): delivery.send {dead_id} [glpi-b]: delivered (HTTP 200)"
            in [r.getMessage() for r in caplog.records])
    assert [a.outcome for a in read(api.settings, ATTEMPTS, AttemptRecord)
            if a.delivery_id == dead_id] == ["dead_lettered", "delivered"]
    # the count first, with the same rule as the redrive
    count = api.call("GET", "/v1/dlq/redrive?webhook_id=hook-b").json()
    assert count == {"count": 2, "summary": "2 deliveries, 2 of them to a target answering 410",
                     "by_status": [{"status_code": 410, "count": 2}]}
    assert api.call("GET", "/v1/dlq/redrive", token="team-a").json()["count"] == 0
    assert api.call("GET", "/v1/dlq/redrive?webhook_id=hook-b",
                    token="team-a").status_code == 404
    # a token scoped to glpi-a redrives within glpi-a: glpi-b's dead letters stay
    assert api.call("POST", "/v1/dlq/redrive", token="team-a", json={}).json() == {
        "redriven": 0}
    assert api.call("GET", "/v1/dlq/redrive?webhook_id=hook-b").json()["count"] == 2
    done = api.call("POST", "/v1/dlq/redrive", json={"webhook_id": "hook-b", "rate_per_s": 50})
    assert done.json() == {"redriven": 2}
    assert api.call("POST", "/v1/dlq/redrive", json={"webhook_id": "hook-b"}).json() == {
        "redriven": 0}  # exactly once
    redriven = [r for r in read(api.settings, DELIVERIES, DeliveryRequest)
                if r.webhook_id == "hook-b"]
    assert len(redriven) == 4 and {r.delivery_id for r in redriven[2:]} == set(api.ids["b"])
    assert len(read(api.settings, DLQ, DeliveryRequest)) == 2


def test_a_replay_through_the_api_runs_in_the_background_once_and_is_audited(api: Api
                                                                             ) -> None:
    seen = make_event("glpi-a", "Ticket", 9, "new", {"id": 9, "name": "seen in glpi-a"},
                      occurred_at=0, entities_id=0)

    def until_ended(replay_id: str) -> dict[str, Any]:
        path = f"/v1/webhooks/hook-a/replays/{replay_id}"
        ended = wait_until(lambda: (a := api.call("GET", path).json())["state"] != "running"
                           and a, 60)
        assert isinstance(ended, dict)
        return ended

    dry = api.call("POST", "/v1/webhooks/hook-a/replays", json={"since_ms": 0, "dry_run": True})
    assert dry.status_code == 202 and dry.json()["dry_run"] is True
    replay_id = dry.json()["replay_id"]
    assert {k: until_ended(replay_id)[k] for k in ("state", "read", "matched", "replayed")} == {
        "state": "finished", "read": 2, "matched": 1, "replayed": 1}  # glpi-b's is not hook-a's
    ours = {replay_delivery_id(seen.event_id, "hook-a", replay_id)}

    def written() -> list[str]:
        return [r.delivery_id for r in read(api.settings, DELIVERIES, DeliveryRequest)
                if r.delivery_id in ours]

    assert written() == []  # a dry run writes nothing
    started = api.call("POST", "/v1/webhooks/hook-a/replays", token="team-a",
                       json={"since_ms": 0})
    assert started.status_code == 202 and started.json()["replay_id"] == replay_id
    first = until_ended(replay_id)
    assert (first["state"], first["replayed"], first["already"]) == ("finished", 1, 0)
    api.call("POST", "/v1/webhooks/hook-a/replays", json={"since_ms": 0})
    again = until_ended(replay_id)
    assert (again["replayed"], again["already"]) == (0, 1)  # the same replay: nothing twice
    assert written() == list(ours)

    assert api.call("POST", "/v1/webhooks/hook-b/replays", token="team-a",
                    json={"since_ms": 0}).status_code == 404
    assert api.call("POST", "/v1/webhooks/hook-a/replays",
                    json={"since_ms": 5, "until_ms": 5}).status_code == 422
    assert api.call("GET", "/v1/webhooks/hook-a/replays/nope").status_code == 404
    assert api.call("GET", f"/v1/webhooks/hook-b/replays/{replay_id}").status_code == 404
    audited = wait_until(lambda: [(r.token, r.result) for r in read(
        api.settings, AUDIT, AuditRecord) if r.action == "webhook.replay"] or None)
    assert audited[:2] == [
        ("team-a", f"replay {replay_id} started"),
        ("team-a", f"replay {replay_id} ended: read 2 events, matched 1, replayed 1, "
                   "already replayed before 0, skipped 0")]


def test_rotate_secret_keeps_the_old_one_for_the_grace_period_and_is_audited(api: Api
                                                                          ) -> None:
    new_secret = "rotated-secret-Yv7Qm2"
    body = {"instance": "glpi-a", "name": "rotating", "itemtype": "Ticket", "event": "new",
            "url": "https://example.test/hook", "secret": SECRET}
    assert api.call("PUT", "/v1/webhooks/hook-rot", token="team-a", json=body).status_code == 200
    before_ms = int(time.time() * 1000)
    rotated = api.call("POST", "/v1/webhooks/hook-rot/rotate-secret", token="team-a",
                       json={"secret": new_secret, "grace": "2h"})
    assert rotated.status_code == 200, rotated.text
    shown = rotated.json()["webhook"]
    assert (shown["version"], shown["secret"], shown["previous_secret"]) == (
        2, "<redacted>", "<redacted>")
    assert 0 <= shown["previous_secret_until_ms"] - before_ms - 7_200_000 < 60_000
    assert new_secret not in rotated.text and SECRET not in rotated.text
    assert api.call("GET", "/v1/webhooks/hook-rot").json()["previous_secret"] == "<redacted>"
    topic = current_webhooks(api.settings)["hook-rot"]
    assert topic.previous_secret_until_ms == shown["previous_secret_until_ms"]
    # refused: the current secret again, a bad grace, a read-only token
    for payload, token, status in (({"secret": new_secret}, "team-a", 422),
                                   ({"secret": "x", "grace": "soon"}, "team-a", 422),
                                   ({"secret": "x"}, "reader", 403)):
        refused = api.call("POST", "/v1/webhooks/hook-rot/rotate-secret", token=token,
                           json=payload)
        assert refused.status_code == status, (payload, token, refused.text)
        assert new_secret not in refused.text
    assert "is the current one" in api.call(
        "POST", "/v1/webhooks/hook-rot/rotate-secret", json={"secret": new_secret}).text
    assert current_webhooks(api.settings)["hook-rot"].version == 2
    records = [r for r in read(api.settings, AUDIT, AuditRecord) if r.target == "hook-rot"]
    assert [(r.token, r.action, r.result) for r in records][-1:] == [
        ("team-a", "webhook.rotate_secret", "rotated, v2")]
    assert api.call("DELETE", "/v1/webhooks/hook-rot", token="team-a").status_code == 204


def test_every_write_is_in_the_audit_trail_with_its_token_name(api: Api) -> None:
    assert api.call("PUT", "/v1/webhooks/hook-audit", token="team-a", json={
        "instance": "glpi-a", "name": "audited", "itemtype": "Ticket", "event": "update",
        "url": "https://example.test/hook"}).status_code == 200
    assert api.call("DELETE", "/v1/webhooks/hook-audit", token="team-a").status_code == 204
    records = read(api.settings, AUDIT, AuditRecord)
    assert [(r.token, r.action, r.target, r.result) for r in records
            if r.token == "team-a"][-2:] == [
        ("team-a", "webhook.put", "hook-audit", "created"),
        ("team-a", "webhook.delete", "hook-audit", "deleted")]
    for r in records:
        assert all(secret not in str(r) for secret in api.tokens.values())
    with RunningLogStore(api.settings):  # the log store keeps the topic

        def seen(token: str) -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = api.call("GET", "/v1/audit?limit=500",
                                                   token=token).json()["items"]
            return items

        assert wait_until(lambda: len(seen("admin")) >= len(records), 60)
    mine = api.call("GET", "/v1/audit?token=team-a&action=webhook.put").json()["items"]
    assert [(e["result"], e["instance"], e["via"]) for e in mine
            if e["target"] == "hook-audit"] == [("created", "glpi-a", "api")]
    assert {e["action"] for e in seen("admin")} >= {"webhook.put", "webhook.delete"}
    # a scoped token reads the writes on its own instance only
    assert {e["instance"] for e in seen("team-b")} <= {"glpi-b"}
    assert {e["instance"] for e in seen("team-a")} == {"glpi-a"}


def test_health_metrics_and_openapi(api: Api) -> None:
    assert httpx.get(api.url + "/healthz").text == "ok\n"
    assert httpx.get(api.url + "/readyz").status_code == 200
    assert "process_cpu_seconds_total" in httpx.get(api.url + "/metrics").text
    assert "hookstream admin API" in httpx.get(api.url + "/docs").text
    spec = httpx.get(api.url + "/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_no_secret_in_any_answer_or_log_line(api: Api, caplog: pytest.LogCaptureFixture
                                             ) -> None:
    with caplog.at_level(logging.DEBUG):
        api.call("GET", "/v1/webhooks")
        api.call("GET", "/v1/webhooks/hook-a")
        api.call("PUT", "/v1/webhooks/hook-a", json={"secret": SECRET, "url": SECRET})
        time.sleep(0.2)
    secrets = [SECRET, CLIENT_SECRET, *api.tokens.values()]
    for text in api.answers + [r.getMessage() for r in caplog.records]:
        for secret in secrets:
            assert secret not in text
    assert any(re.search(r"redacted", t) for t in api.answers)


def test_schemathesis_finds_no_5xx_and_every_answer_matches_the_schema(api: Api) -> None:
    """Generated requests against every operation of the served OpenAPI (last in this
    module: its PUTs and DELETEs may change webhooks)."""
    import hypothesis
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    schema = schemathesis.openapi.from_url(api.url + "/openapi.json")
    auth = {"Authorization": f"Bearer {api.tokens['admin']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 11
    calls: list[int] = []
    for operation in operations:

        @hypothesis.settings(max_examples=15, deadline=None, database=None, derandomize=True,
                             suppress_health_check=list(hypothesis.HealthCheck))
        @hypothesis.given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call(base_url=api.url, headers=auth, timeout=60)
            calls.append(response.status_code)
            case.validate_response(response, checks=checks)

        check()
    assert len(calls) >= 5 * len(operations)
    assert {200, 422} <= set(calls)  # both accepted and refused requests were generated
