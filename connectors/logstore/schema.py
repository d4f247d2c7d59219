"""The log store's tables and their versioned migrations, one schema for SQLite and PostgreSQL.

SQLAlchemy Core describes the tables once; each dialect renders its own DDL and upserts
(`INSERT ... ON CONFLICT`), which both databases have. Migrations are an ordered list:
`migrate` applies, each in its own transaction, those above the version recorded in
`schema_migrations`, so a store opened by a newer release is upgraded in place and a
store already up to date is left alone. The Table objects below are the shape
migration 1 created (2 for `items`, 5 for `audit`, 8 for `operations` and
`webhook_health`, 10 for `alert_actions` and `alerts`, 11 for `queued`); a later change
is explicit DDL in its own migration (3, 4 and 7: indexes; 6 and 9 add the attempt
columns they find missing, which the Table object already has for a new store), so every
store, new or upgraded, ends up the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    inspect,
    select,
    text,
)

metadata = MetaData()

migrations_table = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", BigInteger, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("delivery_id", String(64), primary_key=True),
    Column("instance", String(255), nullable=False),
    Column("webhook_id", String(255), nullable=False),
    Column("itemtype", String(255), nullable=False),
    Column("items_id", BigInteger, nullable=False),
    Column("event", String(32), nullable=False),
    Column("entities_id", BigInteger),
    Column("event_id", String(64)),
    Column("method", String(16)),
    Column("url", Text),
    Column("headers", Text),  # JSON, credentials redacted
    Column("body", LargeBinary),  # at most logstore_body_max_bytes
    Column("body_size", Integer),
    Column("body_sha256", String(64)),
    Column("body_truncated", Boolean),
    Column("created_at", BigInteger, nullable=False),  # Unix ms
    # The state and the key that decided it (rows.StateKey).
    Column("state", String(16)),
    Column("state_order", Integer),
    Column("state_rank", Integer),
    Column("state_at", BigInteger),
    Column("tier", String(16)),
    Column("next_attempt_at", BigInteger),
    Column("last_error", Text),
    # Summaries of the attempts table, recomputed when an attempt is added.
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_status", Integer),
    Column("last_outcome", String(32)),
    Column("last_attempt_at", BigInteger),
    Index("ix_deliveries_webhook", "webhook_id", "created_at", "delivery_id"),
    Index("ix_deliveries_item", "instance", "itemtype", "items_id", "created_at", "delivery_id"),
    Index("ix_deliveries_state", "state", "instance", "webhook_id", "tier"),
    Index("ix_deliveries_created", "created_at"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("kafka_partition", Integer, nullable=False),  # position on hookstream.attempts
    Column("kafka_offset", BigInteger, nullable=False),
    Column("delivery_id", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("hop", Integer, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("response_headers", Text, nullable=False),
    Column("response_body", LargeBinary),
    Column("response_size", Integer),
    Column("response_sha256", String(64)),
    Column("response_truncated", Boolean),
    # Migration 5: what made the attempt, the request as sent, the decision taken next.
    *(column for column in (
        Column("trigger", String(16)),
        Column("trigger_tier", String(16)),
        Column("actor", String(255)),
        Column("request_method", String(16)),
        Column("request_url", Text),
        Column("request_headers", Text),  # JSON, credentials redacted
        Column("body_sha256", String(64)),
        Column("reason", Text),
        Column("next_step", Text),
    )),
    Column("retry_policy", String(16)),  # migration 9: the policy that judged the answer
    PrimaryKeyConstraint("kafka_partition", "kafka_offset"),
    Index("ix_attempts_delivery", "delivery_id", "hop", "finished_at"),
)


# The last state of every item the log has seen (from glpi.item-changes): what a webhook
# is previewed against when no event is given.
items = Table(
    "items",
    metadata,
    Column("instance", String(255), nullable=False),
    Column("itemtype", String(255), nullable=False),
    Column("items_id", BigInteger, nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event", String(32), nullable=False),
    Column("entities_id", BigInteger),
    Column("occurred_at", BigInteger, nullable=False),
    Column("item", Text, nullable=False),  # JSON, as GLPI sent it
    Column("parent_item", Text),
    PrimaryKeyConstraint("instance", "itemtype", "items_id"),
    Index("ix_items_occurred", "occurred_at"),
)


# The audit trail (from hookstream.audit): who wrote what, through the API or the console.
audit = Table(
    "audit",
    metadata,
    Column("audit_id", String(64), primary_key=True),
    Column("at_ms", BigInteger, nullable=False),
    Column("token", String(255), nullable=False),
    Column("action", String(32), nullable=False),
    Column("target", Text, nullable=False),
    Column("result", Text, nullable=False),
    Column("instance", String(255)),
    Column("via", String(16), nullable=False),
    Index("ix_audit_time", "at_ms", "audit_id"),
    Index("ix_audit_token_time", "token", "at_ms", "audit_id"),
    Index("ix_audit_action_time", "action", "at_ms", "audit_id"),
)


# Operational events (from hookstream.operations): webhook.disabled, delivery.dead_lettered,
# circuit.opened, as the console lists them.
operations = Table(
    "operations",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("type", String(32), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("instance", String(255), nullable=False),
    Column("webhook_id", String(255), nullable=False),
    Column("reason", Text, nullable=False),
    Column("delivery_id", String(64)),
    Column("origin", Text),
    Index("ix_operations_time", "at_ms", "event_id"),
    Index("ix_operations_webhook_time", "webhook_id", "at_ms", "event_id"),
)

# What the attempts say of each webhook's target (hookstream.policy.TargetHealth): the
# record auto-disable decides on, folded in as attempts are written.
webhook_health = Table(
    "webhook_health",
    metadata,
    Column("webhook_id", String(255), primary_key=True),
    Column("last_success_ms", BigInteger),
    Column("first_failure_ms", BigInteger),
    Column("last_failure_ms", BigInteger),
)


# Migration 10: what the ticketer did with each alert event (from hookstream.alert-actions),
# one row per action, and each alert's latest state summarised from its actions (recomputed
# when one is added), which the alerts list pages through.
alert_actions = Table(
    "alert_actions",
    metadata,
    Column("action_id", String(64), primary_key=True),
    Column("alert_key", Text, nullable=False),  # instance:source:fingerprint
    Column("alert_event_id", String(64), nullable=False),
    Column("instance", String(255), nullable=False),
    Column("source", String(32), nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("alert_name", Text, nullable=False),
    Column("alert_status", String(16), nullable=False),
    Column("action", String(16), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("rule_id", String(255), nullable=False),
    Column("tickets_id", BigInteger, nullable=False),  # 0: no ticket concerned
    Column("latency_ms", BigInteger),
    Column("message", Text, nullable=False),  # GLPI's, when it refused
    Index("ix_alert_actions_alert", "alert_key", "at_ms", "action_id"),
    Index("ix_alert_actions_time", "at_ms"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("alert_key", Text, primary_key=True),
    Column("instance", String(255), nullable=False),
    Column("source", String(32), nullable=False),
    Column("fingerprint", Text, nullable=False),
    # the latest action's (at_ms, then action_id)
    Column("alert_name", Text),
    Column("alert_status", String(16)),
    Column("last_action", String(16)),
    Column("last_at_ms", BigInteger),
    Column("last_action_id", String(64)),
    Column("rule_id", String(255)),
    Column("message", Text),
    Column("tickets_id", BigInteger),  # of the latest action that names a ticket; 0: none
    Column("first_at_ms", BigInteger),
    Column("actions", Integer),
    # the list's pages, newest first, whole or by one filter
    Index("ix_alerts_time", "last_at_ms", "alert_key"),
    Index("ix_alerts_instance_time", "instance", "last_at_ms", "alert_key"),
    Index("ix_alerts_status_time", "alert_status", "last_at_ms", "alert_key"),
    Index("ix_alerts_action_time", "last_action", "last_at_ms", "alert_key"),
)


# Migration 11: the queue view's rows, one per delivery in a queued state (pending, waiting,
# dead-lettered, render error, blocked), kept by the writer in the transaction that sets the
# delivery's state. Counting these in `deliveries`, even from a covering index, fetched a
# heap page per queued row to check its visibility (rows just written are not all-visible):
# 0.5 s over 50,000 of 1,000,000. This table is read whole, a few megabytes.
queued = Table(
    "queued",
    metadata,
    Column("delivery_id", String(64), primary_key=True),
    Column("instance", String(255), nullable=False),
    Column("webhook_id", String(255), nullable=False),
    Column("state", String(16), nullable=False),
    Column("tier", String(16)),
    Column("created_at", BigInteger, nullable=False),
)
QUEUED_STATES = ("pending", "waiting", "dead_lettered", "render_error", "blocked")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _v1(conn: Connection) -> None:
    deliveries.create(conn)
    attempts.create(conn)


def _v2(conn: Connection) -> None:
    items.create(conn)


def _v3(conn: Connection) -> None:
    # The queue view reads every undelivered row's created_at: with it in the index, the
    # view is read from the index alone (seconds to milliseconds over 1,000,000 rows).
    conn.execute(text("DROP INDEX ix_deliveries_state"))
    conn.execute(text("CREATE INDEX ix_deliveries_queue "
                      "ON deliveries (state, instance, webhook_id, tier, created_at)"))


# Each filter of the queries log with its own index in the page's order, so a page of a
# rare value (status 401, dead-lettered) is a range scan, not a walk through the log.
# The ids settle rows of one millisecond, as the keyset cursor does.
_FILTER_INDEXES = {
    "ix_deliveries_created": "created_at, delivery_id",
    "ix_deliveries_state_time": "state, created_at, delivery_id",
    "ix_deliveries_status_time": "last_status, created_at, delivery_id",
    "ix_deliveries_outcome_time": "last_outcome, created_at, delivery_id",
    "ix_deliveries_instance_time": "instance, created_at, delivery_id",
    # a webhook's log by state (its dead letters): without it, 5,000 rows read for 80
    "ix_deliveries_webhook_state": "webhook_id, state, created_at, delivery_id",
}


def _v4(conn: Connection) -> None:
    conn.execute(text("DROP INDEX ix_deliveries_created"))
    for name, columns in _FILTER_INDEXES.items():
        conn.execute(text(f"CREATE INDEX {name} ON deliveries ({columns})"))


def _v5(conn: Connection) -> None:
    audit.create(conn)


ATTEMPT_COLUMNS_V6 = ("trigger", "trigger_tier", "actor", "request_method", "request_url",
                      "request_headers", "body_sha256", "reason", "next_step")


def _add_missing_attempt_columns(conn: Connection, names: tuple[str, ...]) -> None:
    present = {c["name"] for c in inspect(conn).get_columns("attempts")}
    for name in names:
        if name not in present:
            kind = attempts.c[name].type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE attempts ADD COLUMN {name} {kind}"))


def _v6(conn: Connection) -> None:
    _add_missing_attempt_columns(conn, ATTEMPT_COLUMNS_V6)


def _v7(conn: Connection) -> None:
    # The console's picture of each webhook: attempts of the last 24 hours by time (the
    # chart, joined to their deliveries by id), and a webhook's latest attempted delivery
    # (what delivery last saw of its target's circuit) as one seek per webhook.
    conn.execute(text("CREATE INDEX ix_attempts_finished "
                      "ON attempts (finished_at, outcome, delivery_id)"))
    conn.execute(text("CREATE INDEX ix_deliveries_webhook_attempt "
                      "ON deliveries (webhook_id, last_attempt_at, delivery_id)"))


def _v8(conn: Connection) -> None:
    operations.create(conn)
    webhook_health.create(conn)


ATTEMPT_COLUMNS_V9 = ("retry_policy",)


def _v9(conn: Connection) -> None:
    _add_missing_attempt_columns(conn, ATTEMPT_COLUMNS_V9)


def _v10(conn: Connection) -> None:
    alert_actions.create(conn)
    alerts.create(conn)


def _v11(conn: Connection) -> None:
    queued.create(conn)
    d = deliveries.c
    columns = [c.name for c in queued.c]
    conn.execute(queued.insert().from_select(columns, select(*(d[n] for n in columns)).where(
        d.state.in_(QUEUED_STATES))))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "deliveries and attempts", _v1),
    Migration(2, "items: the last state of each item seen", _v2),
    Migration(3, "queue view index covers created_at", _v3),
    Migration(4, "an index per filter of the queries log, in page order", _v4),
    Migration(5, "audit: every write through the admin API or the console", _v5),
    Migration(6, "attempts: trigger, request as sent, decision", _v6),
    Migration(7, "indexes of the console's picture of each webhook", _v7),
    Migration(8, "operational events, and each webhook's target health (auto-disable)", _v8),
    Migration(9, "attempts: the retry policy that judged the answer", _v9),
    Migration(10, "alerts into tickets: the ticketer's actions, each alert's latest", _v10),
    Migration(11, "queued: the queue view's deliveries, apart from the log", _v11),
)
LATEST = MIGRATIONS[-1].version


def schema_version(engine: Engine) -> int:
    """The version the store is at (0: empty)."""
    with engine.connect() as conn:
        return _version(conn)


def _version(conn: Connection) -> int:
    if not conn.dialect.has_table(conn, migrations_table.name):
        return 0
    return max(conn.scalars(select(migrations_table.c.version)).all(), default=0)


def _lock(conn: Connection) -> None:
    """Serialise migrations: a log store, an admin API and the CLI may start at once.
    SQLite's transactions begin deferred: two migrators would both read the old version
    and then both create the same table, so the writer lock is taken before reading."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(727001)"))
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine, clock: Callable[[], float] = time.time) -> list[int]:
    """Apply the migrations the store lacks, in order; returns their versions."""
    with engine.begin() as conn:
        _lock(conn)
        migrations_table.create(conn, checkfirst=True)
    applied = []
    for migration in MIGRATIONS:
        with engine.begin() as conn:  # a migration and its record commit together
            _lock(conn)
            if migration.version <= _version(conn):
                continue
            migration.apply(conn)
            conn.execute(
                migrations_table.insert().values(
                    version=migration.version,
                    description=migration.description,
                    applied_at=int(clock() * 1000),
                )
            )
        applied.append(migration.version)
    return applied
