"""Topic records to log store rows: the pure part of the log store.

Each record read from hookstream.deliveries, a retry tier, the DLQ or hookstream.attempts
becomes a `DeliveryRow` fragment (and an `AttemptRow` for an attempt). Fragments of one
delivery are merged by `merge`, which is commutative and idempotent, so the rows do not
depend on the order in which the topics are read: reading them again from the start
(`hookstream logstore rebuild`) gives the same rows. The SQL upsert in `store.py` applies
the same rule inside the database.

Which fragment sets a delivery's state: the one with the highest `StateKey`. A copy of a
delivery carries a hop counter, raised by every forward (retry tier, DLQ, redrive), and
an attempt record carries the hop of the copy it attempted. So in hop order: copy h
(order 2h), its attempt (2h + 1), the copy it forwarded (2h + 2). A DLQ copy (hop h) is
ordered with the attempt that sent it there (2h - 1) but below it, so that an attempt's
own verdict (blocked, render error) is kept rather than the generic `dead_lettered`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

import orjson

from hookstream.policy.redact import redact_headers
from hookstream.records import AttemptRecord, DeliveryRequest, ItemChangeEvent, Outcome


class State(StrEnum):
    PENDING = "pending"
    WAITING = "waiting"  # on a retry tier (column `tier`)
    DELIVERED = "delivered"
    DEAD_LETTERED = "dead_lettered"
    RENDER_ERROR = "render_error"
    BLOCKED = "blocked"


UNDELIVERED = (State.PENDING, State.WAITING)

# Which topic a request copy was read from.
class Source(StrEnum):
    DELIVERIES = "deliveries"
    TIER = "tier"
    DLQ = "dlq"


_ATTEMPT_STATE = {
    Outcome.DELIVERED: State.DELIVERED,
    Outcome.RENDER_ERROR: State.RENDER_ERROR,
    Outcome.BLOCKED: State.BLOCKED,
    Outcome.DEAD_LETTERED: State.DEAD_LETTERED,
    Outcome.RETRY_SCHEDULED: State.WAITING,
    Outcome.DEFERRED: State.WAITING,
    Outcome.CIRCUIT_OPEN: State.WAITING,
    Outcome.CHALLENGE_FAILED: State.WAITING,
    # Outcome.FAILED (a forced send that failed) leaves the delivery's route as it was.
}
# Attempts that did not spend one of the webhook's tries.
NOT_SPENT = (Outcome.DEFERRED, Outcome.CIRCUIT_OPEN, Outcome.RENDER_ERROR)
# Attempts that sent no request to the target: not counted, not numbered (the queue's
# "Attempts" column and the delivery page's "Attempt N" count requests sent).
NO_REQUEST = (*NOT_SPENT, Outcome.CHALLENGE_FAILED, Outcome.BLOCKED)


@dataclass(frozen=True, slots=True, order=True)
class StateKey:
    order: int
    rank: int  # 0 = a request copy, 1 = an attempt (same order: the attempt's verdict wins)
    at_ms: int
    state: str  # last: a full tie still has one answer


@dataclass(frozen=True, slots=True)
class Body:
    """A body as stored: at most `limit` bytes, with the full size and hash."""

    data: bytes
    size: int
    sha256: str
    truncated: bool

    @classmethod
    def of(cls, data: bytes, limit: int) -> Body:
        return cls(data[:limit], len(data), hashlib.sha256(data).hexdigest(), len(data) > limit)


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """What the log store knows of one delivery; None = not known from this fragment."""

    delivery_id: str
    instance: str
    webhook_id: str
    itemtype: str
    items_id: int
    event: str
    created_at: int
    entities_id: int | None = None
    event_id: str | None = None
    method: str | None = None
    url: str | None = None
    headers: str | None = None  # JSON, credentials redacted
    body: Body | None = None
    state_key: StateKey | None = None
    tier: str | None = None
    next_attempt_at: int | None = None
    last_error: str | None = None

    @property
    def state(self) -> str | None:
        return None if self.state_key is None else self.state_key.state


@dataclass(frozen=True, slots=True)
class AttemptRow:
    partition: int  # position on hookstream.attempts: one record, one row
    offset: int
    delivery_id: str
    attempt: int
    hop: int
    started_at: int
    finished_at: int
    outcome: str
    status_code: int | None
    error: str | None
    response_headers: str  # JSON
    response_body: Body | None
    trigger: str = ""
    trigger_tier: str | None = None
    actor: str | None = None
    request_method: str | None = None
    request_url: str | None = None
    request_headers: str | None = None  # JSON, credentials redacted
    body_sha256: str | None = None
    reason: str | None = None
    next_step: str | None = None
    retry_policy: str | None = None  # the policy that judged the answer; None before v4

    @property
    def spent(self) -> bool:
        return self.outcome not in NOT_SPENT


def _json(data: dict[str, str]) -> str:
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()


def from_request(
    request: DeliveryRequest, source: Source, tier: str | None, body_limit: int
) -> DeliveryRow:
    """The fragment of a request copy read from the deliveries topic, a tier or the DLQ."""
    if source is Source.DELIVERIES:
        key = StateKey(2 * request.hop, 0, request.created_at, State.PENDING)
        next_at: int | None = max(request.created_at, request.not_before)
    elif source is Source.TIER:
        key = StateKey(2 * request.hop, 0, request.not_before, State.WAITING)
        next_at = request.not_before
    else:
        key = StateKey(2 * request.hop - 1, 0, request.created_at, State.DEAD_LETTERED)
        next_at = None
    return DeliveryRow(
        delivery_id=request.delivery_id,
        instance=request.instance,
        webhook_id=request.webhook_id,
        itemtype=request.itemtype,
        items_id=request.items_id,
        event=request.event,
        created_at=request.created_at,
        entities_id=request.entities_id,
        event_id=request.event_id,
        method=request.method,
        url=request.url,
        headers=_json(redact_headers(request.headers)),
        body=Body.of(request.body, body_limit),
        state_key=key,
        tier=tier,
        next_attempt_at=next_at,
        last_error=request.last_error,
    )


def from_attempt(
    record: AttemptRecord, partition: int, offset: int, body_limit: int
) -> tuple[DeliveryRow, AttemptRow]:
    """The fragment and the attempt row of one attempt record."""
    state = _ATTEMPT_STATE.get(Outcome(record.outcome))
    key = None if state is None else StateKey(2 * record.hop + 1, 1, record.finished_at, state)
    fragment = DeliveryRow(
        delivery_id=record.delivery_id,
        instance=record.instance,
        webhook_id=record.webhook_id,
        itemtype=record.itemtype,
        items_id=record.items_id,
        event=record.event,
        created_at=record.started_at,  # a request copy, when read, gives an earlier time
        state_key=key,
        # The reason the DLQ record carries (`hookstream dlq list`), else the error.
        last_error=None if state is None else (record.reason or record.error),
    )
    attempt = AttemptRow(
        partition=partition,
        offset=offset,
        delivery_id=record.delivery_id,
        attempt=record.attempt,
        hop=record.hop,
        started_at=record.started_at,
        finished_at=record.finished_at,
        outcome=record.outcome,
        status_code=record.status_code,
        error=record.error,
        response_headers=_json(record.response_headers),
        response_body=None
        if record.response_body is None
        else Body.of(record.response_body, body_limit),
        trigger=record.trigger,
        trigger_tier=record.trigger_tier,
        actor=record.actor,
        request_method=record.request_method,
        request_url=record.request_url,
        # Redacted again: records written before v3 never carry these; a sender of another
        # release might not have redacted.
        request_headers=_json(redact_headers(record.request_headers))
        if record.request_headers else None,
        body_sha256=record.body_sha256,
        reason=record.reason,
        next_step=record.next_step,
        retry_policy=record.retry_policy,
    )
    return fragment, attempt


def merge(a: DeliveryRow, b: DeliveryRow) -> DeliveryRow:
    """Both fragments of one delivery as one: commutative and idempotent."""
    assert a.delivery_id == b.delivery_id
    # The request fields are the same in every copy of a delivery; a copy's beat an
    # attempt's identifying fields only by being there.
    request = a if a.url is not None else b
    other = b if request is a else a
    winner = a
    if b.state_key is not None and (a.state_key is None or b.state_key > a.state_key):
        winner = b
    return DeliveryRow(  # not dataclasses.replace: this runs for every record
        request.delivery_id, request.instance, request.webhook_id, request.itemtype,
        request.items_id, request.event, min(a.created_at, b.created_at),
        request.entities_id if request.entities_id is not None else other.entities_id,
        request.event_id, request.method, request.url, request.headers, request.body,
        winner.state_key, winner.tier, winner.next_attempt_at, winner.last_error,
    )


def merge_all(rows: list[DeliveryRow]) -> list[DeliveryRow]:
    """One fragment per delivery, in first-seen order."""
    merged: dict[str, DeliveryRow] = {}
    for row in rows:
        seen = merged.get(row.delivery_id)
        merged[row.delivery_id] = row if seen is None else merge(seen, row)
    return list(merged.values())


@dataclass(frozen=True, slots=True)
class ItemRow:
    """The last change of an item seen: the latest (occurred_at, event_id) wins."""

    event: ItemChangeEvent

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.event.instance, self.event.itemtype, self.event.items_id)

    @property
    def order(self) -> tuple[int, str]:
        return (self.event.occurred_at, self.event.event_id)


def latest_items(rows: list[ItemRow]) -> list[ItemRow]:
    """One row per item: the latest of the batch."""
    latest: dict[tuple[str, str, int], ItemRow] = {}
    for row in rows:
        seen = latest.get(row.key)
        if seen is None or row.order > seen.order:
            latest[row.key] = row
    return list(latest.values())
