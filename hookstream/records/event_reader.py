"""GLPI's events read straight from their Avro bytes, for the processor's batches.

fastavro's `schemaless_reader` sets up a reader for every call and hands back a dict that
`from_dict` then turns into the dataclass; for the processor's input, one record per event,
that was most of the decoding. `read_item_change` reads the current ItemChangeEvent schema
field by field into the dataclass. It reads only what it reads exactly as fastavro does and
raises ValueError or IndexError on anything else (bytes missing, invalid UTF-8, a union or
enum index out of range, a long of ten bytes or more), and the caller then decodes the
record with fastavro, so values and errors stay fastavro's. Bytes after the record are
ignored, as fastavro ignores them. `Codec` uses it only while the schema is the one it reads
(`reads_schema`; tests/unit/test_event_reader.py compares it with fastavro).

Avro binary encoding: see request_encoder.py.
"""

from __future__ import annotations

from typing import Any

from hookstream.records.events import ItemChangeEvent

# The ItemChangeEvent schema this reader reads, field by field (name, Avro type).
READ_FIELDS: tuple[tuple[str, Any], ...] = (
    ("event_id", "string"),
    ("instance", "string"),
    ("itemtype", "string"),
    ("items_id", "long"),
    ("event", {"type": "enum", "name": "ItemEvent", "symbols": ["new", "update", "delete"]}),
    ("entities_id", ["null", "long"]),
    ("occurred_at", "long"),
    ("item", "string"),
    ("parent_item", ["null", "string"]),
    ("source", "string"),
    ("changed_by", ["null", "long"]),
)
_EVENTS = ("new", "update", "delete")


def reads_schema(schema: dict[str, Any]) -> bool:
    """Whether `schema` (the parsed JSON of an .avsc) is the one `read_item_change` reads."""
    return tuple((f["name"], f["type"]) for f in schema["fields"]) == READ_FIELDS


def read_item_change(data: bytes) -> ItemChangeEvent:
    """The event in `data`, as fastavro reads it; ValueError or IndexError where this reader
    cannot tell (the caller decodes with fastavro then)."""
    event_id, pos = _string(data, 0)
    instance, pos = _string(data, pos)
    itemtype, pos = _string(data, pos)
    items_id, pos = _long(data, pos)
    symbol, pos = _long(data, pos)
    if not 0 <= symbol < len(_EVENTS):
        raise IndexError("enum symbol out of range")
    entities_id, pos = _optional_long(data, pos)
    occurred_at, pos = _long(data, pos)
    item, pos = _string(data, pos)
    branch, pos = _branch(data, pos)
    parent_item = None
    if branch:
        parent_item, pos = _string(data, pos)
    source, pos = _string(data, pos)
    changed_by, pos = _optional_long(data, pos)
    return ItemChangeEvent(event_id, instance, itemtype, items_id, _EVENTS[symbol], entities_id,
                           occurred_at, item, parent_item, source, changed_by)


def _long(data: bytes, pos: int) -> tuple[int, int]:
    """An int or long (zigzag varint) at `pos`, and the position after it. Nine bytes at
    most (63 bits), where fastavro's 64-bit arithmetic and Python's agree."""
    byte = data[pos]
    if byte < 0x80:  # one byte: most lengths, flags and small numbers
        return (byte >> 1) ^ -(byte & 1), pos + 1
    n, shift = byte & 0x7F, 7
    while True:
        pos += 1
        byte = data[pos]
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (n >> 1) ^ -(n & 1), pos + 1
        shift += 7
        if shift > 56:
            raise ValueError("a long of ten bytes or more")


def _branch(data: bytes, pos: int) -> tuple[int, int]:
    """The branch of a ["null", X] union: 0 or 1."""
    branch, pos = _long(data, pos)
    if branch != 0 and branch != 1:
        raise IndexError("union branch out of range")
    return branch, pos


def _optional_long(data: bytes, pos: int) -> tuple[int | None, int]:
    branch, pos = _branch(data, pos)
    return _long(data, pos) if branch else (None, pos)


def _string(data: bytes, pos: int) -> tuple[str, int]:
    size, pos = _long(data, pos)
    end = pos + size
    if size < 0 or end > len(data):
        raise ValueError("string beyond the record")
    return data[pos:end].decode(), end


__all__ = ["READ_FIELDS", "read_item_change", "reads_schema"]
