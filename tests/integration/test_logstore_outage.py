"""The log store through a PostgreSQL outage, on the real broker: `hookstream run logstore`
stays up with /readyz at 503 while the server is stopped, then writes every record read
meanwhile once it is back (nothing lost, nothing twice), ready again, its counters moved,
and one warning for the outage with no password in it."""

from __future__ import annotations

import dataclasses
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, func, select

from connectors.logstore import open_engine
from connectors.logstore.schema import attempts, deliveries
from hookstream.config import Settings
from hookstream.io import create_topics, flush, producer
from hookstream.records import ATTEMPTS, AttemptRecord, Codec, DeliveryRequest
from tests.integration.harness import cli_env, publish, request_for, wait_until
from tests.pg import postgres_server

URL = "https://example.test/in"
WARNING = "trying again until it answers"


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def sample(base: str, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def rows(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (conn.scalar(select(func.count()).select_from(deliveries)) or 0,
                conn.scalar(select(func.count()).select_from(attempts)) or 0)


def publish_attempts(settings: Settings, requests: list[DeliveryRequest]) -> None:
    """A delivered attempt of each request, keyed as the delivery consumer keys them."""
    codec, prod, topic = Codec(), producer(settings), settings.topic(ATTEMPTS)
    for r in requests:
        value, headers = codec.encode(AttemptRecord(
            delivery_id=r.delivery_id, webhook_id=r.webhook_id, instance=r.instance,
            itemtype=r.itemtype, items_id=r.items_id, event=r.event, attempt=1,
            started_at=r.created_at, finished_at=r.created_at + 5, outcome="delivered",
            status_code=200), topic)
        prod.produce(topic, value, r.delivery_id.encode(), headers=headers)
    flush(prod)


def test_a_postgresql_outage_holds_the_log_store_back_and_loses_nothing(
    settings: Settings, tmp_path: Path,
) -> None:
    server = postgres_server()
    # trust authentication: the password is never checked, and must never be printed
    url = server.database_url().replace("postgres@", "postgres:s3cret@", 1)
    settings = dataclasses.replace(settings, logstore_url=url)
    engine = open_engine(settings)
    create_topics(settings)
    before = [request_for("hook", URL, n) for n in range(20)]
    during = [request_for("hook", URL, n) for n in range(20, 40)]
    publish(settings, before)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "logstore.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "hookstream.cli", "run", "logstore"],
        env=cli_env(settings, logstore_batch_size="5", metrics_port=str(port),
                    metrics_host="127.0.0.1"),
        stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    try:
        assert wait_until(lambda: rows(engine) == (20, 0), timeout_s=60)
        assert status(f"{base}/readyz") == 200
        server.pause()
        try:
            publish(settings, during)
            publish_attempts(settings, during)
            assert wait_until(lambda: status(f"{base}/readyz") == 503, timeout_s=30)
            assert wait_until(lambda: sample(base, "hookstream_logstore_db_errors_total",
                                             operation="write") >= 2, timeout_s=30)
            assert process.poll() is None and status(f"{base}/healthz") == 200
        finally:
            server.start()
        assert wait_until(lambda: rows(engine) == (40, 20), timeout_s=60)
        assert wait_until(lambda: status(f"{base}/readyz") == 200, timeout_s=30)
        # each record once, the batch held through the outage included
        assert sample(base, "hookstream_logstore_records_total", outcome="written") == 60
        assert sample(base, "hookstream_ready", component="logstore") == 1
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    err = log.read_text()
    assert process.returncode == 0, err
    assert err.count(WARNING) == 1, err  # one warning for the outage, not one per try
    assert "s3cret" not in err
    with engine.connect() as conn:
        delivered = conn.scalar(select(func.count()).select_from(deliveries)
                                .where(deliveries.c.state == "delivered"))
    assert delivered == 20 and rows(engine) == (40, 20)
    engine.dispose()
