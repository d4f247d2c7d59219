"""Alerts into tickets in the log store: the ticketer's actions, the alerts list, one alert.

Each TicketAction (hookstream.alert-actions) is one `alert_actions` row, inserted once
whatever re-reads it (its id is stable). The `alerts` row of each alert touched is then
recomputed from all its actions, so it does not depend on the order the actions are read
in: the latest action (by time, then id) gives the name, status, action, rule and message;
the ticket is the latest one an action names (a refire that opens a new ticket moves it).

The list is paged as the queries log is (queries.py): newest first by the latest action,
a keyset cursor on (last_at_ms, alert_key), each filter with its own index in page order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Select, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from connectors.logstore.queries import BadFilter, Cursor, Page, cut_page
from connectors.logstore.schema import alert_actions, alerts
from hookstream.records import ActionKind, AlertStatus, TicketAction

ALERT_COLUMNS = ("alert_key", "instance", "source", "fingerprint", "alert_name",
                 "alert_status", "last_action", "last_at_ms", "rule_id", "message",
                 "tickets_id", "first_at_ms", "actions")
ACTION_COLUMNS = ("action_id", "alert_event_id", "alert_status", "action", "at_ms", "rule_id",
                  "tickets_id", "latency_ms", "message")
STATUSES = tuple(str(s) for s in AlertStatus)
ACTIONS = tuple(str(a) for a in ActionKind)
SEARCH_MAX = 200


@dataclass(frozen=True, slots=True)
class AlertCursor:
    """A place in the alerts list, encoded as the queries log's cursor is."""

    at_ms: int
    alert_key: str

    def encode(self) -> str:
        return Cursor(self.at_ms, self.alert_key).encode()

    @classmethod
    def decode(cls, text: str) -> AlertCursor:
        """BadCursor when `text` is not one."""
        cursor = Cursor.decode(text)
        return cls(cursor.created_at, cursor.delivery_id)


@dataclass(frozen=True, slots=True)
class AlertFilter:
    instance: str | None = None
    status: str | None = None  # the latest event's: firing or resolved
    action: str | None = None  # the latest action: opened, refused, ...
    search: str | None = None  # part of the alert's name or fingerprint, any case

    def check(self) -> None:
        """BadFilter naming every value no alert can match."""
        problems = []
        if self.status is not None and self.status not in STATUSES:
            problems.append(f"status: one of {', '.join(STATUSES)}")
        if self.action is not None and self.action not in ACTIONS:
            problems.append(f"action: one of {', '.join(ACTIONS)}")
        if self.search is not None and not 0 < len(self.search) <= SEARCH_MAX:
            problems.append(f"search: 1 to {SEARCH_MAX} characters")
        if problems:
            raise BadFilter("; ".join(problems))


def write_actions(conn: Connection, actions: Sequence[TicketAction]) -> None:
    """Insert `actions` (each once) and recompute the alerts they concern, in the caller's
    transaction."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(insert(alert_actions).on_conflict_do_nothing(
        index_elements=[alert_actions.c.action_id]), [_row(a) for a in actions])
    first = {a.alert_key: a for a in reversed(actions)}  # one row per alert
    conn.execute(insert(alerts).on_conflict_do_nothing(index_elements=[alerts.c.alert_key]),
                 [{"alert_key": key, "instance": a.instance, "source": a.source,
                   "fingerprint": a.fingerprint} for key, a in first.items()])
    keys = sorted(first)
    for start in range(0, len(keys), 500):  # bounded IN lists
        conn.execute(_summaries(), {"keys": keys[start:start + 500]})


def _row(action: TicketAction) -> dict[str, Any]:
    row = action.to_dict()
    row["at_ms"] = row.pop("at")
    return row


def _summaries() -> Any:
    """Recompute some alerts' rows from their actions."""
    a = alert_actions.c
    mine = a.alert_key == alerts.c.alert_key
    latest = (a.at_ms.desc(), a.action_id.desc())

    def last(column: Any, *where: Any) -> Any:
        return select(column).where(mine, *where).order_by(*latest).limit(1).scalar_subquery()

    return (
        update(alerts)
        .where(alerts.c.alert_key.in_(bindparam("keys", expanding=True)))
        .values(
            alert_name=last(a.alert_name),
            alert_status=last(a.alert_status),
            last_action=last(a.action),
            last_at_ms=last(a.at_ms),
            last_action_id=last(a.action_id),
            rule_id=last(a.rule_id),
            message=last(a.message),
            tickets_id=func.coalesce(last(a.tickets_id, a.tickets_id != 0), 0),
            first_at_ms=select(func.min(a.at_ms)).where(mine).scalar_subquery(),
            actions=select(func.count()).where(mine).scalar_subquery(),
        )
    )


def _scope(instances: Sequence[str] | None) -> Any:
    return True if instances is None else alerts.c.instance.in_(list(instances))


def alerts_query(where: AlertFilter, instances: Sequence[str] | None,
                 cursor: AlertCursor | None, limit: int, newer: bool = False) -> Select[Any]:
    """The SELECT of one page of alerts: `limit + 1` rows, as queries.page_query's."""
    where.check()
    c = alerts.c
    conditions: list[Any] = [_scope(instances), c.last_at_ms.is_not(None)]
    for column, value in ((c.instance, where.instance), (c.alert_status, where.status),
                          (c.last_action, where.action)):
        if value is not None:
            conditions.append(column == value)
    if where.search is not None:
        conditions.append(or_(c.alert_name.icontains(where.search, autoescape=True),
                              c.fingerprint.icontains(where.search, autoescape=True)))
    if cursor is not None:
        at, key = cursor.at_ms, cursor.alert_key
        conditions += ([c.last_at_ms >= at, or_(c.last_at_ms > at, c.alert_key > key)]
                       if newer else
                       [c.last_at_ms <= at, or_(c.last_at_ms < at, c.alert_key < key)])
    order = ((c.last_at_ms.asc(), c.alert_key.asc()) if newer
             else (c.last_at_ms.desc(), c.alert_key.desc()))
    return (select(*(c[name] for name in ALERT_COLUMNS))
            .where(*conditions).order_by(*order).limit(limit + 1))


def list_alerts(
    engine: Engine,
    where: AlertFilter,
    instances: Sequence[str] | None = None,
    cursor: AlertCursor | None = None,
    limit: int = 50,
    newer: bool = False,
) -> Page:
    """Alerts matching `where`, the latest action first, one page: older than `cursor`, or
    with `newer` the `limit` alerts just newer than it. BadFilter on a value no alert can
    have."""
    query = alerts_query(where, instances, cursor, limit, newer)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    return cut_page(rows, limit, newer, None if cursor is None else cursor.encode(),
                    lambda row: AlertCursor(row["last_at_ms"], row["alert_key"]).encode())


def alert_history(
    engine: Engine, alert_key: str, instances: Sequence[str] | None = None
) -> dict[str, Any] | None:
    """One alert as the list shows it, with every action, oldest first; None when the
    store has no action of it (or the caller may not see its instance)."""
    with engine.connect() as conn:
        row = conn.execute(select(*(alerts.c[n] for n in ALERT_COLUMNS)).where(
            alerts.c.alert_key == alert_key, _scope(instances))).first()
        if row is None or row.last_at_ms is None:
            return None
        actions = conn.execute(
            select(*(alert_actions.c[n] for n in ACTION_COLUMNS))
            .where(alert_actions.c.alert_key == alert_key)
            .order_by(alert_actions.c.at_ms, alert_actions.c.action_id)
        ).all()
    return {**row._mapping, "history": [dict(a._mapping) for a in actions]}
