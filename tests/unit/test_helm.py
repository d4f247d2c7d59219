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


def workloads(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The components' Deployments and StatefulSets."""
    return {**by_kind(objects, "Deployment"), **by_kind(objects, "StatefulSet")}


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
    deployments = workloads(everything)
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


def test_delivery_and_the_processor_are_statefulsets_whose_pods_join_under_their_names(
    everything: list[dict[str, Any]],
) -> None:
    stateful = by_kind(everything, "StatefulSet")
    assert sorted(stateful) == ["hs-hookstream-delivery", "hs-hookstream-processor"]
    assert sorted(stateful) == sorted(f"hs-hookstream-{c}" for c, v in COMPONENTS.items()
                                      if v.get("stableIdentity"))
    for name, workload in stateful.items():
        spec = workload["spec"]
        assert spec["serviceName"] == name  # the component's Service
        assert spec["podManagementPolicy"] == "Parallel"
        assert spec["updateStrategy"] == {"type": "RollingUpdate"} and "strategy" not in spec
        (container,) = spec["template"]["spec"]["containers"]
        identity = [e for e in container["env"] if e["name"] == "HOOKSTREAM_GROUP_INSTANCE_ID"]
        assert identity == [{"name": "HOOKSTREAM_GROUP_INSTANCE_ID",
                             "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
        # env wins over envFrom: the ConfigMap's empty group_instance_id does not apply
        assert {"configMapRef": {"name": "hs-hookstream-config"}} in container["envFrom"]
    for name, workload in by_kind(everything, "Deployment").items():
        env = workload["spec"]["template"]["spec"]["containers"][0].get("env", [])
        assert all(e["name"] != "HOOKSTREAM_GROUP_INSTANCE_ID" for e in env), name
    scaled = by_kind(everything, "ScaledObject")
    targets = {n: so["spec"]["scaleTargetRef"] for n, so in scaled.items()}
    assert targets["hs-hookstream-delivery"] == {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "hs-hookstream-delivery"}
    assert targets["hs-hookstream-admin"]["kind"] == "Deployment"


def test_hpa_targets_the_statefulsets(tools: Path) -> None:
    hpas = by_kind(docs(template(tools, "hpa-values.yaml")), "HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["kind"] for h in hpas.values()} == {"StatefulSet"}


def test_one_group_instance_id_for_every_pod_is_refused(tools: Path) -> None:
    done = helm(tools, "template", "hs", str(CHART), "--kube-version", KUBE_VERSION,
                "--set", "config.group_instance_id=delivery")
    assert done.returncode != 0 and "fences" in done.stderr


def test_ingest_pods_request_cpu_and_memory_for_each_worker(tools: Path) -> None:
    def ingest_resources(*sets: str) -> dict[str, Any]:
        objects = workloads(docs(template(tools, "all-values.yaml", sets=sets)))
        (container,) = objects["hs-hookstream-ingest"]["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["run", "ingest"]
        return container["resources"]  # type: ignore[no-any-return]

    assert VALUES["config"]["ingest_workers"] == 2
    assert ingest_resources() == {"requests": {"cpu": "200m", "memory": "256Mi"},
                                  "limits": {"memory": "512Mi"}}
    assert ingest_resources("config.ingest_workers=3",
                            "components.ingest.perWorker.cpuRequestMillicores=500") == {
        "requests": {"cpu": "1500m", "memory": "384Mi"}, "limits": {"memory": "768Mi"}}
    done = helm(tools, "template", "hs", str(CHART), "--kube-version", KUBE_VERSION,
                "--set", "components.ingest.enabled=true", "--set", "config.ingest_workers=0")
    assert done.returncode != 0 and "config.ingest_workers must be at least 1" in done.stderr


def ingress_routes(objects: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(host, path, service) of each path of the release's one Ingress."""
    (ingress,) = by_kind(objects, "Ingress").values()
    return [(rule["host"], path["path"], path["backend"]["service"]["name"])
            for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]


def test_one_ingress_routes_ingest_and_the_console_by_path_and_by_host(
    everything: list[dict[str, Any]],
) -> None:
    assert ingress_routes(everything) == [
        ("console.example.org", "/", "hs-hookstream-admin"),
        ("hookstream.example.org", "/glpi", "hs-hookstream-ingest"),
        ("hookstream.example.org", "/alerts", "hs-hookstream-alerts"),
        ("hookstream.example.org", "/", "hs-hookstream-admin"),
    ]
    services = by_kind(everything, "Service")
    assert {"hs-hookstream-admin", "hs-hookstream-ingest", "hs-hookstream-alerts"} <= set(services)


def test_the_older_ingress_values_still_route_one_component(tools: Path) -> None:
    rendered = template(tools, sets=("ingress.enabled=true", "ingress.host=hooks.example.org",
                                     "ingress.component=admin", "components.admin.enabled=true"))
    assert ingress_routes(docs(rendered)) == [("hooks.example.org", "/", "hs-hookstream-admin")]


@pytest.mark.parametrize(("sets", "message"), [
    (("ingress.routes[0].component=admin",), 'component "admin" must be an enabled component'),
    (("components.processor.enabled=true", "ingress.routes[0].component=processor"),
     'component "processor" must be an enabled component with an HTTP port'),
    (("components.admin.enabled=true", "ingress.routes[0].component=admin",
      "ingress.routes[0].path=glpi"), "pattern"),
])
def test_an_ingress_route_to_nothing_is_refused(tools: Path, sets: tuple[str, ...],
                                                message: str) -> None:
    done = helm(tools, "template", "hs", str(CHART), "--kube-version", KUBE_VERSION,
                "--set", "ingress.enabled=true", *[a for s in sets for a in ("--set", s)])
    assert done.returncode != 0 and message in done.stderr, done.stderr


# what the existing Secrets named in ci/all-values.yaml would hold
EXISTING_SECRETS = {
    ("hookstream-kafka", "username"): "hookstream",
    ("hookstream-kafka", "password"): "shared-kafka-password",
    ("hookstream-delivery-kafka", "username"): "hookstream-delivery",
    ("hookstream-delivery-kafka", "password"): "delivery-kafka-password",
    ("hookstream-kafka-admin", "username"): "hookstream-admin",
    ("hookstream-kafka-admin", "password"): "admin-kafka-password",
    ("hookstream-oauth", "client-secret"): "oauth-client-secret",
}


def pod_settings(objects: list[dict[str, Any]], pod: dict[str, Any], mounts: Path) -> Settings:
    """The Settings a pod's container would load: envFrom (ConfigMap, then Secret), then
    env (secretKeyRef read from EXISTING_SECRETS), with projected volumes written under
    `mounts` (each item a file) in place of their mount paths; a pod's name is a-pod-0."""
    (container,) = pod["containers"]
    env: dict[str, str] = {}
    for source in container["envFrom"]:
        if "configMapRef" in source:
            env |= by_kind(objects, "ConfigMap")[source["configMapRef"]["name"]]["data"]
        else:
            env |= by_kind(objects, "Secret")[source["secretRef"]["name"]]["stringData"]
    for entry in container.get("env", []):
        source = entry.get("valueFrom", {})
        if "fieldRef" in source:  # the pod's name, as the downward API gives it
            assert source["fieldRef"] == {"fieldPath": "metadata.name"}
            env[entry["name"]] = "a-pod-0"
            continue
        ref = source.get("secretKeyRef")
        env[entry["name"]] = EXISTING_SECRETS[ref["name"], ref["key"]] if ref else entry["value"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        for source in volumes[mount["name"]].get("projected", {}).get("sources", []):
            for item in source["secret"]["items"]:
                path = mounts / mount["name"] / item["path"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"PEM of {source['secret']['name']}/{item['key']}")
        env = {k: v.replace(mount["mountPath"], str(mounts / mount["name"]))
               for k, v in env.items()}
    return load_settings(env=env, check_dns=False)


def test_configmap_and_secret_map_the_settings_one_to_one(
    everything: list[dict[str, Any]], tmp_path: Path,
) -> None:
    config = by_kind(everything, "ConfigMap")["hs-hookstream-config"]["data"]
    secret = by_kind(everything, "Secret")["hs-hookstream-secrets"]["stringData"]
    names = {f"HOOKSTREAM_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    assert set(config) | set(secret) == names and not set(config) & set(secret)
    pod = workloads(everything)["hs-hookstream-processor"]["spec"]["template"]["spec"]
    loaded = pod_settings(everything, pod, tmp_path)
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


def test_the_alert_receivers_serve_http_and_the_ticketer_scales_on_the_alerts_lag(
    tools: Path,
) -> None:
    objects = docs(template(tools, "all-values.yaml", sets=("config.topic_prefix=prod.",)))
    port = port_of("alerts", "httpPortSetting")
    alerts = workloads(objects)["hs-hookstream-alerts"]
    assert alerts["kind"] == "Deployment"
    (container,) = alerts["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["run", "alerts"]
    assert {"name": "http", "containerPort": port, "protocol": "TCP"} in container["ports"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
    service = by_kind(objects, "Service")["hs-hookstream-alerts"]["spec"]
    assert {(p["name"], p["targetPort"]) for p in service["ports"]} == {
        ("metrics", port), ("http", port)}  # scraped on its HTTP port, as ingest
    scaled = by_kind(objects, "ScaledObject")
    assert [t["type"] for t in scaled["hs-hookstream-alerts"]["spec"]["triggers"]] == ["cpu"]
    assert workloads(objects)["hs-hookstream-ticketer"]["kind"] == "Deployment"
    (trigger,) = scaled["hs-hookstream-ticketer"]["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    # the group the ticketer joins: prefixed as the topic is
    assert trigger["metadata"]["consumerGroup"] == "prod.hookstream-ticketer"
    assert trigger["metadata"]["topic"] == "prod.hookstream.alerts"
    assert trigger["authenticationRef"]["name"] == "hs-hookstream-ticketer-kafka"


def test_hpa_fallback_and_existing_secret(tools: Path) -> None:
    objects = docs(template(tools, "hpa-values.yaml"))
    hpas = by_kind(objects, "HorizontalPodAutoscaler")
    assert sorted(hpas) == ["hs-hookstream-delivery", "hs-hookstream-processor"]
    assert all(h["spec"]["maxReplicas"] == 6 for h in hpas.values())  # 20 asked, 6 partitions
    assert not by_kind(objects, "ScaledObject") and not by_kind(objects, "Secret")
    pod = workloads(objects)["hs-hookstream-delivery"]["spec"]["template"]["spec"]
    assert {"secretRef": {"name": "hookstream-prod"}} in pod["containers"][0]["envFrom"]


def test_network_policy_lets_out_only_the_components_that_call_out(
    everything: list[dict[str, Any]],
) -> None:
    policies = by_kind(everything, "NetworkPolicy")
    assert sorted(policies) == sorted(workloads(everything))
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
    assert COMPONENTS["ticketer"]["egressToInternet"]  # GLPI's API
    assert not any(COMPONENTS[c]["egressToInternet"]
                   for c in ("processor", "ingest", "admin", "alerts"))


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
    pods = [o["spec"]["template"]["spec"] for o in [*workloads(everything).values(),
                                                    *jobs]]
    assert len(pods) == len(COMPONENTS) + 1  # and the topics job
    for pod in pods:
        for container in pod["containers"]:
            assert callable(build_parser().parse_args(container["args"]).func), container["args"]


def test_values_schema_rejects_a_setting_that_does_not_exist(tools: Path) -> None:
    done = helm(tools, "template", "hs", str(CHART), "--kube-version", KUBE_VERSION,
                "--set", "config.retry_tier=10s")
    assert done.returncode != 0 and "retry_tier" in done.stderr


def kafka_pods(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every pod that builds Kafka clients: the components' workloads and the topics Job."""
    return {name: o["spec"]["template"]["spec"] for name, o in
            [*workloads(objects).items(), *by_kind(objects, "Job").items()]}


def test_kafka_security_reaches_every_component_and_the_topics_job(
    everything: list[dict[str, Any]], tmp_path: Path,
) -> None:
    pods = kafka_pods(everything)
    assert len(pods) == len(COMPONENTS) + 1
    principals = {}
    for name, pod in pods.items():
        (container,) = pod["containers"]
        assert {"name": "kafka-tls", "mountPath": "/etc/hookstream/kafka-tls",
                "readOnly": True} in container["volumeMounts"], name
        settings = pod_settings(everything, pod, tmp_path / name)
        assert settings.kafka_security_protocol == "SASL_SSL", name
        assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512", name
        for location in (settings.kafka_ssl_ca_location, settings.kafka_ssl_certificate_location,
                         settings.kafka_ssl_key_location):
            assert Path(location).is_file(), (name, location)
        assert Path(settings.kafka_ssl_ca_location).read_text() == (
            "PEM of kafka-cluster-ca-cert/ca.crt")
        assert Path(settings.kafka_ssl_key_location).read_text() == (
            "PEM of hookstream-kafka-client/tls.key")
        principals[name.removeprefix("hs-hookstream-")] = (
            settings.kafka_sasl_username, settings.kafka_sasl_password)
    # least privilege: delivery and the topics job each run as a principal of their own
    assert principals.pop("delivery") == ("hookstream-delivery", "delivery-kafka-password")
    assert principals.pop("topics") == ("hookstream-admin", "admin-kafka-password")
    assert set(principals.values()) == {("hookstream", "shared-kafka-password")}


def test_kafka_credentials_come_only_from_secrets(tools: Path, tmp_path: Path) -> None:
    rendered = template(tools, "all-values.yaml", sets=(
        "kafka.sasl.mechanism=OAUTHBEARER", "kafka.oauth.tokenUrl=https://idp.example/token",
        "kafka.oauth.clientId=hookstream", "kafka.oauth.existingSecret=hookstream-oauth",
        "secrets.kafka_ssl_key_password=key-password-in-the-chart-secret"))
    for values in (template(tools, "all-values.yaml"), rendered):
        objects = docs(values)
        for pod in kafka_pods(objects).values():
            for entry in pod["containers"][0].get("env", []):
                assert set(entry) == {"name", "valueFrom"}, entry  # never a literal value
                if entry["name"] == "HOOKSTREAM_GROUP_INSTANCE_ID":
                    continue  # the pod's name (downward API)
                assert set(entry["valueFrom"]) == {"secretKeyRef"}
        chart_secrets = by_kind(objects, "Secret")["hs-hookstream-secrets"]["stringData"].values()
        secrets = [s for s in chart_secrets if s]
        for o in objects:
            if o["kind"] != "Secret":
                text = yaml.safe_dump(o)
                assert not [s for s in secrets if s in text], o["metadata"]["name"]
        config = by_kind(objects, "ConfigMap")["hs-hookstream-config"]["data"]
        assert not [k for k in config if "PASSWORD" in k or k.endswith("SECRET")]
    objects = docs(rendered)
    settings = pod_settings(objects, kafka_pods(objects)["hs-hookstream-ingest"], tmp_path)
    assert settings.kafka_oauth_client_secret == "oauth-client-secret"
    assert (settings.kafka_oauth_token_url, settings.kafka_oauth_client_id) == (
        "https://idp.example/token", "hookstream")
    done = kubeconform(tools, rendered)
    assert done.returncode == 0, done.stdout + done.stderr


# the Kafka scaler's parameters (KEDA's pkg/scalers/kafka_scaler.go, the version that
# scripts/k8s-tools.sh pins): the ones hookstream's values can fill
KEDA_KAFKA_AUTH = {"username", "password", "ca", "cert", "key", "oauthTokenEndpointUri",
                   "scopes"}


def test_every_kafka_trigger_authenticates_as_its_component(
    everything: list[dict[str, Any]],
) -> None:
    auths = by_kind(everything, "TriggerAuthentication")
    kafka_triggers = 0
    for name, scaled in by_kind(everything, "ScaledObject").items():
        for trigger in scaled["spec"]["triggers"]:
            if trigger["type"] != "kafka":
                continue
            kafka_triggers += 1
            assert trigger["metadata"]["sasl"] == "scram_sha512"
            assert trigger["metadata"]["tls"] == "enable"
            auth = auths[trigger["authenticationRef"]["name"]]["spec"]
            refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["secretTargetRef"]}
            assert set(refs) <= KEDA_KAFKA_AUTH
            secret = {"hs-hookstream-delivery": "hookstream-delivery-kafka"}.get(
                name, "hookstream-kafka")
            assert refs == {
                "username": (secret, "username"), "password": (secret, "password"),
                "ca": ("kafka-cluster-ca-cert", "ca.crt"),
                "cert": ("hookstream-kafka-client", "tls.crt"),
                "key": ("hookstream-kafka-client", "tls.key"),
            }, name
    assert kafka_triggers >= 3 and len(auths) == kafka_triggers  # one lag topic each


def test_keda_oauthbearer_reads_the_client_from_the_configmap(tools: Path) -> None:
    objects = docs(template(tools, "all-values.yaml", sets=(
        "kafka.sasl.mechanism=OAUTHBEARER", "kafka.oauth.tokenUrl=https://idp.example/token",
        "kafka.oauth.clientId=hookstream", "kafka.oauth.scope=kafka",
        "kafka.oauth.existingSecret=hookstream-oauth")))
    auth = by_kind(objects, "TriggerAuthentication")["hs-hookstream-processor-kafka"]["spec"]
    config = by_kind(objects, "ConfigMap")["hs-hookstream-config"]["data"]
    from_config = {r["parameter"]: config[r["key"]] for r in auth["configMapTargetRef"]}
    assert from_config == {"username": "hookstream", "scopes": "kafka",
                           "oauthTokenEndpointUri": "https://idp.example/token"}
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["secretTargetRef"]}
    assert refs["password"] == ("hookstream-oauth", "client-secret")
    assert set(refs) | set(from_config) <= KEDA_KAFKA_AUTH


def test_strimzi_user_secrets_name_the_principal(tools: Path, tmp_path: Path) -> None:
    # a Strimzi KafkaUser's Secret is named after the user and holds only `password`
    objects = docs(template(tools, "all-values.yaml", sets=("kafka.sasl.usernameKey=",)))
    pods = kafka_pods(objects)
    settings = pod_settings(objects, pods["hs-hookstream-delivery"], tmp_path)
    assert settings.kafka_sasl_username == "hookstream-delivery-kafka"
    assert settings.kafka_sasl_password == "delivery-kafka-password"
    for pod in pods.values():
        literal = [e for e in pod["containers"][0]["env"] if "valueFrom" not in e]
        assert [e["name"] for e in literal] == ["HOOKSTREAM_KAFKA_SASL_USERNAME"]
    auth = by_kind(objects, "TriggerAuthentication")["hs-hookstream-delivery-kafka"]["spec"]
    assert auth["env"] == [{"parameter": "username", "name": "HOOKSTREAM_KAFKA_SASL_USERNAME",
                            "containerName": "delivery"}]
    assert "username" not in {r["parameter"] for r in auth["secretTargetRef"]}
    done = kubeconform(tools, yaml.safe_dump_all(objects))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("sets", "message"), [
    (("config.schema_registry_url=https://reg:s3cr3t-pw@registry.example",),
     "config.schema_registry_url must not hold credentials"),
    (("kafka.sasl.mechanism=SCRAM-SHA-512",),
     "kafka.sasl.mechanism SCRAM-SHA-512 needs kafka.sasl.existingSecret"),
    (("kafka.sasl.mechanism=OAUTHBEARER", "kafka.oauth.clientId=hookstream"),
     "OAUTHBEARER needs kafka.oauth.tokenUrl"),
    (("kafka.tls.caSecret.name=kafka-ca",), "need kafka.tls.enabled: true"),
    (("kafka.sasl.mechanism=PLAIN", "kafka.sasl.existingSecret=k",
      "secrets.kafka_sasl_password=s3cr3t-pw"), "put the password in kafka.sasl.existingSecret"),
    (("kafka.sasl.mechanism=OAUTHBEARER", "kafka.oauth.tokenUrl=https://idp/token",
      "kafka.oauth.clientId=h", "kafka.oauth.existingSecret=o",
      "secrets.kafka_oauth_client_secret=s3cr3t-pw"), "in kafka.oauth.existingSecret"),
])
def test_chart_refuses_credentials_in_the_wrong_place(
    tools: Path, sets: tuple[str, ...], message: str,
) -> None:
    args = ["template", "hs", str(CHART), "--kube-version", KUBE_VERSION]
    done = helm(tools, *args, *[a for s in sets for a in ("--set", s)])
    assert done.returncode != 0 and message in done.stderr, done.stderr
    assert "s3cr3t-pw" not in done.stderr
