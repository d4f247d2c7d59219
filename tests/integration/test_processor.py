"""The processor on a real broker: exactly the expected delivery requests, no more, no
fewer, also across SIGKILL and restart."""

from __future__ import annotations

import faulthandler
import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from hookstream.config import Settings
from hookstream.control import admin
from hookstream.io import create_topics, read_all
from hookstream.records import (
    ATTEMPTS,
    DELIVERIES,
    DLQ,
    ITEM_CHANGES,
    ITEM_CHANGES_DLQ,
    AttemptRecord,
    DeliveryRequest,
    ItemChangeEvent,
    make_event,
)
from processors.processor import Processor
from tests.conftest import fixture_item
from tests.integration.harness import cli_env, publish, read

DATA = Path(__file__).resolve().parents[1] / "data"
TICKET = fixture_item("Ticket.json")


def ticket(items_id: int, status: int, entity: int, name: str = "Printer jam") -> dict[str, Any]:
    return {
        **TICKET,
        "id": items_id,
        "name": name,
        "status": {"id": status, "name": "s"},
        "entity": {"id": entity, "name": "e", "completename": "e"},
    }


def setup_tables(settings: Settings) -> None:
    create_topics(settings)
    admin.apply_webhooks(settings, DATA / "webhooks.yaml")
    admin.apply_entities(settings, DATA / "entities.yaml")


def expected_webhooks(instance: str, event: str, status: int, entity: int, name: str) -> set[str]:
    """The rules of tests/data/webhooks.yaml, written out by hand."""
    hooks = set()
    if instance == "glpi-b":
        return {"b-ticket-new"} if event == "new" else set()
    if event == "new":
        if status in (1, 2, 3, 4):
            hooks.add("a-ticket-new-open")
        if entity == 3:
            hooks.add("a-ticket-new-france")
        if "broken" in name.lower():
            hooks.add("a-ticket-new-broken")
    if event == "update" and entity in (1, 3):
        hooks.add("a-ticket-update-europe")
    return hooks


def mixed_events(count: int) -> list[ItemChangeEvent]:
    events = []
    for i in range(count):
        instance = "glpi-b" if i % 11 == 0 else "glpi-a"
        event = "update" if i % 3 == 0 else "new"
        status, entity = 1 + i % 6, (0, 1, 2, 3)[i % 4]
        name = "BROKEN printer" if i % 50 == 7 else f"Printer {i}"
        events.append(
            make_event(
                instance,
                "Ticket",
                10_000 + i,
                event,
                ticket(10_000 + i, status, entity, name),
                occurred_at=i,
            )
        )
    return events


def expected_pairs(events: list[ItemChangeEvent]) -> Counter[tuple[str, str]]:
    pairs: Counter[tuple[str, str]] = Counter()
    for e in events:
        item = json.loads(e.item)
        for hook in expected_webhooks(
            e.instance, e.event, item["status"]["id"], item["entity"]["id"], item["name"]
        ):
            pairs[(e.event_id, hook)] += 1
    return pairs


def run_until(processor: Processor, condition: Any, timeout_s: float = 60.0) -> None:
    thread = threading.Thread(target=processor.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.2)
        if time.monotonic() >= deadline:  # where the processor waits, for a failure's report
            faulthandler.dump_traceback(all_threads=True)
    finally:
        processor.stopping.set()
        thread.join(30)
    assert not thread.is_alive()


def test_mixed_stream_yields_exactly_the_expected_requests(settings: Settings) -> None:
    setup_tables(settings)
    events = mixed_events(300)
    publish(settings, [*events[:150], b"\x00garbage", *events[150:]], ITEM_CHANGES)
    processor = Processor(settings, clock=lambda: 1_800_000_000.0)
    run_until(processor, lambda: processor.stats["events"] >= 301)

    requests = read(settings, DELIVERIES, DeliveryRequest)
    got = Counter((r.event_id, r.webhook_id) for r in requests)
    expected = expected_pairs(events)
    broken = Counter({k: v for k, v in expected.items() if k[1] == "a-ticket-new-broken"})
    assert got == expected - broken
    assert len({r.delivery_id for r in requests}) == len(requests)

    france = next(r for r in requests if r.webhook_id == "a-ticket-new-france")
    body = json.loads(france.body)
    assert body["id"] == france.items_id and body["event"] == "new"
    assert france.headers["X-Ticket"] == str(france.items_id)
    assert "X-Empty" not in france.headers
    assert france.headers["Content-Type"] == "application/json"
    assert france.method == "POST" and france.url == "https://hooks.example.com/france"
    open_one = next(r for r in requests if r.webhook_id == "a-ticket-new-open")
    assert open_one.url == f"https://hooks.example.com/glpi/{open_one.items_id}"
    assert list(json.loads(open_one.body)) == ["item", "event"]
    assert all(b"secret" not in r.body for r in requests)

    dead = read(settings, DLQ, DeliveryRequest)
    assert Counter((r.event_id, r.webhook_id) for r in dead) == broken
    assert all(r.last_error and r.last_error.startswith("render_error") for r in dead)
    attempts = read(settings, ATTEMPTS, AttemptRecord)
    assert {a.outcome for a in attempts} == {"render_error"} and len(attempts) == len(dead)

    undecodable = list(read_all(settings, settings.topic(ITEM_CHANGES_DLQ)))
    assert len(undecodable) == 1 and undecodable[0].value() == b"\x00garbage"
    reasons = dict(undecodable[0].headers() or [])
    assert b"ItemChangeEvent" in reasons["hookstream-error"]
    assert reasons["hookstream-source"].startswith(settings.topic(ITEM_CHANGES).encode())


