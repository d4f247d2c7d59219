"""Auto-disable and operational events on the real broker, with the whole pipeline running
in-process (processor, delivery, log store) and receivers on loopback.

- A webhook whose target always fails is disabled by the log store (short threshold):
  the definitions topic shows it inactive with its reason, webhook.disabled is on the
  operations topic and reaches a webhook subscribed to it, the processor plans nothing
  more for it, and `hookstream webhooks enable` brings it back.
- A dead-lettered delivery and an opened circuit each produce their event; the operational
  webhook subscribed to dead letters fails itself, and its own dead letter makes no event
  (no loop).
- Each webhook's target health folds the same in SQLite and in a real PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from connectors.logstore import LogStore, open_engine
from connectors.logstore.health import HealthSample
from hookstream.config import Settings, load_settings
from hookstream.control import current_webhooks
from hookstream.policy import TargetHealth
from hookstream.records import (
    DELIVERIES,
    ITEM_CHANGES,
    OPERATIONS,
    DeliveryRequest,
    ItemChangeEvent,
    OperationalEvent,
    make_event,
)
from processors.processor import Processor
from tests.integration.harness import (
    RunningDelivery,
    apply_webhooks,
    attempts_of,
    cli_env,
    publish,
    read,
    wait_until,
)
from tests.integration.logstore_harness import RunningLogStore
from tests.pg import postgres_server
from tests.receiver import Receiver

LOOPBACK = {"allowed_networks": ["127.0.0.0/8"]}


@contextmanager
def running_processor(settings: Settings) -> Iterator[Processor]:
    processor = Processor(settings)
    thread = threading.Thread(target=processor.run, daemon=True)
    thread.start()
    try:
        yield processor
    finally:
        processor.stopping.set()
        thread.join(30)
    assert not thread.is_alive()


def ticket(n: int) -> ItemChangeEvent:
    return make_event("glpi-a", "Ticket", n, "new", {"id": n, "name": f"t{n}", "entity": {"id": 0}},
                      int(time.time() * 1000), source="test")


def operations(settings: Settings) -> list[OperationalEvent]:
    return read(settings, OPERATIONS, OperationalEvent)


def planned_for(settings: Settings, webhook_id: str, event_id: str) -> list[DeliveryRequest]:
    return read(settings, DELIVERIES, DeliveryRequest,
                lambda r: r.webhook_id == webhook_id and r.event_id == event_id)


def test_failing_webhook_is_disabled_announced_and_enabled_again(
        settings: Settings, tmp_path: Path) -> None:
    settings = dataclasses.replace(settings, autodisable_after_s=2.0,
                                   circuit_failure_threshold=1000)
    with Receiver() as down, Receiver() as ops:
        down.on("/down", statuses=[503])
        ops.on("/ops", statuses=[200])
        apply_webhooks(settings, tmp_path,
                       {"id": "down", "url": down.url("/down"), "sent_try": 50, **LOOPBACK},
                       {"id": "ops", "itemtype": "Hookstream", "event": "webhook.disabled",
                        "url": ops.url("/ops"), **LOOPBACK})
        with running_processor(settings) as processor, RunningDelivery(settings), \
                RunningLogStore(settings):
            first = ticket(1)
            publish(settings, [first], ITEM_CHANGES)
            disabled = wait_until(
                lambda: not (d := current_webhooks(settings)["down"]).is_active and d, 60)
            assert disabled, "the failing webhook was not disabled"
            assert disabled.disabled_reason.startswith("every attempt failed since ")
            assert "threshold 2 s" in disabled.disabled_reason
            assert disabled.disabled_at_ms > 0 and disabled.version == 2
            failures = [a for a in attempts_of(settings, "down")
                        if a.outcome == "retry_scheduled"]
            assert len(failures) >= 2  # attempts spanning the threshold, every one failed
            assert failures[-1].finished_at - failures[0].finished_at >= 2000

            [event] = [e for e in operations(settings) if e.type == "webhook.disabled"]
            assert (event.webhook_id, event.instance) == ("down", "glpi-a")
            assert event.reason == disabled.disabled_reason
            got = ops.wait_for(1, "/ops", timeout_s=60)
            body = json.loads(got[0].body)
            assert body["event"] == "webhook.disabled"
            assert body["item"]["webhook_id"] == "down"

            # disabled: the processor plans nothing more for it
            second = ticket(2)
            publish(settings, [second], ITEM_CHANGES)
            assert wait_until(lambda: processor.stats["events"] >= 3, 60)  # two tickets, one op
            assert planned_for(settings, "down", first.event_id)
            assert planned_for(settings, "down", second.event_id) == []

            enabled = subprocess.run(
                [sys.executable, "-m", "hookstream.cli", "webhooks", "enable", "down"],
                env=cli_env(settings), text=True, capture_output=True, timeout=120, check=False)
            assert enabled.returncode == 0, enabled.stderr
            assert enabled.stdout.strip() == "down v3: enabled"
            back = current_webhooks(settings)["down"]
            assert back.is_active and back.disabled_reason == "" and back.disabled_at_ms == 0
            assert back.enabled_at_ms >= disabled.disabled_at_ms

            down.on("/down", statuses=[200])  # fixed: it stays enabled
            third = ticket(3)
            publish(settings, [third], ITEM_CHANGES)
            assert wait_until(lambda: planned_for(settings, "down", third.event_id), 60)
    listed = subprocess.run(
        [sys.executable, "-m", "hookstream.cli", "webhooks", "enable", "nope"],
        env=cli_env(settings), text=True, capture_output=True, timeout=120, check=False)
    assert listed.returncode == 1 and listed.stdout.strip() == "nope: not found"


def test_dead_letters_and_open_circuits_make_events_without_a_loop(
        settings: Settings, tmp_path: Path) -> None:
    settings = dataclasses.replace(settings, autodisable_after_s=0, circuit_failure_threshold=2,
                                   circuit_cooldown_s=600.0)
    with Receiver() as gone, Receiver() as flaky, Receiver() as ops_failing, \
            Receiver() as ops_ok:
        gone.on("/gone", statuses=[410])  # permanent: dead-lettered at once
        flaky.on("/flaky", statuses=[503])
        ops_failing.on("/ops", statuses=[410])  # the operator's receiver fails too
        ops_ok.on("/ops", statuses=[200])
        apply_webhooks(
            settings, tmp_path,
            {"id": "gone", "url": gone.url("/gone"), **LOOPBACK},
            {"id": "flaky", "url": flaky.url("/flaky"), "sent_try": 50, **LOOPBACK},
            {"id": "ops-dead", "itemtype": "Hookstream", "event": "delivery.dead_lettered",
             "url": ops_failing.url("/ops"), **LOOPBACK},
            {"id": "ops-circuit", "itemtype": "Hookstream", "event": "circuit.opened",
             "url": ops_ok.url("/ops"), **LOOPBACK},
        )
        with running_processor(settings), RunningDelivery(settings):
            publish(settings, [ticket(1)], ITEM_CHANGES)
            # the dead letter's event went to the failing operational receiver, and that
            # delivery was dead-lettered in its turn
            assert wait_until(lambda: [a for a in attempts_of(settings, "ops-dead")
                                       if a.outcome == "dead_lettered"], 60)
            opened = ops_ok.wait_for(1, "/ops", timeout_s=60)
        events = operations(settings)  # after the delivery process flushed and stopped
    dead = [e for e in events if e.type == "delivery.dead_lettered"]
    assert [e.webhook_id for e in dead] == ["gone"]  # none about ops-dead's own dead letter
    [gone_attempt] = attempts_of(settings, "gone")
    assert dead[0].delivery_id == gone_attempt.delivery_id
    assert "410" in dead[0].reason
    circuits = [e for e in events if e.type == "circuit.opened"]
    assert [e.webhook_id for e in circuits] == ["flaky"]  # opened once, cool-down 600 s
    assert circuits[0].origin == flaky.url("")
    assert json.loads(opened[0].body)["item"]["origin"] == circuits[0].origin
    assert len(ops_failing.requests("/ops")) == 1  # its failure fed nothing back to it


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_target_health_folds_the_same_in_both_databases(kind: str, tmp_path: Path) -> None:
    """The fold's upsert in each dialect: batches in any order, a batch written twice."""
    url = postgres_server().database_url() if kind == "postgresql" else ""
    settings = load_settings(env={}, check_dns=False, state_dir=str(tmp_path / "state"),
                             logstore_url=url)
    store = LogStore(open_engine(settings))
    day = 86_400_000
    store.write([], [], health=[HealthSample("w", 5 * day, False)])
    batch = [HealthSample("w", day, False), HealthSample("w", 2 * day, True),
             HealthSample("w", 3 * day, False), HealthSample("x", day, True)]
    store.write([], [], health=batch)
    store.write([], [], health=batch)
    assert store.health(["w", "x", "y"]) == {"w": TargetHealth(2 * day, 3 * day, 5 * day),
                                             "x": TargetHealth(day, None, None)}
    store.engine.dispose()
