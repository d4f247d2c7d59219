"""`hookstream run alerts` on the real broker: notifications in, AlertEvents on Kafka out."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from hookstream.alerting.auth import sign
from hookstream.config import Settings
from hookstream.control import instances
from hookstream.devbroker import LocalBroker
from hookstream.io import create_topics
from hookstream.records import ALERTS, AlertEvent
from tests.conftest import FIXTURES, settings_for
from tests.integration.harness import cli_env, read

TOKEN = "am-token-0123456789abcdef"
GRAFANA_KEY = "grafana-hmac-key-0123456789"
ZABBIX_KEY = "zabbix-hmac-key-0123456789"
BODIES = {s: (FIXTURES / "alerts" / f"{s}.json").read_bytes()
          for s in ("alertmanager", "grafana", "zabbix")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def apply_routes(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "instances.yaml"
    path.write_text(yaml.safe_dump({"instances": [{"name": "glpi-a", "alerts": {
        "alertmanager": {"auth": "bearer", "secret": TOKEN},
        "grafana": {"auth": "hmac", "secret": GRAFANA_KEY},
        "zabbix": {"auth": "hmac", "secret": ZABBIX_KEY},
    }}]}))
    instances.apply_instances(settings, path)


@dataclasses.dataclass
class RunningAlerts:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def running_alerts(settings: Settings, log: Path, **extra: str) -> Iterator[RunningAlerts]:
    """`hookstream run alerts` as a subprocess on a free loopback port, ready when yielded."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "hookstream.cli", "run", "alerts"],
            env=cli_env(settings, alerts_host="127.0.0.1", alerts_port=str(port), **extra),
            stdout=out, stderr=subprocess.STDOUT,
        )
    running = RunningAlerts(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"run alerts exited: {log.read_text()[-2000:]}"
            try:
                if httpx.get(f"{running.url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "run alerts not ready within 60 s"
            time.sleep(0.2)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def headers_for(source: str, body: bytes) -> dict[str, str]:
    if source == "alertmanager":
        return {"Authorization": f"Bearer {TOKEN}"}
    stamp = str(int(time.time()))
    if source == "grafana":
        return {"X-Grafana-Alerting-Signature": sign(GRAFANA_KEY, body, stamp),
                "X-Grafana-Alerting-Timestamp": stamp}
    return {"X-Hookstream-Signature": sign(ZABBIX_KEY, body, stamp),
            "X-Hookstream-Timestamp": stamp}


def post(alerts: RunningAlerts, source: str, body: bytes,
         headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{alerts.url}/alerts/glpi-a/{source}", content=body, timeout=30,
                      headers=headers_for(source, body) if headers is None else headers)


def on_kafka(settings: Settings) -> list[AlertEvent]:
    return read(settings, ALERTS, AlertEvent)


@pytest.fixture
def alerts(settings: Settings, tmp_path: Path) -> Iterator[RunningAlerts]:
    create_topics(settings)
    apply_routes(settings, tmp_path)
    with running_alerts(dataclasses.replace(settings, alerts_max_body_bytes=20_000),
                        tmp_path / "alerts.log") as running:
        yield running


def test_each_format_is_on_kafka_one_event_per_alert_and_refusals_produce_nothing(
    settings: Settings, alerts: RunningAlerts
) -> None:
    answers = {source: post(alerts, source, body) for source, body in BODIES.items()}
    assert {s: a.status_code for s, a in answers.items()} == dict.fromkeys(BODIES, 200)
    assert answers["alertmanager"].json()["accepted"] == 3  # a group of three: three events
    refused = [
        post(alerts, "alertmanager", BODIES["alertmanager"], {"Authorization": "Bearer nope"}),
        post(alerts, "grafana", BODIES["grafana"], {}),
        post(alerts, "alertmanager", b'{"version": "3"}'),
        post(alerts, "zabbix", b"x" * 20_001),
        post(alerts, "zabbix", b"{}"),
    ]
    assert [r.status_code for r in refused] == [401, 401, 400, 413, 400]
    assert refused[2].json() == {
        "error": "version '3': hookstream reads Alertmanager's webhook version 4"}
    assert TOKEN not in json.dumps([r.json() for r in refused])

    got = on_kafka(settings)
    ids = [i for a in answers.values() for i in a.json()["event_ids"]]
    assert sorted(e.event_id for e in got) == sorted(ids)  # each once, nothing refused
    by_key = {e.key(): e for e in got}
    assert sorted(by_key) == sorted([
        "glpi-a:alertmanager:1a30ba71cca2921f", "glpi-a:alertmanager:5f1c1d6e0b2a93c4",
        "glpi-a:alertmanager:9e2d4c8a7b1f6053", "glpi-a:grafana:c6eadffa33fcdf37",
        "glpi-a:grafana:bc97ff14869b13e3", "glpi-a:zabbix:5417"])
    resolved = by_key["glpi-a:alertmanager:9e2d4c8a7b1f6053"]
    assert (resolved.status, resolved.ends_at) == ("resolved", 1_675_688_745_828)
    assert by_key["glpi-a:zabbix:5417"].labels["host"] == "web-01"
    metrics = httpx.get(f"{alerts.url}/metrics").text
    assert ('hookstream_alerts_received_total{glpi_instance="glpi-a",source="alertmanager",'
            'status="resolved"} 1.0') in metrics
    assert 'hookstream_alerts_rejected_total{reason="too_large",source="zabbix"} 1.0' in metrics
    assert TOKEN not in metrics and GRAFANA_KEY not in metrics
    assert TOKEN not in alerts.log.read_text() and GRAFANA_KEY not in alerts.log.read_text()


def test_routes_applied_while_running_are_followed(
    settings: Settings, alerts: RunningAlerts, tmp_path: Path
) -> None:
    body = BODIES["alertmanager"]
    path = tmp_path / "rotated.yaml"
    rotated = "rotated-token-0123456789"
    path.write_text(yaml.safe_dump({"instances": [{"name": "glpi-a", "alerts": {
        "alertmanager": {"auth": "bearer", "secret": rotated}}}]}))
    instances.apply_instances(settings, path)
    deadline, status = time.monotonic() + 30, 0
    while status != 200 and time.monotonic() < deadline:
        status = post(alerts, "alertmanager", body, {"Authorization": f"Bearer {rotated}"}
                      ).status_code
        time.sleep(0.2)
    assert status == 200
    assert post(alerts, "alertmanager", body).status_code == 401  # the old token
    assert post(alerts, "grafana", BODIES["grafana"]).status_code == 401  # route removed


@pytest.mark.slow
def test_kafka_away_gives_503_and_the_retries_lose_nothing(
    own_broker: LocalBroker, tmp_path: Path
) -> None:
    settings = settings_for(own_broker.bootstrap, tmp_path)
    create_topics(settings)
    apply_routes(settings, tmp_path)
    groups = [_group(n) for n in range(4)]
    with running_alerts(settings, tmp_path / "alerts.log", alerts_produce_timeout_s="1") as alerts:
        assert post(alerts, "alertmanager", groups[0]).status_code == 200
        own_broker.stop()
        started = time.monotonic()
        answers = [post(alerts, "alertmanager", g) for g in groups[1:]]
        assert [a.status_code for a in answers] == [503] * 3
        assert answers[0].json() == {"error": "Kafka unavailable; retry later"}
        assert time.monotonic() - started < 3 * 5  # each answered within its bound
        own_broker.start()
        pending, deadline = groups[1:], time.monotonic() + 90
        while pending and time.monotonic() < deadline:  # Alertmanager retries until 2xx
            pending = [g for g in pending if post(alerts, "alertmanager", g).status_code != 200]
            time.sleep(0.5)
        assert not pending
    got = {e.fingerprint for e in on_kafka(settings)}
    assert got == {f"group{n}-alert{i}" for n in range(4) for i in range(3)}


def _group(n: int) -> bytes:
    data: dict[str, Any] = json.loads(BODIES["alertmanager"])
    for i, alert in enumerate(data["alerts"]):
        alert["fingerprint"] = f"group{n}-alert{i}"
    return json.dumps(data).encode()
