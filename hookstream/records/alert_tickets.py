"""The ticketer's records: alert rules, each alert's ticket, and what was done.

- `AlertRule` (compacted hookstream.alert-rules, keyed by rule id): which alerts open
  which GLPI tickets, and how the ticket is filled in. Applied with `hookstream alerts apply`.
- `AlertTicket` (compacted hookstream.alert-tickets, keyed by the alert key): the
  fingerprint-to-ticket map, so that a restart or a second replica never opens a ticket twice.
- `TicketAction` (hookstream.alert-actions, keyed by the alert key): one per alert event
  handled, the history the log store and console show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from hookstream.records.alerts import alert_key
from hookstream.records.events import Record


class RefireMode(StrEnum):
    REOPEN = "reopen"  # a firing after resolution reopens the solved ticket
    NEW = "new"  # ... opens a new ticket


class TicketState(StrEnum):
    OPEN = "open"  # the alert is firing
    RESOLVED = "resolved"  # the alert resolved; the rule leaves the ticket open
    SOLVED = "solved"  # the alert resolved and hookstream solved the ticket


class ActionKind(StrEnum):
    OPENED = "opened"
    FOLLOWUP = "followup"
    SOLVED = "solved"
    REOPENED = "reopened"
    REFUSED = "refused"  # GLPI refused the call: the alert went to the alerts DLQ
    UNMATCHED = "unmatched"  # no enabled rule matches the alert
    UNCHANGED = "unchanged"  # a repeat inside the quiet period, or a resolve with no ticket


@dataclass(frozen=True, slots=True)
class AlertRule(Record):
    """Which alerts of one instance open tickets, and the ticket's fields.

    An alert matches when its source is among `match_sources` (empty: any), each label
    of `match_labels` has exactly that value, and each label of `match_labels_regex`
    fully matches that regular expression. The first enabled rule by (order, id) wins.
    Urgency, impact and priority come from a label through a value map (1..5; priority
    1..6), else the default (priority 0: GLPI computes it from urgency and impact).
    """

    schema_name: ClassVar[str] = "AlertRule"

    id: str
    version: int
    instance: str
    name_template: str  # Twig, over `alert`: the ticket's title
    content_template: str  # Twig: the ticket's description (the marker is appended)
    enabled: bool = True
    order: int = 0
    match_sources: list[str] = field(default_factory=list)
    match_labels: dict[str, str] = field(default_factory=dict)
    match_labels_regex: dict[str, str] = field(default_factory=dict)
    entities_id: int = 0
    itilcategories_id: int = 0
    type: int = 1  # GLPI: 1 incident, 2 request
    urgency_label: str = ""
    urgency_values: dict[str, int] = field(default_factory=dict)
    urgency_default: int = 3
    impact_label: str = ""
    impact_values: dict[str, int] = field(default_factory=dict)
    impact_default: int = 3
    priority_label: str = ""
    priority_values: dict[str, int] = field(default_factory=dict)
    priority_default: int = 0
    users_id_requester: int = 0
    groups_id_observer: int = 0
    groups_id_assign: int = 0
    requesttypes_id: int = 0  # the ticket's request source: webhooks can filter on it
    followup_template: str = ""  # Twig: repeats and resolution ("" = a built-in text)
    repeat_followup_after_s: int = 0  # 0: a repeat of a firing alert adds nothing
    solve_on_resolved: bool = True
    solution_template: str = ""  # Twig ("" = a built-in text)
    solutiontypes_id: int = 0
    on_refire: str = RefireMode.REOPEN  # a RefireMode
    comment: str = ""

    def key(self) -> str:
        return self.id


@dataclass(frozen=True, slots=True)
class AlertTicket(Record):
    """An alert's ticket in GLPI: the fingerprint-to-ticket map's entry."""

    schema_name: ClassVar[str] = "AlertTicket"

    instance: str
    source: str
    fingerprint: str
    rule_id: str
    tickets_id: int
    state: str  # a TicketState
    marker: str  # written in the ticket's content: finds it again after a crash
    opened_at: int  # Unix ms
    last_firing_at: int  # Unix ms, the last firing event seen
    last_followup_at: int = 0  # Unix ms, 0 when none was added
    updated_at: int = 0  # Unix ms
    # The alerts-topic offset of the last event applied (same key, same partition): an
    # event at or before it was handled already, and is skipped when read again.
    alert_offset: int = -1

    def key(self) -> str:
        return alert_key(self.instance, self.source, self.fingerprint)


@dataclass(frozen=True, slots=True)
class TicketAction(Record):
    """What the ticketer did with one alert event."""

    schema_name: ClassVar[str] = "TicketAction"

    action_id: str  # stable: the same event handled twice gives the same id
    alert_event_id: str
    alert_key: str
    instance: str
    source: str
    fingerprint: str
    alert_name: str
    alert_status: str  # an AlertStatus
    action: str  # an ActionKind
    at: int  # Unix ms
    rule_id: str = ""  # "" when unmatched
    tickets_id: int = 0  # 0 when no ticket is concerned
    latency_ms: int | None = None  # received_at to GLPI's answer, for opened tickets
    message: str = ""  # GLPI's message when refused

    def key(self) -> str:
        return self.alert_key
