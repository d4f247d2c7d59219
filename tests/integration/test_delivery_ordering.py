"""Ordered delivery per item on the real broker: a receiver that fails 30 % of requests,
two delivery services, one stopped mid-stream (its partitions move to the other in a
rebalance). Per item, the first successful receipt of each event is in event order, and
nothing is lost. The SIGKILL variant is the chaos scenario (bench/chaos/ordering.py),
run bounded by the slow test at the end."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hookstream.records import DELIVERIES, DeliveryRequest, delivery_id_for, retry_topics
from tests.conftest import settings_for
from tests.integration.harness import (
    RunningDelivery,
    apply_webhooks,
    attempts_of,
    publish,
    read,
)
from tests.receiver import OrderReceiver

LOOPBACK = ["127.0.0.0/8"]
ITEMS = 30
EVENTS_PER_ITEM = 6
CHAOS = Path(__file__).resolve().parents[2] / "bench" / "chaos" / "ordering.py"


def events(url: str) -> list[DeliveryRequest]:
    """EVENTS_PER_ITEM events of each item, interleaved as GLPI raises them."""
    out = []
    for seq in range(EVENTS_PER_ITEM):
        for item in range(ITEMS):
            event_id = f"event-{item}-{seq}"
            ident = delivery_id_for(event_id, "ordered")
            out.append(DeliveryRequest(
                delivery_id=ident, webhook_id="ordered", instance="glpi-a", event_id=event_id,
                itemtype="Ticket", items_id=item, event="new" if seq == 0 else "update",
                method="POST", url=url, created_at=int(time.time() * 1000),
                body=json.dumps({"id": ident, "item": item, "seq": seq}).encode(),
                headers={"Content-Type": "application/json"}))
    return out


def flowed_while_waiting(receiver: OrderReceiver) -> tuple[int, int]:
    """(failed requests, those during whose wait another item was delivered): from a
    failure of an item to its next success, did other items get through?"""
    failures = flowed = 0
    at = sorted(receiver.at)
    for n, (_, item, ok) in enumerate(at):
        if ok:
            continue
        failures += 1
        for _, other, other_ok in at[n + 1:]:
            if other == item and other_ok:
                break
            if other != item and other_ok:
                flowed += 1
                break
    return failures, flowed


def test_per_item_order_survives_failures_and_a_rebalance(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    # A circuit opened by a run of 503s would only pause everyone: not what is tested here.
    settings = dataclasses.replace(settings_for(kafka_bootstrap, tmp_path), partitions=4,
                                   circuit_failure_threshold=50)
    with OrderReceiver(fail=0.3) as receiver:
        apply_webhooks(settings, tmp_path, {
            "id": "ordered", "url": receiver.url, "ordering": "per_item", "sent_try": 12,
            "allowed_networks": LOOPBACK})
        requests = events(receiver.url)
        publish(settings, requests)
        with RunningDelivery(settings):
            first = RunningDelivery(settings)
            with first:
                deadline = time.monotonic() + 60
                while len(receiver.first) < len(requests) // 3 and time.monotonic() < deadline:
                    time.sleep(0.05)
            stopped_at = len(receiver.first)  # its partitions go to the other service
            deadline = time.monotonic() + 90
            while len(receiver.first) < len(requests) and time.monotonic() < deadline:
                time.sleep(0.1)
    lost = {r.delivery_id for r in requests} - set(receiver.first)
    failures, flowed = flowed_while_waiting(receiver)
    print(f"\nordering: {len(requests)} events of {ITEMS} items, {receiver.requests} requests, "
          f"{receiver.failed} failed, one service stopped after {stopped_at} delivered; "
          f"lost {len(lost)}, order violations {receiver.violations()}; "
          f"other items delivered during {flowed} of {failures} waits")
    assert len(requests) // 3 <= stopped_at < len(requests), "not stopped mid-stream"
    assert not lost, [(json.loads(r.body), receiver.order.get(r.items_id),
                       [(a.outcome, a.attempt, a.hop, a.trigger) for a in attempts_of(
                           settings, "ordered") if a.delivery_id == r.delivery_id])
                      for r in requests if r.delivery_id in lost]
    assert receiver.violations() == 0
    assert all(len(seqs) == EVENTS_PER_ITEM for seqs in receiver.order.values())
    assert receiver.failed >= len(requests) // 10  # failures were there to be retried
    assert flowed >= failures // 2  # one item waiting did not hold the others
    tiers = [r for topic in retry_topics(settings)
             for r in read(settings, topic.removeprefix(settings.topic_prefix),
                           DeliveryRequest)]
    assert tiers == []  # retried in place: no copy on a retry tier
    assert {r.delivery_id for r in read(settings, DELIVERIES, DeliveryRequest)} == {
        r.delivery_id for r in requests}


@pytest.mark.slow
def test_chaos_sigkill_mid_stream_keeps_order_and_loses_nothing(kafka_bootstrap: str) -> None:
    """bench/chaos/ordering.py, bounded: two `hookstream run delivery` processes, one
    SIGKILLed mid-stream and restarted, the receiver failing 30 % of requests."""
    run = subprocess.run(
        [sys.executable, str(CHAOS), "--bootstrap", kafka_bootstrap, "--items", "40",
         "--events", "160", "--rate", "40", "--kills", "1", "--tiers", "1s,2s,3s",
         "--drain-s", "45"],
        cwd=CHAOS.parent, capture_output=True, text=True, timeout=150, check=False,
    )
    print(run.stdout[-1500:])
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    [row] = [json.loads(line.split("] ", 1)[1]) for line in run.stdout.splitlines()
             if '{"events"' in line]
    assert row["kills"] == 1 and row["receiver_failures"] > 0, row
    assert row["lost"] == 0, row
    assert row["order_violations"] == 0, row
