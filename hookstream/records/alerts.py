"""Monitoring alerts on their way to GLPI tickets: the record of hookstream.alerts.

`hookstream run alerts` turns each alert of an Alertmanager, Grafana or Zabbix notification
into one AlertEvent, keyed by (instance, source, fingerprint): every event of one alert
lands on one partition, in the order it was received, for `hookstream run ticketer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from hookstream.records.events import Record


class AlertSource(StrEnum):
    ALERTMANAGER = "alertmanager"  # Prometheus Alertmanager's webhook_config, version 4
    GRAFANA = "grafana"  # Grafana unified alerting's webhook contact point
    ZABBIX = "zabbix"  # Zabbix's webhook media type, with README's JSON body


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class AlertEvent(Record):
    """One alert as a monitoring tool notified it (a repeat notification is another event)."""

    schema_name: ClassVar[str] = "AlertEvent"

    event_id: str  # unique per alert received
    instance: str  # the GLPI instance whose route received it
    source: str  # an AlertSource
    fingerprint: str  # Alertmanager's and Grafana's own; Zabbix's problem event id
    status: str  # an AlertStatus
    name: str  # alertname label (Alertmanager, Grafana), trigger name (Zabbix)
    starts_at: int  # Unix ms
    received_at: int  # Unix ms, when `run alerts` took it
    ends_at: int | None = None  # Unix ms; resolved alerts (None when the source gives none)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    generator_url: str = ""
    # other URLs the source gives: external_url, silence_url, dashboard_url, panel_url
    links: dict[str, str] = field(default_factory=dict)

    def key(self) -> str:
        return alert_key(self.instance, self.source, self.fingerprint)


def alert_key(instance: str, source: str, fingerprint: str) -> str:
    """The key of an alert's events, and of its ticket in the fingerprint-to-ticket map."""
    return f"{instance}:{source}:{fingerprint}"
