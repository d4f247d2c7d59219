"""Reading the log store: the queries log, one delivery, the queue view.

Shared by the admin API and the CLI. Every query takes the instances the caller may see
(None: all), so a token scoped to one GLPI instance never reads another's rows. Pages
are cut by a cursor on (created_at, delivery_id), newest first: stable while rows are
added, and each page an index range scan whatever its depth.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select

from connectors.logstore.rows import State
from connectors.logstore.schema import attempts, deliveries, items

LIST_COLUMNS = (
    "delivery_id", "instance", "webhook_id", "itemtype", "items_id", "entities_id", "event",
    "method", "url", "state", "tier", "created_at", "next_attempt_at", "attempts",
    "last_status", "last_outcome", "last_error", "last_attempt_at",
)
QUEUED = (State.PENDING, State.WAITING, State.DEAD_LETTERED, State.RENDER_ERROR, State.BLOCKED)


class BadCursor(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Cursor:
    created_at: int
    delivery_id: str

    def encode(self) -> str:
        raw = f"{self.created_at}.{self.delivery_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            created, _, delivery_id = raw.partition(".")
            if not delivery_id:
                raise ValueError("no delivery id")
            return cls(int(created), delivery_id)
        except (ValueError, binascii.Error, UnicodeDecodeError) as e:
            raise BadCursor(f"not a cursor of this API: {text[:40]!r}") from e


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    webhook_id: str | None = None
    instance: str | None = None
    itemtype: str | None = None
    items_id: int | None = None
    state: str | None = None
    status_code: int | None = None
    outcome: str | None = None  # of the last attempt
    since_ms: int | None = None
    until_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def _scope(instances: Sequence[str] | None) -> Any:
    return True if instances is None else deliveries.c.instance.in_(list(instances))


def list_deliveries(
    engine: Engine,
    where: DeliveryFilter,
    instances: Sequence[str] | None = None,
    cursor: Cursor | None = None,
    limit: int = 50,
) -> Page:
    """The queries log: deliveries matching `where`, newest first, one page."""
    c = deliveries.c
    conditions: list[Any] = [_scope(instances)]
    for column, value in (
        (c.webhook_id, where.webhook_id),
        (c.instance, where.instance),
        (c.itemtype, where.itemtype),
        (c.items_id, where.items_id),
        (c.state, where.state),
        (c.last_status, where.status_code),
        (c.last_outcome, where.outcome),
    ):
        if value is not None:
            conditions.append(column == value)
    if where.since_ms is not None:
        conditions.append(c.created_at >= where.since_ms)
    if where.until_ms is not None:
        conditions.append(c.created_at < where.until_ms)
    if cursor is not None:
        conditions.append(
            or_(
                c.created_at < cursor.created_at,
                and_(c.created_at == cursor.created_at, c.delivery_id < cursor.delivery_id),
            )
        )
    query = (
        select(*(c[name] for name in LIST_COLUMNS))
        .where(*conditions)
        .order_by(c.created_at.desc(), c.delivery_id.desc())
        .limit(limit + 1)
    )
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    return Page(rows, None if last is None else
                Cursor(last["created_at"], last["delivery_id"]).encode())


def body_json(data: bytes | None) -> dict[str, Any] | None:
    """A stored body for JSON: UTF-8 text as it is, anything else in base64."""
    if data is None:
        return None
    try:
        return {"encoding": "utf-8", "data": data.decode()}
    except UnicodeDecodeError:
        return {"encoding": "base64", "data": base64.b64encode(data).decode()}


def delivery_detail(
    engine: Engine, delivery_id: str, instances: Sequence[str] | None = None
) -> dict[str, Any] | None:
    """One delivery: its request (credentials redacted) and every attempt, oldest first."""
    with engine.connect() as conn:
        row = conn.execute(
            select(deliveries).where(deliveries.c.delivery_id == delivery_id, _scope(instances))
        ).first()
        if row is None:
            return None
        tried = conn.execute(
            select(attempts)
            .where(attempts.c.delivery_id == delivery_id)
            .order_by(attempts.c.hop, attempts.c.finished_at, attempts.c.kafka_partition,
                      attempts.c.kafka_offset)
        ).all()
    d = row._mapping
    detail = {name: d[name] for name in LIST_COLUMNS}
    detail["event_id"] = d["event_id"]
    detail["request"] = {
        "method": d["method"],
        "url": d["url"],
        "headers": json.loads(d["headers"]) if d["headers"] else {},
        "body": body_json(d["body"]),
        "body_size": d["body_size"],
        "body_sha256": d["body_sha256"],
        "body_truncated": bool(d["body_truncated"]),
    }
    detail["attempt_log"] = [
        {
            "attempt": a.attempt,
            "started_at": a.started_at,
            "finished_at": a.finished_at,
            "duration_ms": a.finished_at - a.started_at,
            "outcome": a.outcome,
            "status_code": a.status_code,
            "error": a.error,
            "response_headers": json.loads(a.response_headers),
            "response_body": body_json(a.response_body),
            "response_size": a.response_size,
            "response_truncated": bool(a.response_truncated),
        }
        for a in tried
    ]
    return detail


def queue_view(
    engine: Engine, instances: Sequence[str] | None = None, now_ms: int = 0
) -> dict[str, Any]:
    """Counts of pending, waiting per tier, dead-lettered, render errors and blocked
    deliveries by instance and webhook; the age of the oldest undelivered one."""
    c = deliveries.c
    query = (
        select(c.instance, c.webhook_id, c.state, c.tier, func.count(), func.min(c.created_at))
        .where(c.state.in_([str(s) for s in QUEUED]), _scope(instances))
        .group_by(c.instance, c.webhook_id, c.state, c.tier)
        .order_by(c.instance, c.webhook_id, c.state, c.tier)
    )
    with engine.connect() as conn:
        groups = conn.execute(query).all()
    totals: dict[str, Any] = {str(s): 0 for s in QUEUED if s is not State.WAITING}
    totals["waiting"] = {}
    rows, oldest = [], None
    for instance, webhook_id, state, tier, count, first_ms in groups:
        rows.append({"instance": instance, "webhook_id": webhook_id, "state": state,
                     "tier": tier, "count": count, "oldest_created_at": first_ms})
        if state == State.WAITING:
            key = tier or "unknown"
            totals["waiting"][key] = totals["waiting"].get(key, 0) + count
        else:
            totals[state] += count
        if state in (State.PENDING, State.WAITING):
            oldest = first_ms if oldest is None else min(oldest, first_ms)
    return {
        "totals": totals,
        "groups": rows,
        "oldest_undelivered_at": oldest,
        "oldest_undelivered_age_s": None if oldest is None else max(0, now_ms - oldest) / 1000,
    }


def last_item(
    engine: Engine, instance: str, itemtype: str, items_id: int,
    instances: Sequence[str] | None = None,
) -> dict[str, Any] | None:
    """The last change seen of an item, as an event line (`hookstream produce`'s format)."""
    if instances is not None and instance not in instances:
        return None
    c = items.c
    with engine.connect() as conn:
        row = conn.execute(select(items).where(
            c.instance == instance, c.itemtype == itemtype, c.items_id == items_id)).first()
    if row is None:
        return None
    return {
        "itemtype": row.itemtype,
        "items_id": row.items_id,
        "event": row.event,
        "entities_id": row.entities_id,
        "item": json.loads(row.item),
        "parent_item": None if row.parent_item is None else json.loads(row.parent_item),
    }
