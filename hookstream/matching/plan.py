"""Matching and planning: which webhooks an event fires, and the requests they render.

Pure: `plan` takes an event, the webhook index, the entity table, the clock and the
instance's integration users, and returns the delivery requests, render failures and
skips, in index order. `plan_rendered` is the same with each request left as its parts
(the webhook and what it rendered): the processor encodes those without a DeliveryRequest.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from hookstream.errors import InvalidCriteria, InvalidTemplate, RenderError
from hookstream.matching.criteria import Criteria, compile_criteria, evaluate, matches
from hookstream.matching.entities import EntityTable, in_scope
from hookstream.matching.matchers import MatchContext
from hookstream.records import DeliveryRequest, ItemChangeEvent, WebhookDefinition, delivery_id_for
from hookstream.render import (
    CompiledTemplates,
    RenderedRequest,
    RenderLimits,
    compile_templates,
    render_request,
)

IndexKey = tuple[str, str, str]
DEFAULT_LIMITS = RenderLimits()


@dataclass(frozen=True, slots=True)
class CompiledWebhook:
    """A definition with its filter and templates compiled once per version."""

    definition: WebhookDefinition
    criteria: Criteria
    templates: CompiledTemplates


@dataclass(frozen=True, slots=True)
class RenderFailure:
    """A matching webhook whose template failed: recorded as render_error, never sent."""

    request: DeliveryRequest  # with an empty body and the reason in last_error
    reason: str


@dataclass(frozen=True, slots=True)
class Rendered:
    """A webhook that fires for the event, and the URL, headers and body it rendered: a
    new DeliveryRequest's parts (`request_for` builds it)."""

    webhook: WebhookDefinition
    request: RenderedRequest


@dataclass(frozen=True, slots=True)
class Skipped:
    """A webhook that matched but skips the event: it skips integration users' changes
    and the event was made by one of them (GLPI issue #20902)."""

    webhook_id: str
    instance: str


def skips_change_by(definition: WebhookDefinition, changed_by: int | None,
                    integration_users: frozenset[int]) -> bool:
    """Whether `definition` skips a change made by `changed_by`; an unknown author (None)
    is never skipped: a webhook never loses a person's change for want of a name."""
    return (definition.skip_integration_users and changed_by is not None
            and changed_by in integration_users)


def compile_webhook(definition: WebhookDefinition) -> CompiledWebhook:
    """Raises InvalidCriteria or InvalidTemplate."""
    return CompiledWebhook(
        definition,
        compile_criteria(definition.itemtype, definition.filter or None),
        compile_templates(
            definition.url,
            definition.custom_headers,
            definition.payload or None,
            definition.use_default_payload,
            escaping=definition.escaping,
        ),
    )


class WebhookIndex:
    """Active and inactive webhooks by (instance, itemtype, event), followed live.

    The active candidates of each key are kept as a tuple, rebuilt only when a definition
    of that key changes, so that an event's look-up allocates nothing."""

    def __init__(self) -> None:
        self._by_id: dict[str, CompiledWebhook] = {}
        self._by_key: dict[IndexKey, dict[str, CompiledWebhook]] = defaultdict(dict)
        self._active: dict[IndexKey, tuple[CompiledWebhook, ...]] = {}
        self.invalid: dict[str, str] = {}  # id -> why it could not be compiled

    def put(self, definition: WebhookDefinition) -> None:
        current = self._by_id.get(definition.id)
        if current is not None and current.definition.version == definition.version:
            return  # compiled once per version
        self.remove(definition.id)
        try:
            compiled = compile_webhook(definition)
        except (InvalidCriteria, InvalidTemplate) as e:
            self.invalid[definition.id] = str(e)
            return
        self._by_id[definition.id] = compiled
        key = (definition.instance, definition.itemtype, definition.event)
        self._by_key[key][definition.id] = compiled
        self._reindex(key)

    def remove(self, webhook_id: str) -> None:
        self.invalid.pop(webhook_id, None)
        old = self._by_id.pop(webhook_id, None)
        if old is not None:
            d = old.definition
            key = (d.instance, d.itemtype, d.event)
            self._by_key[key].pop(webhook_id, None)
            self._reindex(key)

    def _reindex(self, key: IndexKey) -> None:
        active = tuple(w for w in self._by_key[key].values() if w.definition.is_active)
        if active:
            self._active[key] = active
        else:
            self._active.pop(key, None)

    def get(self, webhook_id: str) -> CompiledWebhook | None:
        return self._by_id.get(webhook_id)

    def candidates(self, instance: str, itemtype: str, event: str) -> list[CompiledWebhook]:
        found = self._by_key.get((instance, itemtype, event))
        return list(found.values()) if found else []

    def active(self, instance: str, itemtype: str, event: str) -> tuple[CompiledWebhook, ...]:
        """The active webhooks of the key, in index order: what `plan` checks an event
        against."""
        return self._active.get((instance, itemtype, event), ())

    def __len__(self) -> int:
        return len(self._by_id)


def why_not(
    webhook: CompiledWebhook, event: ItemChangeEvent, item: dict[str, Any], entities: EntityTable,
    integration_users: frozenset[int] = frozenset(),
) -> str | None:
    """None when the webhook fires for the event, else the first condition that failed."""
    reason = _why_not(webhook, event, _EventContext(event, entities, item))
    if reason is None and skips_change_by(webhook.definition, event.changed_by,
                                          integration_users):
        return f"changed by integration user {event.changed_by}: the webhook skips them"
    return reason


