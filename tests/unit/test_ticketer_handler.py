"""The ticketer's GLPI side with a recording desk: which calls each decision makes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from connectors.glpi import GlpiApiError
from connectors.ticketer import AlertHandler, CompiledRule, Refusal
from hookstream.alerting.rules import compile_rule
from hookstream.alerting.tickets import ticket_marker
from hookstream.records import AlertEvent, AlertRule, AlertTicket, InstanceRecord

RULE = AlertRule(id="r", version=1, instance="i", name_template="{{ alert.name }}",
                 content_template="{{ alert.starts_at|date('H:i') }}", groups_id_assign=6)
FIRING = AlertEvent(event_id="e1", instance="i", source="grafana", fingerprint="f",
                    status="firing", name="Down", starts_at=0, received_at=1_000)
RESOLVED = replace(FIRING, event_id="e2", status="resolved", received_at=2_000)
SOLVED = AlertTicket(instance="i", source="grafana", fingerprint="f", rule_id="r",
                     tickets_id=9, state="solved", marker="m", opened_at=1_000,
                     last_firing_at=1_000, alert_offset=3)


class Desk:
    def __init__(self, status: int | None = 2, found: int | None = None,
                 refuse: str = "") -> None:
        self.calls: list[tuple[Any, ...]] = []
        self._status, self._found, self._refuse = status, found, refuse

    def find(self, instance: str, marker: str) -> int | None:
        self.calls.append(("find", marker))
        return self._found

    def open(self, instance: str, fields: dict[str, Any]) -> int:
        if self._refuse:
            raise GlpiApiError(instance, 400, "ERROR_GLPI_ADD", self._refuse)
        self.calls.append(("open", fields["content"]))
        return 77

    def status(self, instance: str, tickets_id: int) -> int | None:
        self.calls.append(("status", tickets_id))
        return self._status

    def followup(self, instance: str, tickets_id: int, content: str, marker: str) -> None:
        self.calls.append(("followup", tickets_id, marker))

    def solve(self, instance: str, tickets_id: int, content: str, solutiontypes_id: int) -> None:
        self.calls.append(("solve", tickets_id))

    def reopen(self, instance: str, tickets_id: int, assigned: bool) -> None:
        self.calls.append(("reopen", tickets_id, assigned))


def handler(desk: Desk, rule: AlertRule = RULE) -> AlertHandler:
    paris = InstanceRecord(name="i", version=1, secret_encrypted="", timezone="Europe/Paris")
    return AlertHandler(desk, {rule.id: CompiledRule(rule, compile_rule(rule))},  # type: ignore[arg-type]
                        {"i": paris}, clock_ms=lambda: 5_000)


def test_opening_looks_for_the_marker_first_and_renders_in_the_instances_zone() -> None:
    desk = Desk()
    handled = handler(desk).handle(FIRING, None, offset=4)
    marker = ticket_marker(FIRING)
    assert desk.calls == [("find", marker), ("open", f"01:00\n\n{marker}")]
    assert handled.action is not None and handled.entry is not None
    assert (handled.action.action, handled.action.tickets_id, handled.action.latency_ms) == (
        "opened", 77, 4_000)
    assert (handled.entry.tickets_id, handled.entry.alert_offset) == (77, 4)


def test_a_ticket_found_by_its_marker_is_taken_not_opened() -> None:
    desk = Desk(found=12)
    handled = handler(desk).handle(FIRING, None, offset=4)
    assert [c[0] for c in desk.calls] == ["find"]
    assert handled.entry is not None and handled.entry.tickets_id == 12


def test_a_refire_reopens_a_solved_ticket_and_opens_anew_a_closed_one() -> None:
    desk = Desk(status=5)
    handled = handler(desk).handle(FIRING, SOLVED, offset=4)
    assert desk.calls == [("status", 9), ("followup", 9, ticket_marker(FIRING)),
                          ("reopen", 9, True)]
    assert handled.action is not None and handled.action.action == "reopened"
    closed = Desk(status=6)
    handled = handler(closed).handle(FIRING, SOLVED, offset=4)
    assert [c[0] for c in closed.calls] == ["status", "find", "open"]
    assert handled.entry is not None and (handled.entry.tickets_id, handled.entry.state) == (
        77, "open")


def test_a_resolve_solves_once_and_leaves_a_closed_ticket_alone() -> None:
    open_ticket = replace(SOLVED, state="open")
    desk = Desk(status=2)
    handled = handler(desk).handle(RESOLVED, open_ticket, offset=4)
    assert [c[0] for c in desk.calls] == ["status", "followup", "solve"]
    assert handled.entry is not None and handled.entry.state == "solved"
    retried = Desk(status=5)  # the solution went in before a crash
    handler(retried).handle(RESOLVED, open_ticket, offset=4)
    assert [c[0] for c in retried.calls] == ["status", "followup"]
    gone = Desk(status=None)
    handled = handler(gone).handle(RESOLVED, open_ticket, offset=4)
    assert [c[0] for c in gone.calls] == ["status"]
    assert handled.action is not None and handled.action.action == "unchanged"
    assert handled.entry is not None and handled.entry.state == "solved"


def test_refusals_carry_glpis_message_and_write_no_map_entry() -> None:
    handled = handler(Desk(refuse="You don't have permission")).handle(FIRING, None, 4)
    assert handled.refusal == Refusal(400, "ERROR_GLPI_ADD", "You don't have permission")
    assert handled.entry is None and handled.action is not None
    assert handled.action.message == "ERROR_GLPI_ADD: You don't have permission"
    broken = replace(RULE, content_template="{{ alert.labels|join(1, 2, 3) }}")
    handled = handler(Desk(), broken).handle(FIRING, None, 4)
    assert handled.refusal is not None and handled.refusal.code == "RENDER_ERROR"


def test_unmatched_and_replayed_alerts() -> None:
    handled = handler(Desk()).handle(replace(FIRING, instance="other"), None, 4)
    assert handled.action is not None and handled.action.action == "unmatched"
    assert handler(Desk()).handle(FIRING, SOLVED, offset=3).action is None  # applied before
