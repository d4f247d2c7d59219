"""The dashboards and metrics against a real Prometheus scraping a real run.

The processor, delivery and log store run as `hookstream run ...` processes on the test
broker; a receiver fails some requests (one origin always), so retries, circuits and the
DLQ have data; one webhook's template fails on some items (render errors). Debian's
Prometheus, started here on a loopback port with a generated config and the alert rules,
scrapes the three components. Every panel query of both dashboards, with its variables
substituted, must return at least one series; a failing query is reported with its
dashboard and panel.
`promtool check metrics` must be clean on each component's real output.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from hookstream.config import Settings
from hookstream.records import ITEM_CHANGES, make_event
from tests.conftest import fixture_item
from tests.integration.harness import apply_webhooks, cli_env, publish, wait_until
from tests.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "helm" / "hookstream" / "dashboards"
ALERTS = ROOT / "helm" / "hookstream" / "files" / "alerts.yaml"
LOOPBACK = ["127.0.0.0/8"]
# what Grafana would put in place of its variables, for one webhook of the run
VARIABLES = {"$glpi_instance": "glpi-a", "$webhook": "hook-flaky",
             "$__rate_interval": "30s", "$__range": "5m"}

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("promtool") is None,
    reason="Debian's prometheus package is not installed (.ci/run installs it)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


class Prometheus:
    def __init__(self, tmp_path: Path, jobs: dict[str, int]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                for job, port in jobs.items()
            ],
        }
        path = tmp_path / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        self.log = (tmp_path / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            ["prometheus", f"--config.file={path}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        assert wait_until(lambda: get(f"{self.url}/-/ready")[0] == 200, 30), "Prometheus not ready"

    def api(self, path: str, **params: str) -> dict[str, Any]:
        status, body = get(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        answer: dict[str, Any] = json.loads(body) if body else {"status": "error", "error": status}
        return answer

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)
        self.log.close()


def substitute(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    return expr


def panel_failures(prometheus: Prometheus, dashboard: dict[str, Any]) -> list[str]:
    """Every panel target that fails or returns no series, named by dashboard and panel."""
    failures = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            where = f"{dashboard['title']} / {panel['title']} ({target['refId']})"
            answer = prometheus.api("query", query=substitute(target["expr"]))
            if answer.get("status") != "success":
                failures.append(f"{where}: {answer.get('errorType')}: {answer.get('error')}")
            elif not answer["data"]["result"]:
                failures.append(f"{where}: no data")
    return failures


def variable_values(prometheus: Prometheus, variable: dict[str, Any]) -> set[str]:
    """What Grafana's label_values(metric{...}, label) offers for a query variable."""
    query = substitute(variable["query"]["query"])
    inner = query.removeprefix("label_values(").removesuffix(")")
    selector, label = (part.strip() for part in inner.rsplit(",", 1))
    answer = prometheus.api("series", **{"match[]": selector})
    return {series[label] for series in answer.get("data", []) if label in series}


@contextmanager
def scraped(settings: Settings, tmp_path: Path, components: tuple[str, ...], **extra: str
            ) -> Iterator[tuple[Prometheus, dict[str, int]]]:
    """`hookstream run C` for each component, its metrics on a port of its own scraped
    every second by a real Prometheus; all stopped at the end."""
    ports = {f"hookstream-{c}": free_port() for c in components}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "hookstream.cli", "run", job.split("-")[1]],
            env=cli_env(settings, metrics_port=str(port), metrics_host="127.0.0.1",
                        metrics_interval_s="1", **extra),
            stdout=subprocess.DEVNULL, stderr=(tmp_path / f"{job}.log").open("wb"),
        )
        for job, port in ports.items()
    ]
    prometheus = Prometheus(tmp_path, ports)
    try:
        yield prometheus, ports
    finally:
        prometheus.stop()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


def ticket(n: int, urgency: int) -> dict[str, Any]:
    return {**fixture_item("Ticket.json"), "id": n, "name": f"Printer {n}", "urgency": urgency,
            "entity": {"id": 0, "name": "Root", "completename": "Root"}}


