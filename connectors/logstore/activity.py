"""What each webhook did lately, for the console's picture of it: attempts per hour over the
last 24 hours, its latest delivery, and its latest attempt (what the delivery process last
saw of the target's circuit). Scoped like every log store query.

Each function answers for many webhooks in one statement: the chart's counts are one
grouped query over the attempts of the last 24 hours (read through `ix_attempts_finished`),
and the latest rows are one statement of index seeks, one per webhook
(`ix_deliveries_webhook`, `ix_deliveries_webhook_attempt`), so a list of many webhooks
does not cost a query per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Select, func, select

from connectors.logstore.schema import attempts, deliveries
from hookstream.records import Outcome

HOUR_MS = 3600 * 1000
HOURS = 24
CHARTED = (Outcome.DELIVERED, Outcome.RETRY_SCHEDULED, Outcome.DEAD_LETTERED)
SEEKS_PER_STATEMENT = 200  # webhooks per statement of index seeks


@dataclass(frozen=True, slots=True)
class Latest:
    """A webhook's latest delivery (by creation), or its latest attempted one."""

    delivery_id: str
    created_at: int
    state: str | None
    last_status: int | None
    last_outcome: str | None
    last_attempt_at: int | None


def first_hour(now_ms: int) -> int:
    """The first of the 24 clock hours charted (hours since the epoch), the last being the
    hour `now_ms` is in."""
    return now_ms // HOUR_MS - (HOURS - 1)


def hourly_attempts(engine: Engine, webhook_ids: Sequence[str] | None,
                    instances: Sequence[str] | None, now_ms: int
                    ) -> dict[str, dict[tuple[int, str], int]]:
    """Per webhook: attempts finished in each of the last 24 clock hours, by outcome
    (delivered, retry_scheduled, dead_lettered), keyed (hour since the epoch, outcome).
    `webhook_ids` None: every webhook."""
    counts: dict[str, dict[tuple[int, str], int]] = {}
    with engine.connect() as conn:
        for webhook_id, h, outcome, count in conn.execute(
                hourly_query(webhook_ids, instances, now_ms)):
            counts.setdefault(webhook_id, {})[(int(h), outcome)] = count
    return counts


def hourly_query(webhook_ids: Sequence[str] | None, instances: Sequence[str] | None,
                 now_ms: int) -> Select[Any]:
    """The grouped SELECT of `hourly_attempts`: a range of `ix_attempts_finished`, each
    attempt joined to its delivery by primary key."""
    a, d = attempts.c, deliveries.c
    # The 24 hours' attempts first, then each one's delivery by primary key: materialised,
    # so that SQLite without statistics (no ANALYZE) does not rather walk an instance's or
    # a webhook's whole log for the scope's condition.
    recent = (select(a.delivery_id, (a.finished_at // HOUR_MS).label("hour"), a.outcome)
              .where(a.finished_at >= first_hour(now_ms) * HOUR_MS,
                     a.outcome.in_([str(o) for o in CHARTED]))
              .cte("recent").prefix_with("MATERIALIZED"))
    r = recent.c
    query = (select(d.webhook_id, r.hour, r.outcome, func.count())
             .select_from(recent.join(deliveries, d.delivery_id == r.delivery_id))
             .group_by(d.webhook_id, r.hour, r.outcome))
    if webhook_ids is not None:
        query = query.where(d.webhook_id.in_(list(webhook_ids)))
    if instances is not None:
        query = query.where(d.instance.in_(list(instances)))
    return query


def latest_deliveries(engine: Engine, webhook_ids: Sequence[str],
                      instances: Sequence[str] | None) -> dict[str, Latest]:
    """Per webhook: its most recently created delivery."""
    return _latest(engine, webhook_ids, instances, deliveries.c.created_at)


def latest_attempted(engine: Engine, webhook_ids: Sequence[str],
                     instances: Sequence[str] | None) -> dict[str, Latest]:
    """Per webhook: the delivery whose last attempt is the most recent (its
    `last_outcome`, `circuit_open` for a skip, says what delivery saw of the circuit)."""
    return _latest(engine, webhook_ids, instances, deliveries.c.last_attempt_at)


def _latest(engine: Engine, webhook_ids: Sequence[str], instances: Sequence[str] | None,
            order: Any) -> dict[str, Latest]:
    found: dict[str, Latest] = {}
    ids = list(dict.fromkeys(webhook_ids))
    with engine.connect() as conn:
        for start in range(0, len(ids), SEEKS_PER_STATEMENT):
            chunk = ids[start:start + SEEKS_PER_STATEMENT]
            for r in conn.execute(latest_query(chunk, instances, order)):
                found[r.webhook_id] = Latest(r.delivery_id, r.created_at, r.state,
                                             r.last_status, r.last_outcome, r.last_attempt_at)
    return found


def latest_query(webhook_ids: Sequence[str], instances: Sequence[str] | None,
                 order: Any) -> Select[Any]:
    """The SELECT of `_latest`: the rows whose ids one index seek per webhook found, kept
    if the scope holds them (a seek scoped itself would rather walk the instance's log)."""
    d = deliveries.c
    query = select(d.webhook_id, d.delivery_id, d.created_at, d.state, d.last_status,
                   d.last_outcome, d.last_attempt_at).where(
        d.delivery_id.in_([_seek(w, order) for w in webhook_ids]))
    if instances is not None:
        query = query.where(d.instance.in_(list(instances)))
    return query


def _seek(webhook_id: str, order: Any) -> Any:
    """The id of the webhook's latest delivery by `order`: one index seek."""
    x = deliveries.alias("x")
    column = x.c[order.name]
    return (select(x.c.delivery_id).where(x.c.webhook_id == webhook_id, column.is_not(None))
            .order_by(column.desc(), x.c.delivery_id.desc()).limit(1).scalar_subquery())
