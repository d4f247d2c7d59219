"""Three ingest replicas behind a round-robin proxy, GLPI's retries sent to another replica
each time, replicas and a processor SIGKILLed, delivery restarted: every event delivered,
each delivery id once at the receiver (bench/chaos/replicas.py, bounded in events and time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CHAOS = Path(__file__).resolve().parents[2] / "bench" / "chaos" / "replicas.py"


@pytest.mark.slow
def test_retries_on_other_replicas_and_killed_replicas_give_each_delivery_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    run = subprocess.run(
        [sys.executable, str(CHAOS), "--bootstrap", kafka_bootstrap, "--events", "200",
         "--rate", "20", "--lose", "0.3", "--kills", "3", "--processor-kills", "1",
         "--delivery-restarts", "1", "--keep", str(tmp_path)],
        cwd=CHAOS.parent, capture_output=True, text=True, timeout=240, check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    [row] = [json.loads(line.split("] ", 1)[1]) for line in run.stdout.splitlines()
             if '{"scenario"' in line]
    assert row["ingest_kills"] == 3 and row["processor_kills"] == 1, row
    assert row["delivery_restarts"] == 1, row
    assert row["copies_on_kafka"] > 0, row  # retries did reach other replicas and Kafka
    assert row["lost"] == 0, row
    assert row["duplicate_requests"] == 0, row
    assert row["duplicate_ids"] == 0, row
    assert row["alive"], row
