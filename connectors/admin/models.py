"""The admin API's request and answer shapes: validated on the way in, documented in the
OpenAPI schema, checked on the way out."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from hookstream.records import ActionKind, AlertStatus, AuditAction

MAX_INT = 2**53  # within SQLite's and PostgreSQL's BIGINT, and exact in JSON
# Names and ids: printable, bounded (PostgreSQL refuses NUL in text; no control characters)
NAME = r"^[^\x00-\x1f\x7f]{1,255}$"

WEBHOOK_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
REPLAY_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # records.replays.REPLAY_ID
WebhookId = Annotated[str, Path(pattern=WEBHOOK_ID)]
DeliveryId = Annotated[str, Path(pattern=r"^[0-9a-f]{1,64}$")]
StateName = Literal["pending", "waiting", "delivered", "dead_lettered", "render_error",
                    "blocked"]
OutcomeName = Literal["delivered", "retry_scheduled", "dead_lettered", "render_error",
                      "blocked", "challenge_failed", "circuit_open", "deferred", "failed"]


class Problem(BaseModel):
    """Every error answer: what is wrong, each problem on its own."""

    errors: list[str]


class WebhookList(BaseModel):
    items: list[dict[str, Any]]


class WebhookPut(BaseModel):
    webhook: dict[str, Any]
    state: Literal["created", "updated", "unchanged"]


class RotateSecretIn(BaseModel):
    """The new secret is chosen by the caller, so no secret ever travels in an answer."""

    model_config = ConfigDict(extra="forbid")
    secret: str = Field(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f\x7f]+$",
                        description="the new secret (a whsec_ secret or any other string)")
    grace: str = Field(default="24h", max_length=16,
                       description="how long the previous secret signs too: 24h, 90m, 7d, 0")


class WebhookEnabled(BaseModel):
    webhook: dict[str, Any]
    state: Literal["enabled", "already active"]


class OperationsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    webhook_id: str | None = Field(default=None, pattern=NAME)
    before_ms: int | None = Field(default=None, ge=0, le=MAX_INT,
                                  description="the next page: the last row's at_ms")
    before_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{1,64}$",
                                  description="with before_ms: the last row's event_id")
    limit: int = Field(default=50, ge=1, le=500)


class OperationEntry(BaseModel):
    event_id: str
    type: str
    at_ms: int
    instance: str
    webhook_id: str
    reason: str
    delivery_id: str | None
    origin: str | None


class OperationsPage(BaseModel):
    items: list[OperationEntry]


class ItemRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instance: str = Field(pattern=NAME)
    itemtype: str = Field(pattern=NAME)
    items_id: int = Field(ge=0, le=MAX_INT)


class PreviewIn(BaseModel):
    """One of `event` (given) or `item` (the last change of that item the log has seen)."""

    model_config = ConfigDict(extra="forbid")
    event: dict[str, Any] | None = Field(
        default=None,
        description="an item change as `hookstream produce` reads it: itemtype, items_id, "
        "event, entities_id, item (and parent_item)")
    item: ItemRef | None = None


class PreviewOut(BaseModel):
    matches: bool
    reason: str | None = None
    render_error: str | None = None
    method: str | None = None
    url: str | None = None
    headers: dict[str, str] | None = None
    body: str | None = None


class Delivery(BaseModel):
    delivery_id: str
    instance: str
    webhook_id: str
    itemtype: str
    items_id: int
    entities_id: int | None
    event: str
    method: str | None
    url: str | None
    state: str | None
    tier: str | None
    created_at: int
    next_attempt_at: int | None
    attempts: int
    last_status: int | None
    last_outcome: str | None
    last_error: str | None
    last_attempt_at: int | None


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_cursor: str | None = Field(description="pass as `cursor` for the older page")
    prev_cursor: str | None = Field(
        None, description="pass as `cursor` with `newer=true` for the newer page")


class Body(BaseModel):
    encoding: Literal["utf-8", "base64"]
    data: str


class RequestShown(BaseModel):
    method: str | None
    url: str | None
    headers: dict[str, str]
    body: Body | None
    body_size: int | None
    body_sha256: str | None
    body_truncated: bool


class Attempt(BaseModel):
    attempt: int
    started_at: int
    finished_at: int
    duration_ms: int
    outcome: str
    status_code: int | None
    error: str | None
    response_headers: dict[str, str]
    response_body: Body | None
    response_size: int | None
    response_truncated: bool
    trigger: str = ""  # first, retry, probe, redrive, manual; "" before AttemptRecord v3
    trigger_tier: str | None = None
    actor: str | None = None  # the token name of a manual send
    request_method: str | None = None
    request_url: str | None = None
    request_headers: dict[str, str] | None = None  # as sent, credentials masked
    body_sha256: str | None = None
    reason: str | None = None
    next_step: str | None = None  # the decision taken next, in a sentence
    retry_policy: str | None = None  # glpi or default: the rule that judged the answer


class DeliveryDetail(Delivery):
    event_id: str | None
    request: RequestShown
    attempt_log: list[Attempt]


class QueueGroup(BaseModel):
    instance: str
    webhook_id: str
    state: str
    tier: str | None
    count: int
    oldest_created_at: int


class QueueTotals(BaseModel):
    pending: int
    waiting: dict[str, int]
    dead_lettered: int
    render_error: int
    blocked: int


class Queue(BaseModel):
    totals: QueueTotals
    groups: list[QueueGroup]
    oldest_undelivered_at: int | None
    oldest_undelivered_age_s: float | None


class SendOut(BaseModel):
    outcome: str
    status_code: int | None
    error: str | None


class RedriveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    webhook_id: str | None = Field(default=None, pattern=WEBHOOK_ID,
                                   description="none: every webhook the token sees")
    since_ms: int = Field(default=0, ge=0, le=MAX_INT, description="dead-lettered since")
    rate_per_s: float = Field(default=0.0, ge=0.0, le=100_000.0, description="0: no limit")


class RedriveOut(BaseModel):
    redriven: int


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since_ms: int = Field(ge=0, le=MAX_INT, description="events that reached Kafka from then")
    until_ms: int | None = Field(default=None, ge=0, le=MAX_INT,
                                 description="and before then; none: the end of the topic "
                                             "when the replay began")
    rate_per_s: float = Field(default=0.0, ge=0.0, le=100_000.0, description="0: no limit")
    dry_run: bool = Field(default=False, description="count only, write nothing")
    replay_id: str | None = Field(default=None, pattern=REPLAY_ID,
                                  description="none: from the webhook and the range; the "
                                              "same replay started again continues")


class ReplayOut(BaseModel):
    replay_id: str
    webhook_id: str
    state: Literal["running", "finished", "stopped", "failed"]
    dry_run: bool
    done: int = Field(description="records of this run's range read so far")
    total: int = Field(description="records in this run's range")
    read: int
    matched: int
    replayed: int = Field(description="deliveries written by this run (a dry run: would be)")
    already: int = Field(description="deliveries written by earlier runs of this replay")
    skipped: int = Field(description="undecodable, or the template failed")
    error: str | None = None


class RedriveQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    webhook_id: str | None = Field(default=None, pattern=WEBHOOK_ID)
    since_ms: int = Field(default=0, ge=0, le=MAX_INT, description="dead-lettered since")


class StatusCount(BaseModel):
    status_code: int | None = Field(description="the target's last answer; null: none")
    count: int


class RedriveCountOut(BaseModel):
    count: int
    summary: str = Field(description='"12 deliveries, 4 of them to a target answering 401"')
    by_status: list[StatusCount]


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str | None = Field(default=None, pattern=NAME, description="a token's name")
    action: AuditAction | None = None  # the enum itself: a new action is queryable at once
    before_ms: int | None = Field(default=None, ge=0, le=MAX_INT,
                                  description="the next page: the last row's at_ms")
    before_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{1,64}$",
                                  description="with before_ms: the last row's audit_id")
    limit: int = Field(default=50, ge=1, le=500)


class AuditEntry(BaseModel):
    audit_id: str
    at_ms: int
    token: str
    action: str
    target: str
    result: str
    instance: str | None
    via: str


class AuditPage(BaseModel):
    items: list[AuditEntry]


# -- alerts into tickets ---------------------------------------------------------------

class AlertRuleList(BaseModel):
    items: list[dict[str, Any]] = Field(description="rules as `hookstream alerts apply` "
                                                    "publishes them (AlertRule)")


class AlertsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instance: str | None = Field(default=None, pattern=NAME)
    status: AlertStatus | None = Field(default=None, description="of the latest event")
    action: ActionKind | None = Field(default=None, description="the latest action")
    search: str | None = Field(default=None, min_length=1, max_length=200,
                               pattern=r"^[^\x00-\x1f\x7f]+$",
                               description="part of the alert's name or fingerprint, any case")
    cursor: str | None = Field(default=None, max_length=1200,
                               description="a page's `next_cursor` (older alerts), or with "
                                           "`newer` its `prev_cursor`")
    newer: bool = Field(default=False, description="the page of alerts just newer than `cursor`")
    limit: int = Field(default=50, ge=1, le=500)


class Alert(BaseModel):
    alert_key: str = Field(description="instance:source:fingerprint")
    instance: str
    source: str
    fingerprint: str
    alert_name: str
    alert_status: str
    last_action: str
    last_at_ms: int
    rule_id: str
    message: str = Field(description="GLPI's, when the latest action was refused")
    tickets_id: int = Field(description="the ticket of the latest action naming one; 0: none")
    ticket_url: str | None = Field(description="its page in GLPI (the instance's API URL "
                                               "without apirest.php)")
    first_at_ms: int = Field(description="its oldest action the store held when the "
                                          "latest was written")
    actions: int = Field(description="how many actions the store held when the latest was "
                                     "written (retention drops the oldest)")


class AlertPage(BaseModel):
    items: list[Alert]
    next_cursor: str | None = Field(description="pass as `cursor` for the older page")
    prev_cursor: str | None = Field(
        None, description="pass as `cursor` with `newer=true` for the newer page")


class AlertAction(BaseModel):
    action_id: str
    alert_event_id: str
    alert_status: str
    action: str
    at_ms: int
    rule_id: str
    tickets_id: int
    ticket_url: str | None
    latency_ms: int | None = Field(description="received to GLPI's answer, opened tickets")
    message: str


class AlertDetail(Alert):
    history: list[AlertAction] = Field(description="every action still kept, oldest first")
