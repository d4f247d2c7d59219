"""`hookstream glpi sync-entities`: an instance's entity tree onto hookstream.entities.

The tree is read through the API (Entity: id, name, entities_id = parent), turned into
records with ancestors and complete names (matching.build_tree, the same rule as GLPI's
`completename`), compared with what the compacted topic holds for the instance, and only
the differences are published: changed entities, and tombstones for entities gone from
GLPI. The processor follows the topic, so it sees the change without a restart.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from connectors.glpi.client import GlpiClient
from hookstream.config import Settings
from hookstream.errors import TransientError
from hookstream.io import codec_for, delivery_callback, flush, producer, read_table
from hookstream.matching import build_tree
from hookstream.records import ENTITIES, EntityRecord
from hookstream.records.legacy import unsanitized


def entity_records(instance: str, rows: Iterable[dict[str, Any]]) -> list[EntityRecord]:
    """API rows to entity records (pure); names as GLPI 11 gives them (GLPI 10: `R&#38;D`)."""
    triples = []
    for row in rows:
        parent = row.get("entities_id")  # null for the root (GLPI 10.0's API)
        triples.append((int(row["id"]), int(parent) if isinstance(parent, int) else None,
                        unsanitized(str(row.get("name", "")))))
    return [
        EntityRecord(e.instance, e.id, e.parent_id, e.name, e.completename, list(e.ancestors))
        for e in build_tree(instance, triples)
    ]


def published_entities(settings: Settings, instance: str) -> dict[str, EntityRecord]:
    return read_table(settings, ENTITIES, EntityRecord, f"{instance}:")


def sync_entities(settings: Settings, client: GlpiClient) -> tuple[int, int, int]:
    """Publish the differences; returns (entities in GLPI, changed, removed)."""
    records = entity_records(client.instance, client.list_items("Entity"))
    current = published_entities(settings, client.instance)
    wanted = {r.key(): r for r in records}
    changed = [r for key, r in wanted.items() if current.get(key) != r]
    removed = [key for key in current if key not in wanted]
    topic, codec, prod = settings.topic(ENTITIES), codec_for(settings), producer(settings)
    errors: list[str] = []
    for record in changed:
        value, headers = codec.encode(record, topic)
        prod.produce(topic, value, record.key().encode(), headers=headers,
                     on_delivery=delivery_callback(errors))
    for key in removed:
        prod.produce(topic, None, key.encode(), on_delivery=delivery_callback(errors))
    flush(prod)
    if errors:
        raise TransientError(f"entities not published: {errors[0]}")
    return len(records), len(changed), len(removed)
