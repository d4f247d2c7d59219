"""io/gauges.py with a real consumer on the real broker: lag per partition from positions
and high watermarks, due and waiting retries per tier, DLQ depth, the oldest undelivered
age, circuit state per origin and webhook info."""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass

from confluent_kafka import TopicPartition

from hookstream.config import Settings
from hookstream.io import consumer, create_topics, flush, gauges, metrics, producer
from hookstream.policy import CircuitBreakers
from hookstream.records import DELIVERIES, DLQ, Codec, retry_topics
from tests.integration.harness import request_for, wait_until


@dataclass(frozen=True)
class Hook:
    id: str
    instance: str


def test_gauges_from_a_real_consumer(settings: Settings) -> None:
    settings = dataclasses.replace(settings, metrics_interval_s=0.2)
    create_topics(settings)
    deliveries, dlq, tier = (settings.topic(DELIVERIES), settings.topic(DLQ),
                             retry_topics(settings)[0])
    codec, prod = Codec(), producer(settings)
    old_ms = int(time.time() * 1000) - 60_000
    for topic, partition, count in ((deliveries, 0, 5), (tier, 0, 4), (tier, 1, 3), (dlq, 1, 2)):
        for n in range(count):
            request = dataclasses.replace(request_for("hook-g", "https://t.example/x", n),
                                          created_at=old_ms)
            value, headers = codec.encode(request, topic)
            prod.produce(topic, value, b"k", partition=partition, headers=headers)
    flush(prod)

    group = f"hookstream-test-{uuid.uuid4().hex[:8]}"
    cons = consumer(settings, group)
    cons.assign([TopicPartition(deliveries, 0, 0)])
    got = []
    while len(got) < 2:  # two records of deliveries[0] read: its position is 2
        got += cons.consume(2 - len(got), 1.0)
    # the tiers are assigned only now, so none of their records has been read
    cons.incremental_assign([TopicPartition(tier, 0, 0), TopicPartition(tier, 1, 0)])
    circuits = CircuitBreakers(failure_threshold=1)
    circuits.record("https://down.example:443", False, 0.0)
    paused = {(tier, 1)}  # its head is not due: what the delivery consumer pauses
    webhooks = {"hook-g": Hook("hook-g", "glpi-a")}

    # the series of this consumer: earlier tests' consumers report the same tier labels
    owner, tier_label = gauges.owner_of(group, cons), tier.rsplit(".", 1)[1]

    def reported() -> bool:
        gauges.report(settings, group, cons, paused, circuits, webhooks)
        # every figure below, not only the first ones: they are refreshed in the background
        return metrics.CONSUMER_LAG.value(group, deliveries, "0") == 3.0 \
            and metrics.DLQ_DEPTH.value(dlq) == 2.0 \
            and metrics.RETRY_DUE.value(tier_label, owner=owner) == 4.0

    try:
        assert wait_until(reported, timeout_s=20)
        assert metrics.CONSUMER_LAG.value(group, tier, "0") == 4.0
        assert metrics.CONSUMER_LAG.value(group, tier, "1") == 3.0
        assert metrics.RETRY_WAITING.value(tier_label, owner=owner) == 3.0
        assert wait_until(lambda: (gauges.report(settings, group, cons, paused, circuits,
                                                 webhooks)
                                   or (metrics.OLDEST_UNDELIVERED.value(deliveries) or 0) >= 59))
        assert (metrics.OLDEST_UNDELIVERED.value(deliveries) or 0) < 120
        assert metrics.CIRCUIT_OPEN.value("https://down.example:443", owner=owner) == 1.0
        assert metrics.WEBHOOK_INFO.value("glpi-a", "hook-g", owner=owner) == 1.0
    finally:
        cons.close()
