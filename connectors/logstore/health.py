"""Each webhook's target health in the store, and the operational events list.

`fold_health` runs inside the batch's write transaction: the attempts of the batch are
folded into each webhook's row (hookstream.policy.observe), so a batch written twice
after a crash folds the same attempts twice, which changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from connectors.logstore.schema import operations, webhook_health
from hookstream.policy import TargetHealth, counts, observe
from hookstream.records import AttemptRecord, OperationalEvent

OPERATION_COLUMNS = ("event_id", "type", "at_ms", "instance", "webhook_id", "reason",
                     "delivery_id", "origin")


@dataclass(frozen=True, slots=True)
class HealthSample:
    """One attempt as auto-disable counts it."""

    webhook_id: str
    finished_ms: int
    success: bool


def health_sample(record: AttemptRecord) -> HealthSample | None:
    """The attempt's sample, or None when it says nothing of the target."""
    success = counts(record.outcome)
    return None if success is None else HealthSample(record.webhook_id, record.finished_at,
                                                     success)


def _insert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def fold_health(conn: Connection, samples: Sequence[HealthSample]) -> None:
    """Fold `samples` into their webhooks' rows (one read, one upsert per webhook)."""
    ids = sorted({s.webhook_id for s in samples})
    current = read_health_in(conn, ids, lock=True)
    for sample in samples:
        health = current.get(sample.webhook_id, TargetHealth())
        current[sample.webhook_id] = observe(health, sample.finished_ms, sample.success)
    stmt = _insert(conn.dialect.name)(webhook_health)
    columns = ("last_success_ms", "first_failure_ms", "last_failure_ms")
    upsert = stmt.on_conflict_do_update(
        index_elements=[webhook_health.c.webhook_id],
        set_={c: getattr(stmt.excluded, c) for c in columns},
    )
    conn.execute(upsert, [{"webhook_id": ident, "last_success_ms": h.last_success_ms,
                           "first_failure_ms": h.first_failure_ms,
                           "last_failure_ms": h.last_failure_ms}
                          for ident, h in current.items()])


def read_health_in(conn: Connection, webhook_ids: Iterable[str], lock: bool = False
                   ) -> dict[str, TargetHealth]:
    """`lock`: rows locked until the transaction ends (PostgreSQL; SQLite's writer lock
    does the same for its single file), so log store replicas folding the same webhook
    at once do not lose one another's attempts; taken in id order, no deadlock."""
    ids, c, found = sorted(webhook_ids), webhook_health.c, {}
    for start in range(0, len(ids), 500):  # bounded IN lists
        query = select(c.webhook_id, c.last_success_ms, c.first_failure_ms, c.last_failure_ms
                       ).where(c.webhook_id.in_(ids[start:start + 500])
                       ).order_by(c.webhook_id)
        if lock:
            query = query.with_for_update()
        for row in conn.execute(query):
            found[row.webhook_id] = TargetHealth(row.last_success_ms, row.first_failure_ms,
                                                 row.last_failure_ms)
    return found


def insert_operations(conn: Connection, events: Sequence[OperationalEvent]) -> None:
    stmt = _insert(conn.dialect.name)(operations).on_conflict_do_nothing(
        index_elements=[operations.c.event_id])
    conn.execute(stmt, [e.to_dict() for e in events])


def list_operations(engine: Engine, instances: Sequence[str] | None = None,
                    webhook_id: str | None = None, before_ms: int | None = None,
                    before_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """At most `limit` operational events, newest first (a scoped token: its instances)."""
    c = operations.c
    query = select(*(getattr(c, n) for n in OPERATION_COLUMNS))
    if instances is not None:
        query = query.where(c.instance.in_(list(instances)))
    if webhook_id:
        query = query.where(c.webhook_id == webhook_id)
    if before_ms is not None:
        older = c.at_ms < before_ms
        if before_id:
            older = or_(older, and_(c.at_ms == before_ms, c.event_id < before_id))
        query = query.where(older)
    query = query.order_by(c.at_ms.desc(), c.event_id.desc()).limit(limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
