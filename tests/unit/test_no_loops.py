"""No loops (GLPI issue #20902), without a broker: who made a change as each source tells it,
the webhooks that skip integration users' changes, and where those users are named."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet

from hookstream.control import validate
from hookstream.control.instances import load_instances
from hookstream.control.replay import replay_plan
from hookstream.errors import InvalidDefinition
from hookstream.matching import EntityTable, Skipped, WebhookIndex, plan, why_not
from hookstream.policy import SecretBox
from hookstream.policy.ingest import accept
from hookstream.records import DeliveryRequest, InstanceRecord, WebhookDefinition, make_event
from hookstream.records.changed_by import changed_by_in_payload, changed_by_in_row
from hookstream.records.event_lines import parse_event_line
from hookstream.render import RenderLimits
from tests.conftest import FIXTURES, fixture_item

NOW_MS = 1_762_245_332_000
BOT, OTHER_BOT, PERSON = 7, 8, 23
INTEGRATION = frozenset({BOT, OTHER_BOT})
BOX = SecretBox(Fernet.generate_key().decode())


def webhook(id: str, **fields: Any) -> WebhookDefinition:
    base: dict[str, Any] = {"version": 1, "instance": "glpi-a", "name": id, "itemtype": "Ticket",
                            "event": "new", "url": "https://receiver.example/hook",
                            "secret_encrypted": "", "is_active": True}
    return WebhookDefinition(id=id, **{**base, **fields})


def index_of(*definitions: WebhookDefinition) -> WebhookIndex:
    index = WebhookIndex()
    for d in definitions:
        index.put(d)
    return index


def ticket_by(changed_by: int | None) -> Any:
    return make_event("glpi-a", "Ticket", 4211, "new", fixture_item("Ticket.json"),
                      occurred_at=NOW_MS, entities_id=0, changed_by=changed_by)


HOOKS = index_of(webhook("to-chat", skip_integration_users=True), webhook("to-cmdb"))


@pytest.mark.parametrize(("changed_by", "delivered", "skipped"), [
    (BOT, {"to-cmdb"}, {"to-chat"}),
    (OTHER_BOT, {"to-cmdb"}, {"to-chat"}),
    (PERSON, {"to-chat", "to-cmdb"}, set()),
    (None, {"to-chat", "to-cmdb"}, set()),  # unknown: never skipped
])
def test_a_webhook_skips_changes_by_the_instances_integration_users_only(
        changed_by: int | None, delivered: set[str], skipped: set[str]) -> None:
    planned = plan(ticket_by(changed_by), HOOKS, EntityTable(), NOW_MS,
                   integration_users=INTEGRATION)
    assert {p.webhook_id for p in planned if isinstance(p, DeliveryRequest)} == delivered
    assert {p.webhook_id for p in planned if isinstance(p, Skipped)} == skipped


def test_without_integration_users_nothing_is_skipped() -> None:
    planned = plan(ticket_by(BOT), HOOKS, EntityTable(), NOW_MS)
    assert all(isinstance(p, DeliveryRequest) for p in planned) and len(planned) == 2


def test_a_skip_counts_only_for_a_webhook_that_matched_otherwise() -> None:
    inactive = index_of(webhook("off", skip_integration_users=True, is_active=False))
    assert plan(ticket_by(BOT), inactive, EntityTable(), NOW_MS,
                integration_users=INTEGRATION) == []


def test_why_not_names_the_integration_user() -> None:
    chat = HOOKS.get("to-chat")
    assert chat is not None
    event = ticket_by(BOT)
    item = json.loads(event.item)
    assert why_not(chat, event, item, EntityTable(), INTEGRATION) == (
        "changed by integration user 7: the webhook skips them")
    assert why_not(chat, event, item, EntityTable()) is None
    assert why_not(chat, ticket_by(None), item, EntityTable(), INTEGRATION) is None


def test_replay_skips_what_the_processor_skips() -> None:
    chat = index_of(webhook("to-chat", skip_integration_users=True))
    limits = RenderLimits()
    assert replay_plan(ticket_by(BOT), chat, EntityTable(), NOW_MS, limits, "r1",
                       INTEGRATION) is None
    assert isinstance(replay_plan(ticket_by(PERSON), chat, EntityTable(), NOW_MS, limits, "r1",
                                  INTEGRATION), DeliveryRequest)


def test_the_readmes_filter_keeps_tickets_of_the_monitoring_request_source_away() -> None:
    """Where no event tells who (GLPI 11.0.0-11.0.1): what the integration sets on what it
    opens, here the request source, as README's No loops section shows."""
    monitoring = {"id": 9, "name": "Monitoring"}
    hooks = index_of(webhook("to-chat", filter=json.dumps(
        [{"field": "request_type.name", "searchtype": "notequals", "value": "Monitoring"}])))
    by_alert = make_event("glpi-a", "Ticket", 1, "new",
                          {**fixture_item("Ticket.json"), "request_type": monitoring},
                          occurred_at=NOW_MS, entities_id=0)
    assert plan(by_alert, hooks, EntityTable(), NOW_MS) == []
    assert len(plan(ticket_by(None), hooks, EntityTable(), NOW_MS)) == 1


# -- who made the change, per source -------------------------------------------------------


@pytest.mark.parametrize(("itemtype", "event", "row", "expected"), [
    ("Ticket", "new", {"users_id_lastupdater": 7}, 7),
    ("Change", "update", {"users_id_lastupdater": "23"}, 23),  # GLPI 10 may send strings
    ("Problem", "update", {"users_id_lastupdater": 0}, None),  # cron, mail collector
    ("Ticket", "update", {}, None),
    ("Ticket", "delete", {"users_id_lastupdater": 7}, None),  # the trash keeps the updater
    ("Computer", "update", {"users_id_lastupdater": 7, "users_id": 5}, None),  # no such column
])
def test_the_poller_takes_glpi10s_last_updater(itemtype: str, event: str, row: dict[str, Any],
                                               expected: int | None) -> None:
    assert changed_by_in_row(itemtype, event, row) == expected


