"""The log store's loop side of a database outage: a write tried again with capped backoff
until it succeeds or the process stops, a prune skipped, readiness and metrics following,
one warning per outage; and the adapter's translation of an unreachable database."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import create_engine

from connectors.logstore.service import Database, Rows
from connectors.logstore.store import LogStore
from hookstream.errors import TransientError

DOWN = TransientError("log store database postgresql+psycopg://u:***@db/x: write: refused")


class FlakyStore:
    """Fails its first `failures` calls, then succeeds."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    def _call(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise DOWN

    def write(self, *rows: Any) -> None:
        self._call()

    def prune(self, max_age_days: float, **kw: Any) -> int:
        self._call()
        return 3


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def database(store: FlakyStore, waits: list[float], stop_after: int = 99) -> Database:
    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return len(waits) >= stop_after

    return Database(cast(LogStore, store), wait)


ROWS = Rows([object(), object()], [], [object()], [], [], [], [])  # type: ignore[list-item]


def test_a_failing_write_is_retried_with_capped_backoff_and_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waits: list[float] = []
    db = database(FlakyStore(failures=8), waits)
    errors = sample("hookstream_logstore_db_errors_total", operation="write")
    written = sample("hookstream_logstore_records_total", outcome="written")
    with caplog.at_level(logging.INFO, "connectors.logstore.service"):
        assert db.write(ROWS) is True
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert sample("hookstream_logstore_db_errors_total", operation="write") - errors == 8
    # counted once, when committed: two delivery fragments and an item row
    assert sample("hookstream_logstore_records_total", outcome="written") - written == 3
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]  # down, back
    assert "***" in caplog.records[0].getMessage()
    assert db.ready and sample("hookstream_ready", component="logstore") == 1


def test_readiness_follows_the_database() -> None:
    states: list[bool] = []

    def wait(seconds: float) -> bool:
        states.append(db.ready)
        return False

    db = Database(cast(LogStore, FlakyStore(failures=2)), wait)
    assert db.ready
    assert db.write(ROWS)
    assert states == [False, False] and db.ready


def test_stopping_during_an_outage_gives_up_the_batch() -> None:
    waits: list[float] = []
    store = FlakyStore(failures=100)
    db = database(store, waits, stop_after=2)
    assert db.write(ROWS) is False  # the caller commits nothing
    assert store.calls == 2 and not db.ready
    assert sample("hookstream_ready", component="logstore") == 0


def test_a_failing_prune_is_skipped_until_the_next_pass() -> None:
    waits: list[float] = []
    store = FlakyStore(failures=1)
    db = database(store, waits)
    errors = sample("hookstream_logstore_db_errors_total", operation="prune")
    pruned = sample("hookstream_logstore_pruned_deliveries_total")
    db.prune(30, clock=lambda: 0.0)
    assert waits == [] and store.calls == 1 and not db.ready
    assert sample("hookstream_logstore_db_errors_total", operation="prune") - errors == 1
    db.prune(30, clock=lambda: 0.0)
    assert db.ready and sample("hookstream_logstore_pruned_deliveries_total") - pruned == 3


def test_an_unreachable_database_is_a_transient_error_without_the_password() -> None:
    # port 1 on loopback: refused at once
    store = LogStore(create_engine("postgresql+psycopg://u:s3cret@127.0.0.1:1/x"))
    for call in (lambda: store.write([], []), lambda: store.prune(30)):
        with pytest.raises(TransientError) as caught:
            call()
        assert "s3cret" not in str(caught.value) and "u:***@127.0.0.1:1/x" in str(caught.value)
        assert "\n" not in str(caught.value)
    store.engine.dispose()


class Msg:
    """A consumed message, as much of it as Ingest reads."""

    def __init__(self, topic: str, value: bytes, headers: Any) -> None:
        self._topic, self._value, self._headers = topic, value, headers

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes:
        return self._value

    def headers(self) -> Any:
        return self._headers

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 7


def test_the_log_store_reads_the_audit_topic_into_audit_rows() -> None:
    from connectors.logstore.service import Ingest
    from hookstream.config import Settings
    from hookstream.records import AUDIT, AuditRecord, Codec

    settings, codec = Settings(), Codec()
    record = AuditRecord("f" * 32, 5, "ops-alice", "dlq.redrive", "hook-a", "redriven 2")
    value, headers = codec.encode(record, settings.topic(AUDIT))
    ingest = Ingest(settings, cast(LogStore, None), codec)
    rows = ingest.rows([Msg(settings.topic(AUDIT), value, headers)])  # type: ignore[list-item]
    assert rows.audit == [record] and rows.deliveries == [] and rows.records == 1


def test_the_log_store_reads_the_ticketers_actions_and_counts_the_undecodable() -> None:
    from connectors.logstore.service import Ingest
    from hookstream.config import Settings
    from hookstream.records import ALERT_ACTIONS, Codec, TicketAction

    settings, codec = Settings(), Codec()
    topic = settings.topic(ALERT_ACTIONS)
    record = TicketAction("a" * 32, "e1", "glpi-a:alertmanager:fp", "glpi-a", "alertmanager",
                          "fp", "DiskFull", "firing", "opened", 5, "disk", 12, 340)
    value, headers = codec.encode(record, topic)
    skipped = sample("hookstream_logstore_records_total", outcome="undecodable")
    ingest = Ingest(settings, cast(LogStore, None), codec)
    messages = [Msg(topic, value, headers), Msg(topic, b"\x00junk", headers)]
    rows = ingest.rows(messages)  # type: ignore[arg-type]
    assert rows.alert_actions == [record] and rows.deliveries == [] and rows.records == 1
    assert sample("hookstream_logstore_records_total", outcome="undecodable") == skipped + 1
