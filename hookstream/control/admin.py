"""Control-plane operations behind the CLI: webhook definitions, entity trees, preview."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from hookstream.config import Settings
from hookstream.control.switch import disabled, disabled_event, enabled
from hookstream.control.webhooks import load_definitions, redacted
from hookstream.errors import InvalidDefinition, UsageError
from hookstream.io import codec_for, delivery_callback, flush, producer, read_all
from hookstream.matching import (
    EntityTable,
    RenderFailure,
    Skipped,
    WebhookIndex,
    build_tree,
    compile_webhook,
    plan,
    why_not,
)
from hookstream.policy import (
    generate_secret,
    rotated,
    secret_box,
    signature_headers,
    without_expired_secret,
)
from hookstream.records import (
    ENTITIES,
    OPERATIONS,
    WEBHOOKS,
    Codec,
    EntityRecord,
    ItemChangeEvent,
    OperationalEvent,
    WebhookDefinition,
)
from hookstream.render import RenderLimits

REDACTED = "<redacted>"


def current_webhooks(
    settings: Settings, codec: Codec | None = None
) -> dict[str, WebhookDefinition]:
    """The webhooks topic read whole: the latest definition of every live webhook."""
    codec = codec or codec_for(settings)
    table: dict[str, WebhookDefinition] = {}
    for msg in read_all(settings, settings.topic(WEBHOOKS)):
        ident = (msg.key() or b"").decode()
        if msg.value() is None:
            table.pop(ident, None)
        else:
            table[ident] = codec.decode(msg.value(), msg.headers(), WebhookDefinition)
    return table


def publish(settings: Settings, topic: str, records: Sequence[tuple[str, Any]]) -> None:
    codec, prod, errors = codec_for(settings), producer(settings), []  # type: ignore[var-annotated]
    for key, record in records:
        value = None if record is None else codec.encode(record, topic)
        prod.produce(
            topic,
            None if value is None else value[0],
            key.encode(),
            headers=None if value is None else value[1],
            on_delivery=delivery_callback(errors),
        )
    flush(prod)
    if errors:
        raise InvalidDefinition(topic, [f"not published: {e}" for e in errors])


def apply_webhooks(
    settings: Settings, path: Path, now_ms: int | None = None
) -> list[tuple[WebhookDefinition, str]]:
    """Validate every webhook under `path`, then publish those that changed. Rotated-out
    secrets past their grace period are dropped on the way, from every webhook."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    current = current_webhooks(settings)
    definitions = load_definitions(
        path, secret_box(settings), current, settings.retry_tiers_s, settings.allowed_networks,
        now_ms,
    )
    changed = [d for d in definitions if current.get(d.id) is not d]
    applied = {d.id for d in definitions}
    swept = [d for d in expired_secrets_dropped(current, now_ms) if d.id not in applied]
    publish(settings, settings.topic(WEBHOOKS), [(d.id, d) for d in [*changed, *swept]])
    return [
        (d, ("created" if d.id not in current else "updated") if d in changed else "unchanged")
        for d in definitions
    ]


def expired_secrets_dropped(
    webhooks: dict[str, WebhookDefinition], now_ms: int
) -> list[WebhookDefinition]:
    """The webhooks whose rotated-out secret is past its grace period, without it: what
    a sweep republishes so that the secret leaves the compacted topic too."""
    swept = (without_expired_secret(d, now_ms) for d in webhooks.values())
    return [d for d in swept if d is not webhooks[d.id]]


