"""`hookstream glpi sync-entities` against a real GLPI 10: a three-level tree made through
GLPI's API, with the characters GLPI 10 sanitizes in its names, published as GLPI holds it
(complete names computed by GLPI, ancestors, recursion), then renamed and deleted."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from connectors.glpi.entities import published_entities
from hookstream.config import Settings
from hookstream.matching.entities import in_scope
from hookstream.records.legacy import unsanitized, unsanitized_completename
from tests.integration.harness import cli_env
from tests.real_glpi.conftest import INSTANCE, RealGlpi


def sync(settings: Settings) -> str:
    done = subprocess.run([sys.executable, "-m", "hookstream.cli", "glpi", "sync-entities",
                           "--instance", INSTANCE], env=cli_env(settings), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def glpi_chain(rows: dict[int, dict[str, Any]], ident: int) -> list[int]:
    """GLPI's ancestors of an entity, root first, from its own parent links."""
    chain, parent = [], rows[ident]["entities_id"]
    while parent is not None:
        chain.insert(0, int(parent))
        parent = rows[int(parent)]["entities_id"]
    return chain


def test_a_three_level_tree_is_published_as_glpi_holds_it(
        published: Settings, real_glpi: RealGlpi) -> None:
    with real_glpi.client() as glpi:
        europe = glpi.add_item("Entity", {"name": "Europe & Co", "entities_id": 0})
        france = glpi.add_item("Entity", {"name": "France <FR>", "entities_id": europe})
        paris = glpi.add_item("Entity", {"name": "Paris", "entities_id": france})
        rows = {int(r["id"]): r for r in glpi.list_items("Entity")}
        assert sync(published) == (
            f"{INSTANCE}: {len(rows)} entities, {len(rows)} published, 0 removed")
        records = {r.id: r for r in published_entities(published, INSTANCE).values()}
        assert sorted(records) == sorted(rows)
        for ident, row in rows.items():
            record = records[ident]
            assert record.name == unsanitized(row["name"])
            # GLPI's own complete name: sanitized names joined by a raw " > "
            assert record.completename == unsanitized_completename(row["completename"])
            assert list(record.ancestors) == glpi_chain(rows, ident)
            assert len(record.ancestors) + 1 == row["level"]
        assert records[paris].completename == "Root entity > Europe & Co > France <FR> > Paris"
        ancestors = tuple(records[paris].ancestors)
        assert in_scope(paris, europe, True, ancestors)  # recursive: sub-entities too
        assert not in_scope(paris, europe, False, ancestors)
        assert not in_scope(europe, france, True, tuple(records[europe].ancestors))

        assert sync(published).endswith(" 0 published, 0 removed")  # a rerun changes nothing
        # renamed as GLPI's form does it, with the parent in the input
        glpi.update_item("Entity", france, {"name": "France & DOM", "entities_id": europe})
        assert sync(published).endswith(" 2 published, 0 removed")  # France and Paris
        paris_row = glpi.get_item("Entity", paris)
        records = {r.id: r for r in published_entities(published, INSTANCE).values()}
        assert records[paris].completename == unsanitized_completename(
            paris_row["completename"]) == (
            "Root entity > Europe & Co > France & DOM > Paris")
        # measured: an API update without the parent moves the entity under the root in
        # GLPI 10.0.19 (entities_id 0) and stores complete names without the root; the
        # published tree follows GLPI's parent links, root included
        glpi.update_item("Entity", france, {"name": "France"})
        assert glpi.get_item("Entity", france)["entities_id"] == 0
        assert glpi.get_item("Entity", paris)["completename"] == "France > Paris"
        assert sync(published).endswith(" 2 published, 0 removed")
        records = {r.id: r for r in published_entities(published, INSTANCE).values()}
        assert records[paris].completename == "Root entity > France > Paris"
        assert list(records[paris].ancestors) == [0, france]
        glpi.request("DELETE", f"Entity/{paris}", params={"force_purge": "true"})
        assert sync(published).endswith(" 0 published, 1 removed")
        assert paris not in {r.id for r in published_entities(published, INSTANCE).values()}
