"""Reading GLPI item change events from JSON lines, for `hookstream produce`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from hookstream.records.events import ItemChangeEvent, ItemEvent, make_event

REQUIRED = ("itemtype", "items_id", "event", "item")


@dataclass(frozen=True, slots=True)
class BadLine:
    line_no: int
    reason: str


def parse_event_line(line: str, instance: str, now_ms: int, source: str) -> ItemChangeEvent:
    """One JSON object (itemtype, items_id, event, entities_id, item, parent_item, and
    optionally changed_by, a GLPI user id) to an event.

    Raises ValueError with a reason a user can act on.
    """
    try:
        data: Any = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e.msg} at column {e.colno}") from e
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ValueError(f"missing field(s): {', '.join(missing)}")
    if not isinstance(data["itemtype"], str) or not data["itemtype"]:
        raise ValueError("itemtype must be a non-empty string")
    if not isinstance(data["items_id"], int) or isinstance(data["items_id"], bool):
        raise ValueError("items_id must be an integer")
    if data["event"] not in set(ItemEvent):
        raise ValueError(f"event must be new, update or delete, not {data['event']!r}")
    if not isinstance(data["item"], dict):
        raise ValueError("item must be a JSON object")
    parent = data.get("parent_item")
    if parent is not None and not isinstance(parent, dict):
        raise ValueError("parent_item must be a JSON object or null")
    entities_id = data.get("entities_id")
    if entities_id is not None and (
        not isinstance(entities_id, int) or isinstance(entities_id, bool)
    ):
        raise ValueError("entities_id must be an integer or null")
    changed_by = data.get("changed_by")
    if changed_by is not None and (not isinstance(changed_by, int) or isinstance(changed_by, bool)):
        raise ValueError("changed_by must be a GLPI user id (an integer) or null")
    return make_event(
        instance,
        data["itemtype"],
        data["items_id"],
        data["event"],
        data["item"],
        occurred_at=now_ms,
        entities_id=entities_id,
        parent_item=parent,
        source=source,
        changed_by=changed_by,
    )


def parse_event_lines(
    lines: Iterable[str], instance: str, now_ms: int, source: str = "cli"
) -> Iterator[ItemChangeEvent | BadLine]:
    """Events and bad lines, in file order; blank lines are skipped."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield parse_event_line(line, instance, now_ms, source)
        except ValueError as e:
            yield BadLine(number, str(e))
