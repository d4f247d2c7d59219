"""docker-compose.yml, validated by Debian's docker-compose (`docker-compose config`): every
component runs, with a command the CLI accepts; Prometheus scrapes each of them with the
alert rules (promtool check config); Grafana gets the datasource and the dashboards."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hookstream.cli import build_parser
from hookstream.cli.pipeline import COMPONENTS

ROOT = Path(__file__).resolve().parents[2]
needs_compose = pytest.mark.skipif(shutil.which("docker-compose") is None,
                                   reason="docker-compose not installed (.ci/run installs it)")


def compose_config(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSTREAM_")}
    return subprocess.run(["docker-compose", "config"], cwd=ROOT, capture_output=True, text=True,
                          env={**environment, **env}, timeout=60)


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose not installed (.ci/run installs it)")
    done = compose_config(HOOKSTREAM_SECRET_KEY="a-fernet-key")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = yaml.safe_load(done.stdout)["services"]
    return result


def test_every_component_runs_with_a_command_the_cli_accepts(services: dict[str, Any]) -> None:
    ours = {name: s for name, s in services.items() if s.get("image") == "hookstream:dev"}
    runs = set()
    for name, service in ours.items():
        args = build_parser().parse_args(service["command"])
        assert callable(args.func), name
        if service["command"][0] == "run":
            runs.add(service["command"][1])
        assert service["environment"]["HOOKSTREAM_SECRET_KEY"] == "a-fernet-key"
    assert runs == set(COMPONENTS), f"not in docker-compose.yml: {set(COMPONENTS) - runs}"


def volumes(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path (docker-compose 1.x prints "SOURCE:TARGET:MODE")."""
    out = {}
    for volume in service["volumes"]:
        source, target = (volume["source"], volume["target"]) if isinstance(volume, dict) \
            else volume.split(":")[:2]
        out[target] = Path(source) if Path(source).is_absolute() else ROOT / source
    return out


@needs_compose
def test_compose_refuses_to_start_without_a_secret_key() -> None:
    done = compose_config()
    assert done.returncode != 0 and "HOOKSTREAM_SECRET_KEY" in done.stderr


def test_prometheus_scrapes_every_component_with_the_rules(
    services: dict[str, Any], tmp_path: Path
) -> None:
    prometheus = services["prometheus"]
    mounts = volumes(prometheus)
    config_path = mounts["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load(config_path.read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]}
    ours = {name: s for name, s in services.items() if s.get("image") == "hookstream:dev"
            and s["command"][0] == "run"}
    # each component's operations port, as the chart knows it (ingest: its HTTP port)
    chart = yaml.safe_load((ROOT / "helm" / "hookstream" / "values.yaml").read_text())
    assert targets == {
        f"{name}:{chart['config'][chart['components'][name]['opsPortSetting']]}" for name in ours
    }
    # promtool resolves rule files beside the config, as they are mounted in the container
    shutil.copy(config_path, tmp_path / "prometheus.yml")
    shutil.copy(mounts["/etc/prometheus/alerts.yaml"], tmp_path / "alerts.yaml")
    if shutil.which("promtool"):
        done = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "13 rules found" in done.stdout, done.stdout + done.stderr


def test_grafana_is_provisioned_with_the_dashboards(services: dict[str, Any]) -> None:
    mounts = volumes(services["grafana"])
    dashboards = mounts["/var/lib/grafana/dashboards/hookstream"]
    assert sorted(p.name for p in dashboards.glob("*.json")) == [
        "hookstream-alerts.json", "hookstream-overview.json", "hookstream-webhook.json"]
    provider = yaml.safe_load(
        mounts["/etc/grafana/provisioning/dashboards/hookstream.yaml"].read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/hookstream"
    source = yaml.safe_load(
        mounts["/etc/grafana/provisioning/datasources/hookstream.yaml"].read_text())
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
