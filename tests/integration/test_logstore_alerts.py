"""Alerts into tickets in the log store, on SQLite and on a real PostgreSQL server: the
ticketer's actions written once whatever the order, each alert's latest state, the alerts
list (filters, search, scope, keyset pages both ways), one alert's history, retention, and
migration 10 on a store of the release before."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from connectors.logstore import (
    LATEST,
    AlertCursor,
    AlertFilter,
    LogStore,
    alert_history,
    list_alerts,
    migrate,
    open_engine,
    schema_version,
)
from connectors.logstore.alerts import alerts_query
from connectors.logstore.queries import BadFilter
from connectors.logstore.schema import alert_actions, alerts
from hookstream.records import TicketAction, alert_key
from tests.integration.test_logstore_store import store_settings

T0 = 1_700_000_000_000


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    eng = open_engine(store_settings(request.param, tmp_path))
    yield eng
    eng.dispose()


def action(n: int, fingerprint: str, kind: str, status: str = "firing", tickets_id: int = 0,
           instance: str = "glpi-a", name: str = "DiskFull", **more: Any) -> TicketAction:
    return TicketAction(
        action_id=f"{n:032x}", alert_event_id=f"e{n}",
        alert_key=alert_key(instance, "alertmanager", fingerprint), instance=instance,
        source="alertmanager", fingerprint=fingerprint, alert_name=name, alert_status=status,
        action=kind, at=T0 + 1000 * n, rule_id="" if kind == "unmatched" else "disk",
        tickets_id=tickets_id, **more)


# disk-1: opened, a repeat, resolved (solved), fired again (a new ticket); disk-2: refused
# by GLPI; cpu-1 (glpi-b): no rule matched
STORY = [
    action(1, "disk-1", "opened", tickets_id=12, latency_ms=340),
    action(2, "disk-1", "unchanged"),
    action(3, "disk-1", "solved", "resolved", tickets_id=12),
    action(4, "disk-2", "refused", name="DiskFull /var",
           message="ERROR_GLPI_ADD: you do not have the right"),
    action(5, "disk-1", "opened", tickets_id=31, latency_ms=290),
    action(6, "cpu-1", "unmatched", instance="glpi-b", name="CPUHigh"),
]
DISK_1 = alert_key("glpi-a", "alertmanager", "disk-1")


def snapshot(engine: Engine) -> tuple[list[Any], list[Any]]:
    with engine.connect() as conn:
        return (list(conn.execute(select(alert_actions).order_by(alert_actions.c.action_id))),
                list(conn.execute(select(alerts).order_by(alerts.c.alert_key))))


def test_actions_are_written_once_whatever_the_order_and_batching(engine: Engine) -> None:
    store = LogStore(engine)
    store.write([], [], alert_action_rows=STORY)
    once = snapshot(engine)
    assert len(once[0]) == 6 and len(once[1]) == 3

    store.clear()
    rng = random.Random(7)
    shuffled = rng.sample(STORY, len(STORY))
    for start in range(0, len(shuffled), 2):  # small batches, each action maybe twice
        store.write([], [], alert_action_rows=shuffled[start:start + 2] + rng.sample(STORY, 1))
    assert snapshot(engine) == once

    latest = alert_history(engine, DISK_1)
    assert latest is not None
    assert {k: latest[k] for k in ("alert_name", "alert_status", "last_action", "last_at_ms",
                                   "tickets_id", "first_at_ms", "actions")} == {
        "alert_name": "DiskFull", "alert_status": "firing", "last_action": "opened",
        "last_at_ms": T0 + 5000, "tickets_id": 31, "first_at_ms": T0 + 1000, "actions": 4}


def test_the_ticket_is_the_latest_one_an_action_names(engine: Engine) -> None:
    # a repeat after the ticket was opened names none: the alert keeps its ticket
    LogStore(engine).write([], [], alert_action_rows=STORY[:2])
    found = alert_history(engine, DISK_1)
    assert found is not None and (found["last_action"], found["tickets_id"]) == ("unchanged", 12)


def test_history_is_every_action_in_order_with_glpis_message(engine: Engine) -> None:
    LogStore(engine).write([], [], alert_action_rows=STORY)
    found = alert_history(engine, DISK_1)
    assert found is not None
    assert [(a["action"], a["alert_status"], a["tickets_id"], a["latency_ms"])
            for a in found["history"]] == [
        ("opened", "firing", 12, 340), ("unchanged", "firing", 0, None),
        ("solved", "resolved", 12, None), ("opened", "firing", 31, 290)]
    refused = alert_history(engine, alert_key("glpi-a", "alertmanager", "disk-2"))
    assert refused is not None and refused["message"] == (
        "ERROR_GLPI_ADD: you do not have the right")
    assert refused["history"][0]["message"] == refused["message"]
    assert alert_history(engine, DISK_1, instances=["glpi-b"]) is None  # not its scope
    assert alert_history(engine, "glpi-a:alertmanager:nothing") is None


def keys(engine: Engine, where: AlertFilter, instances: list[str] | None = None) -> list[str]:
    return [r["alert_key"] for r in list_alerts(engine, where, instances).items]


def test_the_list_filters_searches_and_keeps_to_the_scope(engine: Engine) -> None:
    LogStore(engine).write([], [], alert_action_rows=STORY)
    disk_2 = alert_key("glpi-a", "alertmanager", "disk-2")
    cpu_1 = alert_key("glpi-b", "alertmanager", "cpu-1")
    assert keys(engine, AlertFilter()) == [cpu_1, DISK_1, disk_2]  # latest action first
    assert keys(engine, AlertFilter(instance="glpi-a")) == [DISK_1, disk_2]
    assert keys(engine, AlertFilter(action="refused")) == [disk_2]
    assert keys(engine, AlertFilter(status="firing", action="opened")) == [DISK_1]
    assert keys(engine, AlertFilter(status="resolved")) == []
    assert keys(engine, AlertFilter(search="diskfull")) == [DISK_1, disk_2]  # any case
    assert keys(engine, AlertFilter(search="/VAR")) == [disk_2]
    assert keys(engine, AlertFilter(search="cpu-")) == [cpu_1]  # the fingerprint
    assert keys(engine, AlertFilter(search="%")) == []  # a wildcard is a character
    assert keys(engine, AlertFilter(), instances=["glpi-b"]) == [cpu_1]


@pytest.mark.parametrize("where, problem", [
    (AlertFilter(status="burning"), "status: one of firing, resolved"),
    (AlertFilter(action="closed"), "action: one of opened, followup"),
    (AlertFilter(search="x" * 201), "search: 1 to 200 characters"),
])
def test_an_unknown_filter_value_is_a_clear_error(engine: Engine, where: AlertFilter,
                                                 problem: str) -> None:
    with pytest.raises(BadFilter, match=problem):
        list_alerts(engine, where)


def test_keyset_pages_cover_the_list_once_in_order_both_ways(engine: Engine) -> None:
    # 23 alerts, some acting in the same millisecond
    many = [dataclasses.replace(action(n, f"fp-{n:02d}", "opened"), at=T0 + 1000 * (n // 3))
            for n in range(23)]
    LogStore(engine).write([], [], alert_action_rows=many)
    everything = keys(engine, AlertFilter())
    assert len(everything) == 23
    seen, cursor, pages = [], None, []
    while True:
        page = list_alerts(engine, AlertFilter(), cursor=cursor, limit=5)
        seen += [r["alert_key"] for r in page.items]
        pages.append(page)
        if page.next_cursor is None:
            break
        cursor = AlertCursor.decode(page.next_cursor)
    assert seen == everything
    # from the last page back to the first, through the newer links
    back: list[str] = []
    page = pages[-1]
    while page.prev_cursor is not None:
        page = list_alerts(engine, AlertFilter(), cursor=AlertCursor.decode(page.prev_cursor),
                           limit=5, newer=True)
        back = [r["alert_key"] for r in page.items] + back
    assert back + [r["alert_key"] for r in pages[-1].items] == everything


def test_retention_drops_old_alerts_and_old_actions(engine: Engine) -> None:
    store = LogStore(engine)
    store.write([], [], alert_action_rows=STORY)
    # the cutoff between disk-1's solve (3 s) and its new ticket (5 s)
    store.prune(max_age_days=1, clock=lambda: (T0 + 4500) / 1000 + 86_400)
    assert keys(engine, AlertFilter()) == [alert_key("glpi-b", "alertmanager", "cpu-1"),
                                           DISK_1]
    found = alert_history(engine, DISK_1)
    assert found is not None and [a["action"] for a in found["history"]] == ["opened"]
    assert found["actions"] == 4  # as summarised when written


@pytest.mark.parametrize("where, index", [
    (AlertFilter(), "ix_alerts_time"),
    (AlertFilter(instance="glpi-a"), "ix_alerts_instance_time"),
    (AlertFilter(status="firing"), "ix_alerts_status_time"),
    (AlertFilter(action="refused"), "ix_alerts_action_time"),
])
def test_each_filter_reads_its_index_on_sqlite(tmp_path: Path, where: AlertFilter,
                                              index: str) -> None:
    eng = open_engine(store_settings("sqlite", tmp_path))
    query = alerts_query(where, None, AlertCursor(T0, "k"), 50).compile(
        eng, compile_kwargs={"literal_binds": True})
    with eng.connect() as conn:
        plan = " ".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {query}")))
    eng.dispose()
    assert index in plan and "TEMP B-TREE" not in plan, plan


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migration_10_adds_the_alert_tables_to_a_v9_store(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import connectors.logstore.schema as schema

    eng = open_engine(store_settings(kind, tmp_path), migrate_schema=False)
    with monkeypatch.context() as patched:
        patched.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:9])
        assert migrate(eng) == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    with eng.begin() as conn:
        assert not conn.dialect.has_table(conn, "alerts")
    assert migrate(eng) == [10, 11] and schema_version(eng) == LATEST
    LogStore(eng).write([], [], alert_action_rows=STORY)
    assert len(keys(eng, AlertFilter())) == 3
    eng.dispose()
