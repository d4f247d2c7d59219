"""Entity trees and GLPI's entity-scope rule."""

from __future__ import annotations

import pytest

from hookstream.errors import DecodeError
from hookstream.matching import (
    Entity,
    EntityTable,
    build_tree,
    entity_from_dict,
    entity_key,
    entity_to_dict,
    in_scope,
)
from tests.conftest import fixture_item

# Root entity(0) > Europe(1) > France(3); Europe > Deutschland(2) > München(7);
# Root > Americas(4). GLPI stores the root's parent as -1.
ROWS = [(0, -1, "Root entity"), (1, 0, "Europe"), (2, 1, "Deutschland"), (3, 1, "France"),
        (4, 0, "Americas"), (7, 2, "München")]


def table() -> EntityTable:
    entities = EntityTable()
    for entity in build_tree("glpi-fr", ROWS):
        entities.put(entity)
    return entities


def test_build_tree_computes_ancestors_and_completename() -> None:
    by_id = {e.id: e for e in build_tree("glpi-fr", ROWS)}
    assert by_id[0] == Entity("glpi-fr", 0, None, "Root entity", "Root entity", ())
    assert by_id[3].ancestors == (0, 1)
    assert by_id[7].ancestors == (0, 1, 2)
    assert by_id[3].completename == fixture_item("Ticket.json")["entity"]["completename"]
    assert by_id[7].completename == fixture_item("Computer.json")["entity"]["completename"]


def test_build_tree_with_missing_parent_stops_the_chain() -> None:
    (orphan,) = build_tree("i", [(5, 9, "Orphan")])
    assert orphan.parent_id == 9
    assert orphan.ancestors == ()
    assert orphan.completename == "Orphan"


def test_build_tree_rejects_cycles() -> None:
    with pytest.raises(ValueError, match="cycle"):
        build_tree("i", [(1, 2, "a"), (2, 1, "b")])


def test_table_put_get_remove_len_and_ancestors() -> None:
    entities = table()
    assert len(entities) == 6
    france = entities.get("glpi-fr", 3)
    assert france is not None and france.name == "France"
    assert entities.ancestors("glpi-fr", 7) == (0, 1, 2)
    assert entities.ancestors("other", 7) == ()  # trees are per instance
    assert entities.ancestors("glpi-fr", 99) == ()  # not synced yet
    entities.remove("glpi-fr", 3)
    entities.remove("glpi-fr", 3)  # removing twice is harmless
    assert entities.get("glpi-fr", 3) is None
    assert len(entities) == 5


def test_put_replaces_an_entity() -> None:
    entities = table()
    entities.put(Entity("glpi-fr", 3, 4, "France", "Root entity > Americas > France", (0, 4)))
    assert entities.ancestors("glpi-fr", 3) == (0, 4)
    assert len(entities) == 6


def test_resolver_feeds_entities_only() -> None:
    ancestors_of = table().resolver("glpi-fr")
    assert ancestors_of("entity", 3) == (0, 1)
    assert ancestors_of("category", 3) == ()


@pytest.mark.parametrize(
    ("item_entity", "webhook_entity", "is_recursive", "ancestors", "expected"),
    [
        (3, 3, False, (0, 1), True),  # same entity
        (3, 3, True, (0, 1), True),
        (3, 1, False, (0, 1), False),  # parent, not recursive
        (3, 1, True, (0, 1), True),  # ancestor, recursive
        (3, 0, True, (0, 1), True),  # root, recursive
        (3, 0, False, (0, 1), False),  # root, not recursive
        (3, 2, True, (0, 1), False),  # a sibling branch
        (1, 3, True, (0,), False),  # a descendant does not see its parent
        (0, 0, False, (), True),
        (None, 0, False, (), True),  # no entity: root webhooks only
        (None, 0, True, (), True),
        (None, 1, True, (), False),
        (3, 0, True, (), True),  # not synced: the root still sees everything
        (3, 1, True, (), False),  # not synced: other recursive webhooks wait for the tree
    ],
)
def test_in_scope(item_entity: int | None, webhook_entity: int, is_recursive: bool,
                  ancestors: tuple[int, ...], expected: bool) -> None:
    assert in_scope(item_entity, webhook_entity, is_recursive, ancestors) is expected


def test_entity_key() -> None:
    assert entity_key("glpi-fr", 3) == "glpi-fr:3"


def test_dict_round_trip() -> None:
    for entity in build_tree("glpi-fr", ROWS):
        data = entity_to_dict(entity)
        assert isinstance(data["ancestors"], list)
        assert entity_from_dict(data) == entity
    assert entity_to_dict(table().get("glpi-fr", 3) or Entity("", 0, None, "", "", ())) == {
        "instance": "glpi-fr", "id": 3, "parent_id": 1, "name": "France",
        "completename": "Root entity > Europe > France", "ancestors": [0, 1],
    }


@pytest.mark.parametrize(
    "data",
    [
        {"instance": "i", "id": 1, "parent_id": 0, "name": "x"},  # no completename
        {"instance": "i", "id": "1", "parent_id": 0, "name": "x", "completename": "x"},
        {"instance": "i", "id": 1, "parent_id": 0, "name": "x", "completename": "x",
         "ancestors": "0"},
        {"instance": "i", "id": 1, "parent_id": True, "name": "x", "completename": "x"},
    ],
)
def test_from_dict_rejects_bad_records(data: dict[str, object]) -> None:
    with pytest.raises(DecodeError):
        entity_from_dict(data)
