"""The log store's database: opening it, writing a batch of rows, retention.

One code path for SQLite and PostgreSQL (SQLAlchemy Core); the only dialect branches are
the `INSERT ... ON CONFLICT` constructor and SQLite's pragmas. A batch is written in one
transaction, and `write` returns only once it is committed: the caller commits its Kafka
offsets after that, so a crash at any point re-reads records whose rows may already be
there, and the upserts make that harmless.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from connectors.logstore.alerts import write_actions
from connectors.logstore.health import (
    HealthSample,
    fold_health,
    insert_operations,
    read_health_in,
)
from connectors.logstore.rows import (
    NO_REQUEST,
    AttemptRow,
    DeliveryRow,
    ItemRow,
    latest_items,
    merge_all,
)
from connectors.logstore.schema import (
    alert_actions,
    alerts,
    attempts,
    audit,
    deliveries,
    items,
    migrate,
    operations,
    webhook_health,
)
from hookstream.config import Settings
from hookstream.errors import ConfigError, TransientError
from hookstream.policy import TargetHealth
from hookstream.records import AuditRecord, OperationalEvent, TicketAction


def database_url(settings: Settings) -> str:
    """The store's SQLAlchemy URL: the `logstore_url` setting, or SQLite in the state dir."""
    url = settings.logstore_url
    if not url:
        return f"sqlite:///{settings.state_path / 'logstore.db'}"
    if url.startswith(("postgres://", "postgresql://")):  # the usual spelling: psycopg 3
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("sqlite:///", "postgresql+psycopg://")):
        return url
    raise ConfigError("logstore_url must be sqlite:///PATH or postgresql://USER@HOST:PORT/DB")


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers (admin API, CLI) never block the writer. synchronous=FULL: a committed
    # batch survives a power cut too, since its offsets are committed right after.
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=10000"):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()


def open_engine(settings: Settings, migrate_schema: bool = True) -> Engine:
    """An engine on the configured store, its schema migrated to the latest version."""
    url = database_url(settings)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    if migrate_schema:
        try:
            migrate(engine)
        except SQLAlchemyError as e:  # translated once, here; the URL without its password
            where = engine.url.render_as_string(hide_password=True)
            raise TransientError(f"log store database {where}: {getattr(e, 'orig', None) or e}"
                                 ) from e
    return engine


@contextmanager
def _unreachable_is_transient(engine: Engine, what: str) -> Iterator[None]:
    """The database out of reach (refused, connection lost, SQLite locked) as TransientError,
    on one line, naming the database without its password. Other errors (a constraint, a
    bad statement) are bugs that waiting would not fix: they propagate unchanged."""
    try:
        yield
    except (OperationalError, InterfaceError) as e:
        where = engine.url.render_as_string(hide_password=True)
        reason = " ".join(str(e.orig or e).split())  # orig: the driver's words, no SQL
        raise TransientError(f"log store database {where}: {what}: {reason}") from e