@pytest.mark.parametrize(("fixture", "itemtype", "event", "expected"), [
    ("Ticket.json", "Ticket", "update", None),  # API 2.0 (GLPI 11.0.0-11.0.1): not told
    ("latest/Ticket.json", "Ticket", "update", 57),  # API 2.1+: user_editor
    ("latest/Ticket.json", "Ticket", "new", 57),
    ("latest/Ticket.json", "Ticket", "delete", None),
    ("ITILFollowup.json", "ITILFollowup", "new", 23),  # its author
    ("ITILFollowup.json", "ITILFollowup", "update", None),  # the editor is set on content only
    ("TicketTask.json", "TicketTask", "new", 23),
    ("latest/TicketTask.json", "TicketTask", "update", None),
    ("Computer.json", "Computer", "update", None),
])
def test_a_glpi11_payload_tells_who_where_it_can(fixture: str, itemtype: str, event: str,
                                                 expected: int | None) -> None:
    assert changed_by_in_payload(itemtype, event, fixture_item(fixture)) == expected


def test_the_ingest_event_carries_the_payloads_user() -> None:
    item = fixture_item("latest/Ticket.json")
    body = json.dumps({"item": item, "event": "update"}).encode()
    verdict = accept("glpi-a", "Ticket", "1764000000", body, item, "update", None)
    assert verdict.event.changed_by == 57
    baseline = json.loads((FIXTURES / "webhook_default_payloads" / "Ticket_new.json").read_text())
    verdict = accept("glpi-a", "Ticket", "1764000000", b"{}", baseline["item"], "new", None)
    assert verdict.event.changed_by is None


def test_an_event_line_may_name_who_changed_it() -> None:
    line = {"itemtype": "Ticket", "items_id": 1, "event": "new", "item": {"id": 1}}
    assert parse_event_line(json.dumps({**line, "changed_by": 7}), "i", 0, "cli").changed_by == 7
    assert parse_event_line(json.dumps(line), "i", 0, "cli").changed_by is None
    with pytest.raises(ValueError, match="changed_by must be a GLPI user id"):
        parse_event_line(json.dumps({**line, "changed_by": "bot"}), "i", 0, "cli")


# -- the option and the users, in YAML ------------------------------------------------------

VALID = {"id": "w1", "instance": "glpi", "name": "n", "itemtype": "Ticket", "event": "new",
         "url": "https://example.com/{{ item.id }}"}


def test_skip_integration_users_is_a_boolean() -> None:
    assert validate({**VALID, "skip_integration_users": True}, [10]) == []
    assert validate({**VALID, "skip_integration_users": "yes"}, [10]) == [
        "skip_integration_users must be true or false"]
    assert WebhookDefinition(id="w", version=1, instance="i", name="n", itemtype="Ticket",
                             event="new", url="u", secret_encrypted="").skip_integration_users \
        is False


class FakeGlpiUsers:
    """The login resolver `instances apply` is given: GLPI's users by login."""

    def __init__(self, users: dict[str, int]):
        self.users, self.asked = users, list[tuple[str, list[str]]]()

    def __call__(self, instance: InstanceRecord, logins: Sequence[str]) -> dict[str, int]:
        self.asked.append((instance.api_url, list(logins)))
        return {login: self.users[login] for login in logins if login in self.users}


def loaded(tmp_path: Path, raw: dict[str, Any], glpi: FakeGlpiUsers | None = None
           ) -> InstanceRecord:
    path = tmp_path / "instances.yaml"
    path.write_text(yaml.safe_dump(raw))
    [record] = load_instances(path, BOX, {}, glpi)
    return record


API = "https://glpi.example/apirest.php"


def test_integration_users_are_ids_and_logins_resolved_through_glpi(tmp_path: Path) -> None:
    glpi = FakeGlpiUsers({"glpi-bot": 12, "alertmanager": 14})
    record = loaded(tmp_path, {"name": "glpi-a", "api_url": API,
                               "integration_users": [7, "glpi-bot", "alertmanager", 7]}, glpi)
    assert record.integration_users == [7, 12, 14]
    assert glpi.asked == [(API, ["alertmanager", "glpi-bot"])]
    assert loaded(tmp_path, {"name": "glpi-b", "integration_users": [7]}).integration_users == [7]
    assert loaded(tmp_path, {"name": "glpi-c"}).integration_users == []


def test_an_unknown_login_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidDefinition, match="GLPI knows no user with login ghost"):
        loaded(tmp_path, {"name": "glpi-a", "api_url": API,
                          "integration_users": ["glpi-bot", "ghost"]},
               FakeGlpiUsers({"glpi-bot": 12}))


@pytest.mark.parametrize(("raw", "message"), [
    ({"integration_users": ["glpi-bot"]}, "logins are resolved through GLPI's API and this "
                                          "instance has no api_url; give user ids instead"),
    ({"integration_users": [0]}, "integration_users must be a list of GLPI user ids"),
    ({"integration_users": [True]}, "integration_users must be a list of GLPI user ids"),
    ({"integration_users": 7}, "integration_users must be a list of GLPI user ids"),
])
def test_bad_integration_users_are_refused_before_asking_glpi(
        tmp_path: Path, raw: dict[str, Any], message: str) -> None:
    glpi = FakeGlpiUsers({"glpi-bot": 12})
    with pytest.raises(InvalidDefinition) as info:
        loaded(tmp_path, {"name": "glpi-a", **raw}, glpi)
    assert message in str(info.value)
    assert glpi.asked == []
