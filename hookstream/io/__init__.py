"""The adapters: Kafka clients and tables, schema registry, metrics and the operations endpoint."""

from __future__ import annotations

from hookstream.io.bounded import HUNG, bounded, retried
from hookstream.io.kafka import (
    admin,
    consumer,
    create_topics,
    delivery_callback,
    denied,
    denied_topics,
    end_of_partition,
    flush,
    kafka_errors,
    producer,
    read_all,
    translate,
    watermarks,
)
from hookstream.io.kafka_link import LINK, Throttled
from hookstream.io.schema_registry import HttpSchemaRegistry, codec_for
from hookstream.io.tables import TableFollower, read_table, webhook_and_entity_applier

__all__ = [
    "HUNG",
    "LINK",
    "HttpSchemaRegistry",
    "TableFollower",
    "Throttled",
    "admin",
    "bounded",
    "codec_for",
    "consumer",
    "create_topics",
    "delivery_callback",
    "denied",
    "denied_topics",
    "end_of_partition",
    "flush",
    "kafka_errors",
    "producer",
    "read_all",
    "read_table",
    "retried",
    "translate",
    "watermarks",
    "webhook_and_entity_applier",
]
