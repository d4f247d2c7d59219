"""Legacy API rows (GLPI 10) mapped to the GLPI 11 webhook shape: equal to the fixtures."""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hookstream.records.legacy import (
    glpi_time,
    lookups_needed,
    mapped_keys,
    team,
    to_hl,
    unsanitized,
    unsanitized_row,
)
from hookstream.render import default_payload
from tests.conftest import FIXTURES, fixture_item
from tests.fake_glpi_items import (
    FakeGlpiItems,
    polled_from_glpi10,
    polled_payload_from_glpi10,
    seed_ticket_4211,
)

PARIS = ZoneInfo("Europe/Paris")


def glpi10() -> tuple[dict[tuple[str, int], Any], dict[str, Any], dict[str, list[Any]]]:
    """The fake's GLPI 10 rows as the poller reads them: unsanitized at the API's edge."""
    api = FakeGlpiItems("a", "u")
    seed_ticket_4211(api)
    names = {(t, i): unsanitized_row(row) for t, rows in api.items.items()
             for i, row in rows.items()}
    links = {link: [unsanitized_row(r) for r in api.items.get(link, {}).values()]
             for link in ("Ticket_User", "Group_Ticket", "Supplier_Ticket")}
    return names, names[("Ticket", 4211)], links


def test_a_glpi10_ticket_maps_to_the_fixture_key_for_key_and_in_order() -> None:
    """Every key of GLPI 11's ticket but external_id, which GLPI 10.0 has no column for."""
    names, row, links = glpi10()
    item = to_hl("Ticket", row, names, PARIS, links)
    expected = fixture_item("Ticket.json")
    assert set(expected) - set(item) == {"external_id"}
    expected = polled_from_glpi10(expected)
    assert item == expected
    assert list(item) == list(expected)
    assert list(item["team"][0]) == list(expected["team"][0])


def test_the_default_payload_of_a_polled_ticket_is_glpi11s_byte_for_byte() -> None:
    """GLPI 11's bytes, less the one line of the key GLPI 10.0 lacks (external_id)."""
    names, row, links = glpi10()
    body = default_payload(to_hl("Ticket", row, names, PARIS, links), "new", None)
    glpi11 = (FIXTURES / "webhook_default_payloads" / "Ticket_new.json").read_bytes()
    assert len(polled_payload_from_glpi10(glpi11)) < len(glpi11)
    assert body == polled_payload_from_glpi10(glpi11)


COMPUTER_1532 = {
    "id": 1532, "entities_id": 7, "name": "PC-MUC-0042", "serial": "5CG3051XK7",
    "otherserial": "INV-MUC-0042", "contact": "CORP\\jmueller", "contact_num": None,
    "users_id_tech": 23, "groups_id_tech": 5, "comment":
    "Ersatzgerät für Jürgen (Garantietausch 12/03/2025)", "date_mod": "2025-11-04 16:27:03",
    "autoupdatesystems_id": 1, "locations_id": 31, "networks_id": 0, "computermodels_id": 44,
    "computertypes_id": 1, "is_template": 0, "template_name": None, "manufacturers_id": 5,
    "is_deleted": 0, "is_dynamic": 1, "users_id": 88, "groups_id": 9, "states_id": 2,
    "ticket_tco": "0.0000", "uuid": "9f2c4e1a-7b3d-4c8e-a1f0-2d6b8e5c3a71",
    "date_creation": "2025-03-12 10:05:44", "is_recursive": 0,
}
COMPUTER_NAMES: dict[tuple[str, int], Any] = {
    ("Entity", 7): {"name": "München",
                    "completename": "Root entity > Europe > Deutschland > München"},
    ("State", 2): {"name": "In use"}, ("Location", 31): {"name": "München - 3. OG"},
    ("ComputerType", 1): {"name": "Laptop"}, ("Manufacturer", 5): {"name": "HP Inc."},
    ("ComputerModel", 44): {"name": "EliteBook 840 G9"}, ("User", 88): {"name": "j.mueller"},
    ("User", 23): {"name": "l.martin"}, ("Group", 9): {"name": "Vertrieb"},
    ("Group", 5): {"name": "Support niveau 1"},
    ("AutoUpdateSystem", 1): {"name": "GLPI Native Inventory"},
}


def test_a_glpi10_computer_maps_to_the_fixture() -> None:
    item = to_hl("Computer", COMPUTER_1532, COMPUTER_NAMES, PARIS)
    assert json.dumps(item) == json.dumps(fixture_item("Computer.json"))
    assert lookups_needed("Computer", COMPUTER_1532) == set(COMPUTER_NAMES)


