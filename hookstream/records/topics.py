"""Every topic hookstream uses, with its partitions, retention and compaction."""

from __future__ import annotations

from dataclasses import dataclass

from hookstream.config import Settings
from hookstream.policy.retry import tier_topics  # a leaf module: policy needs records

DAY_MS = 86_400_000

ITEM_CHANGES = "glpi.item-changes"
ITEM_CHANGES_DLQ = "glpi.item-changes.dlq"
WEBHOOKS = "hookstream.webhooks"
ENTITIES = "hookstream.entities"
INSTANCES = "hookstream.instances"  # GLPI instances: API access and webhook secret
DELIVERIES = "hookstream.deliveries"
DLQ = "hookstream.dlq"
ATTEMPTS = "hookstream.attempts"
REDRIVEN = "hookstream.dlq-redriven"  # ledger: DLQ positions already redriven
POLLER_CURSORS = "hookstream.poller-cursors"  # GLPI API poller: position per stream
AUDIT = "hookstream.audit"  # every write through the admin API or the console
OPERATIONS = "hookstream.operations"  # operational events: webhook.disabled, ...
# monitoring alerts into GLPI tickets (`run alerts`, `run ticketer`)
ALERTS = "hookstream.alerts"  # AlertEvent, keyed instance:source:fingerprint
ALERTS_DLQ = "hookstream.alerts.dlq"  # alerts GLPI refused a ticket for, with its message
ALERT_RULES = "hookstream.alert-rules"  # compacted: which alerts open which tickets
ALERT_TICKETS = "hookstream.alert-tickets"  # compacted: each alert's ticket, by alert key
ALERT_ACTIONS = "hookstream.alert-actions"  # what the ticketer did, for the log store


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def _delete(days: float) -> dict[str, str]:
    return {"cleanup.policy": "delete", "retention.ms": str(int(days * DAY_MS))}


_COMPACT = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0", "segment.ms": str(DAY_MS)}


def retry_topics(settings: Settings) -> tuple[str, ...]:
    return tier_topics(settings.topic_prefix, settings.retry_tiers_s)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The topics of docs/architecture.md, named with the configured prefix."""
    n, tables, t = settings.partitions, settings.table_partitions, settings.topic
    specs = [
        TopicSpec(t(ITEM_CHANGES), n, _delete(7)),
        TopicSpec(t(WEBHOOKS), tables, _COMPACT),
        TopicSpec(t(ENTITIES), tables, _COMPACT),
        TopicSpec(t(INSTANCES), tables, _COMPACT),
        TopicSpec(t(DELIVERIES), n, _delete(7)),
        TopicSpec(t(DLQ), n, _delete(30)),
        TopicSpec(t(ATTEMPTS), n, _delete(30)),
        TopicSpec(t(REDRIVEN), tables, _COMPACT),
        TopicSpec(t(POLLER_CURSORS), tables, _COMPACT),
        TopicSpec(t(ITEM_CHANGES_DLQ), n, _delete(30)),
        TopicSpec(t(AUDIT), tables, _delete(365)),
        TopicSpec(t(OPERATIONS), tables, _delete(30)),
        TopicSpec(t(ALERTS), n, _delete(7)),
        TopicSpec(t(ALERTS_DLQ), n, _delete(30)),
        TopicSpec(t(ALERT_RULES), tables, _COMPACT),
        TopicSpec(t(ALERT_TICKETS), n, _COMPACT),  # co-partitioned with ALERTS
        TopicSpec(t(ALERT_ACTIONS), n, _delete(30)),
    ]
    for name, delay in zip(
        retry_topics(settings), settings.retry_tiers_s, strict=True
    ):
        # A record waits `delay` on its tier: keep it well beyond that.
        specs.append(TopicSpec(name, n, _delete(max(7.0, 4 * delay / 86_400))))
    return specs


def avro_topics(settings: Settings) -> dict[str, str]:
    """Every topic whose values are Avro records, with the schema each holds (the input DLQ
    keeps undecodable input as it came, the redrive ledger holds bare keys)."""
    t = settings.topic
    topics = {
        t(ITEM_CHANGES): "ItemChangeEvent",
        t(WEBHOOKS): "WebhookDefinition",
        t(ENTITIES): "Entity",
        t(INSTANCES): "Instance",
        t(DELIVERIES): "DeliveryRequest",
        t(DLQ): "DeliveryRequest",
        t(ATTEMPTS): "AttemptRecord",
        t(POLLER_CURSORS): "PollCursor",
        t(AUDIT): "AuditRecord",
        t(OPERATIONS): "OperationalEvent",
        t(ALERTS): "AlertEvent",
        t(ALERTS_DLQ): "AlertEvent",
        t(ALERT_RULES): "AlertRule",
        t(ALERT_TICKETS): "AlertTicket",
        t(ALERT_ACTIONS): "TicketAction",
    }
    topics.update(dict.fromkeys(retry_topics(settings), "DeliveryRequest"))
    return topics