def _upsert_deliveries(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(deliveries)
    new, old = stmt.excluded, deliveries.c
    # rows.merge, in SQL: the state of the higher (order, rank, at, state) key wins.
    newer = and_(
        new.state.is_not(None),
        or_(
            old.state.is_(None),
            new.state_order > old.state_order,
            and_(new.state_order == old.state_order, new.state_rank > old.state_rank),
            and_(
                new.state_order == old.state_order,
                new.state_rank == old.state_rank,
                or_(
                    new.state_at > old.state_at,
                    and_(new.state_at == old.state_at, new.state > old.state),
                ),
            ),
        ),
    )
    state_columns = ("state", "state_order", "state_rank", "state_at", "tier",
                     "next_attempt_at", "last_error")
    request_columns = ("entities_id", "event_id", "method", "url", "headers", "body",
                       "body_size", "body_sha256", "body_truncated")
    changes: dict[str, Any] = {
        name: case((newer, getattr(new, name)), else_=getattr(old, name)) for name in state_columns
    }
    changes |= {name: func.coalesce(getattr(old, name), getattr(new, name))
                for name in request_columns}
    changes["created_at"] = case((new.created_at < old.created_at, new.created_at),
                                 else_=old.created_at)
    return stmt.on_conflict_do_update(index_elements=[deliveries.c.delivery_id], set_=changes)


def _insert_attempts(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(attempts).on_conflict_do_nothing(
        index_elements=[attempts.c.kafka_partition, attempts.c.kafka_offset]
    )


def _upsert_items(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(items)
    new, old = stmt.excluded, items.c
    newer = or_(new.occurred_at > old.occurred_at,
                and_(new.occurred_at == old.occurred_at, new.event_id > old.event_id))
    columns = ("event_id", "event", "entities_id", "occurred_at", "item", "parent_item")
    return stmt.on_conflict_do_update(
        index_elements=[old.instance, old.itemtype, old.items_id],
        set_={c: case((newer, getattr(new, c)), else_=getattr(old, c)) for c in columns},
    )


def _insert_audit(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(audit).on_conflict_do_nothing(index_elements=[audit.c.audit_id])


def item_params(row: ItemRow) -> dict[str, Any]:
    e = row.event
    return {"instance": e.instance, "itemtype": e.itemtype, "items_id": e.items_id,
            "event_id": e.event_id, "event": e.event, "entities_id": e.entities_id,
            "occurred_at": e.occurred_at, "item": e.item, "parent_item": e.parent_item}


def _summaries() -> Any:
    """Recompute the attempt summaries of some deliveries from their attempt rows."""
    mine = attempts.c.delivery_id == deliveries.c.delivery_id
    latest = (attempts.c.hop.desc(), attempts.c.finished_at.desc(),
              attempts.c.kafka_partition.desc(), attempts.c.kafka_offset.desc())

    def last(column: Any) -> Any:
        return select(column).where(mine).order_by(*latest).limit(1).scalar_subquery()

    return (
        update(deliveries)
        .where(deliveries.c.delivery_id.in_(bindparam("ids", expanding=True)))
        .values(
            attempts=select(func.count())
            .where(mine, attempts.c.outcome.not_in([str(o) for o in NO_REQUEST]))
            .scalar_subquery(),
            last_status=last(attempts.c.status_code),
            last_outcome=last(attempts.c.outcome),
            last_attempt_at=select(func.max(attempts.c.finished_at)).where(mine).scalar_subquery(),
        )
    )


def delivery_params(row: DeliveryRow) -> dict[str, Any]:
    key, body = row.state_key, row.body
    return {
        "delivery_id": row.delivery_id,
        "instance": row.instance,
        "webhook_id": row.webhook_id,
        "itemtype": row.itemtype,
        "items_id": row.items_id,
        "event": row.event,
        "entities_id": row.entities_id,
        "event_id": row.event_id,
        "method": row.method,
        "url": row.url,
        "headers": row.headers,
        "body": None if body is None else body.data,
        "body_size": None if body is None else body.size,
        "body_sha256": None if body is None else body.sha256,
        "body_truncated": None if body is None else body.truncated,
        "created_at": row.created_at,
        "state": None if key is None else key.state,
        "state_order": None if key is None else key.order,
        "state_rank": None if key is None else key.rank,
        "state_at": None if key is None else key.at_ms,
        "tier": row.tier,
        "next_attempt_at": row.next_attempt_at,
        "last_error": row.last_error,
        "attempts": 0,
    }


def attempt_params(row: AttemptRow) -> dict[str, Any]:
    body = row.response_body
    return {
        "kafka_partition": row.partition,
        "kafka_offset": row.offset,
        "delivery_id": row.delivery_id,
        "attempt": row.attempt,
        "hop": row.hop,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "outcome": row.outcome,
        "status_code": row.status_code,
        "error": row.error,
        "response_headers": row.response_headers,
        "response_body": None if body is None else body.data,
        "response_size": None if body is None else body.size,
        "response_sha256": None if body is None else body.sha256,
        "response_truncated": None if body is None else body.truncated,
        "trigger": row.trigger,
        "trigger_tier": row.trigger_tier,
        "actor": row.actor,
        "request_method": row.request_method,
        "request_url": row.request_url,
        "request_headers": row.request_headers,
        "body_sha256": row.body_sha256,
        "reason": row.reason,
        "next_step": row.next_step,
        "retry_policy": row.retry_policy,
    }


class LogStore:
    """Writes batches of rows; every write is idempotent."""

    def __init__(self, engine: Engine):
        self.engine = engine
        dialect = engine.dialect.name
        self._upsert = _upsert_deliveries(dialect)
        self._insert_attempts = _insert_attempts(dialect)
        self._upsert_items = _upsert_items(dialect)
        self._insert_audit = _insert_audit(dialect)
        self._summaries = _summaries()

    def write(
        self,
        fragments: Sequence[DeliveryRow],
        attempt_rows: Sequence[AttemptRow],
        item_rows: Sequence[ItemRow] = (),
        audit_rows: Sequence[AuditRecord] = (),
        operation_rows: Sequence[OperationalEvent] = (),
        health: Sequence[HealthSample] = (),
        alert_action_rows: Sequence[TicketAction] = (),
    ) -> None:
        """Write one batch in one transaction; returns once it is committed. TransientError
        if the database cannot be reached; writing the batch again then is harmless."""
        merged = merge_all(list(fragments))
        with _unreachable_is_transient(self.engine, "write"), self.engine.begin() as conn:
            if audit_rows:  # each record once, whatever re-reads it
                conn.execute(self._insert_audit, [r.to_dict() for r in audit_rows])
            if operation_rows:
                insert_operations(conn, operation_rows)
            if health:
                fold_health(conn, health)
            if alert_action_rows:
                write_actions(conn, alert_action_rows)
            if item_rows:
                conn.execute(self._upsert_items,
                             [item_params(r) for r in latest_items(list(item_rows))])
            # Merged: each delivery once per batch (PostgreSQL refuses an upsert that would
            # change one row twice in one statement, should the driver batch them).
            if merged:
                conn.execute(self._upsert, [delivery_params(r) for r in merged])
            if attempt_rows:
                conn.execute(self._insert_attempts, [attempt_params(a) for a in attempt_rows])
            # Summaries of every delivery touched: a row inserted now may have attempts
            # written before it (the upsert starts it at zero).
            ids = sorted({a.delivery_id for a in attempt_rows} | {r.delivery_id for r in merged})
            for start in range(0, len(ids), 500):  # bounded IN lists
                conn.execute(self._summaries, {"ids": ids[start:start + 500]})

    def health(self, webhook_ids: Iterable[str]) -> dict[str, TargetHealth]:
        """The target health of these webhooks (those with a counted attempt);
        TransientError if the database cannot be reached."""
        with _unreachable_is_transient(self.engine, "read"), self.engine.connect() as conn:
            return read_health_in(conn, webhook_ids)

    def clear(self) -> None:
        """Delete every row (a rebuild starts from here)."""
        with self.engine.begin() as conn:
            conn.execute(delete(attempts))
            conn.execute(delete(deliveries))
            conn.execute(delete(items))
            conn.execute(delete(audit))
            conn.execute(delete(operations))
            conn.execute(delete(webhook_health))
            conn.execute(delete(alert_actions))
            conn.execute(delete(alerts))

    def prune(
        self,
        max_age_days: float,
        batch: int = 1000,
        clock: Callable[[], float] = time.time,
        max_batches: int | None = None,
    ) -> int:
        """Delete deliveries created more than `max_age_days` ago, with their attempts, in
        transactions of at most `batch` deliveries (a writer waits for one batch at most);
        then items, operational events and alert actions as old, and alerts whose latest
        action is.
        Returns how many deliveries were deleted; TransientError if the database cannot be
        reached (the batches deleted before stay deleted)."""
        with _unreachable_is_transient(self.engine, "prune"):
            return self._prune(max_age_days, batch, clock, max_batches)

    def _prune(
        self, max_age_days: float, batch: int, clock: Callable[[], float], max_batches: int | None
    ) -> int:
        cutoff = int((clock() - max_age_days * 86_400) * 1000)
        deleted = batches = 0
        while max_batches is None or batches < max_batches:
            with self.engine.begin() as conn:
                ids = conn.scalars(
                    select(deliveries.c.delivery_id)
                    .where(deliveries.c.created_at < cutoff)
                    .limit(batch)
                ).all()
                if not ids:
                    break
                conn.execute(delete(attempts).where(attempts.c.delivery_id.in_(ids)))
                conn.execute(delete(deliveries).where(deliveries.c.delivery_id.in_(ids)))
            deleted, batches = deleted + len(ids), batches + 1
        self._prune_items(cutoff)
        with self.engine.begin() as conn:  # a few a day: one statement
            conn.execute(delete(operations).where(operations.c.at_ms < cutoff))
        with self.engine.begin() as conn:
            # an alert still acting keeps its row (and its counts) without its old actions
            conn.execute(delete(alert_actions).where(alert_actions.c.at_ms < cutoff))
            conn.execute(delete(alerts).where(alerts.c.last_at_ms < cutoff))
        return deleted

    def _prune_items(self, cutoff_ms: int, slice_ms: int = 3_600_000) -> None:
        """Items last changed before the cutoff, an hour of changes per transaction."""
        while True:
            with self.engine.begin() as conn:
                first = conn.scalar(select(func.min(items.c.occurred_at))
                                    .where(items.c.occurred_at < cutoff_ms))
                if first is None:
                    return
                conn.execute(delete(items).where(
                    items.c.occurred_at < min(cutoff_ms, first + slice_ms)))
