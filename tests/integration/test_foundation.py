"""The foundation against a real broker: topics, a round trip of every schema, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import ConfigResource

from hookstream.config import Settings
from hookstream.devbroker import LocalBroker
from hookstream.errors import DecodeError
from hookstream.io import admin as kafka_admin
from hookstream.io import create_topics, flush, producer, read_all
from hookstream.records import ITEM_CHANGES, Codec, ItemChangeEvent, Record, topic_specs
from tests.integration.harness import cli_env
from tests.unit.test_codec import FIXTURES, sample_records

ROOT = Path(__file__).resolve().parents[2]


def test_topics_create_twice_changes_nothing(settings: Settings) -> None:
    first = dict(create_topics(settings))
    assert set(first.values()) == {"created"}
    assert set(first) == {s.name for s in topic_specs(settings)}
    assert f"{settings.topic_prefix}hookstream.retry.1s" in first
    second = dict(create_topics(settings))
    assert set(second.values()) == {"exists"}

    admin = kafka_admin(settings)
    meta = admin.list_topics(timeout=10).topics
    assert len(meta[settings.topic(ITEM_CHANGES)].partitions) == 2
    webhooks = ConfigResource(ConfigResource.Type.TOPIC, settings.topic("hookstream.webhooks"))
    dlq = ConfigResource(ConfigResource.Type.TOPIC, settings.topic("hookstream.dlq"))
    configs = {r.name: f.result() for r, f in admin.describe_configs([webhooks, dlq]).items()}
    assert configs[webhooks.name]["cleanup.policy"].value == "compact"
    assert configs[dlq.name]["retention.ms"].value == str(30 * 86_400_000)


def test_every_schema_round_trips_through_the_broker(settings: Settings) -> None:
    create_topics(settings)
    codec, prod = Codec(), producer(settings)
    topic = settings.topic("hookstream.deliveries")
    sent: list[Record] = [r for name in FIXTURES for r in sample_records(name)]  # type: ignore[misc]
    for record in sent:
        value, headers = codec.encode(record, topic)
        prod.produce(topic, value, b"k", headers=headers, partition=0)
    flush(prod)
    got = [codec.decode_any(m.value(), m.headers(), topic) for m in read_all(settings, topic)]
    assert got == sent


def test_malformed_record_is_reported_with_its_location(settings: Settings) -> None:
    create_topics(settings)
    topic = settings.topic(ITEM_CHANGES)
    codec, prod = Codec(), producer(settings)
    good = sample_records("Ticket.json")[0]
    value, headers = codec.encode(good, topic)  # type: ignore[arg-type]
    prod.produce(topic, b"\xff\xfe not avro", b"k", headers=headers, partition=1)
    prod.produce(topic, value, b"k", headers=headers, partition=1)
    flush(prod)
    outcomes: list[object] = []
    for msg in read_all(settings, topic):
        try:
            outcomes.append(codec.decode(msg.value(), msg.headers(), ItemChangeEvent))
        except DecodeError as e:
            outcomes.append(str(e.at(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)))
    assert outcomes[0] == outcomes[0] and isinstance(outcomes[0], str)
    assert f"{topic}[1]@0" in outcomes[0]
    assert outcomes[1] == good  # the consumer carried on past the bad record


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(settings)
    return subprocess.run(
        [sys.executable, "-m", "hookstream.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_produce_reports_bad_lines_and_publishes_the_rest(
    settings: Settings, tmp_path: Path
) -> None:
    assert run_cli(settings, "topics", "create").returncode == 0
    lines = (ROOT / "examples" / "events.jsonl").read_text().splitlines()
    bad = tmp_path / "events.jsonl"
    bad.write_text(
        "\n".join(
            [
                lines[0],
                "{not json",
                lines[1],
                '{"itemtype": "Ticket", "items_id": 1, "event": "purge", "item": {}}',
                lines[2],
            ]
        )
        + "\n"
    )
    produced = run_cli(settings, "produce", "--instance", "glpi-test", "--file", str(bad))
    assert produced.returncode == 1
    assert f"{bad}:2: not JSON" in produced.stderr
    assert f"{bad}:4: event must be new, update or delete" in produced.stderr
    assert "published 3 event(s)" in produced.stdout
    consumed = run_cli(
        settings, "consume", settings.topic(ITEM_CHANGES), "--max", "10", "--timeout", "3"
    )
    printed = consumed.stdout.strip().splitlines()
    assert len(printed) == 3
    assert all('"instance": "glpi-test"' in line for line in printed)


def test_broker_start_stop_status_and_crash(tmp_path: Path) -> None:
    from hookstream.devbroker import free_port_pair

    broker = LocalBroker(
        tmp_path / "state", Settings().cache_path, port=free_port_pair(), heap_mb=384
    )
    assert broker.status().detail == "not running"
    started = broker.start()
    assert started.running and started.pid
    again = broker.start()
    assert again.pid == started.pid and "already running" in again.detail
    os.kill(started.pid, signal.SIGKILL)
    time.sleep(0.5)
    after_crash = broker.status()
    assert not after_crash.running and "stale pid file" in after_crash.detail
    restarted = broker.start()
    assert restarted.running and restarted.pid != started.pid
    stopped = broker.stop()
    assert "stopped" in stopped.detail and broker.status().detail == "not running"


@pytest.mark.parametrize("bad", ["nosuchhost.invalid:9092", "127.0.0.1"])
def test_invalid_bootstrap_is_a_clear_error(bad: str) -> None:
    from hookstream.config import load_settings
    from hookstream.errors import ConfigError

    with pytest.raises(ConfigError, match="bootstrap"):
        load_settings(env={}, bootstrap_servers=bad)
