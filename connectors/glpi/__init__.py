"""The GLPI side through GLPI's REST API: the client, entity sync and webhook provisioning."""

from __future__ import annotations

from connectors.glpi.access import client_for, user_ids_through_glpi
from connectors.glpi.client import GlpiApiError, GlpiClient, GlpiUnavailable, content_range
from connectors.glpi.entities import entity_records, sync_entities
from connectors.glpi.sessions import GlpiSessions, backoff_s

__all__ = [
    "GlpiApiError",
    "GlpiClient",
    "GlpiSessions",
    "GlpiUnavailable",
    "backoff_s",
    "client_for",
    "content_range",
    "entity_records",
    "sync_entities",
    "user_ids_through_glpi",
]
