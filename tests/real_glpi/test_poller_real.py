"""`hookstream run poller` against a real GLPI 10: changes a person makes through GLPI's API
(tickets, changes, problems, computers; created, updated, followed up, trashed, restored,
purged) arrive on Kafka once each, with the right event, in GLPI 11's payload shape, across
a SIGKILL of the poller."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.glpi import GlpiClient
from hookstream.config import Settings
from hookstream.io import codec_for, read_all
from hookstream.records import ITEM_CHANGES, ItemChangeEvent
from tests.conftest import fixture_item
from tests.integration.harness import cli_env, wait_until
from tests.real_glpi.conftest import INSTANCE, RealGlpi

# The keys of GLPI 11's baseline items (tests/fixtures) a GLPI 10.0.19 item cannot yield,
# measured against the real API's rows: GLPI 10.0 has no externalid column.
CANNOT_YIELD = {"Ticket": {"external_id"}, "Change": set(), "Problem": set(),
                "Computer": set()}
NAME = 'R&D <lab> "q" 1'  # stored by GLPI 10 as R&#38;D &#60;lab&#62;, raw in GLPI 11
CONTENT = "<p>Hello &amp; bye</p>"


@dataclass(frozen=True)
class Step:
    what: str
    act: Callable[[GlpiClient], tuple[str, int]]  # the change, made as a person; its item
    event: str | None  # the event it must give, or None for none (a purge)


def events(settings: Settings) -> list[ItemChangeEvent]:
    codec = codec_for(settings)
    return [codec.decode(m.value(), m.headers(), ItemChangeEvent)
            for m in read_all(settings, settings.topic(ITEM_CHANGES))]


def steps() -> list[Step]:
    made: dict[str, int] = {}

    def new(itemtype: str, key: str, **fields: Any) -> Callable[[GlpiClient], tuple[str, int]]:
        def act(glpi: GlpiClient) -> tuple[str, int]:
            made[key] = glpi.add_item(itemtype, fields)
            return itemtype, made[key]
        return act

    def then(itemtype: str, key: str, call: Callable[[GlpiClient, int], object]
             ) -> Callable[[GlpiClient], tuple[str, int]]:
        def act(glpi: GlpiClient) -> tuple[str, int]:
            call(glpi, made[key])
            return itemtype, made[key]
        return act

    def update(itemtype: str, **fields: Any) -> Callable[[GlpiClient, int], object]:
        return lambda glpi, ident: glpi.update_item(itemtype, ident, fields)

    def delete(itemtype: str, purge: bool) -> Callable[[GlpiClient, int], object]:
        return lambda glpi, ident: glpi.request(
            "DELETE", f"{itemtype}/{ident}", params={"force_purge": str(purge).lower()})

    def followup(glpi: GlpiClient, ident: int) -> object:
        return glpi.add_item("ITILFollowup", {"itemtype": "Ticket", "items_id": ident,
                                              "content": "a person's followup"})

    return [
        Step("a ticket", new("Ticket", "a", name=NAME, content=CONTENT, urgency=4,
                             _users_id_requester=5, _users_id_assign=4), "new"),
        Step("its update", then("Ticket", "a", update("Ticket", urgency=5)), "update"),
        Step("a followup on it", then("Ticket", "a", followup), "update"),
        Step("a change", new("Change", "c", name="change 1", content="<p>c</p>"), "new"),
        Step("a problem", new("Problem", "p", name="problem 1", content="<p>p</p>"), "new"),
        Step("a computer", new("Computer", "pc", name="PC-0001", serial="S1"), "new"),
        Step("its update", then("Computer", "pc", update("Computer", serial="S2")), "update"),
        Step("a second ticket", new("Ticket", "b", name="second", content="x"), "new"),
        Step("put in the trash", then("Ticket", "b", delete("Ticket", purge=False)), "delete"),
        Step("restored", then("Ticket", "b", update("Ticket", is_deleted=0)), "update"),
        Step("the change updated", then("Change", "c", update("Change", impact=5)), "update"),
        Step("the problem trashed", then("Problem", "p", delete("Problem", purge=False)),
             "delete"),
        Step("the computer trashed", then("Computer", "pc", delete("Computer", purge=False)),
             "delete"),
        Step("a third ticket", new("Ticket", "t", name="third", content="x"), "new"),
        Step("purged", then("Ticket", "t", delete("Ticket", purge=True)), None),
    ]


def by_item(changes: list[tuple[str, int, str]]) -> dict[tuple[str, int], list[str]]:
    """Each item's events in order: the poller keeps the order per item (per stream), not
    across itemtypes."""
    out: dict[tuple[str, int], list[str]] = {}
    for itemtype, ident, event in changes:
        out.setdefault((itemtype, ident), []).append(event)
    return out


def test_every_change_arrives_once_in_glpi11s_shape_across_a_sigkill(
        published: Settings, real_glpi: RealGlpi) -> None:
    """While the poller is down, the changes of an item are seen as its latest state: a
    computer created then updated gives one update, a ticket created then trashed one
    delete (README, "Event type"); nothing is missed, nothing repeated."""
    env = cli_env(published, poller_itemtypes="Ticket,Change,Problem,Computer",
                  poller_interval_s="0.5", poller_page_size="5")
    command = [sys.executable, "-m", "hookstream.cli", "run", "poller", "--instance", INSTANCE]
    poller = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    plan, expected = steps(), list[tuple[str, int, str]]()
    killed_at, restarted_at = 5, 9  # steps 5-8 happen while the poller is down
    while_down: dict[tuple[str, int], str] = {}  # each item's latest event meanwhile

    def produced() -> list[tuple[str, int, str]]:
        """The events of this test's items (GLPI holds other tests' items too)."""
        return [(e.itemtype, e.items_id, e.event) for e in events(published)
                if (e.itemtype, e.items_id) in ours]

    ours: set[tuple[str, int]] = set()

    try:
        with real_glpi.client(user_token=real_glpi.human_token) as person:
            for n, step in enumerate(plan):
                if n == killed_at:
                    poller.send_signal(signal.SIGKILL)
                    poller.wait(30)
                if n == restarted_at:
                    expected.extend((*item, event) for item, event in while_down.items())
                    poller = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE)
                    # caught up before the next change: a ticket restored before the
                    # restarted poller's first look would hide its trashing (latest state wins)
                    want = by_item(expected)
                    caught_up = wait_until(lambda: by_item(produced()) == want, 60)  # noqa: B023
                    assert caught_up, ("the restart", want, by_item(produced()))
                time.sleep(1.05)  # GLPI's date_mod counts seconds: one change a second
                itemtype, ident = step.act(person)
                ours.add((itemtype, ident))
                if killed_at <= n < restarted_at:
                    while_down[(itemtype, ident)] = str(step.event)
                    continue
                if step.event is not None:
                    expected.append((itemtype, ident, step.event))
                want = by_item(expected)
                seen = wait_until(lambda: by_item(produced()) == want, 60)  # noqa: B023
                assert seen, (step.what, by_item(expected), by_item(produced()))
            time.sleep(3)  # a purge gives nothing: nothing more may come
    finally:
        poller.send_signal(signal.SIGTERM)
        _, err = poller.communicate(timeout=60)
    assert poller.returncode == 0, err.decode()[-3000:]
    assert by_item(produced()) == by_item(expected)
    assert sorted(produced()) == sorted(expected)
    final = [e for e in events(published) if (e.itemtype, e.items_id) in ours]
    assert len({e.event_id for e in final}) == len(final)
    assert real_glpi.user_token.encode() not in err and real_glpi.app_token.encode() not in err
    check_shapes(final)


def check_shapes(produced: list[ItemChangeEvent]) -> None:
    """Keys in GLPI 11's order, only GLPI 11's, all but those GLPI 10 cannot yield; strings
    as GLPI 11 gives them."""
    for event in produced:
        item = json.loads(event.item)
        baseline = fixture_item(f"{event.itemtype}.json")
        assert set(baseline) - set(item) == CANNOT_YIELD[event.itemtype], event
        assert list(item) == [k for k in baseline if k in item], event
        assert item["entity"] == {"id": 0, "name": "Root entity", "completename": "Root entity"}
    # the test's first ticket (the lowest id), at its first event ("new"): Kafka keeps the
    # order of one item's events (one partition), not across items
    tickets = [e for e in produced if e.itemtype == "Ticket"]
    first_id = min(e.items_id for e in tickets)
    first = json.loads(next(e for e in tickets if e.items_id == first_id).item)
    assert (first["name"], first["content"], first["urgency"]) == (NAME, CONTENT, 4)
    assert first["status"] == {"id": 2, "name": "Processing (assigned)"}  # GLPI: assigned
    assert first["category"] is None
    # GLPI's users normal (5) and tech (4), by display name
    assert [(m["role"], m["name"], m["href"]) for m in first["team"]] == [
        ("requester", "normal", "/front/user.form.php?id=5"),
        ("assigned", "tech", "/front/user.form.php?id=4")]
    assert first["date_creation"].endswith("+00:00")  # GLPI's zone here: UTC
