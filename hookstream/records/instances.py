"""GLPI instances: the configuration record of the compacted instances topic."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hookstream.records.events import Record

# GLPI computes X-GLPI-timestamp once, when it queues a webhook, and resends it unchanged:
# the first attempt itself is late by the cron's backlog. README ("Ingest") explains 3600 s.
DEFAULT_TOLERANCE_S = 3600


@dataclass(frozen=True, slots=True)
class InstanceRecord(Record):
    """One GLPI instance, as stored on hookstream.instances (secrets encrypted)."""

    schema_name: ClassVar[str] = "Instance"

    name: str
    version: int
    secret_encrypted: str
    api_url: str = ""
    app_token_encrypted: str = ""
    user_token_encrypted: str = ""
    allowed_networks: list[str] = field(default_factory=list)
    timestamp_tolerance_s: int = DEFAULT_TOLERANCE_S
    comment: str = ""
    timezone: str = "UTC"  # GLPI's `timezone` setting (IANA name): templates' dates are in it
    # `run alerts`: each source's route scheme ("bearer" or "hmac") and its secret, encrypted
    alert_auth: dict[str, str] = field(default_factory=dict)
    alert_secrets_encrypted: dict[str, str] = field(default_factory=dict)
    # GLPI user ids integrations act as (webhooks' skip_integration_users)
    integration_users: list[int] = field(default_factory=list)

    def key(self) -> str:
        return self.name


def is_timezone(name: object) -> bool:
    """Whether `name` is an IANA time zone name this host knows (zoneinfo, as the renderer)."""
    if not isinstance(name, str):
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
