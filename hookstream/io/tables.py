"""Following compacted topics (webhooks, entities, instances) into in-memory tables.

A follower assigns every partition from the beginning (no consumer group: every
process needs the whole table), applies each record through a callback, and knows when
it has caught up with the end offsets seen at start: the readiness condition.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from confluent_kafka import KafkaError, Message, TopicPartition

from hookstream.config import Settings
from hookstream.errors import DecodeError, TransientError
from hookstream.io.kafka import consumer, denied, kafka_errors, read_all, watermarks
from hookstream.io.schema_registry import codec_for
from hookstream.matching import Entity, EntityTable
from hookstream.records import (
    ENTITIES,
    INSTANCES,
    WEBHOOKS,
    Codec,
    EntityRecord,
    InstanceRecord,
    Record,
    WebhookDefinition,
)

log = logging.getLogger(__name__)

Apply = Callable[[str, bytes, bytes | None, Message], None]


class TableFollower:
    def __init__(
        self, settings: Settings, topics: Sequence[str], apply: Apply, timeout_s: float = 30.0
    ):
        self._apply = apply
        # No group membership: the group id is only required by librdkafka.
        self._consumer = consumer(settings, "hookstream-tables", {"enable.partition.eof": False})
        parts: list[TopicPartition] = []
        self._pending: dict[tuple[str, int], int] = {}
        for topic in topics:
            with kafka_errors(f"table topic {topic}"):
                meta = self._consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
            if meta is not None and meta.error is not None and (
                meta.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
            ):
                raise TransientError(denied("READ", "topic", topic))
            if meta is None or meta.error is not None:
                raise TransientError(
                    f"table topic {topic} is missing; run `hookstream topics create`"
                )
            for p in meta.partitions:
                low, high = watermarks(self._consumer, TopicPartition(topic, p), timeout_s)
                if high > low:
                    self._pending[(topic, p)] = high
                parts.append(TopicPartition(topic, p, 0))
        self._consumer.assign(parts)

    @property
    def caught_up(self) -> bool:
        return not self._pending

    def poll(self, timeout_s: float = 0.0, max_records: int = 500) -> int:
        """Apply the records that are there; returns how many."""
        messages = self._consumer.consume(max_records, timeout_s)
        for msg in messages:
            if msg.error() is not None:
                if msg.error().code() != KafkaError._PARTITION_EOF:  # type: ignore[union-attr]
                    log.warning("table read error: %s", msg.error())
                continue
            topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
            self._apply(topic, msg.key() or b"", msg.value(), msg)
            end = self._pending.get((topic, partition))
            if end is not None and offset + 1 >= end:
                del self._pending[(topic, partition)]
        return len(messages)

    def catch_up(self, timeout_s: float = 60.0) -> None:
        import time

        deadline = time.monotonic() + timeout_s
        while not self.caught_up:
            if time.monotonic() > deadline:
                raise TransientError(f"tables not caught up within {timeout_s:.0f}s")
            self.poll(0.2)

    def close(self) -> None:
        self._consumer.close()


def webhook_and_entity_applier(
    settings: Settings,
    codec: Codec,
    on_webhook: Callable[[str, WebhookDefinition | None], None],
    entities: EntityTable | None,
    on_instance: Callable[[str, InstanceRecord | None], None] | None = None,
) -> Apply:
    """The callback that decodes webhook and entity records (and instance records, when
    followed) into the given tables."""
    webhooks_topic, entities_topic = settings.topic(WEBHOOKS), settings.topic(ENTITIES)
    instances_topic = settings.topic(INSTANCES)

    def apply(topic: str, key: bytes, value: bytes | None, msg: Message) -> None:
        try:
            if topic == webhooks_topic:
                ident = key.decode()
                on_webhook(
                    ident,
                    None
                    if value is None
                    else codec.decode(value, msg.headers(), WebhookDefinition),
                )
            elif topic == entities_topic and entities is not None:
                instance, _, ident = key.decode().rpartition(":")
                if value is None:
                    entities.remove(instance, int(ident))
                else:
                    rec = codec.decode(value, msg.headers(), EntityRecord)
                    entities.put(
                        Entity(
                            rec.instance,
                            rec.id,
                            rec.parent_id,
                            rec.name,
                            rec.completename,
                            tuple(rec.ancestors),
                        )
                    )
            elif topic == instances_topic and on_instance is not None:
                on_instance(
                    key.decode(),
                    None if value is None else codec.decode(value, msg.headers(), InstanceRecord),
                )
        except (DecodeError, ValueError) as e:
            log.error("skipping an undecodable table record on %s@%s: %s", topic, msg.offset(), e)

    return apply


R = TypeVar("R", bound=Record)


def read_table(settings: Settings, topic: str, kind: type[R], key_prefix: str = "") -> dict[str, R]:
    """A compacted topic read whole into its latest record per key (tombstones remove
    keys); only keys starting with `key_prefix`, e.g. one GLPI instance's `name:`."""
    codec, table = codec_for(settings), dict[str, R]()
    for msg in read_all(settings, settings.topic(topic)):
        key = (msg.key() or b"").decode()
        if not key.startswith(key_prefix):
            continue
        if msg.value() is None:
            table.pop(key, None)
        else:
            table[key] = codec.decode(msg.value(), msg.headers(), kind)
    return table
