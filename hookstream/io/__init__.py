"""The adapters: Kafka clients and tables, schema registry, metrics and the operations endpoint."""

from __future__ import annotations

from hookstream.io.bounded import HUNG, bounded, retried
from hookstream.io.group_watch import GroupWatch, watched_stats
from hookstream.io.kafka import (
    BOUNDED_PREFETCH,
    Partitions,
    admin,
    batched_fetches,
    consumer,
    create_topics,
    delivery_callback,
    denied,
    denied_topics,
    drop_client,
    end_of_partition,
    ends_the_consumer,
    flush,
    is_topic_denied,
    kafka_errors,
    leave_group,
    producer,
    reachable,
    read_all,
    read_ranges,
    static_membership,
    translate,
    watermarks,
)
from hookstream.io.kafka_link import LINK, Throttled
from hookstream.io.schema_registry import HttpSchemaRegistry, codec_for
from hookstream.io.start_up import freeze_start_up
from hookstream.io.tables import TableFollower, read_table, webhook_and_entity_applier

__all__ = [
    "BOUNDED_PREFETCH",
    "HUNG",
    "LINK",
    "GroupWatch",
    "HttpSchemaRegistry",
    "Partitions",
    "TableFollower",
    "Throttled",
    "admin",
    "batched_fetches",
    "bounded",
    "codec_for",
    "consumer",
    "create_topics",
    "delivery_callback",
    "denied",
    "denied_topics",
    "drop_client",
    "end_of_partition",
    "ends_the_consumer",
    "flush",
    "freeze_start_up",
    "is_topic_denied",
    "kafka_errors",
    "leave_group",
    "producer",
    "reachable",
    "read_all",
    "read_ranges",
    "read_table",
    "retried",
    "static_membership",
    "translate",
    "watched_stats",
    "watermarks",
    "webhook_and_entity_applier",
]
