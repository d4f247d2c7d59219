"""Reading the log store: the queries log, one delivery, the queue view.

Shared by the admin API and the CLI. Every query takes the instances the caller may see
(None: all), so a token scoped to one GLPI instance never reads another's rows. Pages
are cut by a cursor on (created_at, delivery_id), newest first: stable while rows are
added, and each page an index range scan whatever its depth (no OFFSET). A cursor reads
older rows, or with `newer` the rows just before it, so a page links both ways.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Select, func, or_, select

from connectors.logstore.rows import State
from connectors.logstore.schema import QUEUED_STATES, attempts, deliveries, items, queued
from hookstream.records import Outcome

LIST_COLUMNS = (
    "delivery_id", "instance", "webhook_id", "itemtype", "items_id", "entities_id", "event",
    "method", "url", "state", "tier", "created_at", "next_attempt_at", "attempts",
    "last_status", "last_outcome", "last_error", "last_attempt_at",
)
QUEUED = tuple(State(s) for s in QUEUED_STATES)  # the deliveries the queue view counts
STATES = tuple(str(s) for s in State)
OUTCOMES = tuple(str(o) for o in Outcome)
HEX = frozenset("0123456789abcdef")


class BadCursor(ValueError):
    pass


class BadFilter(ValueError):
    """A filter value no delivery can have (an unknown state, a status code that is not
    HTTP's): the caller's mistake, said plainly rather than answered with nothing."""


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
    since_ms: int | None = None  # created at or after
    until_ms: int | None = None  # created before
    id_prefix: str | None = None  # lowercase hex: the start of a delivery id

    def check(self) -> None:
        """BadFilter naming every value no delivery can match."""
        problems = []
        if self.state is not None and self.state not in STATES:
            problems.append(f"state: one of {', '.join(STATES)}")
        if self.outcome is not None and self.outcome not in OUTCOMES:
            problems.append(f"outcome: one of {', '.join(OUTCOMES)}")
        if self.status_code is not None and not 100 <= self.status_code <= 599:
            problems.append("status_code: an HTTP status, 100 to 599")
        if self.id_prefix is not None and not (0 < len(self.id_prefix) <= 64
                                               and set(self.id_prefix) <= HEX):
            problems.append("delivery id: 1 to 64 hexadecimal digits")
        if problems:
            raise BadFilter("; ".join(problems))


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None  # older rows
    prev_cursor: str | None = None  # newer rows (pass with `newer`)


def _scope(instances: Sequence[str] | None, instance: Any = deliveries.c.instance) -> Any:
    return True if instances is None else instance.in_(list(instances))


def page_query(where: DeliveryFilter, instances: Sequence[str] | None,
               cursor: Cursor | None, limit: int, newer: bool = False) -> Select[Any]:
    """The SELECT of one page: `limit + 1` rows (one more tells whether a page follows),
    newest first, or with `newer` oldest first from the cursor up."""
    where.check()
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
    if where.id_prefix is not None:
        # A range on the key (an index seek on both databases), not LIKE: SQLite's LIKE
        # ignores case and skips the index; "g" follows every hex digit.
        conditions += [c.delivery_id >= where.id_prefix, c.delivery_id < where.id_prefix + "g"]
    if cursor is not None:
        # The bound on created_at alone lets both planners seek the index; the OR settles
        # rows of the same millisecond by id.
        at, key = cursor.created_at, cursor.delivery_id
        conditions += ([c.created_at >= at, or_(c.created_at > at, c.delivery_id > key)]
                       if newer else
                       [c.created_at <= at, or_(c.created_at < at, c.delivery_id < key)])
    order = ((c.created_at.asc(), c.delivery_id.asc()) if newer
             else (c.created_at.desc(), c.delivery_id.desc()))
    return (select(*(c[name] for name in LIST_COLUMNS))
            .where(*conditions).order_by(*order).limit(limit + 1))


def _at(row: dict[str, Any]) -> str:
    return Cursor(row["created_at"], row["delivery_id"]).encode()


def list_deliveries(
    engine: Engine,
    where: DeliveryFilter,
    instances: Sequence[str] | None = None,
    cursor: Cursor | None = None,
    limit: int = 50,
    newer: bool = False,
) -> Page:
    """The queries log: deliveries matching `where`, newest first, one page: older than
    `cursor`, or with `newer` the `limit` rows just newer than it. BadFilter on a value
    no delivery can have."""
    query = page_query(where, instances, cursor, limit, newer)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    return cut_page(rows, limit, newer, None if cursor is None else cursor.encode(), _at)


def cut_page(rows: list[dict[str, Any]], limit: int, newer: bool, cursor: str | None,
             at: Callable[[dict[str, Any]], str]) -> Page:
    """A page of the `limit + 1` rows read from `cursor` (newest first, or with `newer`
    oldest first), with the cursors of the pages on either side; `at` encodes a row's."""
    more = len(rows) > limit
    rows = rows[:limit]
    if newer:
        rows.reverse()
        return Page(rows, at(rows[-1]) if rows else cursor, at(rows[0]) if more else None)
    if cursor is None:
        return Page(rows, at(rows[-1]) if more else None)
    return Page(rows, at(rows[-1]) if more else None, at(rows[0]) if rows else cursor)


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
            "trigger": a.trigger or "",
            "trigger_tier": a.trigger_tier,
            "actor": a.actor,
            "request_method": a.request_method,
            "request_url": a.request_url,
            "request_headers": json.loads(a.request_headers) if a.request_headers else None,
            "body_sha256": a.body_sha256,
            "reason": a.reason,
            "next_step": a.next_step,
            "retry_policy": a.retry_policy,
        }
        for a in tried
    ]
    return detail


def request_body(
    engine: Engine, delivery_id: str, instances: Sequence[str] | None = None
) -> tuple[bytes, bool] | None:
    """A delivery's stored request body, exact bytes, and whether it was cut to the limit."""
    c = deliveries.c
    with engine.connect() as conn:
        row = conn.execute(select(c.body, c.body_truncated).where(
            c.delivery_id == delivery_id, _scope(instances))).first()
    if row is None:
        return None
    return bytes(row.body or b""), bool(row.body_truncated)


def queue_view(
    engine: Engine, instances: Sequence[str] | None = None, now_ms: int = 0
) -> dict[str, Any]:
    """Counts of pending, waiting per tier, dead-lettered, render errors and blocked
    deliveries by instance and webhook; the age of the oldest undelivered one. Read from
    `queued`, which holds exactly the deliveries in these states."""
    c = queued.c
    query = (
        select(c.instance, c.webhook_id, c.state, c.tier, func.count(), func.min(c.created_at))
        .where(_scope(instances, c.instance))
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
