"""Operational events: what happened to the platform itself, on hookstream.operations.

Three types, each produced where it is known: `webhook.disabled` by the log store (it
reads every attempt, so it alone sees a webhook's target fail everywhere), and
`delivery.dead_lettered` and `circuit.opened` by the delivery process. An operator
subscribes a webhook to them with `itemtype: Hookstream` and the type as its `event`
(webhooks about webhooks); `as_item_change` turns one into the event the processor
matches. Event ids are stable (derived from what the event is about), so an event
produced twice after a crash gives the same delivery id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from hookstream.records.events import ItemChangeEvent, Record

OPERATIONAL_ITEMTYPE = "Hookstream"  # the itemtype of webhooks about webhooks


class OperationType(StrEnum):
    WEBHOOK_DISABLED = "webhook.disabled"
    DELIVERY_DEAD_LETTERED = "delivery.dead_lettered"
    CIRCUIT_OPENED = "circuit.opened"


@dataclass(frozen=True, slots=True)
class OperationalEvent(Record):
    """One event on hookstream.operations, keyed by the webhook it is about."""

    schema_name: ClassVar[str] = "OperationalEvent"

    event_id: str
    type: str  # an OperationType
    at_ms: int
    instance: str  # the instance of the webhook concerned
    webhook_id: str
    reason: str
    delivery_id: str | None = None  # delivery.dead_lettered, and the delivery that opened a circuit
    origin: str | None = None  # circuit.opened: scheme://host:port, never a path or credentials


def operational_event(
    kind: OperationType, at_ms: int, instance: str, webhook_id: str, reason: str,
    about: str, *, delivery_id: str | None = None, origin: str | None = None,
) -> OperationalEvent:
    """An event whose id is derived from its type, webhook and `about` (what makes it
    unique: the disabled definition's version, the dead-lettered delivery and hop, the
    origin and when its circuit opened)."""
    digest = hashlib.sha256("\x1f".join((kind, webhook_id, about)).encode()).hexdigest()
    return OperationalEvent(digest[:32], str(kind), at_ms, instance, webhook_id, reason,
                            delivery_id, origin)


def as_item_change(event: OperationalEvent) -> ItemChangeEvent:
    """The event as the processor matches it: itemtype `Hookstream`, the type as the
    event, the instance of the webhook concerned, the event's fields as the item."""
    item = {"id": 0, "type": event.type, "at_ms": event.at_ms, "webhook_id": event.webhook_id,
            "reason": event.reason, "delivery_id": event.delivery_id, "origin": event.origin}
    return ItemChangeEvent(
        event_id=event.event_id,
        instance=event.instance,
        itemtype=OPERATIONAL_ITEMTYPE,
        items_id=0,
        event=event.type,
        entities_id=0,
        occurred_at=event.at_ms,
        item=json.dumps(item, separators=(",", ":")),
        source="hookstream",
    )
