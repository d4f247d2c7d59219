"""The GLPI ingest endpoint: GLPI 11 native webhooks in, ItemChangeEvents on Kafka out."""

from __future__ import annotations

from connectors.ingest.server import Ingest, serve
from connectors.ingest.workers import run_ingest

__all__ = ["Ingest", "run_ingest", "serve"]