class _EventContext:
    """What every candidate of one event shares: computed once per event, not per webhook,
    and the item parsed only when a candidate in scope needs it."""

    __slots__ = ("_item", "ancestors", "event", "match")

    def __init__(self, event: ItemChangeEvent, entities: EntityTable,
                 item: dict[str, Any] | None = None) -> None:
        self.event = event
        self.ancestors = (
            () if event.entities_id is None
            else entities.ancestors(event.instance, event.entities_id)
        )
        self.match = MatchContext(entities.resolver(event.instance),
                                  datetime.fromtimestamp(event.occurred_at / 1000, UTC))
        self._item = item

    @property
    def item(self) -> dict[str, Any]:
        if self._item is None:
            self._item = load_json(self.event.item)
        return self._item


def _why_not(webhook: CompiledWebhook, event: ItemChangeEvent, shared: _EventContext
             ) -> str | None:
    d = webhook.definition
    if (d.instance, d.itemtype, d.event) != (event.instance, event.itemtype, event.event):
        return (
            f"webhook is for {d.instance}/{d.itemtype}/{d.event}, "
            f"event is {event.instance}/{event.itemtype}/{event.event}"
        )
    if not d.is_active:
        return "webhook is not active"
    if not in_scope(event.entities_id, d.entities_id, d.is_recursive, shared.ancestors):
        scope = "and its sub-entities" if d.is_recursive else "only"
        return (
            f"item entity {event.entities_id} is outside webhook entity {d.entities_id} ({scope})"
        )
    result = evaluate(webhook.criteria, shared.item, shared.match.ancestors_of,
                      now=shared.match.now)
    return None if result.matched else f"filter: {result.failed}"


def _fires(webhook: CompiledWebhook, event: ItemChangeEvent, shared: _EventContext) -> bool:
    """`_why_not(...) is None` for an active candidate of the event's key, without the
    reasons: entity scope first, the item parsed only for a filter in scope."""
    d = webhook.definition
    return in_scope(event.entities_id, d.entities_id, d.is_recursive, shared.ancestors) and (
        webhook.criteria.root is None or matches(webhook.criteria, shared.item, shared.match))


def plan(
    event: ItemChangeEvent,
    index: WebhookIndex,
    entities: EntityTable,
    now_ms: int,
    limits: RenderLimits | None = None,
    integration_users: frozenset[int] = frozenset(),
) -> list[DeliveryRequest | RenderFailure | Skipped]:
    """The delivery requests (or render failures) one event yields, and the matching
    webhooks that skip it because one of `integration_users` (the instance's) made it."""
    return [request_for(event, result, now_ms) if isinstance(result, Rendered) else result
            for result in plan_rendered(event, index, entities, now_ms, limits,
                                        integration_users)]


def plan_rendered(
    event: ItemChangeEvent,
    index: WebhookIndex,
    entities: EntityTable,
    now_ms: int,
    limits: RenderLimits | None = None,
    integration_users: frozenset[int] = frozenset(),
) -> list[Rendered | RenderFailure | Skipped]:
    """`plan`, each request left as its parts."""
    candidates = index.active(event.instance, event.itemtype, event.event)
    if not candidates:
        return []
    shared = _EventContext(event, entities)
    out: list[Rendered | RenderFailure | Skipped] = []
    parent: dict[str, Any] | None = None
    default_bodies: dict[str, bytes] = {}  # GLPI's default body, encoded once per event
    limits = limits or DEFAULT_LIMITS
    for webhook in candidates:
        if not _fires(webhook, event, shared):
            continue
        d = webhook.definition
        if skips_change_by(d, event.changed_by, integration_users):
            out.append(Skipped(d.id, event.instance))
            continue
        if parent is None and event.parent_item:
            parent = load_json(event.parent_item)
        try:
            rendered = render_request(
                webhook.templates, event.event, shared.item, parent, now_s=now_ms / 1000,
                limits=limits, default_bodies=default_bodies,
            )
        except RenderError as e:
            failed = _request(event, d, now_ms, "", {}, b"", f"render_error: {e}")
            out.append(RenderFailure(failed, str(e)))
            continue
        out.append(Rendered(d, rendered))
    return out


def request_for(event: ItemChangeEvent, rendered: Rendered, now_ms: int) -> DeliveryRequest:
    """The new delivery request of a webhook that fired for `event`."""
    r = rendered.request
    return _request(event, rendered.webhook, now_ms, r.url, r.headers, r.body, None)


def load_json(text: str) -> Any:
    """`json.loads`, by orjson where that gives the same value (it is ~3x faster).

    orjson parses to the same types and key order, but reads integers beyond 64 bits as
    floats: text with 19 digits in a row (maybe inside a string: harmless) goes to
    json.loads, as does anything orjson rejects (NaN, lone surrogates, invalid JSON, which
    then raises json's own error). The digit check is a C translate, not a regex scan, of
    the UTF-8 bytes that orjson then parses (given the text, orjson would encode it again,
    and keep that copy inside the str).
    """
    data = text.encode()
    if _NINETEEN_ZEROS not in data.translate(_DIGITS_TO_ZERO):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_ZEROS = b"0" * 19


def _request(
    event: ItemChangeEvent,
    d: WebhookDefinition,
    now_ms: int,
    url: str,
    headers: dict[str, str],
    body: bytes,
    last_error: str | None,
) -> DeliveryRequest:
    return DeliveryRequest(
        delivery_id=delivery_id_for(event.event_id, d.id),
        webhook_id=d.id,
        webhook_version=d.version,
        instance=event.instance,
        event_id=event.event_id,
        itemtype=event.itemtype,
        items_id=event.items_id,
        event=event.event,
        entities_id=event.entities_id,
        method=d.http_method.upper(),
        url=url,
        headers=headers,
        body=body,
        created_at=now_ms,
        last_error=last_error,
    )
