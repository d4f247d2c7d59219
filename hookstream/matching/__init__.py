"""Which webhooks an event fires: filters (GLPI search criteria), entity scope, the plan."""

from __future__ import annotations

from hookstream.matching.criteria import (
    MATCH_ALL,
    CriteriaResult,
    compile_criteria,
    criteria_problems,
    evaluate,
)
from hookstream.matching.entities import (
    Entity,
    EntityTable,
    build_tree,
    entity_from_dict,
    entity_key,
    entity_to_dict,
    in_scope,
)
from hookstream.matching.plan import (
    Rendered,
    RenderFailure,
    Skipped,
    WebhookIndex,
    compile_webhook,
    load_json,
    plan,
    plan_rendered,
    request_for,
    skips_change_by,
    why_not,
)

__all__ = [
    "MATCH_ALL",
    "CriteriaResult",
    "Entity",
    "EntityTable",
    "RenderFailure",
    "Rendered",
    "Skipped",
    "WebhookIndex",
    "build_tree",
    "compile_criteria",
    "compile_webhook",
    "criteria_problems",
    "entity_from_dict",
    "entity_key",
    "entity_to_dict",
    "evaluate",
    "in_scope",
    "load_json",
    "plan",
    "plan_rendered",
    "request_for",
    "skips_change_by",
    "why_not",
]
