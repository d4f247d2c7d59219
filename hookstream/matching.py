"""Matching and planning: which webhooks an event fires, and the requests they render.

Pure: `plan` takes an event, the webhook index, the entity table and the clock, and
returns the delivery requests and render failures, in index order.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hookstream.criteria import Criteria, compile_criteria, evaluate
from hookstream.definitions import WebhookDefinition
from hookstream.entities import EntityTable, in_scope
from hookstream.errors import InvalidCriteria, InvalidTemplate, RenderError
from hookstream.events import DeliveryRequest, ItemChangeEvent, delivery_id_for
from hookstream.render import CompiledTemplates, RenderLimits, compile_templates, render_request

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
        ),
    )


class WebhookIndex:
    """Active and inactive webhooks by (instance, itemtype, event), followed live."""

    def __init__(self) -> None:
        self._by_id: dict[str, CompiledWebhook] = {}
        self._by_key: dict[IndexKey, dict[str, CompiledWebhook]] = defaultdict(dict)
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

    def remove(self, webhook_id: str) -> None:
        self.invalid.pop(webhook_id, None)
        old = self._by_id.pop(webhook_id, None)
        if old is not None:
            d = old.definition
            self._by_key[(d.instance, d.itemtype, d.event)].pop(webhook_id, None)

    def get(self, webhook_id: str) -> CompiledWebhook | None:
        return self._by_id.get(webhook_id)

    def candidates(self, instance: str, itemtype: str, event: str) -> list[CompiledWebhook]:
        found = self._by_key.get((instance, itemtype, event))
        return list(found.values()) if found else []

    def __len__(self) -> int:
        return len(self._by_id)


def why_not(
    webhook: CompiledWebhook, event: ItemChangeEvent, item: dict[str, Any], entities: EntityTable
) -> str | None:
    """None when the webhook fires for the event, else the first condition that failed."""
    d = webhook.definition
    if (d.instance, d.itemtype, d.event) != (event.instance, event.itemtype, event.event):
        return (
            f"webhook is for {d.instance}/{d.itemtype}/{d.event}, "
            f"event is {event.instance}/{event.itemtype}/{event.event}"
        )
    if not d.is_active:
        return "webhook is not active"
    ancestors = (
        () if event.entities_id is None else entities.ancestors(event.instance, event.entities_id)
    )
    if not in_scope(event.entities_id, d.entities_id, d.is_recursive, ancestors):
        scope = "and its sub-entities" if d.is_recursive else "only"
        return (
            f"item entity {event.entities_id} is outside webhook entity {d.entities_id} ({scope})"
        )
    when = datetime.fromtimestamp(event.occurred_at / 1000, UTC)
    result = evaluate(webhook.criteria, item, entities.resolver(event.instance), now=when)
    return None if result.matched else f"filter: {result.failed}"


def plan(
    event: ItemChangeEvent,
    index: WebhookIndex,
    entities: EntityTable,
    now_ms: int,
    limits: RenderLimits | None = None,
) -> list[DeliveryRequest | RenderFailure]:
    """The delivery requests (or render failures) one event yields."""
    candidates = index.candidates(event.instance, event.itemtype, event.event)
    if not candidates:
        return []
    item = json.loads(event.item)
    parent = json.loads(event.parent_item) if event.parent_item else None
    out: list[DeliveryRequest | RenderFailure] = []
    for webhook in candidates:
        if why_not(webhook, event, item, entities) is not None:
            continue
        d = webhook.definition
        request = DeliveryRequest(
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
            url="",
            body=b"",
            created_at=now_ms,
        )
        try:
            rendered = render_request(
                webhook.templates, event.event, item, parent, now_s=now_ms / 1000,
                limits=limits or DEFAULT_LIMITS,
            )
        except RenderError as e:
            out.append(RenderFailure(request.evolve(last_error=f"render_error: {e}"), str(e)))
            continue
        out.append(request.evolve(url=rendered.url, headers=rendered.headers, body=rendered.body))
    return out
