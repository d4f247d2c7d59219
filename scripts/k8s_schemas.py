"""JSON schemas for kubeconform, generated offline: Kubernetes kinds from the OpenAPI v2 spec
(k8s.io/kubernetes api/openapi-spec/swagger.json) and CRDs from their YAML files.

    python scripts/k8s_schemas.py OUT --openapi swagger.json --crds DIR [DIR...]

Writes the layout kubeconform's -schema-location templates expect, strict variants only
(every object with declared properties refuses undeclared ones):
    OUT/k8s-strict/{kind}{-group}-{version}.json     e.g. deployment-apps-v1.json
    OUT/crds-strict/{group}/{kind}_{version}.json     e.g. keda.sh/scaledobject_v1alpha1.json
Used by scripts/k8s-tools.sh; the same conversions as kubeconform's openapi2jsonschema.py
(int-or-string and quantities accept a string or a number).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """PyYAML reads a bare `=` as YAML 1.1's "value" tag; CRD enums hold `=` as a string."""


_Loader.add_constructor(
    "tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node)
)

INT_OR_STRING = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
QUANTITY = {"oneOf": [{"type": "string"}, {"type": "number"}]}


def strict(node: Any) -> Any:
    """A copy of a schema where objects with properties refuse undeclared ones."""
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    if node.get("format") == "int-or-string" or node.get("x-kubernetes-int-or-string"):
        return {**INT_OR_STRING, **{k: v for k, v in node.items() if k == "description"}}
    if node.get("format") == "quantity":
        return {**QUANTITY, **{k: v for k, v in node.items() if k == "description"}}
    out = {k: strict(v) for k, v in node.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            found.add(ref.removeprefix("#/definitions/"))
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def kubernetes(spec_path: Path, out: Path) -> int:
    definitions: dict[str, Any] = json.loads(spec_path.read_text())["definitions"]
    target = out / "k8s-strict"
    target.mkdir(parents=True, exist_ok=True)
    written = 0
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            group, kind, version = gvk["group"], gvk["kind"], gvk["version"]
            closure, todo = set(), {name}
            while todo:  # every definition this kind refers to, transitively
                current = todo.pop()
                closure.add(current)
                found: set[str] = set()
                _refs(definitions[current], found)
                todo |= found - closure
            schema = strict(copy.deepcopy(definition))
            schema["definitions"] = {d: strict(definitions[d]) for d in sorted(closure)}
            schema["$schema"] = "http://json-schema.org/draft-07/schema#"
            suffix = f"-{group.split('.')[0].lower()}-{version}" if group else f"-{version}"
            (target / f"{kind.lower()}{suffix}.json").write_text(json.dumps(schema))
            written += 1
    return written


def crds(directories: list[Path], out: Path) -> int:
    written = 0
    for directory in directories:
        for path in sorted(directory.glob("*.yaml")):
            for doc in yaml.load_all(path.read_text(), Loader=_Loader):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
                for version in doc["spec"]["versions"]:
                    schema = strict(version["schema"]["openAPIV3Schema"])
                    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
                    target = out / "crds-strict" / group
                    target.mkdir(parents=True, exist_ok=True)
                    name = f"{kind.lower()}_{version['name']}.json"
                    (target / name).write_text(json.dumps(schema))
                    written += 1
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--openapi", type=Path, required=True)
    parser.add_argument("--crds", type=Path, nargs="*", default=[])
    args = parser.parse_args(argv)
    kinds = kubernetes(args.openapi, args.out)
    custom = crds(args.crds, args.out)
    print(f"{kinds} Kubernetes kind schemas, {custom} CRD schemas in {args.out}", file=sys.stderr)
    return 0 if kinds and (custom or not args.crds) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
