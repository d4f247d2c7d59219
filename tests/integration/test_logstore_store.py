"""The log store's database layer on SQLite and on a real PostgreSQL server: migrations,
idempotent and order-independent writes, retention, and the queries."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, text

from connectors.logstore import (
    LATEST,
    AuditFilter,
    Cursor,
    DeliveryFilter,
    LogStore,
    delivery_detail,
    list_audit,
    list_deliveries,
    migrate,
    open_engine,
    queue_view,
    request_body,
    schema_version,
)
from connectors.logstore.queries import BadFilter, page_query
from connectors.logstore.rows import Source, from_attempt, from_request, merge_all
from connectors.logstore.schema import attempts, deliveries
from connectors.logstore.store import (
    ATTEMPT_FIELDS,
    DELIVERY_FIELDS,
    attempt_values,
    delivery_values,
)
from hookstream.config import Settings, load_settings
from hookstream.records import AuditRecord, DeliveryRequest, delivery_id_for
from tests.pg import postgres_server

T0 = 1_700_000_000_000


def store_settings(kind: str, tmp_path: Path) -> Settings:
    url = postgres_server().database_url() if kind == "postgresql" else ""
    return load_settings(env={}, check_dns=False, state_dir=str(tmp_path / "state"),
                         logstore_url=url, logstore_body_max_bytes=64)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    eng = open_engine(store_settings(request.param, tmp_path))
    yield eng
    eng.dispose()


def req(n: int, instance: str = "glpi-a", webhook: str = "hook", **changes: Any
        ) -> DeliveryRequest:
    return DeliveryRequest(
        delivery_id=delivery_id_for(f"e{n}", webhook), webhook_id=webhook, instance=instance,
        event_id=f"e{n}", itemtype="Ticket", items_id=n % 5, event="update", method="POST",
        url="https://example.test/in", body=b'{"n": %d}' % n, created_at=T0 + n,
        headers={"Authorization": "Bearer secret-token"},
    ).evolve(**changes)


def story(n: int, **kw: Any) -> tuple[list[Any], list[Any]]:
    """Fragments and attempt rows of delivery n: sent, retried once, then delivered."""
    r0 = req(n, **kw)
    tier = r0.evolve(hop=1, attempt=1, not_before=T0 + 10_000)
    a1 = from_attempt(r0.attempt_record(1, T0 + n, T0 + n + 3, "retry_scheduled",
                                        status_code=503, response_body=b"busy" * 40),
                      n % 2, 2 * n, 64)
    a2 = from_attempt(tier.attempt_record(2, T0 + 10_000, T0 + 10_020, "delivered",
                                          status_code=200), n % 2, 2 * n + 1, 64)
    fragments = [from_request(r0, Source.DELIVERIES, None, 64), a1[0],
                 from_request(tier, Source.TIER, "10s", 64), a2[0]]
    return fragments, [a1[1], a2[1]]


def snapshot(engine: Engine) -> tuple[list[Any], list[Any]]:
    with engine.connect() as conn:
        d = conn.execute(select(deliveries).order_by(deliveries.c.delivery_id)).all()
        a = conn.execute(select(attempts).order_by(attempts.c.kafka_partition,
                                                   attempts.c.kafka_offset)).all()
    return [tuple(r) for r in d], [tuple(r) for r in a]


def queue_matches_the_log(engine: Engine) -> bool:
    """The queue view's table holds exactly the log's deliveries in a queued state."""
    from connectors.logstore.schema import QUEUED_STATES, queued

    d, q = deliveries.c, queued.c
    with engine.connect() as conn:
        kept = conn.execute(select(q.delivery_id, q.instance, q.webhook_id, q.state, q.tier,
                                   q.created_at).order_by(q.delivery_id)).all()
        logged = conn.execute(select(d.delivery_id, d.instance, d.webhook_id, d.state, d.tier,
                                     d.created_at).where(d.state.in_(QUEUED_STATES))
                              .order_by(d.delivery_id)).all()
    return [tuple(r) for r in kept] == [tuple(r) for r in logged]


def test_migrations_are_versioned_and_applied_once(engine: Engine) -> None:
    assert schema_version(engine) == LATEST
    assert migrate(engine) == []  # already there: nothing applied again


def _migrate_in_a_process(url: str, results: Any) -> None:
    from sqlalchemy import create_engine, event

    from connectors.logstore.store import _sqlite_pragmas

    eng = create_engine(url)
    if url.startswith("sqlite"):
        event.listen(eng, "connect", _sqlite_pragmas)
    try:
        results.put(migrate(eng))
    except Exception as e:  # reported to the test, which fails on it
        results.put(f"{type(e).__name__}: {e}")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_processes_starting_at_once_migrate_a_new_store_once(kind: str, tmp_path: Path) -> None:
    # A log store and `hookstream queue` started together (as a test polling the queue
    # does): before the writer lock was taken first on SQLite, one of them failed on
    # "table already exists" or a duplicate version in most runs.
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")
    for round_ in range(3):
        settings = store_settings(kind, tmp_path / str(round_))
        url = open_engine(settings, migrate_schema=False).url.render_as_string(
            hide_password=False)
        results = spawn.Queue()
        workers = [spawn.Process(target=_migrate_in_a_process, args=(url, results))
                   for _ in range(4)]
        for w in workers:
            w.start()
        applied = [results.get(timeout=60) for _ in workers]
        for w in workers:
            w.join(30)
        assert all(isinstance(a, list) for a in applied), applied
        # every migration applied exactly once, by whichever process got there first
        assert sorted(v for a in applied for v in a) == list(range(1, LATEST + 1)), applied


def test_writes_are_idempotent_and_independent_of_order_and_batching(engine: Engine) -> None:
    store = LogStore(engine)
    fragments, attempt_rows = [], []
    for n in range(20):
        f, a = story(n)
        fragments += f
        attempt_rows += a
    store.write(fragments, attempt_rows)
    once = snapshot(engine)
    assert len(once[0]) == 20 and len(once[1]) == 40

    store.clear()
    rng = random.Random(3)
    items = [("f", f) for f in fragments] + [("a", a) for a in attempt_rows]
    rng.shuffle(items)
    for start in range(0, len(items), 7):  # small batches, each record maybe twice
        chunk = items[start:start + 7] + rng.sample(items, 2)
        store.write([x for k, x in chunk if k == "f"], [x for k, x in chunk if k == "a"])
        assert queue_matches_the_log(engine)  # at every step, whatever the order
    assert snapshot(engine) == once

    row = list_deliveries(engine, DeliveryFilter(), limit=1).items[0]
    assert (row["state"], row["attempts"], row["last_status"], row["last_outcome"]) == (
        "delivered", 2, 200, "delivered")


def test_detail_has_redacted_headers_truncated_bodies_and_every_attempt(engine: Engine) -> None:
    f, a = story(3)
    LogStore(engine).write(f, a)
    detail = delivery_detail(engine, f[0].delivery_id)
    assert detail is not None
    assert detail["request"]["headers"] == {"Authorization": "Bearer ••••(12 chars)"}
    assert "secret-token" not in repr(detail)
    assert [x["outcome"] for x in detail["attempt_log"]] == ["retry_scheduled", "delivered"]
    first = detail["attempt_log"][0]
    assert first["response_truncated"] and first["response_size"] == 160
    assert first["response_body"] == {"encoding": "utf-8", "data": ("busy" * 16)}
    assert delivery_detail(engine, f[0].delivery_id, instances=["glpi-b"]) is None


def test_pages_filters_and_scope(engine: Engine) -> None:
    store = LogStore(engine)
    for n in range(25):
        r = req(n, instance="glpi-a" if n % 2 else "glpi-b", webhook=f"hook-{n % 3}")
        store.write([from_request(r, Source.DELIVERIES, None, 64)], [])
    seen, cursor = [], None
    while True:
        page = list_deliveries(engine, DeliveryFilter(), cursor=cursor, limit=4)
        seen += [r["delivery_id"] for r in page.items]
        if page.next_cursor is None:
            break
        cursor = Cursor.decode(page.next_cursor)
    assert len(seen) == len(set(seen)) == 25
    created = [r["created_at"] for r in list_deliveries(engine, DeliveryFilter(), limit=25).items]
    assert created == sorted(created, reverse=True)
    only_a = list_deliveries(engine, DeliveryFilter(), instances=["glpi-a"], limit=100).items
    assert len(only_a) == 12 and {r["instance"] for r in only_a} == {"glpi-a"}
    hook = list_deliveries(engine, DeliveryFilter(webhook_id="hook-1", state="pending"),
                           limit=100).items
    assert {r["webhook_id"] for r in hook} == {"hook-1"} and len(hook) == 8
    item = list_deliveries(engine, DeliveryFilter(instance="glpi-a", itemtype="Ticket",
                                                  items_id=3), limit=100).items
    assert item and all(r["items_id"] == 3 and r["instance"] == "glpi-a" for r in item)
    assert list_deliveries(engine, DeliveryFilter(since_ms=T0 + 20), limit=100).items[-1][
        "created_at"] == T0 + 20


def test_queue_view_counts_by_state_tier_instance_and_webhook(engine: Engine) -> None:
    store = LogStore(engine)
    for n in range(6):
        r = req(n)
        store.write([from_request(r, Source.DELIVERIES, None, 64)], [])
    for n in (0, 1):
        store.write([from_request(req(n).evolve(hop=1, not_before=T0 + 60_000), Source.TIER,
                                  "1m", 64)], [])
    store.write([from_request(req(2).evolve(hop=2, last_error="410"), Source.DLQ, None, 64)], [])
    store.write([from_request(req(9, instance="glpi-b"), Source.DELIVERIES, None, 64)], [])
    view = queue_view(engine, now_ms=T0 + 5_000)
    assert view["totals"] == {"pending": 4, "waiting": {"1m": 2}, "dead_lettered": 1,
                              "render_error": 0, "blocked": 0}
    assert view["oldest_undelivered_at"] == T0 and view["oldest_undelivered_age_s"] == 5.0
    scoped = queue_view(engine, instances=["glpi-b"], now_ms=T0 + 5_000)
    assert scoped["totals"]["pending"] == 1 and scoped["totals"]["waiting"] == {}
    assert {g["instance"] for g in scoped["groups"]} == {"glpi-b"}


def test_the_queue_follows_each_delivery_to_its_end_and_out_with_retention(
        engine: Engine) -> None:
    store = LogStore(engine)
    first = [from_request(req(n), Source.DELIVERIES, None, 64) for n in range(4)]
    store.write(first, [])
    assert queue_view(engine)["totals"]["pending"] == 4
    delivered = from_attempt(req(0).attempt_record(1, T0, T0 + 5, "delivered", status_code=200),
                             0, 0, 64)
    retried = from_attempt(req(1).attempt_record(1, T0, T0 + 5, "retry_scheduled",
                                                 status_code=503), 0, 1, 64)
    batch = ([delivered[0], retried[0]], [delivered[1], retried[1]])
    store.write(*batch)
    store.write(first + batch[0], batch[1])  # read again after a crash: nothing changes
    view = queue_view(engine)
    assert view["totals"]["pending"] == 2 and view["totals"]["waiting"] == {"unknown": 1}
    assert sum(g["count"] for g in view["groups"]) == 3 and queue_matches_the_log(engine)
    store.prune(1, clock=lambda: (T0 + 2) / 1000 + 86_400)  # deliveries 0 and 1 are too old
    assert sum(g["count"] for g in queue_view(engine)["groups"]) == 2
    assert queue_matches_the_log(engine)
    store.clear()
    assert queue_view(engine)["groups"] == []


def test_retention_deletes_old_deliveries_and_their_attempts_in_batches(engine: Engine) -> None:
    store = LogStore(engine)
    for n in range(30):
        f, a = story(n)
        store.write(f, a)
    now_s = (T0 + 15) / 1000 + 30 * 86_400  # 30 days after delivery 15 was created
    assert store.prune(30, batch=4, clock=lambda: now_s, max_batches=2) == 8
    assert store.prune(30, batch=4, clock=lambda: now_s) == 7
    d, a = snapshot(engine)
    assert len(d) == 15 and len(a) == 30
    assert min(list_deliveries(engine, DeliveryFilter(), limit=100).items,
               key=lambda r: r["created_at"])["created_at"] == T0 + 15


def test_items_keep_the_last_change_whatever_the_order(engine: Engine) -> None:
    from connectors.logstore import last_item
    from connectors.logstore.rows import ItemRow
    from hookstream.records import make_event

    changes = [ItemRow(make_event("glpi-a", "Ticket", 7, "update", {"id": 7, "v": v},
                                  occurred_at=T0 + v, entities_id=0)) for v in range(6)]
    store = LogStore(engine)
    store.write([], [], [changes[5], changes[1]])
    store.write([], [], [changes[0], changes[3], changes[5]])  # older and repeated: no change
    seen = last_item(engine, "glpi-a", "Ticket", 7)
    assert seen is not None and seen["item"] == {"id": 7, "v": 5}
    assert seen["event"] == "update" and seen["entities_id"] == 0
    assert last_item(engine, "glpi-a", "Ticket", 7, instances=["glpi-b"]) is None
    assert last_item(engine, "glpi-a", "Ticket", 8) is None
    store.prune(1, clock=lambda: (T0 + 3) / 1000 + 86_400)  # older than a day: none left
    assert last_item(engine, "glpi-a", "Ticket", 7) is not None
    store.prune(1, clock=lambda: (T0 + 6) / 1000 + 86_400)
    assert last_item(engine, "glpi-a", "Ticket", 7) is None


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_store_at_version_1_is_upgraded_in_place(kind: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import connectors.logstore.schema as schema

    eng = open_engine(store_settings(kind, tmp_path), migrate_schema=False)
    with monkeypatch.context() as patched:
        patched.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
        assert migrate(eng) == [1]
    f, a = story(1)
    waiting = [from_request(req(2), Source.DELIVERIES, None, 64)]  # pending: queued
    with eng.begin() as conn:  # the rows as version 1 holds them (the writer needs `queued`)
        conn.execute(insert(deliveries), [dict(zip(DELIVERY_FIELDS, delivery_values(r),
                                                   strict=True))
                                          for r in merge_all(f + waiting)])
        conn.execute(insert(attempts), [dict(zip(ATTEMPT_FIELDS, attempt_values(r),
                                                 strict=True))
                                        for r in a])
    before = snapshot(eng)
    assert schema_version(eng) == 1
    assert migrate(eng) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11] and schema_version(eng) == LATEST == 11
    assert snapshot(eng) == before
    # migration 11 filled the queue view's table from the log
    assert queue_view(eng)["totals"]["pending"] == 1
    assert [g["webhook_id"] for g in queue_view(eng)["groups"]] == ["hook"]
    eng.dispose()


STATES = ("delivered", "waiting", "dead_lettered", "pending")
OUTCOMES = {"delivered": "delivered", "waiting": "retry_scheduled",
            "dead_lettered": "dead_lettered", "pending": None}


def log_rows(count: int) -> list[dict[str, Any]]:
    """Deliveries of every combination, three a millisecond (the cursor's ties)."""
    rows = []
    for n in range(count):
        state = STATES[n % 4]
        rows.append({
            "delivery_id": delivery_id_for(f"e{n}", "h"), "instance": f"glpi-{n % 2}",
            "webhook_id": f"hook-{n % 3}", "itemtype": "Ticket", "items_id": n % 7,
            "event": "update", "created_at": T0 + n // 3, "attempts": 1, "state": state,
            "last_status": {"delivered": 200, "waiting": 503, "dead_lettered": 401}.get(state),
            "last_outcome": OUTCOMES[state]})
    return rows


def every_page(engine: Engine, where: DeliveryFilter, limit: int, newer: bool = False,
               instances: list[str] | None = None) -> list[str]:
    """Ids of every page from the newest down (or, with newer, from the oldest up)."""
    if newer:  # start below the oldest row
        page = list_deliveries(engine, where, instances, Cursor(T0 - 1, "0"), limit, True)
    else:
        page = list_deliveries(engine, where, instances, None, limit)
    pages = [[r["delivery_id"] for r in page.items]]
    while (page.prev_cursor if newer else page.next_cursor) is not None:
        at = Cursor.decode(page.prev_cursor if newer else page.next_cursor)  # type: ignore[arg-type]
        page = list_deliveries(engine, where, instances, at, limit, newer)
        pages.append([r["delivery_id"] for r in page.items])
    if newer:
        pages.reverse()
    return [d for ids in pages for d in ids]


@pytest.fixture
def log(engine: Engine) -> list[dict[str, Any]]:
    rows = log_rows(120)
    with engine.begin() as conn:
        conn.execute(insert(deliveries), rows)
    return rows


def expected(rows: list[dict[str, Any]], **match: Any) -> list[str]:
    chosen = [r for r in rows if all(r[k] == v for k, v in match.items())]
    chosen.sort(key=lambda r: (r["created_at"], r["delivery_id"]), reverse=True)
    return [r["delivery_id"] for r in chosen]


@pytest.mark.parametrize("limit", [1, 7, 50, 500])
def test_keyset_pages_cover_the_whole_log_once_in_order_both_ways(
        engine: Engine, log: list[dict[str, Any]], limit: int) -> None:
    everything = expected(log)
    assert every_page(engine, DeliveryFilter(), limit) == everything
    assert every_page(engine, DeliveryFilter(), limit, newer=True) == everything
    dead = DeliveryFilter(state="dead_lettered", instance="glpi-1")
    assert every_page(engine, dead, limit) == expected(
        log, state="dead_lettered", instance="glpi-1")
    assert every_page(engine, DeliveryFilter(), limit, instances=["glpi-0"]) == expected(
        log, instance="glpi-0")


def test_an_older_page_links_back_to_the_page_before_it(engine: Engine,
                                                        log: list[dict[str, Any]]) -> None:
    first = list_deliveries(engine, DeliveryFilter(), limit=10)
    assert first.prev_cursor is None and first.next_cursor is not None
    second = list_deliveries(engine, DeliveryFilter(), cursor=Cursor.decode(first.next_cursor),
                             limit=10)
    assert second.prev_cursor is not None
    back = list_deliveries(engine, DeliveryFilter(), cursor=Cursor.decode(second.prev_cursor),
                           limit=10, newer=True)
    assert back.items == first.items and back.prev_cursor is None
    assert back.next_cursor == first.next_cursor


@pytest.mark.parametrize("where, match", [
    (DeliveryFilter(state="waiting"), {"state": "waiting"}),
    (DeliveryFilter(status_code=401), {"last_status": 401}),
    (DeliveryFilter(outcome="retry_scheduled", webhook_id="hook-1"),
     {"last_outcome": "retry_scheduled", "webhook_id": "hook-1"}),
    (DeliveryFilter(state="delivered", status_code=503), {"state": "nothing"}),
    (DeliveryFilter(instance="glpi-0", status_code=200, webhook_id="hook-2"),
     {"instance": "glpi-0", "last_status": 200, "webhook_id": "hook-2"}),
])
def test_filters_combine(engine: Engine, log: list[dict[str, Any]], where: DeliveryFilter,
                         match: dict[str, Any]) -> None:
    assert every_page(engine, where, 9) == expected(log, **match)


def test_time_range_and_delivery_id_prefix(engine: Engine, log: list[dict[str, Any]]) -> None:
    window = DeliveryFilter(since_ms=T0 + 10, until_ms=T0 + 20, state="delivered")
    assert every_page(engine, window, 4) == [
        r for r in expected(log, state="delivered")
        if T0 + 10 <= next(x["created_at"] for x in log if x["delivery_id"] == r) < T0 + 20]
    assert len(every_page(engine, window, 4)) == 7  # rows 30 to 59: 32, 36, ... 56 delivered
    one = log[17]["delivery_id"]
    assert every_page(engine, DeliveryFilter(id_prefix=one[:12]), 5) == [one]
    prefix = one[0]
    assert every_page(engine, DeliveryFilter(id_prefix=prefix), 5) == [
        d for d in expected(log) if d.startswith(prefix)]


@pytest.mark.parametrize("where, named", [
    (DeliveryFilter(state="lost"), "state"),
    (DeliveryFilter(outcome="maybe"), "outcome"),
    (DeliveryFilter(status_code=999), "status_code"),
    (DeliveryFilter(id_prefix="XYZ"), "delivery id"),
])
def test_an_unknown_filter_value_is_a_clear_error(engine: Engine, where: DeliveryFilter,
                                                  named: str) -> None:
    with pytest.raises(BadFilter, match=named):
        list_deliveries(engine, where)


@pytest.mark.parametrize("where, index", [
    (DeliveryFilter(state="dead_lettered"), "ix_deliveries_state_time"),
    (DeliveryFilter(status_code=401), "ix_deliveries_status_time"),
    (DeliveryFilter(outcome="retry_scheduled"), "ix_deliveries_outcome_time"),
    (DeliveryFilter(webhook_id="hook-1"), "ix_deliveries_webhook "),
    (DeliveryFilter(webhook_id="hook-1", state="waiting"), "ix_deliveries_webhook_state"),
    (DeliveryFilter(), "ix_deliveries_created"),
])
def test_each_filter_reads_its_index_on_sqlite(tmp_path: Path, where: DeliveryFilter,
                                              index: str) -> None:
    eng = open_engine(store_settings("sqlite", tmp_path))
    query = page_query(where, None, Cursor(T0, "f"), 50).compile(
        eng, compile_kwargs={"literal_binds": True})
    with eng.connect() as conn:
        plan = " ".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {query}")))
    eng.dispose()
    assert index in plan and "TEMP B-TREE" not in plan, plan


def test_audit_rows_are_written_once_and_read_newest_first_within_a_scope(engine: Engine
                                                                          ) -> None:
    store = LogStore(engine)
    records = [AuditRecord(f"{n:032x}", T0 + n // 2, token, action, f"t{n}", "ok", instance,
                           "api")
               for n, (token, action, instance) in enumerate(
                   [("alice", "delivery.send", "glpi-a"), ("bob", "dlq.redrive", None),
                    ("alice", "webhook.put", "glpi-b"), ("alice", "delivery.send", "glpi-a"),
                    ("carol", "token.login", None)])]
    store.write([], [], [], records[:3])
    store.write([], [], [], records)  # a batch read again: each record once
    rows = list_audit(engine, AuditFilter())
    assert [r["target"] for r in rows] == ["t4", "t3", "t2", "t1", "t0"]
    assert rows[0] == {"audit_id": f"{4:032x}", "at_ms": T0 + 2, "token": "carol",
                       "action": "token.login", "target": "t4", "result": "ok",
                       "instance": None, "via": "api"}
    assert [r["target"] for r in list_audit(engine, AuditFilter(token="alice"))] == [
        "t3", "t2", "t0"]
    assert [r["target"] for r in list_audit(engine, AuditFilter("alice", "delivery.send"))
            ] == ["t3", "t0"]
    assert [r["target"] for r in list_audit(engine, AuditFilter(), ["glpi-a"])] == ["t3", "t0"]
    # pages: after the last row of one page, the next (ties on at_ms settled by the id)
    first = list_audit(engine, AuditFilter(), limit=2)
    last = first[-1]
    after = list_audit(engine, AuditFilter(before_ms=last["at_ms"], before_id=last["audit_id"]))
    assert [r["target"] for r in first + after] == ["t4", "t3", "t2", "t1", "t0"]
    store.clear()
    assert list_audit(engine, AuditFilter()) == []


def test_an_attempt_keeps_its_trigger_request_and_decision(engine: Engine) -> None:
    r0 = req(1)
    sent = {"X-GLPI-signature": "ab" * 32, "X-GLPI-timestamp": "1700000000",
            "Authorization": "Bearer secret-token"}
    record = r0.attempt_record(
        1, T0, T0 + 7, "dead_lettered", status_code=401, trigger="first",
        request_method="POST", request_url=r0.url, request_headers=sent,
        body_sha256="0" * 64, reason="HTTP 401", retry_policy="default",
        next_step="HTTP 401: not retried under this webhook's retry policy; dead-lettered.")
    dead = r0.evolve(hop=1, attempt=1, last_error="HTTP 401", last_status=401)
    fragment, row = from_attempt(record, 0, 1, 64)
    LogStore(engine).write([from_request(r0, Source.DELIVERIES, None, 64), fragment,
                            from_request(dead, Source.DLQ, None, 64)], [row])
    detail = delivery_detail(engine, r0.delivery_id)
    assert detail is not None
    assert detail["state"] == "dead_lettered" and detail["last_error"] == "HTTP 401"
    [a] = detail["attempt_log"]
    assert a["trigger"] == "first" and a["request_method"] == "POST"
    assert a["request_headers"] == {"X-GLPI-signature": "ab" * 32,
                                    "X-GLPI-timestamp": "1700000000",
                                    "Authorization": "Bearer ••••(12 chars)"}
    assert a["next_step"].startswith("HTTP 401: not retried") and a["reason"] == "HTTP 401"
    assert a["retry_policy"] == "default"
    assert "secret-token" not in repr(detail)
    assert request_body(engine, r0.delivery_id) == (b'{"n": 1}', False)
    assert request_body(engine, r0.delivery_id, ["other"]) is None


def test_migrations_5_and_6_add_audit_and_attempt_columns_to_a_v4_store(
        tmp_path: Path) -> None:
    from sqlalchemy import create_engine, inspect

    from connectors.logstore.schema import ATTEMPT_COLUMNS_V6, MIGRATIONS, migrations_table

    eng = create_engine(f"sqlite:///{tmp_path / 'v4.db'}")
    with eng.begin() as conn:  # a store as release 4 left it: attempts without the columns
        migrations_table.create(conn)
        conn.execute(text("CREATE TABLE attempts (kafka_partition INTEGER, "
                          "kafka_offset BIGINT, delivery_id TEXT, finished_at BIGINT, "
                          "outcome TEXT)"))
        deliveries.create(conn)
        for m in MIGRATIONS[1:4]:
            conn.execute(insert(migrations_table).values(
                version=m.version, description=m.description, applied_at=0))
        conn.execute(insert(migrations_table).values(version=1, description="x", applied_at=0))
    assert migrate(eng) == [5, 6, 7, 8, 9, 10, 11]
    columns = {c["name"] for c in inspect(eng).get_columns("attempts")}
    assert set(ATTEMPT_COLUMNS_V6) <= columns and "retry_policy" in columns
    eng.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migration_9_adds_the_retry_policy_to_a_v8_store_keeping_its_attempts(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import connectors.logstore.schema as schema

    eng = open_engine(store_settings(kind, tmp_path), migrate_schema=False)
    with monkeypatch.context() as patched:
        patched.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:8])
        assert migrate(eng) == [1, 2, 3, 4, 5, 6, 7, 8]
    with eng.begin() as conn:  # migration 1 of this release already has the column:
        conn.execute(text("ALTER TABLE attempts DROP COLUMN retry_policy"))  # as 8 left it
        conn.execute(text("INSERT INTO attempts (kafka_partition, kafka_offset, delivery_id, "
                          "attempt, hop, started_at, finished_at, outcome, status_code, "
                          "response_headers) VALUES (0, 9, 'old', 1, 0, 1, 2, "
                          "'dead_lettered', 401, '{}')"))
    assert migrate(eng) == [9, 10, 11] and schema_version(eng) == LATEST
    with eng.connect() as conn:
        [row] = conn.execute(select(attempts.c.status_code, attempts.c.retry_policy)).all()
    assert tuple(row) == (401, None)  # an attempt logged before v4 names no policy
    eng.dispose()


