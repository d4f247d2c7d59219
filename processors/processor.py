"""The stream processor: glpi.item-changes -> hookstream.deliveries, exactly once.

A plain confluent-kafka consume-transform-produce loop. Each batch is one Kafka
transaction holding its delivery requests, render failures (attempt record and DLQ
entry), undecodable inputs (glpi.item-changes.dlq) and the batch's input offsets, so a
crash or rebalance never loses nor duplicates a delivery request.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType

from confluent_kafka import KafkaException, Message, TopicPartition
from prometheus_client import Counter

from hookstream.config import Settings
from hookstream.errors import DecodeError
from hookstream.io import (
    TableFollower,
    codec_for,
    consumer,
    gauges,
    health,
    metrics,
    producer,
    webhook_and_entity_applier,
)
from hookstream.matching import EntityTable, RenderFailure, WebhookIndex, plan
from hookstream.records import (
    ATTEMPTS,
    DELIVERIES,
    DLQ,
    ENTITIES,
    ITEM_CHANGES,
    ITEM_CHANGES_DLQ,
    WEBHOOKS,
    DeliveryRequest,
    ItemChangeEvent,
    Outcome,
    Record,
    header_items,
)
from hookstream.render import RenderLimits

log = logging.getLogger(__name__)
GROUP = "hookstream-processor"


class Processor:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.clock = clock
        self.codec = codec_for(settings)
        self.index = WebhookIndex()
        self.entities = EntityTable()
        self.limits = RenderLimits(
            max_body_bytes=settings.max_body_bytes, max_render_s=settings.render_timeout_s
        )
        self.topics = {
            name: settings.topic(name)
            for name in (ITEM_CHANGES, ITEM_CHANGES_DLQ, DELIVERIES, DLQ, ATTEMPTS)
        }
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.stats = {"events": 0, "deliveries": 0, "render_errors": 0, "undecodable": 0}
        # Per-instance counter children: Counter.labels() takes a lock and builds a key on
        # every call (~1.5 µs); the child for a label value never changes.
        self._events_counters: dict[str, Counter] = {}
        self._planned_counters: dict[str, Counter] = {}
        self._tables = TableFollower(
            settings,
            [settings.topic(WEBHOOKS), settings.topic(ENTITIES)],
            webhook_and_entity_applier(settings, self.codec, self._on_webhook, self.entities),
        )
        self._consumer = consumer(
            settings, GROUP, {"partition.assignment.strategy": "cooperative-sticky"}
        )
        self._producer = producer(
            settings,
            {"batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000},
            # KIP-447: fencing comes from the consumer group metadata, so the id only has to be
            # unique per process.
            transactional_id=f"{GROUP}-{socket.gethostname()}-{uuid.uuid4().hex[:8]}",
        )

    def _on_webhook(self, webhook_id: str, definition: object) -> None:
        from hookstream.records import WebhookDefinition

        if isinstance(definition, WebhookDefinition):
            self.index.put(definition)
            if definition.id in self.index.invalid:
                log.error(
                    "webhook %s v%d cannot be compiled: %s",
                    definition.id,
                    definition.version,
                    self.index.invalid[definition.id],
                )
        else:
            self.index.remove(webhook_id)

    def run(self) -> None:
        """Run until `stopping` is set; the open transaction is finished before returning."""
        self._producer.init_transactions(30)
        self._tables.catch_up()
        self.ready.set()
        metrics.READY.labels("processor").set(1)
        log.info("processor ready: %d webhooks, %d entities", len(self.index), len(self.entities))
        self._consumer.subscribe([self.topics[ITEM_CHANGES]])
        try:
            while not self.stopping.is_set():
                self._tables.poll(0)
                gauges.report(self.settings, GROUP, self._consumer)  # lag, every few seconds
                batch = self._consumer.consume(
                    self.settings.processor_batch_size, self.settings.processor_batch_ms / 1000
                )
                batch = [m for m in batch if m.error() is None]
                if batch:
                    self._process(batch)
        finally:
            self._consumer.close()
            self._tables.close()
            self._producer.flush(10)

    def _process(self, batch: list[Message]) -> None:
        self._producer.begin_transaction()
        try:
            now_ms = int(self.clock() * 1000)
            for msg in batch:
                self._transform(msg, now_ms)
            self._producer.send_offsets_to_transaction(
                _next_offsets(batch), self._consumer.consumer_group_metadata(), 30
            )
            self._commit()
        except KafkaException as e:
            if e.args[0].fatal():  # fenced by a newer instance, or a broken producer: exit
                raise
            log.warning("transaction aborted, the batch will be read again: %s", e)
            self._abort_and_rewind(batch)

    def _commit(self) -> None:
        for _ in range(5):
            try:
                self._producer.commit_transaction(60)
                return
            except KafkaException as e:
                if not e.args[0].retriable():
                    raise
        self._producer.commit_transaction(60)

    def _transform(self, msg: Message, now_ms: int) -> None:
        self.stats["events"] += 1
        try:
            event = self.codec.decode(msg.value(), msg.headers(), ItemChangeEvent)
            _counter(self._events_counters, metrics.EVENTS, event.instance).inc()
        except DecodeError as e:
            self._dead_letter_input(msg, e)
            return
        for result in plan(event, self.index, self.entities, now_ms, self.limits):
            if isinstance(result, RenderFailure):
                self._render_failed(result, now_ms)
            else:
                self._send(DELIVERIES, result.key(), result)
                self.stats["deliveries"] += 1
                _counter(self._planned_counters, metrics.REQUESTS_PLANNED, result.instance).inc()

    def _send(self, topic: str, key: str, record: Record) -> None:
        value, headers = self.codec.encode(record, self.topics[topic])
        self._producer.produce(self.topics[topic], value, key.encode(), headers=headers)
        self._producer.poll(0)

    def _render_failed(self, failure: RenderFailure, now_ms: int) -> None:
        self.stats["render_errors"] += 1
        metrics.RENDER_ERRORS.labels(failure.request.webhook_id).inc()
        r = failure.request
        record = r.attempt_record(0, now_ms, now_ms, Outcome.RENDER_ERROR, error=failure.reason)
        self._send(ATTEMPTS, r.delivery_id, record)
        self._send(DLQ, r.key(), r)

    def _dead_letter_input(self, msg: Message, error: DecodeError) -> None:
        self.stats["undecodable"] += 1
        metrics.UNDECODABLE.labels(msg.topic() or "").inc()
        located = error.at(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
        log.warning("%s", located)
        headers = [
            *header_items(msg.headers()),
            ("hookstream-error", located.reason.encode()),
            ("hookstream-source", f"{msg.topic()}:{msg.partition()}:{msg.offset()}".encode()),
        ]
        self._producer.produce(
            self.topics[ITEM_CHANGES_DLQ], msg.value(), msg.key(), headers=headers
        )

    def _abort_and_rewind(self, batch: list[Message]) -> None:
        try:
            self._producer.abort_transaction(30)
        except KafkaException as e:
            log.error("abort failed: %s", e)
        first: dict[tuple[str, int], int] = {}
        for msg in batch:
            first.setdefault((msg.topic() or "", msg.partition() or 0), msg.offset() or 0)
        for (topic, partition), offset in first.items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException:
                pass  # revoked meanwhile: its new owner starts from the committed offset


def _counter(children: dict[str, Counter], counter: Counter, label: str) -> Counter:
    child = children.get(label)
    if child is None:
        child = children[label] = counter.labels(label)
    return child


def _next_offsets(batch: list[Message]) -> list[TopicPartition]:
    last: dict[tuple[str, int], int] = {}
    for msg in batch:
        last[(msg.topic() or "", msg.partition() or 0)] = msg.offset() or 0
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]


def run_processor(settings: Settings) -> int:
    """`hookstream run processor`: until SIGTERM or SIGINT."""
    processor = Processor(settings)

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: finishing the open transaction and exiting", signum)
        processor.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    health.serve(settings.metrics_port, processor.ready.is_set)
    processor.run()
    log.info("processor stopped: %s", processor.stats)
    return 0


__all__ = ["DeliveryRequest", "Processor", "run_processor"]
