"""Alert rules: validation listing every error, matching, levels from labels, templates."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from hookstream.alerting.rules import (
    build_rule,
    compile_rule,
    first_match,
    levels,
    validate_rule,
)
from hookstream.records import AlertEvent, AlertRule

RAW: dict[str, Any] = {
    "id": "disk", "instance": "glpi-lyon", "order": 10,
    "match": {"sources": ["alertmanager"], "labels": {"severity": "critical"},
              "labels_regex": {"team": "db|web"}},
    "entities_id": 3, "itilcategories_id": 12, "type": "incident",
    "urgency": {"label": "severity", "values": {"critical": 5, "warning": 3}, "default": 2},
    "impact": {"default": 4},
    "priority": {"label": "prio", "values": {"p1": 6}},
    "users_id_requester": 57, "groups_id_observer": 5, "groups_id_assign": 6,
    "requesttypes_id": 8, "name": "[{{ alert.labels.severity }}] {{ alert.name }}",
    "content": "{{ alert.annotations.summary }}", "repeat_followup_after_s": 3600,
    "on_resolved": {"solve": True, "solution": "done {{ alert.name }}", "solutiontypes_id": 2},
    "on_refire": "new", "comment": "disks",
}


def alert(**changes: Any) -> AlertEvent:
    base = AlertEvent(event_id="e1", instance="glpi-lyon", source="alertmanager",
                      fingerprint="f1", status="firing", name="DiskFull", starts_at=1_000,
                      received_at=2_000, labels={"severity": "critical", "team": "db"})
    return replace(base, **changes)


def test_a_full_rule_validates_and_builds_every_field() -> None:
    assert validate_rule(RAW) == []
    rule = build_rule(RAW, None)
    assert (rule.id, rule.version, rule.type, rule.order, rule.on_refire) == (
        "disk", 1, 1, 10, "new")
    assert rule.match_labels_regex == {"team": "db|web"}
    assert (rule.urgency_label, rule.urgency_values, rule.urgency_default) == (
        "severity", {"critical": 5, "warning": 3}, 2)
    assert (rule.impact_default, rule.priority_values, rule.priority_default) == (4, {"p1": 6}, 0)
    assert (rule.solve_on_resolved, rule.solutiontypes_id, rule.requesttypes_id) == (True, 2, 8)


def test_every_error_is_listed() -> None:
    bad = {"id": "no spaces", "instance": "i", "name": "{{ x", "content": "c", "type": "bug",
           "match": {"sources": ["nagios"], "labels_regex": {"a": "("}}, "color": "red",
           "urgency": {"values": {"critical": 9}}, "on_refire": "sometimes",
           "on_resolved": {"solve": "yes"}, "repeat_followup_after_s": -1}
    errors = validate_rule(bad)
    for expected in ("unknown field 'color'", "id 'no spaces'", "type must be",
                     "match.sources", "labels_regex.a: not a regular expression",
                     "urgency.values needs urgency.label", "urgency.values must map",
                     "on_refire", "on_resolved.solve", "repeat_followup_after_s",
                     "name: line 1"):
        assert any(expected in e for e in errors), (expected, errors)
    assert validate_rule([1]) == ["a rule must be a mapping of fields"]


def test_the_version_moves_only_on_a_change() -> None:
    first = build_rule(RAW, None)
    assert build_rule(RAW, first) is first
    changed = build_rule({**RAW, "entities_id": 4}, first)
    assert (changed.version, changed.entities_id) == (2, 4)


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, "disk"),
    ({"labels": {"severity": "critical", "team": "dba"}}, "catch-all"),  # regex: whole value
    ({"labels": {"severity": "warning", "team": "db"}}, "catch-all"),
    ({"source": "grafana"}, "catch-all"),
    ({"instance": "other"}, None),
])
def test_the_first_enabled_matching_rule_wins(changes: dict[str, Any], expected: str | None
                                             ) -> None:
    disk = build_rule(RAW, None)
    catch_all = build_rule({"id": "catch-all", "instance": "glpi-lyon", "order": 20,
                            "name": "n", "content": "c"}, None)
    disabled = replace(build_rule({**RAW, "id": "aaa", "order": 0}, None), enabled=False)
    found = first_match([catch_all, disabled, disk], alert(**changes))
    assert (found.id if found else None) == expected


def test_ties_in_order_go_by_id() -> None:
    a = AlertRule(id="a", version=1, instance="glpi-lyon", name_template="", content_template="")
    b = replace(a, id="b")
    assert first_match([b, a], alert()) is a


def test_levels_come_from_labels_through_the_map_or_the_default() -> None:
    rule = build_rule(RAW, None)
    assert levels(rule, alert()) == levels(rule, alert(labels={"severity": "critical"}))
    got = levels(rule, alert(labels={"severity": "critical", "prio": "p1"}))
    assert (got.urgency, got.impact, got.priority) == (5, 4, 6)
    got = levels(rule, alert(labels={"severity": "info"}))
    assert (got.urgency, got.impact, got.priority) == (2, 4, 0)


def test_compiled_templates_fall_back_to_built_in_texts() -> None:
    templates = compile_rule(build_rule({**RAW, "on_resolved": {}}, None))
    assert templates.solution.constant is None and templates.followup is not None
