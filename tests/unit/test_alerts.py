"""The alert rules (helm/hookstream/files/alerts.yaml): valid, and each one unit-tested with
`promtool test rules` firing on a bad series and silent on its healthy twin."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "helm" / "hookstream" / "files" / "alerts.yaml"
RULE_TESTS = ROOT / "tests" / "data" / "alerts-test.yaml"

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60,
                          cwd=RULE_TESTS.parent)


def test_rules_are_valid() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def test_promtool_test_rules_passes() -> None:
    done = promtool("test", "rules", RULE_TESTS.name)
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def test_every_alert_has_a_test_where_it_fires() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    fired = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts == fired, f"alerts without a firing test: {sorted(alerts - fired)}"


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tests["rule_files"] = [str(RULES)]
    tests["tests"][1]["alert_rule_test"][0]["exp_alerts"][0]["exp_labels"]["topic"] = "other"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(tests))
    done = subprocess.run(["promtool", "test", "rules", str(broken)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "HookstreamDLQGrowing" in done.stdout + done.stderr
