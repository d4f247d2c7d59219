"""GLPI entity trees and the entity-scope rule of webhook matching.

One tree per GLPI instance, fed from the compacted `hookstream.entities` topic (key
`instance:id`). Each record carries its own `ancestors`, computed by the connector
with `build_tree`, so a scope check is a tuple lookup, never a walk up the tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hookstream.errors import DecodeError

ROOT_ENTITY_ID = 0


@dataclass(frozen=True, slots=True)
class Entity:
    """One node of an instance's entity tree."""

    instance: str
    id: int
    parent_id: int | None  # None for the root entity 0
    name: str
    completename: str  # "Root entity > Europe > France"
    ancestors: tuple[int, ...]  # ids from the root down to the parent: (0, 1) for France


def entity_key(instance: str, entities_id: int) -> str:
    """The topic key of an entity record: `instance:id`."""
    return f"{instance}:{entities_id}"


class EntityTable:
    """In-memory entity trees of every instance, keyed by (instance, id)."""

    def __init__(self) -> None:
        self._nodes: dict[tuple[str, int], Entity] = {}

    def put(self, entity: Entity) -> None:
        """Insert or replace one entity (a record from the compacted topic)."""
        self._nodes[(entity.instance, entity.id)] = entity

    def remove(self, instance: str, entities_id: int) -> None:
        """Forget an entity (a tombstone on the topic); unknown ids are ignored."""
        self._nodes.pop((instance, entities_id), None)

    def get(self, instance: str, entities_id: int) -> Entity | None:
        """The entity, or None when it is not synced (yet)."""
        return self._nodes.get((instance, entities_id))

    def ancestors(self, instance: str, entities_id: int) -> tuple[int, ...]:
        """Ancestor ids from the root down to the parent; () when the entity is unknown."""
        entity = self._nodes.get((instance, entities_id))
        return entity.ancestors if entity is not None else ()

    def resolver(self, instance: str) -> Callable[[str, int], tuple[int, ...]]:
        """An `ancestors_of(kind, id)` for `criteria.evaluate`: entities only, () otherwise."""

        def ancestors_of(kind: str, node_id: int) -> tuple[int, ...]:
            return self.ancestors(instance, node_id) if kind == "entity" else ()

        return ancestors_of

    def __len__(self) -> int:
        return len(self._nodes)


def in_scope(
    item_entity: int | None, webhook_entity: int, is_recursive: bool, ancestors: tuple[int, ...]
) -> bool:
    """GLPI's entity rule: does a webhook of `webhook_entity` see an item of `item_entity`?

    The item's entity equals the webhook's, or the webhook is recursive and its entity
    is one of `ancestors` (the item entity's ancestors). An item without an entity
    matches only webhooks of the root entity 0, recursive or not.

    When the item's entity is not in the table yet, `ancestors` is (): a recursive
    webhook of the root entity still matches, because every entity descends from the
    root; any other recursive webhook does not, until the tree is synced.
    """
    if item_entity is None:
        return webhook_entity == ROOT_ENTITY_ID
    if item_entity == webhook_entity:
        return True
    if not is_recursive:
        return False
    return webhook_entity == ROOT_ENTITY_ID or webhook_entity in ancestors


def build_tree(instance: str, rows: Iterable[tuple[int, int | None, str]]) -> list[Entity]:
    """Entities with `ancestors` and `completename` computed from (id, parent_id, name) rows.

    GLPI 10.0's API gives the root's parent as null (older versions -1 or 0); a parent
    that is None, negative or equal to the row's own id marks a root. A row whose parent is missing
    from `rows` becomes the top of its own chain: its ancestors stop there. Raises
    ValueError on a cycle, which a GLPI database cannot hold but a bad export could.
    """
    parents: dict[int, int | None] = {}
    names: dict[int, str] = {}
    for entity_id, parent_id, name in rows:
        is_root = parent_id is None or parent_id < 0 or parent_id == entity_id
        parents[entity_id] = None if is_root else parent_id
        names[entity_id] = name

    def chain(entity_id: int) -> tuple[int, ...]:
        # Walk up iteratively: trees are shallow, but recursion depth is not ours to bet.
        seen: list[int] = []
        parent = parents[entity_id]
        while parent is not None and parent in parents:
            if parent in seen or parent == entity_id:
                raise ValueError(f"entity {entity_id} of {instance}: cycle through {parent}")
            seen.append(parent)
            parent = parents[parent]
        return tuple(reversed(seen))

    entities = []
    for entity_id in sorted(parents):
        ancestors = chain(entity_id)
        completename = " > ".join([*(names[a] for a in ancestors), names[entity_id]])
        entities.append(
            Entity(instance, entity_id, parents[entity_id], names[entity_id], completename,
                   ancestors)
        )
    return entities


def entity_to_dict(entity: Entity) -> dict[str, Any]:
    """The codec's plain dict (the Avro `Entity` record)."""
    return {
        "instance": entity.instance,
        "id": entity.id,
        "parent_id": entity.parent_id,
        "name": entity.name,
        "completename": entity.completename,
        "ancestors": list(entity.ancestors),
    }


def entity_from_dict(data: Mapping[str, Any]) -> Entity:
    """An Entity from the codec's dict; DecodeError when a field is missing or mistyped."""

    def integer(value: Any, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise DecodeError(f"Entity.{field} must be an integer, got {value!r}")
        return value

    def text(value: Any, field: str) -> str:
        if not isinstance(value, str):
            raise DecodeError(f"Entity.{field} must be a string, got {value!r}")
        return value

    try:
        parent = data["parent_id"]
        raw_ancestors = data.get("ancestors") or []
        if not isinstance(raw_ancestors, list | tuple):
            raise DecodeError(f"Entity.ancestors must be a list, got {raw_ancestors!r}")
        return Entity(
            instance=text(data["instance"], "instance"),
            id=integer(data["id"], "id"),
            parent_id=None if parent is None else integer(parent, "parent_id"),
            name=text(data["name"], "name"),
            completename=text(data["completename"], "completename"),
            ancestors=tuple(integer(a, "ancestors[]") for a in raw_ancestors),
        )
    except KeyError as e:
        raise DecodeError(f"Entity record lacks {e.args[0]!r}") from e
