"""What the console reads beyond the admin API's queries: each webhook's last 24 hours, and
the most recent item of an itemtype (for a preview). Scoped like every log store query."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select

from connectors.logstore import State
from connectors.logstore.schema import deliveries, items

DAY_MS = 24 * 3600 * 1000
FAILED = (State.DEAD_LETTERED, State.RENDER_ERROR, State.BLOCKED)  # given up on


@dataclass(frozen=True, slots=True)
class DayCounts:
    delivered: int = 0
    failed: int = 0
    open: int = 0  # pending or waiting: not counted in the ratio

    @property
    def success_ratio(self) -> float | None:
        done = self.delivered + self.failed
        return None if done == 0 else self.delivered / done


def day_counts(engine: Engine, instances: Sequence[str] | None, now_ms: int
               ) -> dict[str, DayCounts]:
    """Per webhook: deliveries created in the last 24 hours, by what became of them."""
    c = deliveries.c
    query = (select(c.webhook_id, c.state, func.count())
             .where(c.created_at >= now_ms - DAY_MS).group_by(c.webhook_id, c.state))
    if instances is not None:
        query = query.where(c.instance.in_(list(instances)))
    counts: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for webhook_id, state, count in conn.execute(query):
            per = counts.setdefault(webhook_id, {"delivered": 0, "failed": 0, "open": 0})
            if state == State.DELIVERED:
                per["delivered"] += count
            elif state in FAILED:
                per["failed"] += count
            else:
                per["open"] += count
    return {w: DayCounts(**per) for w, per in counts.items()}


def recent_item(engine: Engine, instance: str, itemtype: str,
                instances: Sequence[str] | None) -> dict[str, Any] | None:
    """The last change seen of any item of this itemtype, as an event line."""
    if instances is not None and instance not in instances:
        return None
    c = items.c
    with engine.connect() as conn:
        row = conn.execute(select(items).where(c.instance == instance, c.itemtype == itemtype)
                           .order_by(c.occurred_at.desc()).limit(1)).first()
    if row is None:
        return None
    return {"itemtype": row.itemtype, "items_id": row.items_id, "event": row.event,
            "entities_id": row.entities_id, "item": json.loads(row.item),
            "parent_item": None if row.parent_item is None else json.loads(row.parent_item)}
