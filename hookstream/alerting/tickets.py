"""What the ticketer does with one alert event, given its rule and its ticket so far.

| alert    | ticket so far            | decision                                          |
|----------|--------------------------|---------------------------------------------------|
| firing   | none                     | Open                                              |
| firing   | open                     | Followup after the quiet period, else Unchanged   |
| firing   | resolved (left open)     | Followup (it fires again)                         |
| firing   | solved                   | Reopen, or Open a new ticket (rule's on_refire)   |
| resolved | open                     | Resolve: a followup, and a solution if solve       |
| resolved | none, resolved or solved | Unchanged                                         |

An event at or before the ticket's `alert_offset` was applied already (read again after a
crash): Unchanged, and nothing is recorded. Times come from the event (`received_at`), so
a retry decides the same.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from hookstream.alerting.rules import RuleTemplates, levels
from hookstream.records import (
    AlertEvent,
    AlertRule,
    AlertStatus,
    AlertTicket,
    RefireMode,
    TicketState,
)
from hookstream.render import RenderLimits, render_text

MARKER_PREFIX = "hookstream-alert-"


@dataclass(frozen=True, slots=True)
class Open:
    marker: str  # the new ticket's marker, to find it again after a crash


@dataclass(frozen=True, slots=True)
class Reopen:
    pass


@dataclass(frozen=True, slots=True)
class Followup:
    pass


@dataclass(frozen=True, slots=True)
class Resolve:
    solve: bool


@dataclass(frozen=True, slots=True)
class Unchanged:
    replayed: bool = False  # the event was applied before: record nothing


Decision = Open | Reopen | Followup | Resolve | Unchanged


def ticket_marker(alert: AlertEvent) -> str:
    """The marker of the ticket this event opens: the same on every retry of the event, and
    only letters, digits and dashes so that GLPI's HTML sanitizing leaves it as it is."""
    digest = hashlib.sha256(f"{alert.key()}\x1f{alert.event_id}".encode()).hexdigest()
    return MARKER_PREFIX + digest[:24]


def decide(alert: AlertEvent, rule: AlertRule, ticket: AlertTicket | None,
           offset: int) -> Decision:
    """The table above; `offset` is the event's position on the alerts topic."""
    if ticket is not None and offset <= ticket.alert_offset:
        return Unchanged(replayed=True)
    if alert.status == AlertStatus.RESOLVED:
        if ticket is not None and ticket.state == TicketState.OPEN:
            return Resolve(solve=rule.solve_on_resolved)
        return Unchanged()
    if ticket is None:
        return Open(ticket_marker(alert))
    if ticket.state == TicketState.SOLVED:
        return Open(ticket_marker(alert)) if rule.on_refire == RefireMode.NEW else Reopen()
    if ticket.state == TicketState.RESOLVED:
        return Followup()
    quiet_ms = rule.repeat_followup_after_s * 1000
    last = max(ticket.last_followup_at, ticket.opened_at)
    if quiet_ms > 0 and alert.received_at - last >= quiet_ms:
        return Followup()
    return Unchanged()


def after(ticket: AlertTicket | None, decision: Decision, alert: AlertEvent, rule: AlertRule,
          tickets_id: int, offset: int, now_ms: int) -> AlertTicket | None:
    """The map entry to write once `decision` is carried out in GLPI (`tickets_id`: the
    ticket), or None when it stays as it is (Unchanged: a replay reads the same)."""
    at = alert.received_at
    if isinstance(decision, Open):
        return AlertTicket(instance=alert.instance, source=alert.source,
                           fingerprint=alert.fingerprint, rule_id=rule.id, tickets_id=tickets_id,
                           state=TicketState.OPEN, marker=decision.marker, opened_at=at,
                           last_firing_at=at, updated_at=now_ms, alert_offset=offset)
    if ticket is None or isinstance(decision, Unchanged):
        return None
    moved = replace(ticket, updated_at=now_ms, alert_offset=offset, last_followup_at=at)
    if isinstance(decision, Resolve):
        return replace(moved, state=TicketState.SOLVED if decision.solve else TicketState.RESOLVED)
    return replace(moved, state=TicketState.OPEN, last_firing_at=at)  # Reopen, Followup


def template_context(alert: AlertEvent, tickets_id: int = 0) -> dict[str, Any]:
    """What the rule's templates see: `alert`, its fields with dates in Unix seconds (for
    Twig's `date` filter, in the instance's time zone), and `ticket.id` once there is one."""
    return {
        "alert": {
            "event_id": alert.event_id, "instance": alert.instance, "source": alert.source,
            "fingerprint": alert.fingerprint, "status": alert.status, "name": alert.name,
            "starts_at": alert.starts_at // 1000, "received_at": alert.received_at // 1000,
            "ends_at": None if alert.ends_at is None else alert.ends_at // 1000,
            "labels": dict(alert.labels), "annotations": dict(alert.annotations),
            "generator_url": alert.generator_url, "links": dict(alert.links),
        },
        "ticket": {"id": tickets_id},
    }


def ticket_fields(rule: AlertRule, templates: RuleTemplates, alert: AlertEvent, marker: str,
                  now_s: float, limits: RenderLimits) -> dict[str, Any]:
    """The input of GLPI's Ticket add: the rule's fields, the rendered name and content with
    the marker on a line of its own (RenderError if a template fails)."""
    context = template_context(alert)
    level = levels(rule, alert)
    content = render_text(templates.content, context, now_s, limits)
    fields: dict[str, Any] = {
        "name": render_text(templates.name, context, now_s, limits).strip()[:255] or alert.name,
        "content": f"{content}\n\n{marker}",
        "entities_id": rule.entities_id, "type": rule.type,
        "urgency": level.urgency, "impact": level.impact,
    }
    if level.priority:
        fields["priority"] = level.priority
    optional = {"itilcategories_id": rule.itilcategories_id,
                "requesttypes_id": rule.requesttypes_id,
                "_users_id_requester": rule.users_id_requester,
                "_groups_id_observer": rule.groups_id_observer,
                "_groups_id_assign": rule.groups_id_assign}
    return fields | {k: v for k, v in optional.items() if v}


def followup_text(templates: RuleTemplates, alert: AlertEvent, tickets_id: int, now_s: float,
                  limits: RenderLimits) -> str:
    """A followup's content for a repeat, a refire or a resolution of the alert, ending with
    the event's marker (a retry finds the followup already there)."""
    template = templates.resolved if alert.status == AlertStatus.RESOLVED else templates.followup
    text = render_text(template, template_context(alert, tickets_id), now_s, limits)
    return f"{text}\n\n{ticket_marker(alert)}"


def solution_text(templates: RuleTemplates, alert: AlertEvent, tickets_id: int, now_s: float,
                  limits: RenderLimits) -> str:
    return render_text(templates.solution, template_context(alert, tickets_id), now_s, limits)
