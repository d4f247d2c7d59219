"""The log store's database: opening it, writing a batch of rows, retention.

One code path for SQLite and PostgreSQL (SQLAlchemy Core); the only dialect branches are
the `INSERT ... ON CONFLICT` constructor, SQLite's pragmas and how a batch reaches the
database. A batch is written in one transaction, and `write` returns only once it is
committed: the caller commits its Kafka offsets after that, so a crash at any point
re-reads records whose rows may already be there, and the upserts make that harmless.

The deliveries and attempts of a batch go first into temporary tables (PostgreSQL: COPY,
SQLite: one executemany), then into the log with one `INSERT ... SELECT ... ON CONFLICT`
each: COPY has no ON CONFLICT, and a statement per batch rather than per row is what makes
the writes cheap. Each delivery row is written once per batch with its attempt summaries
computed in the same statement (not inserted, then updated: two row versions and twice
the index entries).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    Table,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.schema import CreateTable

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
    QUEUED_STATES,
    alert_actions,
    alerts,
    attempts,
    audit,
    deliveries,
    items,
    migrate,
    operations,
    queued,
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


# Where a batch's rows wait for their INSERT ... SELECT: temporary, one per connection.
# PostgreSQL empties them at each commit; SQLite's are emptied by the batch that filled them.
_incoming = MetaData()

DELIVERY_FIELDS = (
    "delivery_id", "instance", "webhook_id", "itemtype", "items_id", "event", "entities_id",
    "event_id", "method", "url", "headers", "body", "body_size", "body_sha256",
    "body_truncated", "created_at", "state", "state_order", "state_rank", "state_at", "tier",
    "next_attempt_at", "last_error",
)
ATTEMPT_FIELDS = (
    "kafka_partition", "kafka_offset", "delivery_id", "attempt", "hop", "started_at",
    "finished_at", "outcome", "status_code", "error", "response_headers", "response_body",
    "response_size", "response_sha256", "response_truncated", "trigger", "trigger_tier",
    "actor", "request_method", "request_url", "request_headers", "body_sha256", "reason",
    "next_step", "retry_policy",
)
SUMMARY_FIELDS = ("attempts", "last_status", "last_outcome", "last_attempt_at")


def _temporary(name: str, source: Table, fields: tuple[str, ...]) -> Table:
    return Table(name, _incoming, *(Column(f, source.c[f].type) for f in fields),
                 prefixes=["TEMPORARY"], postgresql_on_commit="DELETE ROWS")


incoming_deliveries = _temporary("incoming_deliveries", deliveries, DELIVERY_FIELDS)
incoming_attempts = _temporary("incoming_attempts", attempts, ATTEMPT_FIELDS)


def _fill(conn: Connection, table: Table, rows: list[tuple[Any, ...]]) -> None:
    """`rows` (tuples in the table's column order) into an empty temporary table."""
    conn.execute(CreateTable(table, if_not_exists=True))
    columns = ", ".join(c.name for c in table.c)
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor, cursor.copy(
                f"COPY {table.name} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        marks = ", ".join("?" * len(table.c))
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", rows)


def _empty(conn: Connection, table: Table) -> None:
    if conn.dialect.name != "postgresql":  # PostgreSQL's: ON COMMIT DELETE ROWS
        conn.execute(delete(table))


def _insert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _summary_columns(delivery_id: Any) -> list[Any]:
    """The attempt summaries of the delivery `delivery_id` names, from its attempt rows:
    requests sent, the latest attempt's status and outcome, when it last tried."""
    mine = attempts.c.delivery_id == delivery_id
    latest = (attempts.c.hop.desc(), attempts.c.finished_at.desc(),
              attempts.c.kafka_partition.desc(), attempts.c.kafka_offset.desc())

    def last(column: Any) -> Any:
        return select(column).where(mine).order_by(*latest).limit(1).scalar_subquery()

    return [
        select(func.count())
        .where(mine, attempts.c.outcome.not_in([str(o) for o in NO_REQUEST]))
        .scalar_subquery(),
        last(attempts.c.status_code),
        last(attempts.c.outcome),
        select(func.max(attempts.c.finished_at)).where(mine).scalar_subquery(),
    ]


def _upsert_deliveries(dialect: str) -> Any:
    """The incoming deliveries into the log, their summaries recomputed."""
    src = incoming_deliveries.c
    rows = select(*(src[f] for f in DELIVERY_FIELDS), *_summary_columns(src.delivery_id)
                  ).where(true())  # SQLite: a WHERE tells its ON CONFLICT from a join's ON
    stmt = _insert(dialect)(deliveries).from_select([*DELIVERY_FIELDS, *SUMMARY_FIELDS], rows)
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
    changes |= {name: getattr(new, name) for name in SUMMARY_FIELDS}
    return stmt.on_conflict_do_update(index_elements=[deliveries.c.delivery_id], set_=changes)


def _insert_attempts(dialect: str) -> Any:
    src = incoming_attempts.c
    rows = select(*(src[f] for f in ATTEMPT_FIELDS)).where(true())
    return _insert(dialect)(attempts).from_select(ATTEMPT_FIELDS, rows).on_conflict_do_nothing(
        index_elements=[attempts.c.kafka_partition, attempts.c.kafka_offset]
    )


def _upsert_items(dialect: str) -> Any:
    stmt = _insert(dialect)(items)
    new, old = stmt.excluded, items.c
    newer = or_(new.occurred_at > old.occurred_at,
                and_(new.occurred_at == old.occurred_at, new.event_id > old.event_id))
    columns = ("event_id", "event", "entities_id", "occurred_at", "item", "parent_item")
    return stmt.on_conflict_do_update(
        index_elements=[old.instance, old.itemtype, old.items_id],
        set_={c: case((newer, getattr(new, c)), else_=getattr(old, c)) for c in columns},
    )


def _insert_audit(dialect: str) -> Any:
    return _insert(dialect)(audit).on_conflict_do_nothing(index_elements=[audit.c.audit_id])


def item_params(row: ItemRow) -> dict[str, Any]:
    e = row.event
    return {"instance": e.instance, "itemtype": e.itemtype, "items_id": e.items_id,
            "event_id": e.event_id, "event": e.event, "entities_id": e.entities_id,
            "occurred_at": e.occurred_at, "item": e.item, "parent_item": e.parent_item}


def _summaries() -> Any:
    """Recompute the attempt summaries of some deliveries already in the log (those whose
    attempts came in a batch without their fragment)."""
    return (
        update(deliveries)
        .where(deliveries.c.delivery_id.in_(bindparam("ids", expanding=True)))
        .values(dict(zip(SUMMARY_FIELDS, _summary_columns(deliveries.c.delivery_id),
                         strict=True)))
    )


def _requeue() -> tuple[Any, Any]:
    """The incoming deliveries out of `queued`, then back in if their state (as the upsert
    left it) is a queued one: the queue view's table follows the log in one transaction."""
    incoming = select(incoming_deliveries.c.delivery_id).scalar_subquery()
    unqueue = delete(queued).where(queued.c.delivery_id.in_(incoming))
    d = deliveries.c
    columns = [c.name for c in queued.c]
    now_queued = (select(*(d[n] for n in columns))
                  .join_from(deliveries, incoming_deliveries,
                             d.delivery_id == incoming_deliveries.c.delivery_id)
                  .where(d.state.in_(QUEUED_STATES)))
    return unqueue, queued.insert().from_select(columns, now_queued)


def delivery_values(row: DeliveryRow) -> tuple[Any, ...]:
    """The row's DELIVERY_FIELDS, in order."""
    key, body = row.state_key, row.body
    return (
        row.delivery_id, row.instance, row.webhook_id, row.itemtype, row.items_id, row.event,
        row.entities_id, row.event_id, row.method, row.url, row.headers,
        *((None, None, None, None) if body is None
          else (body.data, body.size, body.sha256, body.truncated)),
        row.created_at,
        *((None, None, None, None) if key is None
          else (key.state, key.order, key.rank, key.at_ms)),
        row.tier, row.next_attempt_at, row.last_error,
    )


def attempt_values(row: AttemptRow) -> tuple[Any, ...]:
    """The row's ATTEMPT_FIELDS, in order."""
    body = row.response_body
    return (
        row.partition, row.offset, row.delivery_id, row.attempt, row.hop, row.started_at,
        row.finished_at, row.outcome, row.status_code, row.error, row.response_headers,
        *((None, None, None, None) if body is None
          else (body.data, body.size, body.sha256, body.truncated)),
        row.trigger, row.trigger_tier, row.actor, row.request_method, row.request_url,
        row.request_headers, row.body_sha256, row.reason, row.next_step, row.retry_policy,
    )


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
        self._unqueue, self._queue = _requeue()

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
            # Attempts first: the deliveries' summaries below count them.
            if attempt_rows:
                _fill(conn, incoming_attempts, [attempt_values(a) for a in attempt_rows])
                conn.execute(self._insert_attempts)
                _empty(conn, incoming_attempts)
            # Merged: each delivery once per batch (PostgreSQL refuses an upsert that would
            # change one row twice in one statement).
            if merged:
                _fill(conn, incoming_deliveries, [delivery_values(r) for r in merged])
                conn.execute(self._upsert)
                conn.execute(self._unqueue)
                conn.execute(self._queue)
                _empty(conn, incoming_deliveries)
            # Deliveries with attempts in this batch but no fragment (a rebuild reading the
            # topics in another order): summaries recomputed where their rows are.
            merged_ids = {r.delivery_id for r in merged}
            ids = sorted({a.delivery_id for a in attempt_rows} - merged_ids)
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
            conn.execute(delete(queued))
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
                conn.execute(delete(queued).where(queued.c.delivery_id.in_(ids)))
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
