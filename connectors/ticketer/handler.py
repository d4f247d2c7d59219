"""One alert event to GLPI: the rule, the decision (hookstream.alerting.tickets), the calls.

`handle` returns a `Handled` (the TicketAction to record, the map entry to write, the
refusal for the DLQ) or raises GlpiUnavailable (TransientError): GLPI could not be
reached and the event is to be tried again, nothing recorded.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from connectors.glpi import GlpiApiError
from connectors.ticketer.desk import CLOSED, SOLVED, TicketDesk
from hookstream.alerting.rules import RuleTemplates, first_match
from hookstream.alerting.tickets import (
    Decision,
    Followup,
    Open,
    Reopen,
    Resolve,
    Unchanged,
    after,
    decide,
    followup_text,
    solution_text,
    ticket_fields,
    ticket_marker,
)
from hookstream.errors import ConfigError, RenderError
from hookstream.records import (
    ActionKind,
    AlertEvent,
    AlertRule,
    AlertTicket,
    InstanceRecord,
    TicketAction,
)
from hookstream.render import RenderLimits

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why GLPI (or the rule) refused: GLPI's HTTP status, error code and message."""

    status: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Handled:
    action: TicketAction | None  # None: a replay of an event already handled
    entry: AlertTicket | None  # the map entry to write, None when it stays as it is
    refusal: Refusal | None = None  # the alert goes to the alerts DLQ


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: AlertRule
    templates: RuleTemplates


class AlertHandler:
    """Carries out decisions in GLPI; rules and instances are the followed tables."""

    def __init__(self, desk: TicketDesk, rules: Mapping[str, CompiledRule],
                 instances: Mapping[str, InstanceRecord],
                 clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)):
        self._desk, self._rules, self._instances, self._clock_ms = desk, rules, instances, clock_ms

    def handle(self, alert: AlertEvent, ticket: AlertTicket | None, offset: int) -> Handled:
        rule = first_match((c.rule for c in self._rules.values()), alert)
        if rule is None:
            return Handled(self._action(alert, ActionKind.UNMATCHED, None, 0), None)
        decision = decide(alert, rule, ticket, offset)
        if isinstance(decision, Unchanged):
            action = None if decision.replayed else self._action(
                alert, ActionKind.UNCHANGED, rule, ticket.tickets_id if ticket else 0)
            return Handled(action, None)
        try:
            kind, tickets_id, decision = self._carry_out(alert, rule, ticket, decision)
        except GlpiApiError as e:
            return self._refused(alert, rule, ticket, Refusal(e.status, e.code, e.message))
        except ConfigError as e:  # the instance is gone or has no API access
            return self._refused(alert, rule, ticket, Refusal(0, "CONFIG_ERROR", str(e)))
        except RenderError as e:
            return self._refused(alert, rule, ticket, Refusal(0, "RENDER_ERROR", str(e)))
        now_ms = self._clock_ms()
        latency_ms = now_ms - alert.received_at if kind == ActionKind.OPENED else None
        entry = after(ticket, decision, alert, rule, tickets_id, offset, now_ms)
        return Handled(self._action(alert, kind, rule, tickets_id, latency_ms), entry)

    def _carry_out(self, alert: AlertEvent, rule: AlertRule, ticket: AlertTicket | None,
                   decision: Decision) -> tuple[ActionKind, int, Decision]:
        """The GLPI calls of `decision`: (what was done, the ticket, the decision done).

        A ticket closed, trashed or purged in GLPI meanwhile is not written to: a firing
        alert gets a new ticket, a resolved one is recorded as solved with no call."""
        templates, limits = self._rules[rule.id].templates, self._limits(alert.instance)
        now_s, instance = self._clock_ms() / 1000, alert.instance
        status: int | None = None
        if ticket is not None and not isinstance(decision, Open):
            status = self._desk.status(instance, ticket.tickets_id)
            if status in (CLOSED, None):
                if isinstance(decision, Resolve):
                    return ActionKind.UNCHANGED, ticket.tickets_id, Resolve(solve=True)
                decision = Open(ticket_marker(alert))
        if isinstance(decision, Open):
            found = self._desk.find(instance, decision.marker)  # an earlier try's ticket
            if found is None:
                fields = ticket_fields(rule, templates, alert, decision.marker, now_s, limits)
                found = self._desk.open(instance, fields)
            return ActionKind.OPENED, found, decision
        assert ticket is not None
        tickets_id = ticket.tickets_id
        text = followup_text(templates, alert, tickets_id, now_s, limits)
        self._desk.followup(instance, tickets_id, text, ticket_marker(alert))
        match decision:
            case Reopen():
                self._desk.reopen(instance, tickets_id, assigned=bool(rule.groups_id_assign))
                return ActionKind.REOPENED, tickets_id, decision
            case Resolve(solve=True):
                if status != SOLVED:  # a retry finds its own solution there
                    solution = solution_text(templates, alert, tickets_id, now_s, limits)
                    self._desk.solve(instance, tickets_id, solution, rule.solutiontypes_id)
                return ActionKind.SOLVED, tickets_id, decision
            case Resolve(solve=False) | Followup():
                return ActionKind.FOLLOWUP, tickets_id, decision
        raise AssertionError(decision)  # pragma: no cover

    def _limits(self, instance: str) -> RenderLimits:
        record = self._instances.get(instance)
        return RenderLimits(timezone=record.timezone if record else "UTC")

    def _refused(self, alert: AlertEvent, rule: AlertRule, ticket: AlertTicket | None,
                 refusal: Refusal) -> Handled:
        log.warning("ticketer: %s refused for alert %s: %s %s", alert.instance, alert.key(),
                    refusal.code, refusal.message)
        action = self._action(alert, ActionKind.REFUSED, rule,
                              ticket.tickets_id if ticket else 0,
                              message=f"{refusal.code}: {refusal.message}"[:1000])
        return Handled(action, None, refusal)

    def _action(self, alert: AlertEvent, kind: ActionKind, rule: AlertRule | None,
                tickets_id: int, latency_ms: int | None = None, message: str = ""
                ) -> TicketAction:
        return TicketAction(
            action_id=hashlib.sha256(alert.event_id.encode()).hexdigest()[:32],
            alert_event_id=alert.event_id, alert_key=alert.key(), instance=alert.instance,
            source=alert.source, fingerprint=alert.fingerprint, alert_name=alert.name,
            alert_status=alert.status, action=kind, at=self._clock_ms(),
            rule_id=rule.id if rule else "", tickets_id=tickets_id, latency_ms=latency_ms,
            message=message)
