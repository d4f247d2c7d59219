"""The GLPI side through GLPI's REST API: the client, entity sync and webhook provisioning."""

from __future__ import annotations

from connectors.glpi.access import client_for, user_ids_through_glpi
from connectors.glpi.client import GlpiApiError, GlpiClient, GlpiUnavailable, content_range
from connectors.glpi.entities import entity_records, sync_entities

__all__ = [
    "GlpiApiError",
    "GlpiClient",
    "GlpiUnavailable",
    "client_for",
    "content_range",
    "entity_records",
    "sync_entities",
    "user_ids_through_glpi",
]
