"""The webhooks as sending needs them: a `Target` per webhook, secrets decrypted on first
use and kept in memory only (never logged, never written back)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hookstream.policy import Network, RetryPolicy, SecretBox, parse_networks
from hookstream.records import WebhookDefinition


@dataclass(frozen=True, slots=True)
class Target:
    """What sending needs of a webhook, secrets decrypted (in memory only, never logged)."""

    webhook_id: str
    version: int
    secret: str = field(repr=False)
    signature_scheme: str
    timeout_s: float
    retry_policy: RetryPolicy
    sent_try: int
    retry_schedule_s: tuple[int, ...]
    use_cra_challenge: bool
    use_oauth: bool
    oauth_url: str
    clientid: str
    clientsecret: str = field(repr=False)
    save_response_body: bool
    allow: tuple[Network, ...]
    max_in_flight: int = 0  # 0 = only the global and per-origin bounds
    rate_limit_per_s: float = 0.0  # 0 = unlimited
    # A rotated-out secret: Standard Webhooks signatures carry it too until then (epoch s).
    previous_secret: str = field(repr=False, default="")
    previous_secret_until_s: float = 0.0

    def previous_secrets(self, now_s: float) -> tuple[str, ...]:
        """The rotated-out secret while its grace period runs at `now_s`; none after."""
        live = self.previous_secret and now_s < self.previous_secret_until_s
        return (self.previous_secret,) if live else ()

    @classmethod
    def of(cls, d: WebhookDefinition, box: SecretBox) -> Target:
        return cls(
            d.id,
            d.version,
            box.decrypt(d.secret_encrypted),
            d.signature_scheme,
            d.timeout_s,
            RetryPolicy(d.retry_policy),
            d.sent_try,
            tuple(d.retry_schedule_s),
            d.use_cra_challenge,
            d.use_oauth,
            d.oauth_url,
            d.clientid,
            box.decrypt(d.clientsecret_encrypted),
            d.save_response_body,
            parse_networks(d.allowed_networks),
            d.max_in_flight,
            d.rate_limit_per_s,
            box.decrypt(d.previous_secret_encrypted),
            d.previous_secret_until_ms / 1000,
        )


class Targets:
    """The followed webhooks table: definitions, and their targets built on first use."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box
        self.webhooks: dict[str, WebhookDefinition] = {}
        self._targets: dict[str, Target] = {}

    def put(self, webhook_id: str, definition: WebhookDefinition | None) -> None:
        self._targets.pop(webhook_id, None)
        if definition is None:
            self.webhooks.pop(webhook_id, None)
        else:
            self.webhooks[webhook_id] = definition

    def get(self, webhook_id: str) -> Target | None:
        target = self._targets.get(webhook_id)
        if target is None:
            definition = self.webhooks.get(webhook_id)
            if definition is None:
                return None
            target = self._targets[webhook_id] = Target.of(definition, self._box)
        return target