def rotate_secret(
    settings: Settings, webhook_id: str, grace_s: int, new_secret: str | None = None,
    now_ms: int | None = None,
) -> tuple[WebhookDefinition, str]:
    """Make `new_secret` (or a generated one) the webhook's secret, the current one signing
    beside it for `grace_s`; publish it, with every other webhook's expired secret dropped.
    Returns the definition and the new secret. UsageError for an unknown webhook or a new
    secret that is empty or the current one."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    current = current_webhooks(settings)
    if webhook_id not in current:
        raise UsageError(f"no webhook {webhook_id!r}")
    secret = new_secret if new_secret is not None else generate_secret()
    try:
        definition = rotated(current[webhook_id], secret, grace_s, now_ms, secret_box(settings))
    except ValueError as e:
        raise UsageError(f"{webhook_id}: {e}") from None
    swept = [d for d in expired_secrets_dropped(current, now_ms) if d.id != webhook_id]
    publish(settings, settings.topic(WEBHOOKS), [(d.id, d) for d in [definition, *swept]])
    return definition, secret


def delete_webhook(settings: Settings, webhook_id: str) -> bool:
    if webhook_id not in current_webhooks(settings):
        return False
    publish(settings, settings.topic(WEBHOOKS), [(webhook_id, None)])
    return True


def enable_webhook(settings: Settings, webhook_id: str, now_ms: int
                   ) -> tuple[WebhookDefinition, bool] | None:
    """Publish `webhook_id` active again (its auto-disable record cleared): the definition
    and whether it changed (False: it was active already); None if there is no such webhook."""
    current = current_webhooks(settings).get(webhook_id)
    if current is None:
        return None
    if current.is_active:
        return current, False
    definition = enabled(current, now_ms)
    publish(settings, settings.topic(WEBHOOKS), [(webhook_id, definition)])
    return definition, True


def disable_webhook(settings: Settings, webhook: WebhookDefinition, reason: str, at_ms: int
                    ) -> OperationalEvent:
    """Auto-disable: the webhook.disabled event, then the inactive definition. A crash
    between the two publishes the event again next time (same event id)."""
    definition = disabled(webhook, reason, at_ms)
    event = disabled_event(definition)
    publish(settings, settings.topic(OPERATIONS), [(webhook.id, event)])
    publish(settings, settings.topic(WEBHOOKS), [(webhook.id, definition)])
    return event


def list_webhooks(settings: Settings) -> list[dict[str, Any]]:
    return [redacted(d) for d in sorted(current_webhooks(settings).values(), key=lambda d: d.id)]


def apply_entities(settings: Settings, path: Path) -> int:
    """Publish entity trees from YAML: {instance: NAME, entities: [{id, parent_id, name}]}."""
    records = []
    for instance, rows in _entity_trees(path):
        for entity in build_tree(instance, rows):
            records.append(
                (
                    f"{entity.instance}:{entity.id}",
                    EntityRecord(
                        entity.instance,
                        entity.id,
                        entity.parent_id,
                        entity.name,
                        entity.completename,
                        list(entity.ancestors),
                    ),
                )
            )
    publish(settings, settings.topic(ENTITIES), records)
    return len(records)


def _entity_trees(path: Path) -> list[tuple[str, list[tuple[int, Any, str]]]]:
    """(instance, [(id, parent_id, name)]) of each YAML document; InvalidDefinition, naming
    the file, for one that cannot be read or is not of that shape."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise InvalidDefinition(str(path), [f"cannot read YAML: {e}"]) from e
    try:
        return [(str(doc["instance"]),
                 [(int(e["id"]), e.get("parent_id"), str(e["name"])) for e in doc["entities"]])
                for doc in docs]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise InvalidDefinition(str(path), [
            "expected {instance: NAME, entities: [{id, parent_id, name}, ...]} "
            f"({type(e).__name__}: {e})"]) from e


def load_entities(settings: Settings) -> EntityTable:
    from hookstream.matching import Entity

    codec, table = codec_for(settings), EntityTable()
    for msg in read_all(settings, settings.topic(ENTITIES)):
        if msg.value() is not None:
            r = codec.decode(msg.value(), msg.headers(), EntityRecord)
            table.put(
                Entity(r.instance, r.id, r.parent_id, r.name, r.completename, tuple(r.ancestors))
            )
    return table


def preview(
    webhook: WebhookDefinition,
    event: ItemChangeEvent,
    entities: EntityTable,
    now_ms: int,
    timezone: str = "UTC",
    integration_users: frozenset[int] = frozenset(),
) -> dict[str, Any]:
    """Exactly what would be sent (secrets redacted), or which condition failed; dates in
    `timezone`, the instance's, and its `integration_users`."""
    compiled = compile_webhook(webhook)
    reason = why_not(compiled, event, json.loads(event.item), entities, integration_users)
    if reason is not None:
        return {"matches": False, "reason": reason}
    index = WebhookIndex()
    index.put(webhook)
    [result] = plan(event, index, entities, now_ms, RenderLimits(timezone=timezone))
    assert not isinstance(result, Skipped)  # why_not said it fires
    if isinstance(result, RenderFailure):
        return {"matches": True, "render_error": result.reason}
    signed = signature_headers(
        webhook.signature_scheme, REDACTED, result.delivery_id, result.body, now_ms // 1000
    )
    headers = {
        **result.headers,
        **{k: REDACTED if "signature" in k.lower() else v for k, v in signed.items()},
    }
    if webhook.use_oauth:
        headers["Authorization"] = f"Bearer {REDACTED}"
    return {
        "matches": True,
        "method": result.method,
        "url": result.url,
        "headers": headers,
        "body": result.body.decode("utf-8", errors="replace"),
    }


def event_from_json(text: str, instance: str, now_ms: int) -> ItemChangeEvent:
    """An event file's text: the JSON line format of `hookstream produce`, as one object
    (pretty-printed or not; its own `instance` wins). ValueError says what is wrong."""
    from hookstream.records import parse_event_line

    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e.msg} at line {e.lineno} column {e.colno}") from e
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return parse_event_line(json.dumps(data), str(data.get("instance", instance)), now_ms,
                            "preview")
