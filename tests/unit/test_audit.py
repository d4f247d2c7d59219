"""The audit trail's pure parts and the redrive rule it counts with: the record and its log
line, the words of a result, what a redrive selects and how its count reads, and the topic
in the registry and the ACL table."""

from __future__ import annotations

import dataclasses

import pytest

from connectors.admin.models import AuditQuery
from connectors.delivery.redrive import RedriveCount, selected
from hookstream.config import Settings
from hookstream.control.acls import acls
from hookstream.records import (
    AUDIT,
    AuditAction,
    AuditRecord,
    DeliveryRequest,
    avro_topics,
    redrive_target,
    send_result,
    topic_specs,
)


def test_the_log_line_names_the_token_and_what_it_did() -> None:
    record = AuditRecord("0" * 32, 1, "ops-alice", "delivery.send", "ab12", "delivered (HTTP 200)",
                         "glpi-a", "console")
    assert record.line() == ("token ops-alice (console): delivery.send ab12 [glpi-a]: "
                             "delivered (HTTP 200)")


@pytest.mark.parametrize(("outcome", "status", "error", "words"), [
    ("delivered", 200, None, "delivered (HTTP 200)"),
    ("failed", 401, "unauthorized", "failed (HTTP 401)"),
    ("failed", None, "connection refused", "failed (connection refused)"),
    ("failed", None, None, "failed (no answer)"),
])
def test_a_send_result_in_words(outcome: str, status: int | None, error: str | None,
                                words: str) -> None:
    assert send_result(outcome, status, error) == words


def test_a_redrive_target_names_what_it_covers() -> None:
    assert redrive_target("hook-a", None) == "hook-a"
    assert redrive_target(None, None) == "dlq"
    assert redrive_target(None, frozenset({"glpi-b", "glpi-a"})) == "dlq of glpi-a|glpi-b"


@pytest.mark.parametrize(("by_status", "words"), [
    ({}, "0 deliveries"),
    ({410: 1}, "1 delivery, 1 of them to a target answering 410"),
    ({401: 4, 500: 8}, "12 deliveries, 8 of them to a target answering 500, "
                       "4 to one answering 401"),
    ({None: 2, 401: 2}, "4 deliveries, 2 of them to a target giving no answer, "
                        "2 to one answering 401"),
])
def test_a_redrive_count_reads_as_a_sentence(by_status: dict[int | None, int], words: str
                                             ) -> None:
    count = RedriveCount(by_status)
    assert count.summary() == words and count.total == sum(by_status.values())


def _dead(webhook_id: str, instance: str) -> DeliveryRequest:
    return DeliveryRequest(delivery_id="d", webhook_id=webhook_id, instance=instance,
                           event_id="e", itemtype="Ticket", items_id=1, event="new",
                           method="POST", url="https://x.example", body=b"{}", created_at=1)


@pytest.mark.parametrize(("webhook_id", "instances", "taken"), [
    (None, None, {"a1", "a2", "b1"}),
    ("a1", None, {"a1"}),
    (None, frozenset({"glpi-a"}), {"a1", "a2"}),  # a scoped token's redrive
    ("b1", frozenset({"glpi-a"}), set()),  # never another instance's webhook
])
def test_a_redrive_selects_by_webhook_and_instance(
        webhook_id: str | None, instances: frozenset[str] | None, taken: set[str]) -> None:
    dead = [_dead("a1", "glpi-a"), _dead("a2", "glpi-a"), _dead("b1", "glpi-b")]
    assert {d.webhook_id for d in dead if selected(d, webhook_id, instances)} == taken


def test_the_audit_topic_is_registered_and_granted() -> None:
    settings = dataclasses.replace(Settings(), topic_prefix="p.")
    assert avro_topics(settings)["p." + AUDIT] == "AuditRecord"
    [spec] = [s for s in topic_specs(settings) if s.name == "p." + AUDIT]
    assert spec.config["cleanup.policy"] == "delete"

    def grants(component: str) -> set[str]:
        return {a.operation for a in acls(component, "User:x", "p.")
                if a.resource == "topic" and a.name == "p." + AUDIT}

    assert grants("admin") == {"WRITE"}
    assert grants("logstore") == {"READ"}
    assert grants("delivery") == grants("processor") == set()


def test_every_audit_action_can_be_queried() -> None:
    """The API's filter is the enum itself: an action added later is queryable at once."""
    for action in AuditAction:
        assert AuditQuery(action=action.value).action is action
    with pytest.raises(ValueError):
        AuditQuery(action="webhook.unknown")
