"""The control plane: webhook definitions from YAML (validated, secrets encrypted), published."""

from __future__ import annotations

from hookstream.control.admin import apply_entities, current_webhooks
from hookstream.control.webhooks import load_definitions, redacted, validate

__all__ = [
    "apply_entities",
    "current_webhooks",
    "load_definitions",
    "redacted",
    "validate",
]
