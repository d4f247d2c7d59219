"""The poller on the real broker against the fake GLPI (tests/fake_glpi_items.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from connectors.glpi import GlpiClient
from connectors.poller import InstancePoller, PollerApi, poller_config
from connectors.poller.kafka_io import KafkaOut, load_cursors
from hookstream.config import Settings
from hookstream.control import instances
from hookstream.io import codec_for, create_topics, read_all
from hookstream.records import ITEM_CHANGES, ItemChangeEvent
from hookstream.records.cursor import LIVE, TRASH
from hookstream.render import default_payload
from tests.conftest import FIXTURES, fixture_item
from tests.fake_glpi_items import (
    FakeGlpiItems,
    polled_from_glpi10,
    polled_payload_from_glpi10,
    seed_ticket_4211,
)
from tests.integration.harness import cli_env, wait_until

APP, USER = "app-token-1234", "user-token-5678"


@pytest.fixture
def glpi() -> Iterator[tuple[FakeGlpiItems, str]]:
    from tests.fake_glpi import RunningGlpiApi

    api = FakeGlpiItems(APP, USER)
    seed_ticket_4211(api)
    with RunningGlpiApi(api) as url:
        yield api, url


@pytest.fixture
def polled(settings: Settings, tmp_path: Path, glpi: tuple[FakeGlpiItems, str]) -> Settings:
    create_topics(settings)
    path = tmp_path / "instances.yaml"
    path.write_text(yaml.safe_dump({"name": "glpi-a", "api_url": glpi[1],
                                    "app_token": APP, "user_token": USER}))
    instances.apply_instances(settings, path)
    return replace(settings, poller_timezone="Europe/Paris", poller_itemtypes=("Ticket",))


def events(settings: Settings) -> list[ItemChangeEvent]:
    codec = codec_for(settings)
    return [codec.decode(m.value(), m.headers(), ItemChangeEvent)
            for m in read_all(settings, settings.topic(ITEM_CHANGES))]


def poller(settings: Settings, url: str, calls: list[int] | None = None) -> InstancePoller:
    client = GlpiClient("glpi-a", url, APP, USER, timeout_s=5, backoff_s=0.01)
    counted = calls if calls is not None else []
    api = PollerApi(client, lambda: counted.append(1))
    return InstancePoller("glpi-a", api, KafkaOut(settings), load_cursors(settings, "glpi-a"),
                          poller_config(settings))


def drain(p: InstancePoller, stream: str = LIVE, itemtype: str = "Ticket") -> int:
    total = 0
    while (n := p.poll(itemtype, stream)) > 0:
        total += n
    return total


def test_new_update_and_trash_arrive_as_events_in_glpi11s_shape(
    polled: Settings, glpi: tuple[FakeGlpiItems, str]
) -> None:
    api, url = glpi
    p = poller(polled, url)
    assert drain(p) == 1
    [first] = events(polled)
    assert (first.event, first.items_id, first.entities_id, first.source) == (
        "new", 4211, 3, "poller")
    assert json.loads(first.item) == polled_from_glpi10(fixture_item("Ticket.json"))
    body = default_payload(json.loads(first.item), first.event, None)
    assert body == polled_payload_from_glpi10(
        (FIXTURES / "webhook_default_payloads" / "Ticket_new.json").read_bytes())

    api.now = api.now.replace(day=5)
    api.update("Ticket", 4211, status=4)
    new = api.create("Ticket", name="Écran noir", entities_id=3, status=1, content="",
                     itilcategories_id=0, locations_id=0)
    api.tick()
    api.trash("Ticket", new)
    assert drain(p) == 1  # the update; the new ticket is already in the trash
    assert drain(p, TRASH) == 1
    kinds = [(e.items_id, e.event) for e in events(polled)]
    assert kinds == [(4211, "new"), (4211, "update"), (new, "delete")]
    update = json.loads(events(polled)[1].item)
    assert update["status"] == {"id": 4, "name": "Pending"}
    assert update["category"] == {"id": 12, "name": "Imprimantes"}
    assert json.loads(events(polled)[2].item)["is_deleted"] is True
    assert drain(p) == 0 and drain(p, TRASH) == 0  # nothing read twice


def test_ties_in_one_second_are_neither_lost_nor_repeated(
    polled: Settings, glpi: tuple[FakeGlpiItems, str]
) -> None:
    api, url = glpi
    settings = replace(polled, poller_page_size=20, poller_team=False)
    ids = [api.create("Ticket", name=f"t{n}", entities_id=0, status=1) for n in range(95)]
    p = poller(settings, url)
    assert drain(p) == 96  # and 4211
    # more items in the cursor's second (GLPI's clock did not move), then later ones
    ids += [api.create("Ticket", name=f"late{n}", entities_id=0, status=1) for n in range(7)]
    api.tick()
    ids += [api.create("Ticket", name=f"next{n}", entities_id=0, status=1) for n in range(3)]
    assert drain(p) == 10
    produced = [e.items_id for e in events(settings)]
    assert sorted(produced) == sorted([4211, *ids])
    assert len(produced) == len(set(produced))


def test_api_calls_per_page_are_bounded_and_an_expired_session_is_renewed(
    polled: Settings, glpi: tuple[FakeGlpiItems, str]
) -> None:
    api, url = glpi
    calls: list[int] = []
    settings = replace(polled, poller_page_size=10)
    for n in range(10):
        api.create("Ticket", name=f"t{n}", entities_id=3, status=2, itilcategories_id=12)
    p = poller(settings, url, calls)
    assert p.poll("Ticket", LIVE) == 10  # 4211 (older) and 9 of the new ones
    # one search, one getMultipleItems, 3 actor lists per ticket, one batch of names
    assert len(calls) == 1 + 1 + 3 * 10 + 1
    assert api.calls_to("search/") == 1 and api.calls_to("getMultipleItems") == 2
    before = len(calls)
    assert p.poll("Ticket", LIVE) == 1  # the last one: every name it needs is cached
    assert len(calls) - before == 1 + 1 + 3
    api.sessions.clear()  # GLPI dropped the session
    assert p.poll("Ticket", LIVE) == 0
    assert api.sessions_opened == 2
    assert len(calls) - before == 1 + 1 + 3 + 1  # a caught-up poll is one search


def test_the_run_loop_waits_its_interval_when_caught_up_and_backs_off_on_errors(
    polled: Settings, glpi: tuple[FakeGlpiItems, str]
) -> None:
    api, url = glpi
    settings = replace(polled, poller_interval_s=0.5, poller_backoff_max_s=1.0)
    p, stop = poller(settings, url), threading.Event()
    thread = threading.Thread(target=p.run, args=(stop,))
    thread.start()
    try:
        time.sleep(2.2)
        searches = api.calls_to("search/")
        # two streams, a poll every 0.5 s each: at most 2 x (2.2 / 0.5 + 1) searches
        assert 4 <= searches <= 12
        api.fail_next = [500] * 1000  # GLPI down
        failing_from = len(api.calls)
        time.sleep(2.0)
        # the client tries 4 times a call; the loop waits 2 s, then 1 s (the maximum)
        assert len(api.calls) - failing_from <= 2 * 4 * 3
        api.fail_next = []
        api.tick()
        api.update("Ticket", 4211, urgency=5)
        assert wait_until(lambda: len(events(settings)) == 2, timeout_s=15)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_sigkill_mid_stream_then_restart_produces_every_change_with_the_same_ids(
    polled: Settings, glpi: tuple[FakeGlpiItems, str]
) -> None:
    api, _ = glpi
    ids = []
    for n in range(150):
        ids.append(api.create("Ticket", name=f"t{n}", entities_id=3, status=1))
        if n % 7 == 0:
            api.tick()
    env = cli_env(polled, poller_page_size="10", poller_interval_s="0.5", poller_team="false")
    command = [sys.executable, "-m", "hookstream.cli", "run", "poller", "--instance", "glpi-a"]
    api.searches_allowed = 4  # then the poller waits in its next search, mid-stream
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: len(events(polled)) >= 20, timeout_s=120)
        assert wait_until(lambda: api.calls_to("search") > 4, timeout_s=60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    at_kill = len(events(polled))
    assert 20 <= at_kill < 151, "the poller was not killed mid-stream"
    api.searches_allowed = None
    second = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        done = wait_until(
            lambda: {e.items_id for e in events(polled)} >= {4211, *ids}, timeout_s=180)
    finally:
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=30)
    assert done, err.decode()[-3000:]
    assert second.returncode == 0, err
    by_item: dict[int, set[str]] = {}
    for event in events(polled):
        by_item.setdefault(event.items_id, set()).add(event.event_id)
    assert set(by_item) == {4211, *ids}
    # a change read twice (before and after the kill) has the same event id
    assert all(len(ev) == 1 for ev in by_item.values())
    assert b"app-token-1234" not in err and b"user-token-5678" not in err
