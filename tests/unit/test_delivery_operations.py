"""The delivery process's operational events, without a broker (tests/unit/delivery_fakes):
delivery.dead_lettered with the outcome that dead-letters a delivery, circuit.opened when a
circuit goes from closed to open, and neither for a webhook about webhooks."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from connectors.delivery.http import HttpResult
from hookstream.records import OPERATIONS, DeliveryRequest, OperationalEvent
from tests.unit.delivery_fakes import (
    ATTEMPTS,
    CODEC,
    DELIVERIES,
    DLQ,
    FakeConsumer,
    FakeProducer,
    RecordingSender,
    request,
    run_until,
    service,
    settings_for,
    webhook,
)

URL = "https://hooks.example.com/in"
OPS_URL = "https://ops.example.com/in"


def operational(r: DeliveryRequest) -> DeliveryRequest:
    """A delivery of a webhook about webhooks (the delivery process reads its itemtype
    from the request)."""
    return dataclasses.replace(r, itemtype="Hookstream", event="delivery.dead_lettered")


def events(producer: FakeProducer) -> list[OperationalEvent]:
    return [CODEC.decode(v, h, OperationalEvent) for t, v, h in producer.records
            if t == OPERATIONS]


def test_a_dead_letter_is_announced_with_its_outcome_but_not_an_operational_one(
        tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    consumer, producer = FakeConsumer(), FakeProducer()
    sender = RecordingSender(lambda r, t: HttpResult(410))
    consumer.add(DELIVERIES, 0, request("w1", URL, 1))
    consumer.add(DELIVERIES, 0, operational(request("ops", OPS_URL, 2)))
    svc = service(settings, consumer, producer, sender, webhook(settings, "w1", URL),
                  webhook(settings, "ops", OPS_URL))
    asyncio.run(run_until(svc, lambda: consumer.stored.get((DELIVERIES, 0)) == 2))
    assert sorted(d.webhook_id for d in producer.on(DLQ)) == ["ops", "w1"]
    [event] = events(producer)
    assert (event.type, event.webhook_id, event.instance, event.delivery_id) == (
        "delivery.dead_lettered", "w1", "glpi-a", "w1-1")
    assert "410" in event.reason
    # produced with the attempt and DLQ records: an offset is stored once all three are
    assert [t for t, _, _ in producer.records[:3]].count(OPERATIONS) == 1


def test_a_circuit_opening_is_announced_once(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, circuit_failure_threshold=2)
    consumer, producer = FakeConsumer(), FakeProducer()
    sender = RecordingSender(lambda r, t: HttpResult(503))
    for n in range(4):
        consumer.add(DELIVERIES, 0, request("w1", URL, n))
    svc = service(settings, consumer, producer, sender, webhook(settings, "w1", URL,
                                                                sent_try=10))
    asyncio.run(run_until(svc, lambda: consumer.stored.get((DELIVERIES, 0)) == 4))
    assert len(sender.sent) == 2  # then the circuit is open: no request
    [event] = events(producer)
    assert (event.type, event.webhook_id, event.origin, event.delivery_id) == (
        "circuit.opened", "w1", "https://hooks.example.com:443", "w1-1")


def test_an_operational_webhook_opening_its_circuit_says_nothing(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, circuit_failure_threshold=1)
    consumer, producer = FakeConsumer(), FakeProducer()
    sender = RecordingSender(lambda r, t: HttpResult(503))
    consumer.add(DELIVERIES, 0, operational(request("ops", OPS_URL, 1)))
    svc = service(settings, consumer, producer, sender,
                  webhook(settings, "ops", OPS_URL, sent_try=10))
    asyncio.run(run_until(svc, lambda: consumer.stored.get((DELIVERIES, 0)) == 1))
    assert len(sender.sent) == 1 and svc.circuits.not_closed()  # opened, silently
    assert events(producer) == []


class FullForOperations(FakeProducer):
    """A local queue that is full when the circuit's notice is produced."""

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None:
        if topic == OPERATIONS:
            raise BufferError("Local: Queue full")
        super().produce(topic, *args, **kwargs)


def test_a_circuit_notice_that_cannot_be_produced_holds_nothing_up(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, circuit_failure_threshold=1)
    consumer, producer = FakeConsumer(), FullForOperations()
    sender = RecordingSender(lambda r, t: HttpResult(503))
    for n in range(2):
        consumer.add(DELIVERIES, 0, request("w1", URL, n))
    svc = service(settings, consumer, producer, sender, webhook(settings, "w1", URL,
                                                                sent_try=10))
    asyncio.run(run_until(svc, lambda: consumer.stored.get((DELIVERIES, 0)) == 2))
    assert len(sender.sent) == 1 and svc.circuits.not_closed()
    assert [a.outcome for a in producer.on(ATTEMPTS)] == ["retry_scheduled", "circuit_open"]
