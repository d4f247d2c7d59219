"""The operational events the delivery process knows of: delivery.dead_lettered and
circuit.opened, on hookstream.operations (keyed by webhook id).

A dead-lettered delivery's event goes out with its attempt and DLQ records (the same
outcome, offset stored once all three are acknowledged: at least once, same event id
again after a crash). A circuit's opening is produced on its own, best effort: it is a
notice, and the circuit itself is process-local.

No event is made of a delivery of a webhook about webhooks (itemtype Hookstream): an
operational webhook whose receiver fails would otherwise feed itself events about its
own failures without end. Its failures are in its attempts, the DLQ and the console.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from connectors.delivery.ports import RecordSink
from hookstream.errors import KafkaFailed
from hookstream.io import kafka_errors, metrics
from hookstream.policy import CircuitState
from hookstream.records import (
    OPERATIONAL_ITEMTYPE,
    AttemptRecord,
    Codec,
    DeliveryRequest,
    OperationalEvent,
    OperationType,
    operational_event,
)

log = logging.getLogger(__name__)


class OperationalEvents:
    def __init__(self, codec: Codec, topic: str, producer: RecordSink):
        self._codec = codec
        self._topic = topic
        self._producer = producer

    def dead_lettered(self, request: DeliveryRequest, attempt: AttemptRecord
                      ) -> list[tuple[str, bytes, Any, Any]]:
        """The event of a delivery sent to the DLQ, as a record to produce with its outcome
        (none for an operational webhook's delivery)."""
        if request.itemtype == OPERATIONAL_ITEMTYPE:
            return []
        reason = attempt.reason or attempt.error or (
            f"HTTP {attempt.status_code}" if attempt.status_code is not None else "no answer")
        event = operational_event(
            OperationType.DELIVERY_DEAD_LETTERED, attempt.finished_at, request.instance,
            request.webhook_id, reason, f"{request.delivery_id}:{request.hop}",
            delivery_id=request.delivery_id)
        metrics.OPERATIONAL_EVENTS.labels(event.type).inc()
        return [self._encoded(event)]

    def circuit_recorded(self, origin: str, before: CircuitState, after: CircuitState,
                         request: DeliveryRequest, at_ms: int) -> None:
        """After an outcome was charged to `origin`'s circuit: circuit.opened when it went
        from closed to open (a failed probe re-opening it is not news)."""
        if before is not CircuitState.CLOSED or after is not CircuitState.OPEN:
            return
        if request.itemtype == OPERATIONAL_ITEMTYPE:
            return
        event = operational_event(
            OperationType.CIRCUIT_OPENED, at_ms, request.instance, request.webhook_id,
            f"{origin} failed the consecutive requests that open its circuit",
            f"{origin}:{at_ms}", delivery_id=request.delivery_id, origin=origin)
        metrics.OPERATIONAL_EVENTS.labels(event.type).inc()
        topic, key, value, headers = self._encoded(event)
        try:
            with kafka_errors(f"producing {event.type}"):
                self._producer.produce(topic, value, key, headers=headers,
                                       on_delivery=_logged_if_lost(event))
        except (BufferError, KafkaFailed) as e:  # a notice: never worth holding a delivery
            log.warning("operational event %s about %s not produced: %s", event.type,
                        event.webhook_id, e)

    def _encoded(self, event: OperationalEvent) -> tuple[str, bytes, Any, Any]:
        value, headers = self._codec.encode(event, self._topic)
        return (self._topic, event.webhook_id.encode(), value, headers)


def _logged_if_lost(event: OperationalEvent) -> Callable[[Any, Any], None]:
    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            log.warning("operational event %s about %s not produced: %s", event.type,
                        event.webhook_id, err)
    return on_delivery
