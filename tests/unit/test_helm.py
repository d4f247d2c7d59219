"""The Helm chart, offline: helm lint, helm template with the default values and with every
component and option on, kubeconform in strict mode against the Kubernetes schemas and the
KEDA and prometheus-operator CRD schemas; and what the rendered objects must say.

helm, kubeconform and the schemas come from scripts/k8s-tools.sh (pinned, built once into
~/.cache/hookstream/tools; needs Go the first time)."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hookstream.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "hookstream"
TOOLS_SCRIPT = ROOT / "scripts" / "k8s-tools.sh"
KUBE_VERSION = re.search(r"^KUBERNETES_VERSION=v(\S+)", TOOLS_SCRIPT.read_text(), re.M).group(1)  # type: ignore[union-attr]


@pytest.fixture(scope="session")
def tools() -> Path:
    built = Path.home() / ".cache/hookstream/tools/bin/helm"
    if shutil.which("go") is None and not built.exists():
        pytest.skip("Go is needed once to build helm and kubeconform (scripts/k8s-tools.sh)")
    done = subprocess.run(
        ["bash", str(TOOLS_SCRIPT)], capture_output=True, text=True, timeout=1800,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return Path(done.stdout.strip().splitlines()[-1])


def helm(tools: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tools / "bin" / "helm"), *args], capture_output=True, text=True,
                          timeout=120)


def template(tools: Path, *values: str, sets: tuple[str, ...] = ()) -> str:
    args = ["template", "hs", str(CHART), "--namespace", "hooks", "--kube-version", KUBE_VERSION]
    for v in values:
        args += ["-f", str(CHART / "ci" / v)]
    for s in sets:
        args += ["--set", s]
    done = helm(tools, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def docs(rendered: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(rendered) if d]


def kubeconform(tools: Path, rendered: str) -> subprocess.CompletedProcess[str]:
    schemas = tools / "schemas"
    kinds = schemas / "k8s-strict" / "{{ .ResourceKind }}{{ .KindSuffix }}.json"
    crds = schemas / "crds-strict/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
    return subprocess.run(
        [str(tools / "bin" / "kubeconform"), "-strict", "-summary", "-output", "text",
         "-schema-location", str(kinds), "-schema-location", str(crds), "-"],
        input=rendered, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture(scope="module")
def everything(tools: Path) -> Iterator[list[dict[str, Any]]]:
    yield docs(template(tools, "all-values.yaml"))


VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
COMPONENTS = VALUES["components"]  # ci/all-values.yaml enables every one


def port_of(component: str, setting: str) -> int:
    name = COMPONENTS[component][setting]
    return int(VALUES["config"][name]) if name else 0


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_chart_settings_are_in_sync_with_the_settings_class() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "helm_sync.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_chart_components_are_the_cli_components() -> None:
    from hookstream.cli.pipeline import COMPONENTS

    chart = set(yaml.safe_load((CHART / "values.yaml").read_text())["components"])
    assert chart <= set(COMPONENTS), f"not `hookstream run` components: {chart - set(COMPONENTS)}"
    assert set(COMPONENTS) <= chart, (
        f"add {sorted(set(COMPONENTS) - chart)} under components: in helm/hookstream/values.yaml"
    )


def test_helm_lint_is_clean(tools: Path) -> None:
    for values in ((), ("-f", str(CHART / "ci" / "all-values.yaml")),
                   ("-f", str(CHART / "ci" / "hpa-values.yaml"))):
        done = helm(tools, "lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART), *values)
        assert done.returncode == 0 and "0 chart(s) failed" in done.stdout, done.stderr


@pytest.mark.parametrize("values", [(), ("all-values.yaml",), ("hpa-values.yaml",)])
def test_kubeconform_strict_validates_every_object(tools: Path, values: tuple[str, ...]) -> None:
    rendered = template(tools, *values)
    done = kubeconform(tools, rendered)
    summary = done.stdout.strip().splitlines()[-1]
    print(summary)
    assert done.returncode == 0, done.stdout + done.stderr
    found = int(re.search(r"(\d+) resources found", summary).group(1))  # type: ignore[union-attr]
    assert found == len(docs(rendered)) and "Skipped: 0" in summary and "Invalid: 0" in summary


def test_kubeconform_strict_rejects_an_unknown_field(tools: Path) -> None:
    rendered = template(tools, "all-values.yaml")
    objects = docs(rendered)
    scaled = next(o for o in objects if o["kind"] == "ScaledObject")
    scaled["spec"]["maxReplicas"] = 3  # KEDA spells it maxReplicaCount
    done = kubeconform(tools, yaml.safe_dump(scaled))
    assert done.returncode != 0 and "maxReplicas" in done.stdout


def test_values_schema_rejects_a_wrong_value(tools: Path) -> None:
    done = helm(tools, "template", "hs", str(CHART), "--kube-version", KUBE_VERSION,
                "--set", "autoscaling.mode=sometimes")
    assert done.returncode != 0 and "autoscaling" in done.stderr


def test_every_component_is_deployed_with_probes_and_security(
    everything: list[dict[str, Any]],
) -> None:
    deployments = by_kind(everything, "Deployment")
    assert sorted(deployments) == sorted(f"hs-hookstream-{c}" for c in COMPONENTS)
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["args"] == ["run", name.rsplit("-", 1)[1]]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        ops = port_of(name.rsplit("-", 1)[1], "opsPortSetting")
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": ops}
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        if COMPONENTS[name.rsplit("-", 1)[1]].get("singleton"):  # e.g. the poller
            assert deployment["spec"]["replicas"] == 1
            assert deployment["spec"]["strategy"] == {"type": "Recreate"}
        else:
            assert "replicas" not in deployment["spec"]  # KEDA owns the replica count
    assert sorted(by_kind(everything, "PodDisruptionBudget")) == sorted(deployments)
    assert "hs-hookstream-ingest" in by_kind(everything, "Ingress")["hs-hookstream"]["spec"][
        "rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]


def test_configmap_and_secret_map_the_settings_one_to_one(
    everything: list[dict[str, Any]],
) -> None:
    config = by_kind(everything, "ConfigMap")["hs-hookstream-config"]["data"]
    secret = by_kind(everything, "Secret")["hs-hookstream-secrets"]["stringData"]
    names = {f"HOOKSTREAM_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    assert set(config) | set(secret) == names and not set(config) & set(secret)
    loaded = load_settings(env={**config, **secret}, check_dns=False)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert loaded.metrics_port == values["config"]["metrics_port"] == 9400
    assert loaded.retry_tiers == tuple(values["config"]["retry_tiers"])
    assert loaded.max_body_bytes == 1_048_576  # numbers are not rendered as 1.048576e+06
    assert loaded.secret_key == secret["HOOKSTREAM_SECRET_KEY"] != ""


def test_keda_scales_consumers_on_lag_and_due_retries_capped_at_partitions(
    everything: list[dict[str, Any]],
) -> None:
    scaled = by_kind(everything, "ScaledObject")
    assert "hs-hookstream-poller" not in scaled
    processor, delivery = scaled["hs-hookstream-processor"], scaled["hs-hookstream-delivery"]
    for so in scaled.values():
        assert so["spec"]["maxReplicaCount"] <= 6  # config.partitions
    (trigger,) = processor["spec"]["triggers"]
    assert trigger["type"] == "kafka" and trigger["metadata"]["topic"] == "glpi.item-changes"
    kinds = {t["type"]: t["metadata"] for t in delivery["spec"]["triggers"]}
    assert kinds["kafka"]["topic"] == "hookstream.deliveries"
    assert "hookstream_retry_due" in kinds["prometheus"]["query"]
    assert not any("retry" in t["metadata"].get("topic", "") for t in delivery["spec"]["triggers"])


def test_hpa_fallback_and_existing_secret(tools: Path) -> None:
    objects = docs(template(tools, "hpa-values.yaml"))
    hpas = by_kind(objects, "HorizontalPodAutoscaler")
    assert sorted(hpas) == ["hs-hookstream-delivery", "hs-hookstream-processor"]
    assert all(h["spec"]["maxReplicas"] == 6 for h in hpas.values())  # 20 asked, 6 partitions
    assert not by_kind(objects, "ScaledObject") and not by_kind(objects, "Secret")
    pod = by_kind(objects, "Deployment")["hs-hookstream-delivery"]["spec"]["template"]["spec"]
    assert {"secretRef": {"name": "hookstream-prod"}} in pod["containers"][0]["envFrom"]


def test_network_policy_lets_out_only_the_components_that_call_out(
    everything: list[dict[str, Any]],
) -> None:
    policies = by_kind(everything, "NetworkPolicy")
    assert sorted(policies) == sorted(by_kind(everything, "Deployment"))
    for name, policy in policies.items():
        egress_blocks = [b for rule in policy["spec"]["egress"] for b in rule.get("to", [])]
        open_out = any(b.get("ipBlock", {}).get("cidr") == "0.0.0.0/0" for b in egress_blocks)
        component = name.rsplit("-", 1)[1]
        assert open_out == COMPONENTS[component]["egressToInternet"], name
        ports = [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]]
        http = port_of(component, "httpPortSetting")
        ops = port_of(component, "opsPortSetting")
        assert ports == ([ops, http] if http else [ops]), name  # ops port, then HTTP port
    assert COMPONENTS["delivery"]["egressToInternet"]  # the webhook targets
    assert not any(COMPONENTS[c]["egressToInternet"] for c in ("processor", "ingest", "admin"))


def test_monitoring_objects(everything: list[dict[str, Any]]) -> None:
    rule = by_kind(everything, "PrometheusRule")["hs-hookstream"]
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert {"HookstreamDLQGrowing", "HookstreamComponentDown"} <= alerts
    dashboards = by_kind(everything, "ConfigMap")["hs-hookstream-dashboards"]["data"]
    assert sorted(dashboards) == sorted(p.name for p in (CHART / "dashboards").glob("*.json"))
    monitor = by_kind(everything, "ServiceMonitor")["hs-hookstream"]
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_every_container_runs_a_command_the_cli_accepts(
    everything: list[dict[str, Any]],
) -> None:
    from hookstream.cli import build_parser

    jobs = [o for o in everything if o["kind"] == "Job"]
    pods = [o["spec"]["template"]["spec"] for o in [*by_kind(everything, "Deployment").values(),
                                                    *jobs]]
    assert len(pods) == len(COMPONENTS) + 1  # and the topics job
    for pod in pods:
        for container in pod["containers"]:
            assert callable(build_parser().parse_args(container["args"]).func), container["args"]


def test_values_schema_rejects_a_setting_that_does_not_exist(tools: Path) -> None:
    done = helm(tools, "template", "hs", str(CHART), "--kube-version", KUBE_VERSION,
                "--set", "config.retry_tier=10s")
    assert done.returncode != 0 and "retry_tier" in done.stderr
