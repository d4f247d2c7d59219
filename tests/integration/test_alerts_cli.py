"""`hookstream alerts apply|list|delete` against the real broker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hookstream.config import Settings
from hookstream.io import create_topics, read_all
from hookstream.records import ALERT_RULES
from tests.integration.harness import cli_env

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "alert-rules.yaml"


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hookstream.cli", *args], env=cli_env(settings),
                          text=True, capture_output=True, timeout=120, check=False)


def test_apply_list_delete_and_invalid_rules(settings: Settings, tmp_path: Path) -> None:
    create_topics(settings)
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("type: incident", "type: outage", 1)
                   .replace("on_refire: new", "on_refire: sometimes"))
    rejected = cli(settings, "alerts", "apply", "-f", str(bad))
    assert rejected.returncode == 2
    assert "(prod-critical): type must be incident or request" in rejected.stderr
    assert "(zabbix-any): on_refire must be reopen" in rejected.stderr
    assert list(read_all(settings, settings.topic(ALERT_RULES))) == []  # nothing published

    applied = cli(settings, "alerts", "apply", "-f", str(EXAMPLE))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == ["prod-critical v1: created", "zabbix-any v1: created"]
    again = cli(settings, "alerts", "apply", "-f", str(EXAMPLE))
    assert again.stdout.count(": unchanged") == 2
    listed = [json.loads(line) for line in
              cli(settings, "alerts", "list", "--json").stdout.splitlines()]
    assert [(r["id"], r["urgency_values"]) for r in listed] == [
        ("prod-critical", {"critical": 5, "warning": 3}), ("zabbix-any", {})]

    deleted = cli(settings, "alerts", "delete", "zabbix-any")
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    assert len(cli(settings, "alerts", "list").stdout.splitlines()) == 1
    assert cli(settings, "alerts", "delete", "zabbix-any").returncode == 1
