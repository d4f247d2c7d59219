"""Who made each polled change (`changed_by`), GLPI's semantics of the last updater, against
the fake GLPI on loopback (no broker). tests/real_glpi/test_no_loops_real.py plays the same
scenario on the real GLPI 10 and holds both to the same answers.

The scenario's hands: a person and the integration (the poller's own API user), each
changing items with their own session; the poller reads every stream after each step."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import pytest

from connectors.glpi import GlpiClient
from connectors.poller import InstancePoller, PollerApi, PollerConfig
from hookstream.records import ItemChangeEvent, PollCursor
from hookstream.records.cursor import LIVE, TRASH
from tests.fake_glpi import API_USER_ID, RunningGlpiApi
from tests.fake_glpi_items import HUMAN_USER, FakeGlpiItems

PERSON, INTEGRATION = "person", "integration"
Seen = tuple[str, str, str, str | None]  # itemtype, item's name in the scenario, event, who
CONFIG = PollerConfig(itemtypes=("Ticket", "Computer"), intervals_s={}, default_interval_s=1,
                      page_size=50, tz=ZoneInfo("UTC"), team=False)


class Hands(Protocol):
    """One GLPI, changed by a role (PERSON, INTEGRATION); `tick` lets GLPI's clock move on
    (its date_mod counts seconds)."""

    def create(self, role: str, itemtype: str, name: str) -> int: ...
    def update(self, role: str, itemtype: str, items_id: int, **fields: Any) -> None: ...
    def followup(self, role: str, ticket: int) -> None: ...
    def trash(self, role: str, itemtype: str, items_id: int) -> None: ...
    def tick(self) -> None: ...


class Recorded:
    def __init__(self) -> None:
        self.events: list[ItemChangeEvent] = []

    def produce(self, events: Sequence[ItemChangeEvent]) -> None:
        self.events += events

    def save(self, cursor: PollCursor) -> None:
        pass


@dataclass
class Scenario:
    hands: Hands
    api: PollerApi
    roles: dict[int, str]  # GLPI user id -> role
    out: Recorded
    names: dict[tuple[str, int], str]  # the scenario's items (GLPI may hold others)
    poller: InstancePoller | None = None

    def polled(self, skip_own_changes: bool) -> list[Seen]:
        """Every stream read to its end; what the scenario's items gave."""
        cursors = {} if self.poller is None else {
            c.key(): c for t in CONFIG.itemtypes for s in (LIVE, TRASH)
            if (c := self.poller.cursor(t, s)).date_mod}
        self.poller = InstancePoller("glpi-a", self.api, self.out, cursors,
                                     replace(CONFIG, skip_own_changes=skip_own_changes))
        before = len(self.out.events)
        for itemtype in CONFIG.itemtypes:
            for stream in (LIVE, TRASH):
                while self.poller.poll(itemtype, stream) > 0:
                    pass
        return [(e.itemtype, self.names[(e.itemtype, e.items_id)], e.event,
                 None if e.changed_by is None else self.roles.get(e.changed_by, "other"))
                for e in self.out.events[before:] if (e.itemtype, e.items_id) in self.names]


