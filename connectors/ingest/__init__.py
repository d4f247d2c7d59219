"""The GLPI ingest endpoint: GLPI 11 native webhooks in, ItemChangeEvents on Kafka out."""

from __future__ import annotations

from connectors.ingest.server import Ingest, run_ingest, serve

__all__ = ["Ingest", "run_ingest", "serve"]
