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
    RenderFailure,
    Skipped,
    WebhookIndex,
    compile_webhook,
    load_json,
    plan,
    skips_change_by,
    why_not,
)

__all__ = [
    "MATCH_ALL",
    "CriteriaResult",
    "Entity",
    "EntityTable",
    "RenderFailure",
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
    "skips_change_by",
    "why_not",
]
