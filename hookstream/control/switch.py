"""Disabling a webhook (auto-disable) and enabling it again, as new definition versions.

Pure: the definitions and the webhook.disabled event are built here, time given;
hookstream.control.admin publishes them as `webhooks apply` does.
"""

from __future__ import annotations

from dataclasses import replace

from hookstream.records import OperationalEvent, OperationType, WebhookDefinition, operational_event


def disabled(webhook: WebhookDefinition, reason: str, at_ms: int) -> WebhookDefinition:
    """The next version of `webhook`, inactive, saying why and since when."""
    return replace(webhook, version=webhook.version + 1, is_active=False,
                   disabled_reason=reason, disabled_at_ms=at_ms)


def enabled(webhook: WebhookDefinition, at_ms: int) -> WebhookDefinition:
    """The next version of `webhook`, active, its auto-disable record cleared; failures
    before `at_ms` no longer count towards disabling it again."""
    return replace(webhook, version=webhook.version + 1, is_active=True, disabled_reason="",
                   disabled_at_ms=0, enabled_at_ms=at_ms)


def disabled_event(webhook: WebhookDefinition) -> OperationalEvent:
    """The webhook.disabled event of a definition `disabled` made (one per version)."""
    return operational_event(OperationType.WEBHOOK_DISABLED, webhook.disabled_at_ms,
                             webhook.instance, webhook.id, webhook.disabled_reason,
                             str(webhook.version))
