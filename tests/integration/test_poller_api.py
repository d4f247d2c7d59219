"""The poller's GLPI calls against the fake GLPI on loopback (no broker): a page read while
items are purged or trashed, and the events of one poll with a recording output."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import REGISTRY

from connectors.glpi import GlpiClient
from connectors.poller import InstancePoller, PollerApi, PollerConfig
from hookstream.records import ItemChangeEvent, PollCursor
from hookstream.records.cursor import LIVE, TRASH
from tests.fake_glpi import API_USER_ID, RunningGlpiApi
from tests.fake_glpi_items import HUMAN_USER, FakeGlpiItems

APP, USER = "app", "user"


def changes(event: str) -> float:
    return REGISTRY.get_sample_value("hookstream_poller_changes_total", {
        "glpi_instance": "glpi-a", "itemtype": "Ticket", "event": event}) or 0.0


class Recorded:
    def __init__(self) -> None:
        self.events: list[ItemChangeEvent] = []
        self.cursors: list[PollCursor] = []

    def produce(self, events: Sequence[ItemChangeEvent]) -> None:
        self.events += events

    def save(self, cursor: PollCursor) -> None:
        self.cursors.append(cursor)


@pytest.fixture
def glpi() -> Iterator[tuple[FakeGlpiItems, PollerApi, list[int]]]:
    api = FakeGlpiItems(APP, USER)
    api.add("Entity", id=0, name="Root entity", entities_id=None, completename="Root entity")
    calls: list[int] = []
    with RunningGlpiApi(api) as url, GlpiClient("glpi-a", url, APP, USER, timeout_s=5,
                                                backoff_s=0.01) as client:
        yield api, PollerApi(client, lambda: calls.append(1)), calls


def test_a_purged_item_in_a_page_is_skipped_not_fatal(
    glpi: tuple[FakeGlpiItems, PollerApi, list[int]],
) -> None:
    api, poller_api, calls = glpi
    a = api.create("Ticket", name="a", entities_id=0, status=1)
    b = api.create("Ticket", name="b", entities_id=0, status=1)
    del api.items["Ticket"][b]  # purged between the search and the read
    rows = poller_api.items([("Ticket", a), ("Ticket", b)])
    assert list(rows) == [("Ticket", a)]
    assert len(calls) == 3  # getMultipleItems (404), then one GET per item


def test_one_poll_maps_and_classifies_and_moves_the_cursor_after_producing(
    glpi: tuple[FakeGlpiItems, PollerApi, list[int]],
) -> None:
    api, poller_api, _ = glpi
    created = api.create("Ticket", name="new one", entities_id=0, status=1)
    old = api.create("Ticket", name="old one", entities_id=0, status=1)
    api.tick(60)
    api.update("Ticket", old, status=2)
    gone = api.create("Ticket", name="binned", entities_id=0, status=1)
    api.trash("Ticket", gone)
    out = Recorded()
    before = changes("delete")
    config = PollerConfig(itemtypes=("Ticket",), intervals_s={}, default_interval_s=30,
                          page_size=10, tz=ZoneInfo("UTC"), team=False)
    poller = InstancePoller("glpi-a", poller_api, out, {}, config, clock=lambda: 1000.0)
    assert poller.poll("Ticket", LIVE) == 2
    assert [(e.items_id, e.event) for e in out.events] == [(created, "new"), (old, "update")]
    assert out.cursors[-1].date_mod == "2025-11-04 10:01:00"
    assert out.cursors[-1].ids_at == [old] and out.cursors[-1].updated_at == 1_000_000
    assert poller.poll("Ticket", TRASH) == 1
    assert (out.events[-1].items_id, out.events[-1].event) == (gone, "delete")
    assert out.events[-1].occurred_at == 1_762_250_460_000  # 2025-11-04 10:01:00 UTC
    assert changes("delete") == before + 1
    # an item restored from the trash comes back as an update of the live stream
    api.tick()
    api.restore("Ticket", gone)
    assert poller.poll("Ticket", TRASH) == 0
    assert poller.poll("Ticket", LIVE) == 1 and out.events[-1].event == "update"


def test_a_page_of_200_is_read_in_calls_that_fit_a_request_line(
    glpi: tuple[FakeGlpiItems, PollerApi, list[int]],
) -> None:
    """getMultipleItems lists the items in its query string: 200 at once would pass 8 KiB,
    which Apache and aiohttp refuse (400)."""
    api, poller_api, calls = glpi
    ids = [api.create("Ticket", id=10_000 + n, name=f"t{n}", entities_id=0) for n in range(200)]
    rows = poller_api.items([("Ticket", i) for i in ids])
    assert sorted(i for _, i in rows) == ids
    assert len(calls) == 3  # 80 + 80 + 40


def own_changes() -> float:
    return REGISTRY.get_sample_value("hookstream_poller_own_changes_total", {
        "glpi_instance": "glpi-a", "itemtype": "Ticket"}) or 0.0


def test_the_integrations_own_followup_is_no_change_but_a_persons_beside_it_is(
    glpi: tuple[FakeGlpiItems, PollerApi, list[int]],
) -> None:
    """As GLPI 10 does (tests/real_glpi/test_writeback_real.py): a followup added through the
    API moves its ticket's date_mod and last updater to the API's user."""
    api, poller_api, _ = glpi
    ticket = api.create("Ticket", name="t", entities_id=0, status=1)
    out = Recorded()
    config = PollerConfig(itemtypes=("Ticket",), intervals_s={}, default_interval_s=30,
                          page_size=10, tz=ZoneInfo("UTC"), team=False)
    poller = InstancePoller("glpi-a", poller_api, out, {}, config)
    assert poller.poll("Ticket", LIVE) == 1

    def followup() -> None:
        poller_api.client.add_item("ITILFollowup", {"itemtype": "Ticket", "items_id": ticket,
                                                    "content": "[hookstream d#1]"})

    api.tick()
    skipped = own_changes()
    followup()
    assert poller.poll("Ticket", LIVE) == 1  # the change is read, the cursor moves...
    assert len(out.events) == 1 and own_changes() == skipped + 1  # ...and nothing produced
    api.tick()
    api.update("Ticket", ticket, status=2)  # a person, then hookstream, in one poll
    followup()
    assert poller.poll("Ticket", LIVE) == 1
    assert [(e.items_id, e.event) for e in out.events[1:]] == [(ticket, "update")]
    # changed_by: the person alone, then nobody named when both changed (README, No loops)
    assert [e.changed_by for e in out.events] == [HUMAN_USER[0], None]
    everything = Recorded()
    without = InstancePoller("glpi-a", poller_api, everything, {},
                             replace(config, skip_own_changes=False))
    assert without.poll("Ticket", LIVE) == 1 and len(everything.events) == 1
    assert everything.events[0].changed_by == API_USER_ID  # GLPI's last updater as it is
