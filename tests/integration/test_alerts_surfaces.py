"""Alerts into tickets on every surface, on the real broker against the fake GLPI: Alertmanager
notifications to `hookstream run alerts`, tickets by `hookstream run ticketer` (both as
processes, scraped by Debian's Prometheus with the alert rules), the log store following the
ticketer's actions. Every panel of the Alerts into tickets dashboard has data, the ticketer's
GLPI instance is `glpi_instance` as scraped, HookstreamAlertTicketsRefused fires on the
first refusal, and the log store holds each alert's ticket and history."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from connectors.logstore import AlertFilter, alert_history, list_alerts, open_engine
from hookstream.config import Settings
from hookstream.control import alert_rules, instances
from hookstream.io import create_topics
from hookstream.records import alert_key
from tests.fake_glpi import RunningGlpiApi
from tests.fake_glpi_items import FakeGlpiItems
from tests.integration.harness import cli_env, wait_until
from tests.integration.logstore_harness import RunningLogStore
from tests.integration.test_alerts_receiver import free_port, running_alerts
from tests.integration.test_metrics_prometheus import DASHBOARDS, Prometheus, panel_failures

APP, USER = "app-token-1234", "user-token-5678"
TOKEN = "am-token-0123456789abcdef"
RULE = {"id": "disk", "instance": "glpi-a", "match": {"labels": {"team": "storage"}},
        "name": "{{ alert.name }}", "content": "{{ alert.annotations.summary }}",
        "on_resolved": {"solve": True}}

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("promtool") is None,
    reason="Debian's prometheus package is not installed (.ci/run installs it)",
)


def notification(fingerprint: str, status: str = "firing") -> bytes:
    """Alertmanager's webhook body (version 4) with one alert."""
    alert = {"status": status, "labels": {"alertname": "DiskFull", "team": "storage"},
             "annotations": {"summary": f"disk {fingerprint} full"},
             "startsAt": "2026-12-07T10:00:00Z",
             "endsAt": "2026-12-07T10:05:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
             "generatorURL": "http://prometheus.example.org/graph", "fingerprint": fingerprint}
    return json.dumps({"version": "4", "groupKey": "{}:{alertname=\"DiskFull\"}",
                       "truncatedAlerts": 0, "status": status, "receiver": "glpi",
                       "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                       "externalURL": "http://alertmanager.example.org", "alerts": [alert]
                       }).encode()


@pytest.fixture
def glpi() -> Iterator[FakeGlpiItems]:
    api = FakeGlpiItems(APP, USER)
    with RunningGlpiApi(api):
        yield api


def query(prometheus: Prometheus, expr: str) -> list[dict[str, Any]]:
    answer = prometheus.api("query", query=expr)
    assert answer.get("status") == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def test_an_alert_becomes_a_ticket_on_the_dashboard_the_rules_and_the_log_store(
        settings: Settings, tmp_path: Path, glpi: FakeGlpiItems) -> None:
    create_topics(settings)
    path = tmp_path / "instances.yaml"
    path.write_text(yaml.safe_dump({"name": "glpi-a", "api_url": glpi.api_url,
                                    "app_token": APP, "user_token": USER,
                                    "alerts": {"alertmanager": {"auth": "bearer",
                                                                "secret": TOKEN}}}))
    instances.apply_instances(settings, path)
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": [RULE]}))
    alert_rules.apply_rules(settings, rules)
    ticketer_port = free_port()
    fast = dataclasses.replace(settings, ticketer_rate_per_s=100.0, ticketer_backoff_max_s=1.0,
                               metrics_interval_s=1.0)
    with running_alerts(fast, tmp_path / "alerts.log") as alerts, \
            (tmp_path / "ticketer.log").open("wb") as ticketer_log:
        ticketer = subprocess.Popen(
            [sys.executable, "-m", "hookstream.cli", "run", "ticketer"],
            env=cli_env(fast, metrics_port=str(ticketer_port), metrics_host="127.0.0.1"),
            stdout=ticketer_log, stderr=subprocess.STDOUT)
        alerts_port = int(alerts.url.rsplit(":", 1)[1])
        prometheus = Prometheus(tmp_path, {"hookstream-alerts": alerts_port,
                                           "hookstream-ticketer": ticketer_port})
        logstore = RunningLogStore(dataclasses.replace(settings, metrics_port=free_port(),
                                                       metrics_host="127.0.0.1"))
        try:
            with logstore:
                run_the_story(settings, alerts.url, prometheus, glpi)
        finally:
            prometheus.stop()
            ticketer.terminate()
            ticketer.wait(30)
    assert logstore.error is None


