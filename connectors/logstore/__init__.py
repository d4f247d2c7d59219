"""The delivery log store: what was sent, and what became of it, in SQLite or PostgreSQL."""

from __future__ import annotations

from connectors.logstore.alerts import AlertCursor, AlertFilter, alert_history, list_alerts
from connectors.logstore.audit import AuditFilter, list_audit
from connectors.logstore.health import list_operations
from connectors.logstore.queries import (
    Cursor,
    DeliveryFilter,
    Page,
    delivery_detail,
    last_item,
    list_deliveries,
    queue_view,
    request_body,
)
from connectors.logstore.rows import State
from connectors.logstore.schema import LATEST, migrate, schema_version
from connectors.logstore.service import rebuild, run_logstore
from connectors.logstore.store import LogStore, database_url, open_engine

__all__ = [
    "LATEST",
    "AlertCursor",
    "AlertFilter",
    "AuditFilter",
    "Cursor",
    "DeliveryFilter",
    "LogStore",
    "Page",
    "State",
    "alert_history",
    "database_url",
    "delivery_detail",
    "last_item",
    "list_alerts",
    "list_audit",
    "list_deliveries",
    "list_operations",
    "migrate",
    "open_engine",
    "queue_view",
    "rebuild",
    "request_body",
    "run_logstore",
    "schema_version",
]