def test_definition_applied_while_running_takes_effect(settings: Settings, tmp_path: Path) -> None:
    setup_tables(settings)
    processor = Processor(settings)
    thread = threading.Thread(target=processor.run, daemon=True)
    thread.start()
    try:
        assert processor.ready.wait(60)
        hook = tmp_path / "late.yaml"
        hook.write_text(
            "id: late\ninstance: glpi-z\nname: late\nitemtype: Computer\n"
            "event: update\nis_active: true\nis_recursive: true\n"
            "url: https://hooks.example.com/late\n"
        )
        admin.apply_webhooks(settings, hook)
        deadline = time.monotonic() + 30
        while processor.index.get("late") is None and time.monotonic() < deadline:
            time.sleep(0.1)
        computer = fixture_item("Computer.json")
        publish(
            settings,
            [make_event("glpi-z", "Computer", computer["id"], "update", computer, occurred_at=1)],
            ITEM_CHANGES,
        )
        deadline = time.monotonic() + 30
        while processor.stats["deliveries"] < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        processor.stopping.set()
        thread.join(30)
    [request] = read(settings, DELIVERIES, DeliveryRequest)
    assert request.webhook_id == "late" and request.url == "https://hooks.example.com/late"


def spawn_processor(settings: Settings) -> subprocess.Popen[bytes]:
    env = cli_env(settings, processor_batch_size="200")
    return subprocess.Popen(
        [sys.executable, "-m", "hookstream.cli", "run", "processor"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class StreamPublisher(threading.Thread):
    """Publishes events in small chunks while the processors run: a kill is then always
    mid-stream, however fast the processor is."""

    def __init__(self, settings: Settings, events: list[ItemChangeEvent], chunk: int = 100):
        super().__init__(daemon=True)
        self.settings, self.events, self.chunk = settings, events, chunk

    def run(self) -> None:
        for start in range(0, len(self.events), self.chunk):
            publish(self.settings, self.events[start:start + self.chunk], ITEM_CHANGES)
            time.sleep(0.05)


def expected_without_render_errors(events: list[ItemChangeEvent]) -> Counter[tuple[str, str]]:
    expected = expected_pairs(events)
    return Counter({k: v for k, v in expected.items() if k[1] != "a-ticket-new-broken"})


def settle(settings: Settings, topic: str, total: int) -> Counter[tuple[str, str]]:
    """The delivery requests once `total` have arrived (and a little longer, so that
    duplicates would show)."""
    wait_for_output(settings, topic, total)
    time.sleep(2)
    return Counter(
        (r.event_id, r.webhook_id) for r in read(settings, DELIVERIES, DeliveryRequest))


@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM])
def test_killed_processor_restarts_without_loss_or_duplicates(
    settings: Settings, kill: signal.Signals
) -> None:
    setup_tables(settings)
    events = mixed_events(6000)
    expected = expected_without_render_errors(events)
    topic = settings.topic(DELIVERIES)
    publisher = StreamPublisher(settings, events)
    first = spawn_processor(settings)
    publisher.start()
    assert wait_for_output(settings, topic, 1) > 0
    first.send_signal(kill)  # once part of the stream is committed
    first.wait(60)
    assert publisher.is_alive(), "the kill did not land mid-stream"
    second = spawn_processor(settings)
    try:
        publisher.join(180)
        got = settle(settings, topic, sum(expected.values()))
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
    assert_exactly(got, expected)


def test_two_processors_share_the_stream_through_rebalances(settings: Settings) -> None:
    setup_tables(settings)
    events = mixed_events(6000)
    expected = expected_without_render_errors(events)
    topic = settings.topic(DELIVERIES)
    publisher = StreamPublisher(settings, events)
    first = spawn_processor(settings)
    publisher.start()
    assert wait_for_output(settings, topic, 1) > 0
    second = spawn_processor(settings)  # joins the group: partitions move mid-stream
    time.sleep(3)
    first.send_signal(signal.SIGTERM)  # leaves the group: partitions move back
    assert first.wait(60) == 0
    try:
        publisher.join(180)
        got = settle(settings, topic, sum(expected.values()))
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
    assert_exactly(got, expected)


def assert_exactly(got: Counter[tuple[str, str]], expected: Counter[tuple[str, str]]) -> None:
    missing, extra = expected - got, got - expected
    assert not missing and not extra, (
        f"{sum(missing.values())} lost, {sum(extra.values())} duplicated or unexpected "
        f"of {sum(expected.values())}")


def wait_for_output(settings: Settings, topic: str, count: int, timeout_s: float = 180) -> int:
    deadline = time.monotonic() + timeout_s
    seen = 0
    while time.monotonic() < deadline:
        seen = sum(1 for _ in read_all(settings, topic, timeout_s=5))
        if seen >= count:
            break
        time.sleep(0.3)
    return seen
