"""The Grafana dashboards: generated from scripts/dashboards.py and fresh; every panel has
queries; every variable a query uses is defined; only hookstream's metrics are queried and
each of them is declared. (tests/integration/test_metrics_prometheus.py runs the queries.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from prometheus_client import REGISTRY

import hookstream.io.metrics  # noqa: F401  (declares the metrics)

ROOT = Path(__file__).resolve().parents[2]
BOARDS = sorted((ROOT / "helm" / "hookstream" / "dashboards").glob("*.json"))
GRAFANA_VARIABLES = {"__rate_interval", "__range", "__interval"}


def test_dashboards_are_generated_and_fresh() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "dashboards.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert [b.name for b in BOARDS] == [
        "hookstream-alerts.json", "hookstream-overview.json", "hookstream-webhook.json"]


def test_panels_query_declared_metrics_with_defined_variables() -> None:
    declared = {name for c in list(REGISTRY._collector_to_names)
                for name in REGISTRY._collector_to_names[c]}
    for path in BOARDS:
        board = json.loads(path.read_text())
        defined = {v["name"] for v in board["templating"]["list"]} | GRAFANA_VARIABLES
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in board["panels"]:
            assert panel["targets"], f"{path.name}: {panel['title']} has no query"
            for target in panel["targets"]:
                expr = target["expr"]
                used = set(re.findall(r"\$(\w+)", expr))
                assert used <= defined, f"{panel['title']}: undefined {used - defined}"
                for metric in re.findall(r"\b(hookstream_\w+)", expr):
                    assert metric in declared, f"{panel['title']}: {metric} is not declared"
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                used = set(re.findall(r"\$(\w+)", variable["query"]["query"]))
                assert used <= defined, variable["name"]
