"""Typed messages of every topic, their Avro wire format and the topic names."""

from __future__ import annotations

from hookstream.records.audit import (
    AuditAction,
    AuditRecord,
    only_instance,
    redrive_target,
    send_result,
)
from hookstream.records.codec import (
    Codec,
    header,
    header_items,
    record_to_json,
    topic_schema,
)
from hookstream.records.cursor import PollCursor
from hookstream.records.definitions import WebhookDefinition
from hookstream.records.event_lines import BadLine, parse_event_line, parse_event_lines
from hookstream.records.events import (
    AttemptRecord,
    DeliveryRequest,
    EntityRecord,
    ItemChangeEvent,
    Outcome,
    Record,
    Trigger,
    delivery_id_for,
    make_event,
)
from hookstream.records.instances import DEFAULT_TOLERANCE_S, InstanceRecord, is_timezone
from hookstream.records.operations import (
    OPERATIONAL_ITEMTYPE,
    OperationalEvent,
    OperationType,
    as_item_change,
    operational_event,
)
from hookstream.records.topics import (
    ATTEMPTS,
    AUDIT,
    DELIVERIES,
    DLQ,
    ENTITIES,
    INSTANCES,
    ITEM_CHANGES,
    ITEM_CHANGES_DLQ,
    OPERATIONS,
    POLLER_CURSORS,
    REDRIVEN,
    WEBHOOKS,
    avro_topics,
    retry_topics,
    topic_specs,
)

__all__ = [
    "ATTEMPTS",
    "AUDIT",
    "DEFAULT_TOLERANCE_S",
    "DELIVERIES",
    "DLQ",
    "ENTITIES",
    "INSTANCES",
    "ITEM_CHANGES",
    "ITEM_CHANGES_DLQ",
    "OPERATIONAL_ITEMTYPE",
    "OPERATIONS",
    "POLLER_CURSORS",
    "REDRIVEN",
    "WEBHOOKS",
    "AttemptRecord",
    "AuditAction",
    "AuditRecord",
    "BadLine",
    "Codec",
    "DeliveryRequest",
    "EntityRecord",
    "InstanceRecord",
    "ItemChangeEvent",
    "OperationType",
    "OperationalEvent",
    "Outcome",
    "PollCursor",
    "Record",
    "Trigger",
    "WebhookDefinition",
    "as_item_change",
    "avro_topics",
    "delivery_id_for",
    "header",
    "header_items",
    "is_timezone",
    "make_event",
    "only_instance",
    "operational_event",
    "parse_event_line",
    "parse_event_lines",
    "record_to_json",
    "redrive_target",
    "retry_topics",
    "send_result",
    "topic_schema",
    "topic_specs",
]