@pytest.mark.parametrize(("row", "names", "expected"), [
    # a foreign key of 0 is null, as GLPI 11 gives it
    ({"locations_id": 0}, {}, {"location": None}),
    # a linked row that could not be read: absent, never invented
    ({"locations_id": 9}, {}, {}),
    ({"entities_id": 4}, {}, {}),
    # a status GLPI does not define for the itemtype: absent
    ({"status": 42}, {}, {}),
    ({"status": 6}, {}, {"status": {"id": 6, "name": "Closed"}}),
    ({"content": "<p>a &amp; b</p>"}, {}, {"content": "<p>a &amp; b</p>"}),
    ({"is_deleted": 1, "date_mod": None}, {}, {"is_deleted": True, "date_mod": None}),
    # fields the legacy row does not carry are absent
    ({"unknown_field": 3}, {}, {}),
])
def test_ticket_fields(row: dict[str, Any], names: dict[tuple[str, int], Any],
                       expected: dict[str, Any]) -> None:
    assert to_hl("Ticket", row, names, PARIS) == expected


@pytest.mark.parametrize(("stored", "raw"), [
    # GLPI 10.0 sanitizes & < > as numeric entities; quotes stay
    ("R&#38;D &#60;lab&#62; \"q\"", "R&D <lab> \"q\""),
    ("&#60;p&#62;a &#38;amp; b&#60;/p&#62;", "<p>a &amp; b</p>"),
    ("&#38;#60;", "&#60;"),  # & last: an entity the user typed survives
    # before 10.0: only < and >, and quotes in old followups' images
    ("&lt;p&gt;a &amp; b&lt;/p&gt;", "<p>a &amp; b</p>"),
    ("&lt;img src=&quot;/x&quot;&gt;", '<img src="/x">'),
    ("&lt;a href=&quot;/x&quot;&gt;", '<a href=&quot;/x&quot;>'),
    # raw already (GLPI 11, or a raw & < > anywhere): as it is
    ("<p>a &#38; b</p>", "<p>a &#38; b</p>"), ("R&D &#60;", "R&D &#60;"),
    ("plain", "plain"), ("&amp;", "&amp;"),
])
def test_glpi10_strings_are_unsanitized_as_glpi_does(stored: str, raw: str) -> None:
    assert unsanitized(stored) == raw


def test_glpi11_lists_of_groups_and_a_missing_one() -> None:
    names = {("Group", 1): {"name": "A"}, ("Group", 2): {"name": "B"}}
    assert to_hl("Monitor", {"groups_id": [1, 2]}, names, PARIS) == {
        "group": [{"id": 1, "name": "A"}, {"id": 2, "name": "B"}]}
    assert to_hl("Monitor", {"groups_id": [1, 3]}, names, PARIS) == {}
    assert to_hl("Monitor", {"groups_id": 0}, names, PARIS) == {"group": []}


def test_team_skips_anonymous_requesters_and_sorts_by_display_name() -> None:
    names = {("User", 2): {"name": "zed", "realname": "", "firstname": ""},
             ("Supplier", 4): {"name": "Acme"}}
    links = {"Ticket_User": [{"users_id": 0, "type": 1, "alternative_email": "x@y"},
                             {"users_id": 2, "type": 3}],
             "Supplier_Ticket": [{"suppliers_id": 4, "type": 2}]}
    assert team("Ticket", links, names) == [
        {"role": "assigned", "name": "Acme", "realname": None, "firstname": None,
         "display_name": "Acme", "href": "/front/supplier.form.php?id=4"},
        {"role": "observer", "name": "zed", "realname": "", "firstname": "",
         "display_name": "zed", "href": "/front/user.form.php?id=2"}]


@pytest.mark.parametrize(("value", "zone", "expected"), [
    ("2025-11-04 09:15:32", "Europe/Paris", "2025-11-04T09:15:32+01:00"),
    ("2025-07-04 09:15:32", "Europe/Paris", "2025-07-04T09:15:32+02:00"),
    ("2025-11-04 09:15:32", "UTC", "2025-11-04T09:15:32+00:00"),
    (None, "UTC", None),
    ("", "UTC", None),
])
def test_dates_are_rfc3339_in_glpis_timezone(value: str | None, zone: str,
                                             expected: str | None) -> None:
    assert glpi_time(value, ZoneInfo(zone)) == expected


def test_coverage_of_the_fixture_fields() -> None:
    """Every key of the baseline fixtures is one the mapping can yield."""
    for itemtype in ("Ticket", "Change", "Problem", "Computer"):
        assert set(fixture_item(f"{itemtype}.json")) <= set(mapped_keys(itemtype)), itemtype


def test_a_complete_name_is_unsanitized_name_by_name() -> None:
    """GLPI 10 joins sanitized names with a raw ' > ', which its own decoder skips."""
    row = unsanitized_row({"name": "Europe &#38; Co", "completename":
                           "Root entity > Europe &#38; Co > France &#60;FR&#62;"})
    assert row == {"name": "Europe & Co",
                   "completename": "Root entity > Europe & Co > France <FR>"}