def post(url: str, body: bytes, token: str = TOKEN) -> int:
    return httpx.post(f"{url}/alerts/glpi-a/alertmanager", content=body, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}).status_code


def tickets(glpi: FakeGlpiItems) -> list[dict[str, Any]]:
    return [t for t in glpi.items["Ticket"].values() if "hookstream-alert-" in t["content"]]


def run_the_story(settings: Settings, url: str, prometheus: Prometheus,
                  glpi: FakeGlpiItems) -> None:
    # opened, then solved; a sender with a wrong token
    assert post(url, notification("disk-1")) == 200
    assert wait_until(lambda: len(tickets(glpi)) == 1, 60)
    assert post(url, notification("disk-1", "resolved")) == 200
    assert post(url, notification("disk-1"), token="wrong-token-0123456789") == 401
    # GLPI down: the ticket waits, then opens
    glpi.unavailable = True
    assert post(url, notification("disk-2")) == 200
    assert wait_until(lambda: query(prometheus, "hookstream_ticketer_glpi_unavailable_total"),
                      60)
    glpi.unavailable = False
    assert wait_until(lambda: len(tickets(glpi)) == 2, 60)
    # GLPI refuses: the alert goes to the DLQ with GLPI's message
    glpi.read_only.add("Ticket")
    assert post(url, notification("disk-3")) == 200

    board = json.loads((DASHBOARDS / "hookstream-alerts.json").read_text())
    wait_until(lambda: not panel_failures(prometheus, board), 120)
    assert panel_failures(prometheus, board) == []
    # the GLPI instance is its own label; `instance` stays the scrape target
    [opened] = query(prometheus, 'hookstream_ticketer_actions_total{action="opened"}')
    assert opened["metric"]["glpi_instance"] == "glpi-a"
    assert opened["metric"]["instance"] == f"127.0.0.1:{ticketer_port(prometheus)}"

    def firing() -> list[dict[str, Any]]:
        return [a for a in prometheus.api("alerts")["data"]["alerts"]
                if a["labels"]["alertname"] == "HookstreamAlertTicketsRefused"]

    assert wait_until(firing, 60), "HookstreamAlertTicketsRefused did not fire"
    assert firing()[0]["labels"]["glpi_instance"] == "glpi-a"
    rules = prometheus.api("rules")["data"]["groups"][0]["rules"]
    assert all(r["health"] == "ok" for r in rules), rules

    engine = open_engine(settings)
    try:
        assert wait_until(lambda: len(list_alerts(engine, AlertFilter()).items) == 3, 60)
        shown = {a["fingerprint"]: (a["last_action"], a["tickets_id"] > 0)
                 for a in list_alerts(engine, AlertFilter()).items}
        assert shown == {"disk-1": ("solved", True), "disk-2": ("opened", True),
                         "disk-3": ("refused", False)}
        one = alert_history(engine, alert_key("glpi-a", "alertmanager", "disk-1"))
        assert one is not None
        assert [h["action"] for h in one["history"]] == ["opened", "solved"]
        assert one["tickets_id"] == tickets(glpi)[0]["id"]
        [refused] = list_alerts(engine, AlertFilter(action="refused")).items
        assert refused["message"].startswith("ERROR_GLPI_ADD")
    finally:
        engine.dispose()


def ticketer_port(prometheus: Prometheus) -> int:
    """The port Prometheus scrapes the ticketer on (its target, kept as `instance`)."""
    [target] = [t for t in prometheus.api("targets")["data"]["activeTargets"]
                if t["labels"]["job"] == "hookstream-ticketer"]
    return int(target["scrapeUrl"].split(":")[2].split("/")[0])
