"""Reading the audit trail: who wrote what, newest first, as the caller may see it.

A token scoped to instances sees the writes on its instances only; writes on no instance
(a redrive of every webhook, a login) are for tokens that see every instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, or_, select

from connectors.logstore.schema import audit

AUDIT_COLUMNS = ("audit_id", "at_ms", "token", "action", "target", "result", "instance", "via")


@dataclass(frozen=True, slots=True)
class AuditFilter:
    token: str | None = None
    action: str | None = None
    before_ms: int | None = None  # older than this (the next page: the last row's at_ms)
    before_id: str | None = None  # with before_ms: rows of that same ms after this id


def list_audit(engine: Engine, where: AuditFilter, instances: Sequence[str] | None = None,
               limit: int = 50) -> list[dict[str, Any]]:
    """At most `limit` audit rows, newest first."""
    c = audit.c
    query = select(*(getattr(c, n) for n in AUDIT_COLUMNS))
    if instances is not None:
        query = query.where(c.instance.in_(list(instances)))
    if where.token:
        query = query.where(c.token == where.token)
    if where.action:
        query = query.where(c.action == where.action)
    if where.before_ms is not None:
        older = c.at_ms < where.before_ms
        if where.before_id:
            older = or_(older, and_(c.at_ms == where.before_ms, c.audit_id < where.before_id))
        query = query.where(older)
    query = query.order_by(c.at_ms.desc(), c.audit_id.desc()).limit(limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
