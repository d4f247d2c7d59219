"""Alert rules: YAML mappings validated into AlertRules, and which rule an alert follows.

A rule in YAML (README, "Alerts to tickets"):

    id: disk-full                 # [A-Za-z0-9._-], 1-100
    instance: glpi-lyon
    order: 10                     # the first enabled matching rule by (order, id) wins
    match: {sources: [alertmanager], labels: {severity: critical},
            labels_regex: {team: "db|web"}}        # regexes match the whole value
    entities_id: 3
    type: incident                # or request (GLPI's 1 and 2)
    urgency: {label: severity, values: {critical: 5, warning: 3}, default: 3}
    name: "[{{ alert.labels.severity }}] {{ alert.name }}"
    content: "{{ alert.annotations.description }}"
    on_resolved: {solve: true, solution: "Resolved at {{ alert.ends_at|date('H:i') }}"}
    on_refire: reopen             # or new

Templates are Twig in the webhooks' sandbox, over `alert` (`template_context`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from hookstream.errors import InvalidTemplate
from hookstream.records import AlertEvent, AlertRule, AlertSource, RefireMode
from hookstream.render import compile_texts
from hookstream.render.twig.engine import Compiled

RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
TICKET_TYPES = {"incident": 1, "request": 2, 1: 1, 2: 2}
LEVELS = ("urgency", "impact", "priority")
_LEVEL_RANGE = {"urgency": (1, 5), "impact": (1, 5), "priority": (1, 6)}  # 6: GLPI's "major"
_IDS = ("entities_id", "itilcategories_id", "users_id_requester", "groups_id_observer",
        "groups_id_assign", "requesttypes_id", "repeat_followup_after_s")
_TEXTS = ("instance", "comment")
_KEYS = frozenset({"id", "instance", "enabled", "order", "match", "type", "name", "content",
                   "followup", "on_resolved", "on_refire", *LEVELS, *_IDS, *_TEXTS})

DEFAULT_FOLLOWUP = ("Alert {{ alert.name }} is {{ alert.status }} again "
                    "({{ alert.source }} {{ alert.fingerprint }}).")
DEFAULT_RESOLVED = "Alert {{ alert.name }} resolved ({{ alert.source }} {{ alert.fingerprint }})."
DEFAULT_SOLUTION = "The alert {{ alert.name }} resolved; solved by hookstream."


def validate_rule(raw: Any) -> list[str]:
    """Every problem with one raw rule mapping; empty when it is valid."""
    if not isinstance(raw, dict):
        return ["a rule must be a mapping of fields"]
    errors = [f"unknown field {k!r}" for k in raw if k not in _KEYS]
    for key in ("id", "instance", "name", "content"):
        if not raw.get(key):
            errors.append(f"{key} is required")
    ident = str(raw.get("id", ""))
    if ident and not RULE_ID.match(ident):
        errors.append(f"id {ident!r} must be 1-100 of [A-Za-z0-9._-]")
    for key in ("enabled",):
        if key in raw and not isinstance(raw[key], bool):
            errors.append(f"{key} must be true or false")
    for key in ("order", *_IDS):
        if key in raw and not _whole(raw[key], 0, 10**12):
            errors.append(f"{key} must be a whole number from 0")
    if raw.get("type", 1) not in TICKET_TYPES:
        errors.append("type must be incident or request (1 or 2)")
    if raw.get("on_refire", RefireMode.REOPEN) not in set(RefireMode):
        errors.append("on_refire must be reopen (the solved ticket) or new (another ticket)")
    errors += _match_errors(raw.get("match", {}))
    for level in LEVELS:
        errors += _level_errors(level, raw.get(level, {}))
    resolved = raw.get("on_resolved", {})
    if not isinstance(resolved, dict):
        errors.append("on_resolved must be a mapping: solve, solution, solutiontypes_id")
        resolved = {}
    errors += [f"on_resolved: unknown field {k!r}" for k in resolved
               if k not in ("solve", "solution", "solutiontypes_id")]
    if "solve" in resolved and not isinstance(resolved["solve"], bool):
        errors.append("on_resolved.solve must be true or false")
    if "solutiontypes_id" in resolved and not _whole(resolved["solutiontypes_id"], 0, 10**12):
        errors.append("on_resolved.solutiontypes_id must be a whole number from 0")
    templates = {"name": raw.get("name"), "content": raw.get("content"),
                 "followup": raw.get("followup"), "on_resolved.solution": resolved.get("solution")}
    for label, source in templates.items():
        if source is not None and not isinstance(source, str):
            errors.append(f"{label} must be a Twig template (text)")
    try:
        compile_texts({k: v for k, v in templates.items() if isinstance(v, str)})
    except InvalidTemplate as e:
        errors.append(f"template: {e}")
    return errors


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _strings(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str | int) and not isinstance(v, bool)
        for k, v in value.items())


def _match_errors(match: Any) -> list[str]:
    if not isinstance(match, dict):
        return ["match must be a mapping: sources, labels, labels_regex"]
    errors = [f"match: unknown field {k!r}" for k in match
              if k not in ("sources", "labels", "labels_regex")]
    sources = match.get("sources", [])
    if not isinstance(sources, list) or not set(sources) <= set(AlertSource):
        errors.append(f"match.sources must be a list of {', '.join(AlertSource)}")
    for key in ("labels", "labels_regex"):
        if not _strings(match.get(key, {})):
            errors.append(f"match.{key} must map label names to values")
    regexes = match.get("labels_regex", {})
    for label, pattern in regexes.items() if _strings(regexes) else ():
        try:
            re.compile(str(pattern))
        except re.error as e:
            errors.append(f"match.labels_regex.{label}: not a regular expression ({e})")
    return errors


def _level_errors(level: str, spec: Any) -> list[str]:
    low, high = _LEVEL_RANGE[level]
    if not isinstance(spec, dict):
        return [f"{level} must be a mapping: label, values, default"]
    errors = [f"{level}: unknown field {k!r}" for k in spec
              if k not in ("label", "values", "default")]
    values = spec.get("values", {})
    if not isinstance(spec.get("label", ""), str):
        errors.append(f"{level}.label must be a label name")
    if values and not spec.get("label"):
        errors.append(f"{level}.values needs {level}.label, the label they map")
    if not isinstance(values, dict) or not all(_whole(v, low, high) for v in values.values()):
        errors.append(f"{level}.values must map label values to {low}..{high}")
    if "default" in spec and not _whole(spec["default"], 0 if level == "priority" else low, high):
        errors.append(f"{level}.default must be from {low} to {high}"
                      + (" (or 0: GLPI computes it)" if level == "priority" else ""))
    return errors


def build_rule(raw: Mapping[str, Any], previous: AlertRule | None) -> AlertRule:
    """A validated mapping to a rule; the version moves on only when something changed."""
    match, resolved = raw.get("match", {}), raw.get("on_resolved", {})
    levels: dict[str, Any] = {}
    for level in LEVELS:
        spec = raw.get(level, {})
        levels[f"{level}_label"] = str(spec.get("label", ""))
        levels[f"{level}_values"] = {str(k): int(v) for k, v in spec.get("values", {}).items()}
        if "default" in spec:
            levels[f"{level}_default"] = int(spec["default"])
    rule = AlertRule(
        id=str(raw["id"]), version=previous.version if previous else 1,
        instance=str(raw["instance"]), name_template=raw["name"],
        content_template=raw["content"], enabled=raw.get("enabled", True),
        order=raw.get("order", 0), match_sources=list(match.get("sources", [])),
        match_labels={str(k): str(v) for k, v in match.get("labels", {}).items()},
        match_labels_regex={str(k): str(v) for k, v in match.get("labels_regex", {}).items()},
        type=TICKET_TYPES[raw.get("type", 1)], followup_template=raw.get("followup", ""),
        solve_on_resolved=resolved.get("solve", True),
        solution_template=resolved.get("solution", ""),
        solutiontypes_id=resolved.get("solutiontypes_id", 0),
        on_refire=str(raw.get("on_refire", RefireMode.REOPEN)), comment=raw.get("comment", ""),
        **{k: raw[k] for k in _IDS if k in raw}, **levels,
    )
    if previous is None or _public(rule) == _public(previous):
        return previous or rule
    return AlertRule.from_dict({**rule.to_dict(), "version": previous.version + 1})


def _public(rule: AlertRule) -> dict[str, Any]:
    return {k: v for k, v in rule.to_dict().items() if k != "version"}


def first_match(rules: Iterable[AlertRule], alert: AlertEvent) -> AlertRule | None:
    """The rule an alert follows: the first enabled rule of its instance, by (order, id),
    whose sources and labels it matches; None when no rule does."""
    candidates = sorted((r for r in rules if r.enabled and r.instance == alert.instance),
                        key=lambda r: (r.order, r.id))
    return next((r for r in candidates if matches(r, alert)), None)


def matches(rule: AlertRule, alert: AlertEvent) -> bool:
    if rule.match_sources and alert.source not in rule.match_sources:
        return False
    if any(alert.labels.get(k) != v for k, v in rule.match_labels.items()):
        return False
    return all(_regex(p).fullmatch(alert.labels.get(k, "")) is not None
               for k, p in rule.match_labels_regex.items())


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@dataclass(frozen=True, slots=True)
class Levels:
    urgency: int
    impact: int
    priority: int  # 0: not sent, GLPI computes it from urgency and impact


def levels(rule: AlertRule, alert: AlertEvent) -> Levels:
    """Urgency, impact and priority of the alert's ticket, each from its label's value
    through the rule's map, or the rule's default when the label or the value is absent."""
    def level(label: str, values: dict[str, int], default: int) -> int:
        return values.get(alert.labels.get(label, ""), default) if label else default

    return Levels(level(rule.urgency_label, rule.urgency_values, rule.urgency_default),
                  level(rule.impact_label, rule.impact_values, rule.impact_default),
                  level(rule.priority_label, rule.priority_values, rule.priority_default))


@dataclass(frozen=True, slots=True)
class RuleTemplates:
    """A rule's templates, compiled once per rule version."""

    name: Compiled
    content: Compiled
    followup: Compiled
    resolved: Compiled
    solution: Compiled


def compile_rule(rule: AlertRule) -> RuleTemplates:
    """InvalidTemplate if a template does not compile (a rule published past validation)."""
    compiled = compile_texts({
        "name": rule.name_template, "content": rule.content_template,
        "followup": rule.followup_template or DEFAULT_FOLLOWUP,
        "resolved": rule.followup_template or DEFAULT_RESOLVED,
        "solution": rule.solution_template or DEFAULT_SOLUTION,
    })
    return RuleTemplates(**compiled)
