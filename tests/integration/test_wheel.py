"""The wheel, installed the usual way (no editable install), outside the work tree, works.

It carries its schemas and the development broker's pom: `hookstream preview` on a GLPI
fixture renders GLPI's default body, and every schema round-trips through the installed
codec byte for byte.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from hookstream.config import Settings
from hookstream.records import Codec
from tests.conftest import FIXTURES, fixture_item
from tests.integration.harness import cli_env
from tests.unit.test_codec import FIXTURES as CODEC_FIXTURES
from tests.unit.test_codec import sample_records

ROOT = Path(__file__).resolve().parents[2]

ROUND_TRIP = """
import json, sys
from hookstream.records import Codec
from hookstream.records.codec import RECORD_TYPES
codec, out = Codec(), []
for case in json.load(sys.stdin):
    headers = [tuple(h) for h in case["headers"]]
    record = codec.decode(bytes.fromhex(case["value"]), headers, RECORD_TYPES[case["schema"]])
    value, headers = codec.encode(record, "hookstream.deliveries")
    out.append({"value": value.hex(), "repr": repr(record)})
print(json.dumps({"file": __import__("hookstream").__file__, "records": out}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment (outside the work tree) with the built wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".mypy_cache", ".ruff_cache",
        ".pytest_cache", "tests"))
    dist = work / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist),
                    str(source)], check=True, timeout=300)
    wheel = next(dist.glob("hookstream-*.whl"))
    env_dir = work / "venv"
    venv.create(env_dir, with_pip=True)
    subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                   check=True, timeout=600)
    return env_dir


def test_installed_wheel_previews_a_fixture(installed: Path, settings: Settings,
                                            tmp_path: Path) -> None:
    item = fixture_item("Ticket.json")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"itemtype": "Ticket", "items_id": item["id"], "event": "new",
                                 "entities_id": item["entity"]["id"], "item": item}))
    hooks = tmp_path / "webhooks.yaml"
    hooks.write_text(f"""webhooks:
  - id: wheel-ticket-new
    instance: glpi-lyon
    name: default payload
    itemtype: Ticket
    event: new
    is_active: true
    url: http://receiver.example/glpi
    entities_id: {item["entity"]["id"]}
""")
    shown = subprocess.run(
        [str(installed / "bin" / "hookstream"), "preview", "--webhook", str(hooks),
         "--event", str(event)],
        env=cli_env(settings), cwd=tmp_path, capture_output=True, text=True, timeout=120,
        check=False)
    assert shown.returncode == 0, shown.stderr
    head, _, body = shown.stdout.partition("\n\n")
    assert head.splitlines()[0] == "POST http://receiver.example/glpi"
    expected = (FIXTURES / "webhook_default_payloads" / "Ticket_new.json").read_text()
    assert body.rstrip("\n") == expected


def test_installed_wheel_round_trips_every_schema(installed: Path, tmp_path: Path) -> None:
    codec = Codec()
    records = [r for name in CODEC_FIXTURES for r in sample_records(name)]
    cases = []
    for record in records:
        value, headers = codec.encode(record, "hookstream.deliveries")  # type: ignore[arg-type]
        cases.append({"schema": type(record).schema_name, "value": value.hex(),  # type: ignore[attr-defined]
                      "headers": [[k, v.decode() if isinstance(v, bytes) else v]
                                  for k, v in headers]})
    assert {c["schema"] for c in cases} == {
        "ItemChangeEvent", "WebhookDefinition", "DeliveryRequest", "AttemptRecord", "Entity",
        "Instance", "AuditRecord"}
    done = subprocess.run([str(installed / "bin" / "python"), "-c", ROUND_TRIP],
                          input=json.dumps(cases), cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=True)
    answer = json.loads(done.stdout)
    assert answer["file"].startswith(str(installed))  # the wheel's package, not the tree's
    results = answer["records"]
    assert [r["value"] for r in results] == [c["value"] for c in cases]
    assert [r["repr"] for r in results] == [repr(r) for r in records]
