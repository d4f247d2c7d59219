"""Alert rules from YAML, validated with every error listed, then published.

A file holds one rule (a mapping), a list of them, or `{rules: [...]}`; several YAML
documents per file and directories of *.yaml / *.yml files are accepted, as for webhooks.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from hookstream.alerting.rules import build_rule, validate_rule
from hookstream.config import Settings
from hookstream.control.admin import publish
from hookstream.control.webhooks import valid_documents
from hookstream.io.tables import read_table
from hookstream.records import ALERT_RULES, AlertRule


def load_rules(path: Path, current: Mapping[str, AlertRule]) -> list[AlertRule]:
    """Every rule under `path`, validated; InvalidDefinition lists every error of every rule,
    and then none of them is returned."""
    raws = valid_documents(path, "rules", validate_rule)
    return [build_rule(raw, current.get(str(raw["id"]))) for raw in raws]


def current_rules(settings: Settings) -> dict[str, AlertRule]:
    return read_table(settings, ALERT_RULES, AlertRule)


def apply_rules(settings: Settings, path: Path) -> list[tuple[AlertRule, str]]:
    """Validate every rule under `path`, then publish those that changed."""
    current = current_rules(settings)
    rules = load_rules(path, current)
    changed = [r for r in rules if current.get(r.id) is not r]
    publish(settings, settings.topic(ALERT_RULES), [(r.id, r) for r in changed])
    return [(r, ("created" if r.id not in current else "updated") if r in changed
             else "unchanged") for r in rules]


def delete_rule(settings: Settings, rule_id: str) -> bool:
    if rule_id not in current_rules(settings):
        return False
    publish(settings, settings.topic(ALERT_RULES), [(rule_id, None)])
    return True
