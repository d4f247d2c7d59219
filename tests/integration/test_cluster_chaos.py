"""The pipeline on a three-broker cluster while brokers fail: the chaos suite's cluster
scenarios (bench/chaos/pipeline.py), bounded in events and time.

    leader-kill  the broker leading glpi.item-changes[0] SIGKILLed under load, back later
    rolling      each broker stopped and started in turn, the next once all are in sync

ingest, processor and delivery run as `hookstream run` processes; GLPI's queue resends a
refused row until a 2xx, as GLPI does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from hookstream.devbroker import free_port_pair

CHAOS = Path(__file__).resolve().parents[2] / "bench" / "chaos" / "pipeline.py"
RECEIVER_WORKERS = 32  # the bench receiver's concurrency: the most requests in flight


@pytest.mark.slow
def test_a_broker_lost_or_restarted_costs_no_event_and_processing_resumes_within_30s(
    tmp_path: Path,
) -> None:
    run = subprocess.run(
        [sys.executable, str(CHAOS), "--only", "leader-kill,rolling", "--events", "600",
         "--rate", "25", "--down-s", "8", "--keep", str(tmp_path)],
        cwd=CHAOS.parent, capture_output=True, text=True, timeout=540, check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    rows = [json.loads(line.split("] ", 1)[1]) for line in run.stdout.splitlines()
            if '{"scenario"' in line]
    assert [r["scenario"] for r in rows] == ["leader-kill", "rolling"]
    for row in rows:
        assert row["lost"] == 0, row
        assert row["alive"], row  # ingest, processor and delivery never died
        # a duplicate can only be a request in flight when its broker went
        assert row["duplicates"] <= RECEIVER_WORKERS, row
        assert row["stall_s"] is not None and row["stall_s"] < 30, row


def test_the_cli_starts_a_three_broker_cluster_whose_topics_have_three_replicas_two_in_sync(
    tmp_path: Path,
) -> None:
    port = free_port_pair(6)
    env = {**os.environ, "HOOKSTREAM_STATE_DIR": str(tmp_path),
           "HOOKSTREAM_BROKER_PORT": str(port)}
    bootstrap = ",".join(f"127.0.0.1:{port + 2 * n}" for n in range(3))

    def hookstream(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "hookstream.cli", *args], env=env,
                              capture_output=True, text=True, check=True, timeout=180).stdout

    assert "3 brokers running" in hookstream("kafka", "start", "--brokers", "3")
    try:
        hookstream("--bootstrap-servers", bootstrap, "topics", "create")
        admin = AdminClient({"bootstrap.servers": bootstrap})
        topics = admin.list_topics(timeout=10).topics
        deliveries = topics["hookstream.deliveries"]
        assert {len(p.replicas) for p in deliveries.partitions.values()} == {3}
        resource = ConfigResource(ConfigResource.Type.TOPIC, "hookstream.deliveries")
        config = admin.describe_configs([resource])[resource].result(timeout=10)
        assert config["min.insync.replicas"].value == "2"
        assert "node 3: running" in hookstream("kafka", "status")  # found without --brokers
    finally:
        assert "stopped" in hookstream("kafka", "stop")
