"""Webhook definitions: GLPI's webhook fields plus hookstream's delivery settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from hookstream.records.events import Record


@dataclass(frozen=True, slots=True)
class WebhookDefinition(Record):
    """A webhook as stored on the compacted webhooks topic (secrets encrypted)."""

    schema_name: ClassVar[str] = "WebhookDefinition"

    id: str
    version: int
    instance: str
    name: str
    itemtype: str
    event: str
    url: str
    secret_encrypted: str
    comment: str = ""
    webhookcategories_id: int = 0
    entities_id: int = 0
    is_recursive: bool = False
    is_active: bool = False
    http_method: str = "post"
    use_default_payload: bool = True
    payload: str = ""
    custom_headers: dict[str, str] = field(default_factory=dict)
    use_cra_challenge: bool = False
    use_oauth: bool = False
    oauth_url: str = ""
    clientid: str = ""
    clientsecret_encrypted: str = ""
    sent_try: int = 3
    expiration: int = 0
    save_response_body: bool = False
    log_in_item_history: bool = False
    filter: str = ""
    signature_scheme: str = "glpi"
    retry_schedule_s: list[int] = field(default_factory=list)
    retry_policy: str = "glpi"  # a RetryPolicy: GLPI's rule unless "default" is chosen
    timeout_s: float = 5.0
    max_in_flight: int = 0
    rate_limit_per_s: float = 0.0
    allowed_networks: list[str] = field(default_factory=list)
    escaping: str = "hookstream"  # custom body: "hookstream" (JSON-safe) or "glpi" (as GLPI)
    # A rotated-out secret, signing beside the current one until its grace period ends.
    previous_secret_encrypted: str = ""
    previous_secret_until_ms: int = 0
    # Auto-disable: set by the log store with is_active false, cleared by `webhooks enable`.
    disabled_reason: str = ""
    disabled_at_ms: int = 0
    enabled_at_ms: int = 0  # failures before the last re-enable do not count
    ordering: str = "none"  # "per_item": one delivery of an item at a time, in event order
    # GLPI issue #20902: skip events whose changed_by is one of the instance's integration users
    skip_integration_users: bool = False