HOUR = 3_600_000
NOW = T0 + 30 * HOUR


def activity(engine: Engine) -> dict[str, str]:
    """hook-1 (glpi-a): one delivery retried then delivered, one dead-lettered, one
    delivered before the 24 hours; hook-2 (glpi-b): one skipped by an open circuit.
    The delivery ids by name."""
    store, offset = LogStore(engine), 0
    ids = {}
    for name, n, webhook, instance, steps in (
            ("retried", 1, "hook-1", "glpi-a", [(3, "retry_scheduled", 503),
                                                 (2, "delivered", 200)]),
            ("dead", 2, "hook-1", "glpi-a", [(1, "dead_lettered", 410)]),
            ("old", 3, "hook-1", "glpi-a", [(25, "delivered", 200)]),
            ("skipped", 4, "hook-2", "glpi-b", [(0.2, "circuit_open", None)])):
        r = req(n, instance, webhook, created_at=NOW - int(steps[0][0] * HOUR) - 5)
        ids[name] = r.delivery_id
        fragments, rows = [from_request(r, Source.DELIVERIES, None, 64)], []
        for attempt, (hours_ago, outcome, status) in enumerate(steps, 1):
            at = NOW - int(hours_ago * HOUR)
            hop = r.evolve(hop=attempt - 1)
            f, a = from_attempt(hop.attempt_record(attempt, at - 3, at, outcome,
                                                   status_code=status), 0, offset, 64)
            offset += 1
            fragments.append(f)
            rows.append(a)
        if name == "dead":
            fragments.append(from_request(r.evolve(hop=1, attempt=1, last_status=410,
                                                   last_error="HTTP 410"), Source.DLQ, None, 64))
        store.write(fragments, rows)
    return ids


