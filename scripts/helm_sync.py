"""Keep the Helm chart's settings one-to-one with hookstream's Settings.

    .venv/bin/python scripts/helm_sync.py          rewrite the generated parts
    .venv/bin/python scripts/helm_sync.py --check  exit 1 if they are stale (a test runs it)

Generated from hookstream/config.py: the `config:` and `secrets:` blocks of
helm/hookstream/values.yaml (between `# BEGIN settings` and `# END settings`), their
properties in values.schema.json, and the settings table of the chart's README. A Setting
declared with `field(repr=False)` is a secret: it goes to the Secret, not the ConfigMap.
A value already in values.yaml is kept (the chart's defaults suit a cluster, e.g.
metrics_port 9400); a new Setting comes in with its default.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import types
from pathlib import Path
from typing import Any, get_type_hints

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hookstream.config import Settings  # noqa: E402

CHART = ROOT / "helm" / "hookstream"
BLOCK = re.compile(r"(# BEGIN settings\n)(.*?)(# END settings\n)", re.S)
TABLE = re.compile(r"(<!-- BEGIN settings -->\n)(.*?)(<!-- END settings -->\n)", re.S)
# a cluster's defaults where the Settings' (made for a laptop) do not fit
CLUSTER = {
    "bootstrap_servers": "kafka:9092",
    "state_dir": "/var/lib/hookstream",
    "cache_dir": "/tmp/hookstream-cache",
    "metrics_port": 9400,
    "admin_host": "0.0.0.0",
    "ingest_host": "0.0.0.0",
    # a pod's CPU count is its node's: the chart sizes the pod's requests from this instead
    "ingest_workers": 2,
}


def settings_fields() -> list[tuple[str, Any, Any, bool]]:
    hints = get_type_hints(Settings)
    return [
        (f.name, hints[f.name], f.default, not f.repr)
        for f in dataclasses.fields(Settings)
    ]


def json_type(kind: Any) -> dict[str, Any]:
    if kind is bool:
        return {"type": "boolean"}
    if kind is int:
        return {"type": "integer"}
    if kind is float:
        return {"type": "number"}
    if isinstance(kind, types.GenericAlias) and kind.__origin__ is tuple:
        return {"type": "array", "items": {"type": "string"}}
    return {"type": "string"}


def plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def render(current: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any], str]:
    config: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    for name, _, default, secret in settings_fields():
        chosen = secrets if secret else config
        old = (current.get("secrets" if secret else "config") or {})
        chosen[name] = old.get(name, CLUSTER.get(name, plain(default)))
    block = (
        yaml.safe_dump({"config": config}, sort_keys=False, default_flow_style=None)
        + "# The secret Settings, in the chart's Secret (ignored when existingSecret is set; that\n"
        + "# Secret must then hold HOOKSTREAM_<NAME> keys for these).\n"
        + yaml.safe_dump({"secrets": secrets}, sort_keys=False, default_flow_style=None)
    )
    fields = {name: kind for name, kind, _, _ in settings_fields()}

    def schema(names: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {n: json_type(fields[n]) for n in names},
        }

    rows = ["| value | environment variable | type | default |", "| --- | --- | --- | --- |"]
    for group, values in (("config", config), ("secrets", secrets)):
        for name, value in values.items():
            shown = "(secret)" if group == "secrets" and value else json.dumps(value)
            rows.append(
                f"| `{group}.{name}` | `HOOKSTREAM_{name.upper()}` | "
                f"{json_type(fields[name])['type']} | `{shown}` |"
            )
    return block, schema(config), schema(secrets), "\n".join(rows) + "\n"


def main(check: bool) -> int:
    values_path, schema_path = CHART / "values.yaml", CHART / "values.schema.json"
    readme_path = CHART / "README.md"
    values_text = values_path.read_text()
    block, config_schema, secrets_schema, table = render(yaml.safe_load(values_text))
    new_values = BLOCK.sub(lambda m: m.group(1) + block + m.group(3), values_text)
    schema = json.loads(schema_path.read_text())
    schema["properties"]["config"] = config_schema
    schema["properties"]["secrets"] = secrets_schema
    new_schema = json.dumps(schema, indent=2) + "\n"
    readme = readme_path.read_text()
    new_readme = TABLE.sub(lambda m: m.group(1) + table + m.group(3), readme)
    stale = [
        str(path.relative_to(ROOT))
        for path, old, new in (
            (values_path, values_text, new_values),
            (schema_path, schema_path.read_text(), new_schema),
            (readme_path, readme, new_readme),
        )
        if old != new
    ]
    if check:
        if stale:
            print(f"stale: {', '.join(stale)}; run scripts/helm_sync.py", file=sys.stderr)
        return 1 if stale else 0
    values_path.write_text(new_values)
    schema_path.write_text(new_schema)
    readme_path.write_text(new_readme)
    print(f"updated: {', '.join(stale) or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv[1:]))
