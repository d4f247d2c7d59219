"""`hookstream webhooks apply|list|delete` and `preview` against the real broker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hookstream.config import Settings
from hookstream.io import create_topics, read_all
from hookstream.records import WEBHOOKS
from tests.conftest import FIXTURES
from tests.integration.harness import cli_env

ROOT = Path(__file__).resolve().parents[2]


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(settings)
    return subprocess.run([sys.executable, "-m", "hookstream.cli", *args], env=env, text=True,
                          capture_output=True, timeout=120, check=False)


def test_apply_list_delete_and_invalid_files(settings: Settings, tmp_path: Path) -> None:
    create_topics(settings)
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "examples" / "webhooks.yaml").read_text()
                   .replace("itemtype: Computer", "itemtype: Komputer")
                   .replace("event: update", "event: updated", 1))
    rejected = cli(settings, "webhooks", "apply", "-f", str(bad))
    assert rejected.returncode == 2
    assert "unknown itemtype 'Komputer'" in rejected.stderr
    assert "unknown event 'updated'" in rejected.stderr
    assert list(read_all(settings, settings.topic(WEBHOOKS))) == []  # nothing published

    applied = cli(settings, "webhooks", "apply", "-f", str(ROOT / "examples" / "webhooks.yaml"))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.count(": created") == 5
    again = cli(settings, "webhooks", "apply", "-f", str(ROOT / "examples" / "webhooks.yaml"))
    assert again.stdout.count(": unchanged") == 5
    listed = [json.loads(line) for line in
              cli(settings, "webhooks", "list", "--json").stdout.splitlines()]
    assert {w["id"] for w in listed} == {
        "demo-ticket-new", "demo-change-update-europe", "demo-computer-update",
        "demo-problem-closed-only", "demo-followup-new"}
    assert all(w["secret"] == "<redacted>" for w in listed)
    raw = b"".join(m.value() or b"" for m in read_all(settings, settings.topic(WEBHOOKS)))
    assert b"demoSecretDemoSecret" not in raw  # encrypted on the topic

    deleted = cli(settings, "webhooks", "delete", "demo-followup-new")
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    tombstones = [m for m in read_all(settings, settings.topic(WEBHOOKS)) if m.value() is None]
    assert [(m.key() or b"").decode() for m in tombstones] == ["demo-followup-new"]
    assert len(cli(settings, "webhooks", "list").stdout.splitlines()) == 4
    assert cli(settings, "webhooks", "delete", "demo-followup-new").returncode == 1


def test_preview_shows_the_request_or_the_failed_condition(settings: Settings,
                                                           tmp_path: Path) -> None:
    create_topics(settings)
    lines = (ROOT / "examples" / "events.jsonl").read_text().splitlines()
    ticket, problem = tmp_path / "ticket.json", tmp_path / "problem.json"
    ticket.write_text(lines[0])
    problem.write_text(lines[2])
    hooks = str(ROOT / "examples" / "webhooks.yaml")
    shown = cli(settings, "preview", "--webhook", hooks, "--id", "demo-ticket-new",
                "--event", str(ticket))
    assert shown.returncode == 0, shown.stderr
    head, _, body = shown.stdout.partition("\n\n")
    assert head.splitlines()[0] == "POST http://127.0.0.1:8787/glpi/tickets"
    assert "X-GLPI-signature: <redacted>" in head and "demoSecret" not in shown.stdout
    assert body.rstrip("\n") == (
        FIXTURES / "webhook_default_payloads" / "Ticket_new.json").read_text()
    silent = cli(settings, "preview", "--webhook", hooks, "--id", "demo-problem-closed-only",
                 "--event", str(problem))
    assert silent.returncode == 1
    assert silent.stdout.startswith("no match: filter: status (12) equals old")


def test_preview_renders_dates_in_the_instance_time_zone(settings: Settings,
                                                          tmp_path: Path) -> None:
    create_topics(settings)
    hooks, event = tmp_path / "dates.yaml", tmp_path / "event.json"
    hooks.write_text(json.dumps({  # JSON is YAML
        "id": "dates", "instance": "glpi-demo", "name": "dates", "itemtype": "Ticket",
        "event": "new", "is_active": True, "allowed_networks": ["127.0.0.0/8"],
        "url": "http://127.0.0.1:8787/{{ 1714637700|date('H-i-T') }}"}))
    event.write_text(json.dumps({"itemtype": "Ticket", "items_id": 1, "event": "new",
                                 "entities_id": 0, "item": {"id": 1}}))

    def url(*extra: str) -> str:
        shown = cli(settings, "preview", "--webhook", str(hooks), "--event", str(event), *extra)
        assert shown.returncode == 0, shown.stderr
        return shown.stdout.splitlines()[0]

    assert url() == "POST http://127.0.0.1:8787/08-15-UTC"  # the instance is not published
    assert cli(settings, "instances", "apply", "-f",
               str(ROOT / "examples" / "instances.yaml")).returncode == 0  # Europe/Paris
    assert url() == "POST http://127.0.0.1:8787/10-15-CEST"
    assert url("--timezone", "Asia/Tokyo") == "POST http://127.0.0.1:8787/17-15-JST"