def test_attempts_per_hour_per_webhook_within_the_scope(engine: Engine) -> None:
    from connectors.logstore.activity import first_hour, hourly_attempts

    activity(engine)
    hour = NOW // HOUR
    hook_1 = {(hour - 3, "retry_scheduled"): 1, (hour - 2, "delivered"): 1,
              (hour - 1, "dead_lettered"): 1}  # not the delivery 25 h ago; no circuit skip
    assert first_hour(NOW) == hour - 23
    assert hourly_attempts(engine, None, None, NOW) == {"hook-1": hook_1}
    assert hourly_attempts(engine, ["hook-1"], ["glpi-a"], NOW) == {"hook-1": hook_1}
    assert hourly_attempts(engine, None, ["glpi-b"], NOW) == {}
    assert hourly_attempts(engine, ["hook-2"], None, NOW) == {}
    # 26 hours later, what was 25 h ago is out and nothing else is in
    assert hourly_attempts(engine, None, None, NOW + 26 * HOUR) == {}


def test_each_webhooks_latest_delivery_and_attempt_within_the_scope(engine: Engine) -> None:
    from connectors.logstore.activity import latest_attempted, latest_deliveries

    ids = activity(engine)
    last = latest_deliveries(engine, ["hook-1", "hook-2", "hook-none"], None)
    assert set(last) == {"hook-1", "hook-2"}
    assert (last["hook-1"].delivery_id, last["hook-1"].state, last["hook-1"].last_status) == (
        ids["dead"], "dead_lettered", 410)
    attempted = latest_attempted(engine, ["hook-1", "hook-2"], None)
    assert (attempted["hook-2"].last_outcome, attempted["hook-2"].last_attempt_at) == (
        "circuit_open", NOW - int(0.2 * HOUR))
    assert attempted["hook-1"].delivery_id == ids["dead"]
    # a token of glpi-a sees nothing of hook-2's deliveries
    assert set(latest_deliveries(engine, ["hook-1", "hook-2"], ["glpi-a"])) == {"hook-1"}
    assert set(latest_attempted(engine, ["hook-1", "hook-2"], ["glpi-a"])) == {"hook-1"}


def test_the_pictures_queries_read_their_indexes_on_sqlite(tmp_path: Path) -> None:
    from connectors.logstore.activity import hourly_query, latest_query

    eng = open_engine(store_settings("sqlite", tmp_path))

    def plan(query: Any) -> str:
        sql = query.compile(eng, compile_kwargs={"literal_binds": True})
        with eng.connect() as conn:
            return " ".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))

    for chart in (hourly_query(None, None, NOW), hourly_query(["hook-1"], ["glpi-a"], NOW)):
        found = plan(chart)  # a range of the last 24 hours, not the whole log
        assert "ix_attempts_finished" in found and "SCAN attempts" not in found, found
    for order, index in ((deliveries.c.created_at, "ix_deliveries_webhook "),
                         (deliveries.c.last_attempt_at, "ix_deliveries_webhook_attempt")):
        found = plan(latest_query(["hook-1", "hook-2"], ["glpi-a"], order))
        assert found.count(index) == 2 and "SCAN" not in found, found  # a seek per webhook
    eng.dispose()