@pytest.fixture
def run(settings: Settings, tmp_path: Path) -> Iterator[tuple[Prometheus, dict[str, int]]]:
    with Receiver() as flaky, Receiver() as dead:
        flaky.on("/in", statuses=[200, 200, 503] * 400 + [200])
        dead.on("/in", statuses=[503])
        apply_webhooks(
            settings, tmp_path,
            {"id": "hook-flaky", "url": flaky.url("/in"), "allowed_networks": LOOPBACK,
             "use_default_payload": False,
             # urgency 0 divides by zero: a render error on those items only
             "payload": '{"id": {{ item.id }}, "ratio": {{ 100 / item.urgency }}}'},
            {"id": "hook-dead", "url": dead.url("/in"), "allowed_networks": LOOPBACK},
        )
        events = [
            make_event("glpi-a", "Ticket", 500 + n, "new", ticket(500 + n, 0 if n % 5 == 0 else 3),
                       occurred_at=n)
            for n in range(40)
        ]
        publish(settings, [*events[:20], b"\x00garbage", *events[20:]], ITEM_CHANGES)
        with scraped(settings, tmp_path, ("processor", "delivery", "logstore"),
                     circuit_cooldown_s="60") as both:
            yield both


def test_every_dashboard_panel_has_data_and_metrics_are_promtool_clean(
    run: tuple[Prometheus, dict[str, int]],
) -> None:
    prometheus, ports = run
    boards = {name: json.loads((DASHBOARDS / name).read_text())
              for name in ("hookstream-overview.json", "hookstream-webhook.json")}

    def all_failures() -> list[str]:
        return [f for board in boards.values() for f in panel_failures(prometheus, board)]

    wait_until(lambda: not all_failures(), timeout_s=120)
    failures = all_failures()
    assert not failures, "\n".join(failures)

    webhook = boards["hookstream-webhook.json"]
    variables = {v["name"]: v for v in webhook["templating"]["list"] if v["type"] == "query"}
    assert "glpi-a" in variable_values(prometheus, variables["glpi_instance"])
    assert {"hook-flaky", "hook-dead"} <= variable_values(prometheus, variables["webhook"])

    # what the run must have shown, beyond "some data"
    expected = {  # the gauges refresh every second: wait for the run to show
        # the processor's 8 render errors and the dead target's deliveries (depth counts
        # the processor's transaction markers too: at least the records)
        'max(hookstream_dlq_depth{topic=~".*[.]hookstream[.]dlq"}) >= 8': True,
        'max(hookstream_dlq_depth{topic=~".*glpi[.]item-changes[.]dlq"}) >= 1': True,
        'max(hookstream_circuit_open{origin=~"http://127[.]0[.]0[.]1:[0-9]+"}) == 1': True,
        'sum(hookstream_delivery_attempts_total{webhook_id="hook-flaky",'
        'outcome="retry_scheduled"}) >= 1': True,
        'sum(hookstream_render_errors_total{webhook_id="hook-flaky"}) == 8': True,
        'sum(hookstream_consumer_lag{group="hookstream-processor"}) >= 0': True,
        'sum(hookstream_consumer_lag{group=~".*hookstream-logstore"}) >= 0': True,
        'sum(hookstream_logstore_records_total{outcome="written"}) >= 40': True,
    }

    def shown() -> dict[str, bool]:
        # a comparison keeps the series where it holds: empty when it does not
        return {q: bool(prometheus.api("query", query=q)["data"]["result"]) for q in expected}

    wait_until(lambda: shown() == expected, timeout_s=60)
    assert shown() == expected

    rules = prometheus.api("rules")["data"]["groups"][0]["rules"]
    assert len(rules) >= 9 and all(r["health"] == "ok" for r in rules), rules

    for job, port in ports.items():
        status, text = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200, job
        assert b"secret" not in text.lower() and b"/in" not in text  # no secrets, no URLs
        done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
        assert done.returncode == 0 and not done.stdout.strip(), (job, done.stdout)


def test_a_broken_panel_query_is_reported_with_its_panel(tmp_path: Path) -> None:
    prometheus = Prometheus(tmp_path, {})
    try:
        board = {"title": "T", "panels": [
            {"title": "Broken", "targets": [{"refId": "A", "expr": "sum(rate(x[5m]"}]},
            {"title": "Empty", "targets": [{"refId": "A", "expr": "hookstream_nothing_here"}]},
            {"title": "Fine", "targets": [{"refId": "A", "expr": "vector(1)"}]},
        ]}
        failures = panel_failures(prometheus, board)
    finally:
        prometheus.stop()
    assert len(failures) == 2
    assert failures[0].startswith("T / Broken (A): bad_data")
    assert failures[1] == "T / Empty (A): no data"