def play(scenario: Scenario) -> list[list[Seen]]:
    """What each step gave; first every change produced as GLPI dates it, then the poller's
    default, which skips the integration's own changes."""
    hands, made, seen = scenario.hands, scenario.names, list[list[Seen]]()

    def step(act: Callable[[], object], skip_own_changes: bool = False) -> None:
        hands.tick()
        act()
        seen.append(scenario.polled(skip_own_changes))

    def create(role: str, itemtype: str, name: str) -> Callable[[], None]:
        return lambda: made.update({(itemtype, hands.create(role, itemtype, name)): name})

    def ident(name: str) -> int:
        return next(i for (_, i), n in made.items() if n == name)

    step(create(PERSON, "Ticket", "T"))
    step(lambda: hands.update(INTEGRATION, "Ticket", ident("T"), urgency=5))
    step(lambda: hands.followup(PERSON, ident("T")))
    step(lambda: hands.followup(INTEGRATION, ident("T")))
    step(create(INTEGRATION, "Computer", "C"))
    step(create(INTEGRATION, "Ticket", "U"))

    def both() -> None:  # a person's change, then the integration's, in one poll
        hands.update(PERSON, "Ticket", ident("T"), urgency=2)
        hands.tick()
        hands.followup(INTEGRATION, ident("T"))

    step(both, skip_own_changes=True)
    step(lambda: hands.followup(INTEGRATION, ident("T")), skip_own_changes=True)
    step(lambda: hands.update(PERSON, "Ticket", ident("T"), urgency=3), skip_own_changes=True)
    step(lambda: hands.trash(INTEGRATION, "Ticket", ident("T")), skip_own_changes=True)
    return seen


EXPECTED: list[list[Seen]] = [
    [("Ticket", "T", "new", PERSON)],
    [("Ticket", "T", "update", INTEGRATION)],  # the API user's update
    [("Ticket", "T", "update", PERSON)],  # a followup moves its ticket's last updater
    [("Ticket", "T", "update", INTEGRATION)],
    [("Computer", "C", "new", None)],  # an asset has no last updater
    [("Ticket", "U", "new", INTEGRATION)],  # a ticket the integration opens
    [("Ticket", "T", "update", None)],  # both changed it since the last poll: nobody named
    [],  # the integration's own change alone: not produced (poller_skip_own_changes)
    [("Ticket", "T", "update", PERSON)],
    # the trash moves date_mod, not the last updater (the person's): produced, nobody named
    [("Ticket", "T", "delete", None)],
]


class FakeHands:
    """The fake GLPI: the integration through its API (its one token), a person as GLPI's
    UI would change the items."""

    def __init__(self, api: FakeGlpiItems, client: GlpiClient):
        self.api, self.client = api, client

    def create(self, role: str, itemtype: str, name: str) -> int:
        if role == INTEGRATION:
            return self.client.add_item(itemtype, {"name": name, "entities_id": 0})
        return self.api.create(itemtype, by=HUMAN_USER, name=name, entities_id=0)

    def update(self, role: str, itemtype: str, items_id: int, **fields: Any) -> None:
        if role == INTEGRATION:
            self.client.update_item(itemtype, items_id, fields)
        else:
            self.api.update(itemtype, items_id, by=HUMAN_USER, **fields)

    def followup(self, role: str, ticket: int) -> None:
        fields = {"itemtype": "Ticket", "items_id": ticket, "content": f"{role}'s followup"}
        if role == INTEGRATION:
            self.client.add_item("ITILFollowup", fields)
        else:
            self.api.add("ITILFollowup", **fields)
            self.api.update("Ticket", ticket, by=HUMAN_USER)  # GLPI's updateDateMod

    def trash(self, role: str, itemtype: str, items_id: int) -> None:
        if role == INTEGRATION:
            self.client.request("DELETE", f"{itemtype}/{items_id}")
        else:
            self.api.trash(itemtype, items_id, by=HUMAN_USER)

    def tick(self) -> None:
        self.api.tick()


@pytest.fixture
def fake_scenario() -> Iterator[Scenario]:
    api = FakeGlpiItems("app", "user")
    api.add("Entity", id=0, name="Root entity", entities_id=None, completename="Root entity")
    with RunningGlpiApi(api) as url, GlpiClient("glpi-a", url, "app", "user", timeout_s=5,
                                                backoff_s=0.01) as client:
        yield Scenario(FakeHands(api, client), PollerApi(client),
                       {HUMAN_USER[0]: PERSON, API_USER_ID: INTEGRATION}, Recorded(), {})


def test_the_fake_glpi_names_who_changed_each_item_as_glpi_10_does(
        fake_scenario: Scenario) -> None:
    assert play(fake_scenario) == EXPECTED
