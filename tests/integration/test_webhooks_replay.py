"""`hookstream webhooks replay`: past events into one webhook, each at most once, on the
real broker."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hookstream.config import Settings
from hookstream.control import admin
from hookstream.control.replay import ReplayJob, replay
from hookstream.io import create_topics, flush, producer
from hookstream.records import (
    DELIVERIES,
    ITEM_CHANGES,
    Codec,
    DeliveryRequest,
    ItemChangeEvent,
    delivery_id_for,
    make_event,
    topic_schema,
)
from hookstream.records.replays import ReplayCount, replay_delivery_id
from tests.conftest import fixture_item
from tests.integration.harness import apply_webhooks, cli_env, read, wait_until

DATA = Path(__file__).resolve().parents[1] / "data"
HOOK = "replay-europe-open"
T0 = (int(time.time()) - 3600) * 1000  # the range starts an hour ago
RANGE_S = 600


def ticket_event(items_id: int, *, status: int = 1, entity: int = 3, event: str = "new",
                 instance: str = "glpi-a") -> ItemChangeEvent:
    item = {**fixture_item("Ticket.json"), "id": items_id, "status": {"id": status, "name": "s"},
            "entity": {"id": entity, "name": "e", "completename": "e"}}
    return make_event(instance, "Ticket", items_id, event, item, T0)


def publish_at(settings: Settings, records: list[tuple[int, ItemChangeEvent | bytes]]) -> None:
    """Events (or undecodable bytes) on glpi.item-changes with the given record times."""
    codec, prod, topic = Codec(), producer(settings), settings.topic(ITEM_CHANGES)
    for at_ms, record in records:
        if isinstance(record, bytes):
            prod.produce(topic, record, b"glpi-a:Ticket:0", timestamp=at_ms,
                         headers=[("hookstream-schema", topic_schema(ITEM_CHANGES).encode())])
            continue
        value, headers = codec.encode(record, topic)
        prod.produce(topic, value, record.key().encode(), headers=headers, timestamp=at_ms)
    flush(prod)


def setup(settings: Settings, tmp_path: Path, in_range: int) -> list[ItemChangeEvent]:
    """The webhook (Europe and below, open tickets, new), its entities, and events around
    its range; returns the events of the range that it fires for, in no set order."""
    create_topics(settings)
    admin.apply_entities(settings, DATA / "entities.yaml")
    apply_webhooks(settings, tmp_path, {
        "id": HOOK, "url": "http://127.0.0.1:9/replayed/{{ item.id }}", "entities_id": 1,
        "is_recursive": True, "allowed_networks": ["127.0.0.0/8"],
        "filter": [{"link": "AND", "field": 12, "searchtype": "equals", "value": "notold"}]})
    matching = [ticket_event(1000 + n, entity=(1, 3)[n % 2]) for n in range(in_range)]
    not_matching = [ticket_event(2001, entity=2),  # outside the entity scope
                    ticket_event(2002, status=6),  # closed: the filter says no
                    ticket_event(2003, event="update"),  # another event
                    ticket_event(2004, instance="glpi-b")]  # another instance
    # in time order, as records reach Kafka
    records: list[tuple[int, ItemChangeEvent | bytes]] = [
        (T0 - 60_000, ticket_event(3001)),  # matches, before the range
        (T0 + 1000, b"\x00not avro"),
        *((T0 + 2000 + n * 10, e) for n, e in enumerate([*not_matching, *matching])),
        (T0 + (RANGE_S + 60) * 1000, ticket_event(3002)),  # matches, after it
    ]
    publish_at(settings, records)
    return matching


def job(replay_id: str = "r1", **changes: Any) -> ReplayJob:
    return ReplayJob(HOOK, replay_id, T0, T0 + RANGE_S * 1000, **changes)


def replayed(settings: Settings) -> Counter[str]:
    return Counter(r.delivery_id for r in read(settings, DELIVERIES, DeliveryRequest))


def test_a_range_is_replayed_once_with_new_ids_even_across_interrupted_runs(
        settings: Settings, tmp_path: Path) -> None:
    matching = setup(settings, tmp_path, 12)
    expected = {replay_delivery_id(e.event_id, HOOK, "r1") for e in matching}
    not_first_ids = expected.isdisjoint({delivery_id_for(e.event_id, HOOK) for e in matching})
    assert not_first_ids

    dry = replay(settings, job(dry_run=True))
    assert dry.finished and dry.count == ReplayCount(read=17, matched=12, replayed=12, skipped=1)
    assert replayed(settings) == Counter()  # a dry run writes nothing

    first = replay(settings, job(limit=5))  # a run stopped mid-way
    assert not first.finished and first.count.replayed == 5
    assert sum(replayed(settings).values()) == 5

    dry_after = replay(settings, job(dry_run=True))
    assert (dry_after.count.replayed, dry_after.count.already) == (7, 5)
    second = replay(settings, job())
    assert second.finished and (second.count.replayed, second.count.already) == (7, 5)
    third = replay(settings, job())
    assert third.count == ReplayCount(already=12)

    assert replayed(settings) == Counter(dict.fromkeys(expected, 1))
    written = read(settings, DELIVERIES, DeliveryRequest)
    by_item = {r.items_id: r for r in written}
    assert sorted(by_item) == sorted(e.items_id for e in matching)
    one = by_item[1000]
    assert (one.webhook_id, one.attempt, one.hop, one.url) == (
        HOOK, 0, 0, "http://127.0.0.1:9/replayed/1000")
    assert one.key() == f"{HOOK}:Ticket:1000"

    other = replay(settings, job("r2"))  # another replay of the same range: new ids again
    assert other.count.replayed == 12
    assert {r.delivery_id for r in read(settings, DELIVERIES, DeliveryRequest)} == expected | {
        replay_delivery_id(e.event_id, HOOK, "r2") for e in matching}


def test_a_replay_killed_mid_run_and_run_again_writes_each_event_once(
        settings: Settings, tmp_path: Path) -> None:
    matching = setup(settings, tmp_path, 30)
    since = datetime.fromtimestamp(T0 / 1000, UTC).isoformat()
    until = datetime.fromtimestamp(T0 / 1000 + RANGE_S, UTC).isoformat()
    command = [sys.executable, "-m", "hookstream.cli", "webhooks", "replay", HOOK,
               "--since", since, "--until", until]
    # 2 a second: 15 s for the 30, so the kill lands mid-run even when reading the topic
    # to count takes seconds on a loaded machine
    slow = subprocess.Popen([*command, "--rate", "2/s"], env=cli_env(settings), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Kill once the first deliveries are in (start-up time varies with the machine's load).
    wait_until(lambda: sum(replayed(settings).values()) >= 5, timeout_s=60)
    slow.send_signal(signal.SIGKILL)  # mid-run, possibly mid-transaction
    slow.wait(30)
    before = sum(replayed(settings).values())
    assert 5 <= before < 30, "the kill did not land mid-replay"

    rerun = subprocess.run(command, env=cli_env(settings), text=True, capture_output=True,
                           timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr
    summary = rerun.stdout.strip().splitlines()[-1]
    # the undecodable record is counted by whichever run read it (the killed one, or this)
    assert (summary.endswith(f"replayed {30 - before}, already replayed before {before}, "
                             "skipped 1")
            or summary.endswith(f"replayed {30 - before}, already replayed before {before}, "
                                "skipped 0")), summary
    assert replayed(settings) == Counter(
        {d.delivery_id: 1 for d in read(settings, DELIVERIES, DeliveryRequest)})
    assert sum(replayed(settings).values()) == len(matching)


def test_a_missing_webhook_is_one_line_and_exit_code_2(settings: Settings) -> None:
    create_topics(settings)
    done = subprocess.run([sys.executable, "-m", "hookstream.cli", "webhooks", "replay", "nope",
                           "--since", "2h"], env=cli_env(settings), text=True,
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 2
    assert done.stderr == "hookstream: no webhook 'nope'\n"
    assert done.stdout == ""


def test_without_until_the_end_stays_where_the_first_run_fixed_it(
        settings: Settings, tmp_path: Path) -> None:
    matching = setup(settings, tmp_path, 4)
    open_ended = ReplayJob(HOOK, "open", T0)
    first = replay(settings, ReplayJob(HOOK, "open", T0, limit=1))
    assert first.count.replayed == 1 and not first.finished
    # the range ended where the topic ended when the replay began: 3002 (after --until
    # above, inside this range) is in it, an event arriving now is not
    later = ticket_event(4001)
    publish_at(settings, [(int(time.time() * 1000), later)])
    rest = replay(settings, open_ended)
    assert rest.finished and (rest.count.replayed, rest.count.already) == (len(matching), 1)
    ids = set(replayed(settings))
    assert replay_delivery_id(later.event_id, HOOK, "open") not in ids
    assert len(ids) == len(matching) + 1  # the range's matches and 3002
