"""Typed, immutable messages: one frozen dataclass per topic record.

Field names equal the Avro fields in schemas/, so a record converts to and from the
codec's plain dict by name. Times are Unix milliseconds (`*_at`, `not_before`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, ClassVar, TypeVar


class ItemEvent(StrEnum):
    NEW = "new"
    UPDATE = "update"
    DELETE = "delete"


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY_SCHEDULED = "retry_scheduled"
    DEAD_LETTERED = "dead_lettered"
    RENDER_ERROR = "render_error"
    BLOCKED = "blocked"
    CHALLENGE_FAILED = "challenge_failed"
    CIRCUIT_OPEN = "circuit_open"
    DEFERRED = "deferred"  # the target's queue is full: moved to a retry tier, no attempt spent
    FAILED = "failed"  # a forced send that failed; the delivery's route is unchanged


class Trigger(StrEnum):
    """What made an attempt happen (AttemptRecord.trigger; empty in records before v3)."""

    FIRST = "first"  # the first copy on hookstream.deliveries
    RETRY = "retry"  # a copy read from a retry tier (`trigger_tier`)
    PROBE = "probe"  # the single request of a half-open circuit
    REDRIVE = "redrive"  # a copy redriven from the DLQ onto hookstream.deliveries
    MANUAL = "manual"  # "send now" by a token (`actor`)


R = TypeVar("R", bound="Record")


class Record:
    """Conversion between a dataclass and the codec's dict, by field name."""

    schema_name: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _field_names(type(self))}

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        if len(data) == len(_field_names(cls)):  # the usual case: exactly the fields
            try:
                return cls(**data)
            except TypeError:
                pass  # another field set of the same size: by name below
        return cls(**{k: data[k] for k in _field_names(cls) if k in data})


# dataclasses.fields() builds a tuple of Field objects on every call; records convert on
# every message, so each class's names are looked up once.
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    """The dataclass field names of `cls`, in order (cached per class)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


@dataclass(frozen=True, slots=True)
class ItemChangeEvent(Record):
    schema_name: ClassVar[str] = "ItemChangeEvent"

    event_id: str
    instance: str
    itemtype: str
    items_id: int
    event: str
    entities_id: int | None
    occurred_at: int
    item: str
    parent_item: str | None = None
    source: str = "unknown"
    changed_by: int | None = None  # GLPI user id of who made it, where told (changed_by.py)

    def key(self) -> str:
        return f"{self.instance}:{self.itemtype}:{self.items_id}"


def event_id_for(instance: str, itemtype: str, items_id: int, event: str, item_json: str) -> str:
    """A stable id: the same change read twice (same item state) gets the same id."""
    digest = hashlib.sha256(
        "\x1f".join((instance, itemtype, str(items_id), event, item_json)).encode()
    ).hexdigest()
    return digest[:32]


def make_event(
    instance: str,
    itemtype: str,
    items_id: int,
    event: str,
    item: dict[str, Any],
    occurred_at: int,
    entities_id: int | None = None,
    parent_item: dict[str, Any] | None = None,
    source: str = "unknown",
    changed_by: int | None = None,
) -> ItemChangeEvent:
    """Build an event from decoded GLPI objects; the entity defaults to item.entity.id."""
    if event not in ItemEvent.__members__.values():
        raise ValueError(f"event must be one of new, update, delete, not {event!r}")
    if entities_id is None and isinstance(item.get("entity"), dict):
        entities_id = item["entity"].get("id")
    item_json = json.dumps(item, ensure_ascii=False)
    return ItemChangeEvent(
        event_id=event_id_for(instance, itemtype, items_id, event, item_json),
        instance=instance,
        itemtype=itemtype,
        items_id=items_id,
        event=event,
        entities_id=entities_id,
        occurred_at=occurred_at,
        item=item_json,
        parent_item=None if parent_item is None else json.dumps(parent_item, ensure_ascii=False),
        source=source,
        changed_by=changed_by,
    )


@dataclass(frozen=True, slots=True)
class DeliveryRequest(Record):
    schema_name: ClassVar[str] = "DeliveryRequest"

    delivery_id: str
    webhook_id: str
    instance: str
    event_id: str
    itemtype: str
    items_id: int
    event: str
    method: str
    url: str
    body: bytes
    created_at: int
    headers: dict[str, str] = field(default_factory=dict)
    entities_id: int | None = None
    webhook_version: int = 0
    attempt: int = 0
    not_before: int = 0
    retry_tier: int = 0
    hop: int = 0
    last_error: str | None = None
    last_status: int | None = None

    def key(self) -> str:
        return delivery_key(self.webhook_id, self.itemtype, self.items_id)

    def evolve(self, **changes: Any) -> DeliveryRequest:
        return replace(self, **changes)

    def attempt_record(
        self, attempt: int, started_at: int, finished_at: int, outcome: str, **details: Any
    ) -> AttemptRecord:
        """The record of an attempt at this delivery; `details` are AttemptRecord's optional
        fields (status_code, error, response_headers, response_body)."""
        return AttemptRecord(
            delivery_id=self.delivery_id,
            webhook_id=self.webhook_id,
            instance=self.instance,
            itemtype=self.itemtype,
            items_id=self.items_id,
            event=self.event,
            attempt=attempt,
            started_at=started_at,
            finished_at=finished_at,
            outcome=outcome,
            hop=self.hop,
            **details,
        )


def delivery_key(webhook_id: str, itemtype: str, items_id: int) -> str:
    """A delivery request's Kafka key: one webhook's requests of one item share a partition."""
    return f"{webhook_id}:{itemtype}:{items_id}"


def delivery_id_for(event_id: str, webhook_id: str) -> str:
    """Stable across retries and redrives, and the same if a processor repeats a batch."""
    return hashlib.sha256(f"{event_id}\x1f{webhook_id}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class AttemptRecord(Record):
    schema_name: ClassVar[str] = "AttemptRecord"

    delivery_id: str
    webhook_id: str
    instance: str
    itemtype: str
    items_id: int
    event: str
    attempt: int
    started_at: int
    finished_at: int
    outcome: str
    status_code: int | None = None
    error: str | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes | None = None
    # the hop of the request copy attempted: orders attempts among the copies (log store)
    hop: int = 0
    trigger: str = ""  # a Trigger
    trigger_tier: str | None = None
    actor: str | None = None  # the token name of a manual send
    # The request as sent on the wire (credentials redacted): None/empty when none was made.
    request_method: str | None = None
    request_url: str | None = None
    request_headers: dict[str, str] = field(default_factory=dict)
    body_sha256: str | None = None
    reason: str | None = None  # why the delivery was retried or dead-lettered
    next_step: str | None = None  # the decision taken next, in a sentence
    # The RetryPolicy that judged the answer (or its absence); None when none was asked:
    # blocked, circuit open, deferred, CRA challenge failed, render error.
    retry_policy: str | None = None


@dataclass(frozen=True, slots=True)
class EntityRecord(Record):
    schema_name: ClassVar[str] = "Entity"

    instance: str
    id: int
    parent_id: int | None
    name: str
    completename: str
    ancestors: list[int] = field(default_factory=list)

    def key(self) -> str:
        return f"{self.instance}:{self.id}"
