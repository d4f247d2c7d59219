"""The log store on the real broker, into SQLite and into a real PostgreSQL: every attempt
of a delivery pipeline in the log, queue counts matching the topics, a rebuild that gives
the same rows, and a SIGKILLed log store that loses nothing."""

from __future__ import annotations

import dataclasses
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from connectors.logstore import (
    DeliveryFilter,
    last_item,
    list_deliveries,
    open_engine,
    queue_view,
    rebuild,
)
from connectors.logstore.schema import attempts, deliveries
from hookstream.config import Settings
from hookstream.io import read_all
from hookstream.records import (
    ATTEMPTS,
    DLQ,
    ITEM_CHANGES,
    AttemptRecord,
    DeliveryRequest,
    make_event,
)
from tests.integration.harness import (
    RunningDelivery,
    apply_webhooks,
    cli_env,
    publish,
    read,
    request_for,
    wait_until,
)
from tests.integration.logstore_harness import RunningLogStore, snapshot
from tests.pg import postgres_server
from tests.receiver import Receiver


@pytest.fixture(params=["sqlite", "postgresql"])
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    url = postgres_server().database_url() if request.param == "postgresql" else ""
    return dataclasses.replace(settings, logstore_url=url)


def attempt_positions(settings: Settings) -> set[tuple[int, int]]:
    return {(m.partition() or 0, m.offset() or 0)
            for m in read_all(settings, settings.topic(ATTEMPTS), timeout_s=10)}


def logged_positions(engine: Engine) -> set[tuple[int, int]]:
    with engine.connect() as conn:
        return {(p, o) for p, o in conn.execute(
            select(attempts.c.kafka_partition, attempts.c.kafka_offset))}


@pytest.fixture
def pipeline(store_settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, dict[str, Any]]]:
    """Deliveries that succeed, succeed after a retry, and are dead-lettered."""
    settings = store_settings
    with Receiver() as receiver:
        receiver.on("/ok", statuses=[200])
        receiver.on("/flaky", statuses=[503, 503, 503, 200])
        receiver.on("/dead", statuses=[410])
        allow = {"allowed_networks": ["127.0.0.0/8"]}
        apply_webhooks(settings, tmp_path,
                       {"id": "ok", "url": receiver.url("/ok"), **allow},
                       {"id": "flaky", "url": receiver.url("/flaky"), "sent_try": 3, **allow},
                       {"id": "dead", "url": receiver.url("/dead"), "sent_try": 0, **allow})
        requests = ([request_for("ok", receiver.url("/ok"), n) for n in range(5)]
                    + [request_for("flaky", receiver.url("/flaky"), n) for n in range(3)]
                    + [request_for("dead", receiver.url("/dead"), n) for n in range(2)])
        publish(settings, requests)
        changes = [make_event("glpi-a", "Ticket", 1, "update", {"id": 1, "status": s},
                              occurred_at=1_700_000_000_000 + s, entities_id=0)
                   for s in (1, 2)]
        publish(settings, changes, ITEM_CHANGES)  # type: ignore[arg-type]
        with RunningDelivery(settings):
            assert wait_until(lambda: len([
                a for a in read(settings, ATTEMPTS, AttemptRecord)
                if a.outcome in ("delivered", "dead_lettered")]) >= 10, timeout_s=60)
        yield settings, {"requests": requests, "receiver": receiver}


def test_every_attempt_is_logged_with_the_state_and_the_queue_matches_the_topics(
    pipeline: tuple[Settings, dict[str, Any]],
) -> None:
    settings, _ = pipeline
    engine = open_engine(settings)
    on_topic = attempt_positions(settings)
    with RunningLogStore(settings):
        assert wait_until(lambda: logged_positions(engine) >= on_topic, timeout_s=60)
        assert wait_until(lambda: queue_view(engine)["totals"]["dead_lettered"] == 2)
    assert logged_positions(engine) == on_topic  # every attempt, once

    states = {(r["webhook_id"], r["state"], r["attempts"], r["last_status"])
              for r in list_deliveries(engine, DeliveryFilter(), limit=100).items}
    assert states == {("ok", "delivered", 1, 200), ("flaky", "delivered", 2, 200),
                      ("dead", "dead_lettered", 1, 410)}
    dlq = read(settings, DLQ, DeliveryRequest)
    view = queue_view(engine)
    assert view["totals"]["dead_lettered"] == len(dlq) == 2
    assert view["totals"]["pending"] == 0 and view["totals"]["waiting"] == {}
    assert view["oldest_undelivered_at"] is None

    seen = last_item(engine, "glpi-a", "Ticket", 1)
    assert seen is not None and seen["item"] == {"id": 1, "status": 2}

    before = snapshot(engine)
    assert rebuild(settings) > len(on_topic)  # attempts plus every request copy
    assert snapshot(engine) == before
    engine.dispose()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def test_sigkilled_log_store_loses_nothing(pipeline: tuple[Settings, dict[str, Any]]) -> None:
    settings, _ = pipeline
    engine = open_engine(settings)
    on_topic = attempt_positions(settings)
    command = [sys.executable, "-m", "hookstream.cli", "run", "logstore"]
    env = cli_env(settings, logstore_batch_size="3")
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: len(logged_positions(engine)) >= 3, timeout_s=60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    with socket.socket() as probe:  # the second process's operations port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    second = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env=cli_env(settings, logstore_batch_size="3",
                                          metrics_port=str(port), metrics_host="127.0.0.1"))
    try:
        assert wait_until(lambda: logged_positions(engine) >= on_topic, timeout_s=60)
        assert wait_until(lambda: queue_view(engine)["totals"]["dead_lettered"] == 2)
        # The first may have logged everything before its kill: stop the second only once
        # it runs (a SIGTERM while Python still imports ends it before its handler exists).
        assert wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout_s=60)
    finally:
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=30)
    assert second.returncode == 0, err
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(deliveries)) == 10
    engine.dispose()
