"""The alert receivers: Alertmanager, Grafana and Zabbix notifications in, AlertEvents out."""

from __future__ import annotations

from connectors.alerts.server import Alerts, run_alerts, serve

__all__ = ["Alerts", "run_alerts", "serve"]
