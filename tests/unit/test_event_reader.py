"""read_item_change: GLPI's events read from their Avro bytes exactly as fastavro reads them,
and anything it cannot read exactly left to fastavro (Codec.decode_many's results and errors
are decode's)."""

from __future__ import annotations

import io
import json
import random
from typing import Any

import fastavro
import pytest

from hookstream.errors import DecodeError
from hookstream.records import Codec, ItemChangeEvent
from hookstream.records.codec import load_schema_text
from hookstream.records.event_reader import read_item_change, reads_schema
from tests.unit.test_codec import sample_records

SCHEMA = fastavro.parse_schema(json.loads(load_schema_text("ItemChangeEvent")))
TEXTS = ["", "glpi-lyon", "Réseau « Rhône »", "😀 astral", "中文", '{"id": 1, "a": "\\u00e9"}',
         "x" * 300]
NUMBERS = [0, 1, -1, 63, 64, -64, -65, 2**31, -(2**31), 2**55, 2**62 - 1, -(2**62)]
HUGE = [2**62, 2**63 - 1, -(2**63)]  # ten bytes as varints: left to fastavro


def fastavro_read(value: bytes) -> ItemChangeEvent:
    return ItemChangeEvent.from_dict(fastavro.schemaless_reader(io.BytesIO(value), SCHEMA, None))


def written(event: ItemChangeEvent) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, SCHEMA, event.to_dict())
    return out.getvalue()


def random_event(rng: random.Random) -> ItemChangeEvent:
    def number() -> int:
        return rng.choice(HUGE if rng.random() < 0.03 else NUMBERS)

    def optional(value: Any) -> Any:
        return None if rng.random() < 0.3 else value

    return ItemChangeEvent(
        event_id=rng.choice(TEXTS), instance=rng.choice(TEXTS), itemtype=rng.choice(TEXTS),
        items_id=number(), event=rng.choice(["new", "update", "delete"]),
        entities_id=optional(number()), occurred_at=number(), item=rng.choice(TEXTS),
        parent_item=optional(rng.choice(TEXTS)), source=rng.choice(TEXTS),
        changed_by=optional(number()),
    )


def test_the_codec_reads_the_current_schema_directly() -> None:
    """Fails when the ItemChangeEvent schema changes: update hookstream/records/event_reader.py
    (READ_FIELDS and read_item_change) to read the new one."""
    assert reads_schema(json.loads(load_schema_text("ItemChangeEvent")))
    assert "ItemChangeEvent" in Codec()._direct_readers


def test_another_schema_is_not_read_directly() -> None:
    schema = json.loads(load_schema_text("ItemChangeEvent"))
    schema["fields"].append({"name": "extra", "type": "string", "default": ""})
    assert not reads_schema(schema)


def test_events_read_as_fastavro_reads_them() -> None:
    rng = random.Random(20261208)
    events = [e for e in sample_records("Ticket.json") if isinstance(e, ItemChangeEvent)]
    events += [random_event(rng) for _ in range(2000)]
    long_varints = 0
    for event in events:
        value = written(event)
        try:
            got = read_item_change(value)
        except ValueError:  # a long of ten bytes: left to fastavro
            long_varints += 1
            continue
        assert got == event == fastavro_read(value)
        assert read_item_change(value + b"trailing") == event  # ignored, as fastavro does
    assert 0 < long_varints < len(events) // 2


@pytest.mark.parametrize("seed", range(3))
def test_damaged_records_decode_as_decode_says(seed: int) -> None:
    """Truncated, flipped and garbage bytes: whatever read_item_change returns is fastavro's
    value, and decode_many gives decode's value or error for each."""
    rng, codec = random.Random(seed), Codec()
    event = random_event(rng)
    value, headers = codec.encode(event, "glpi.item-changes")
    damaged = [value[:n] for n in range(len(value))]
    for _ in range(300):
        flipped = bytearray(value)
        flipped[rng.randrange(len(value))] = rng.randrange(256)
        damaged.append(bytes(flipped))
    damaged += [rng.randbytes(rng.randrange(1, 60)) for _ in range(300)]
    damaged += [b"\x02\xff", b"\x00" * 4 + b"\x07", b"\x00" * 5 + b"\x04"]  # bad UTF-8, enum, union
    read_directly = 0
    for bad in damaged:
        try:
            got: Any = read_item_change(bad)
        except (ValueError, IndexError):
            pass
        else:
            read_directly += 1
            assert got == fastavro_read(bad)
        try:
            expected: Any = codec.decode(bad, headers, ItemChangeEvent)
        except DecodeError as e:
            expected = str(e)
        (many,) = codec.decode_many([(bad, headers)], ItemChangeEvent)
        assert (str(many) if isinstance(many, DecodeError) else many) == expected
    assert read_directly > 0
