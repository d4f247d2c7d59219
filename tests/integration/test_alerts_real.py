"""The real producers: Debian's Prometheus fires and resolves a rule, Debian's Alertmanager
sends both notifications to `hookstream run alerts`, and both land on Kafka.

    gauge endpoint (this test) <- Prometheus (scrape 1 s, rule hs_test_value > 0)
        -> Alertmanager (group_wait/interval 1 s, send_resolved, bearer) -> run alerts -> Kafka

Everything on loopback, on free ports, in temporary directories; every wait has a deadline
and every process is killed at the end. `scripts/system-deps.sh --test` installs both.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from hookstream.config import Settings
from hookstream.io import create_topics
from hookstream.records import AlertEvent
from tests.integration.test_alerts_receiver import (
    TOKEN,
    apply_routes,
    free_port,
    on_kafka,
    running_alerts,
)

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"


class Gauge:
    """A /metrics endpoint serving `hs_test_value`, set by the test."""

    def __init__(self) -> None:
        self.value = 0
        gauge = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = f"# TYPE hs_test_value gauge\nhs_test_value {gauge.value}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def process(args: list[str], log: Path, ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """A started process, once `ready_url` answers 200; killed on the way out."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _answers(ready_url), 60, f"{args[0]} ready ({log})", proc)
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(done: Callable[[], Any], timeout_s: float, what: str,
             proc: subprocess.Popen[bytes] | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = done()
        if result:
            return result
        assert proc is None or proc.poll() is None, f"{what}: the process exited"
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.5)


def alertmanager_config(alerts_url: str) -> dict[str, Any]:
    return {
        "global": {"resolve_timeout": "5s"},
        "route": {"receiver": "glpi", "group_by": ["alertname"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "glpi", "webhook_configs": [{
            "url": f"{alerts_url}/alerts/glpi-a/alertmanager",
            "send_resolved": True,
            "http_config": {"authorization": {"type": "Bearer", "credentials": TOKEN}},
        }]}],
    }


def prometheus_config(gauge: str, alertmanager: str) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [{"job_name": "hs_test", "static_configs": [{"targets": [gauge]}]}],
    }


RULES = {"groups": [{"name": "hs", "interval": "1s", "rules": [{
    "alert": "HsTestValue", "expr": "hs_test_value > 0", "for": "0s",
    "labels": {"severity": "critical"},
    "annotations": {"summary": "hs_test_value is {{ $value }}"},
}]}]}


def test_prometheus_and_alertmanager_fire_then_resolve_onto_kafka(
    settings: Settings, tmp_path: Path
) -> None:
    assert Path(PROMETHEUS).exists() and Path(ALERTMANAGER).exists(), (
        "needs Debian's prometheus and prometheus-alertmanager: scripts/system-deps.sh --test")
    create_topics(settings)
    apply_routes(settings, tmp_path)
    am_port, prom_port = free_port(), free_port()
    (tmp_path / "prom").mkdir()
    (tmp_path / "am").mkdir()
    with ExitStack() as stack:
        gauge = Gauge()
        stack.callback(gauge.close)
        alerts = stack.enter_context(running_alerts(settings, tmp_path / "alerts.log"))
        am_yml = tmp_path / "am" / "alertmanager.yml"
        am_yml.write_text(yaml.safe_dump(alertmanager_config(alerts.url)))
        stack.enter_context(process(
            [ALERTMANAGER, f"--config.file={am_yml}", f"--storage.path={tmp_path / 'am'}",
             f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=",
             f"--web.external-url=http://127.0.0.1:{am_port}"],
            tmp_path / "alertmanager.log", f"http://127.0.0.1:{am_port}/-/ready"))
        prom_yml = tmp_path / "prom" / "prometheus.yml"
        prom_yml.write_text(yaml.safe_dump(prometheus_config(gauge.address,
                                                             f"127.0.0.1:{am_port}")))
        (tmp_path / "prom" / "rules.yml").write_text(yaml.safe_dump(RULES))
        stack.enter_context(process(
            [PROMETHEUS, f"--config.file={prom_yml}",
             f"--storage.tsdb.path={tmp_path / 'prom' / 'data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--rules.alert.resend-delay=1s",
             f"--web.external-url=http://127.0.0.1:{prom_port}"],
            tmp_path / "prometheus.log", f"http://127.0.0.1:{prom_port}/-/ready"))

        def ours(status: str) -> Callable[[], list[AlertEvent]]:
            return lambda: [e for e in on_kafka(settings)
                            if e.name == "HsTestValue" and e.status == status]

        gauge.value = 1
        [firing, *_] = wait_for(ours("firing"), 60, "a firing AlertEvent on Kafka")
        gauge.value = 0
        [resolved, *_] = wait_for(ours("resolved"), 60, "a resolved AlertEvent on Kafka")
    assert resolved.fingerprint == firing.fingerprint and resolved.key() == firing.key()
    assert firing.key() == f"glpi-a:alertmanager:{firing.fingerprint}"
    assert firing.labels["severity"] == "critical" and firing.labels["job"] == "hs_test"
    assert firing.annotations["summary"] == "hs_test_value is 1"
    assert firing.generator_url.startswith(f"http://127.0.0.1:{prom_port}/graph?g0.expr=")
    assert firing.links == {"external_url": f"http://127.0.0.1:{am_port}"}
    assert firing.ends_at is None  # Alertmanager's zero time while it fires
    assert resolved.ends_at is not None and resolved.ends_at >= resolved.starts_at
    assert resolved.starts_at == firing.starts_at
