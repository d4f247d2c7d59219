"""DLQ list, redrive (exactly once, even when interrupted) and force send."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from connectors.delivery.redrive import dead_letters, redrive
from hookstream.config import Settings
from hookstream.records import ATTEMPTS, DELIVERIES, DLQ, AttemptRecord, DeliveryRequest
from tests.integration.harness import (
    RunningDelivery,
    apply_webhooks,
    cli_env,
    publish,
    read,
    request_for,
    wait_until,
)
from tests.receiver import Receiver


def cli(settings: Settings, *args: str) -> subprocess.Popen[str]:
    env = cli_env(settings)
    return subprocess.Popen([sys.executable, "-m", "hookstream.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def fill_dlq(settings: Settings, tmp_path: Path, receiver: Receiver, count: int
             ) -> list[DeliveryRequest]:
    receiver.on("/dead", statuses=[503])
    apply_webhooks(settings, tmp_path, {"id": "dead", "url": receiver.url("/dead"),
                                        "sent_try": 0, "allowed_networks": ["127.0.0.0/8"]})
    requests = [request_for("dead", receiver.url("/dead"), n) for n in range(count)]
    publish(settings, requests)
    with RunningDelivery(settings):
        wait_until(lambda: len(read(settings, DLQ, DeliveryRequest)) >= count)
    return requests


def test_redrive_interrupted_and_rerun_redrives_each_record_once(settings: Settings,
                                                                 tmp_path: Path) -> None:
    with Receiver() as receiver:
        requests = fill_dlq(settings, tmp_path, receiver, 12)
        listed = list(dead_letters(settings, webhook_id="dead"))
        assert len(listed) == 12 and not any(d.redriven for d in listed)
        assert list(dead_letters(settings, webhook_id="other")) == []
        assert list(dead_letters(settings, since_ms=int(time.time() * 1000) + 60_000)) == []

        slow = cli(settings, "dlq", "redrive", "--rate", "4/s")
        # Kill once the first redrives are in (start-up time varies with the machine's load).
        wait_until(lambda: len(read(settings, DELIVERIES, DeliveryRequest)) > 12)
        slow.send_signal(signal.SIGKILL)  # mid-run, possibly mid-transaction
        slow.wait(30)
        first = Counter(r.delivery_id for r in read(settings, DELIVERIES, DeliveryRequest))
        assert 12 < sum(first.values()) < 24, "the interruption did not land mid-redrive"

        assert redrive(settings) + sum(first.values()) - 12 == 12
        assert redrive(settings) == 0  # nothing left: every record was redriven once
        again = read(settings, DELIVERIES, DeliveryRequest)
        assert Counter(r.delivery_id for r in again) == Counter(
            {r.delivery_id: 2 for r in requests})
        assert all(r.attempt == 0 and r.last_error is None for r in again)
        assert all(d.redriven for d in dead_letters(settings))

        receiver.on("/dead", statuses=[200])
        with RunningDelivery(settings):
            delivered = wait_until(lambda: {
                a.delivery_id for a in read(settings, ATTEMPTS, AttemptRecord)
                if a.outcome == "delivered"} >= {r.delivery_id for r in requests} or None)
        assert delivered


def test_force_send_makes_one_immediate_attempt(settings: Settings, tmp_path: Path) -> None:
    with Receiver() as receiver:
        [request] = fill_dlq(settings, tmp_path, receiver, 1)
        receiver.on("/dead", statuses=[200])
        before = len(receiver.requests("/dead"))
        sent = cli(settings, "deliveries", "send", request.delivery_id)
        out, err = sent.communicate(timeout=60)
        assert sent.returncode == 0, err
        assert out.startswith("delivered: status 200")
        assert len(receiver.requests("/dead")) == before + 1
        missing = cli(settings, "deliveries", "send", "no-such-delivery")
        _, err = missing.communicate(timeout=60)
        assert missing.returncode == 1 and "no delivery no-such-delivery" in err
    outcomes = [a.outcome for a in read(settings, ATTEMPTS, AttemptRecord)
                if a.delivery_id == request.delivery_id]
    assert outcomes == ["dead_lettered", "delivered"]
