"""Avro encoding of every topic record, with fastavro.

Two framings:
- without a schema registry, the value is plain Avro and two headers name the schema
  and its version (`hookstream-schema`, `hookstream-schema-version`);
- with a schema registry, the Confluent wire format: magic byte 0, the 4-byte schema
  id, then Avro. Schema ids come from a `SchemaRegistry` (`hookstream.io.codec_for`
  builds the codec the settings ask for).

Malformed bytes raise `DecodeError`; the caller adds topic, partition and offset.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable, Sequence
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import fastavro

from hookstream.errors import ConfigError, DecodeError, TransientError
from hookstream.records.alert_tickets import AlertRule, AlertTicket, TicketAction
from hookstream.records.alerts import AlertEvent
from hookstream.records.audit import AuditRecord
from hookstream.records.cursor import PollCursor
from hookstream.records.definitions import WebhookDefinition
from hookstream.records.event_reader import read_item_change, reads_schema
from hookstream.records.events import (
    AttemptRecord,
    DeliveryRequest,
    EntityRecord,
    ItemChangeEvent,
    Record,
)
from hookstream.records.instances import InstanceRecord
from hookstream.records.operations import OperationalEvent

SCHEMA_HEADER = "hookstream-schema"
VERSION_HEADER = "hookstream-schema-version"
_MAGIC = 0

RECORD_TYPES: dict[str, type[Record]] = {
    cls.schema_name: cls
    for cls in (
        ItemChangeEvent,
        WebhookDefinition,
        DeliveryRequest,
        AttemptRecord,
        EntityRecord,
        InstanceRecord,
        PollCursor,
        AuditRecord,
        OperationalEvent,
        AlertEvent,
        AlertRule,
        AlertTicket,
        TicketAction,
    )
}

Headers = list[tuple[str, str | bytes | None]]
MessageHeaders = Sequence[tuple[str, str | bytes | None]] | dict[str, str | bytes | None] | None


def header_items(headers: MessageHeaders) -> Headers:
    """A message's headers as a list of pairs, whatever shape the client gave them in."""
    return list(headers.items() if isinstance(headers, dict) else (headers or []))


def dead_letter_headers(headers: MessageHeaders, error: DecodeError) -> Headers:
    """The headers of an undecodable record sent on to a DLQ as it came: its own, why
    (`hookstream-error`) and where it was read (`hookstream-source`, topic:partition:offset,
    from the located `error`), so nothing is lost and an operator can find its origin."""
    return [
        *header_items(headers),
        ("hookstream-error", error.reason.encode()),
        ("hookstream-source", f"{error.topic}:{error.partition}:{error.offset}".encode()),
    ]


def header(headers: MessageHeaders, name: str) -> bytes | None:
    """The value of header `name`, as bytes."""
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    for key, value in items:
        if key == name:
            return value.encode() if isinstance(value, str) else value
    return None


R = TypeVar("R", bound=Record)


class SchemaRegistry(Protocol):
    """Schema ids by subject and schemas by id. `schema_by_id` raises DecodeError for an
    id the registry does not know; a registry out of reach raises TransientError."""

    def register(self, subject: str, schema_json: str) -> int: ...
    def schema_by_id(self, schema_id: int) -> str: ...


def schema_dir() -> Traversable:
    """The schemas: the top-level schemas/ folder of a source tree (or editable install), which
    the wheel carries as hookstream/schemas (setup.py maps it: a wheel holds no symlinks)."""
    packaged = files("hookstream").joinpath("schemas")
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "schemas"


def load_schema_text(name: str) -> str:
    """The Avro schema `name` (its current version)."""
    return schema_dir().joinpath(f"{name}.avsc").read_text()


def older_schema_texts(name: str) -> dict[int, str]:
    """Earlier versions of schema `name` (schemas/history/<name>.v<N>.avsc), by version:
    records written before a field was added are read with the schema they were written in."""
    found = {}
    for entry in schema_dir().joinpath("history").iterdir():
        stem, _, version = entry.name.removesuffix(".avsc").rpartition(".v")
        if stem == name and version.isdigit():
            found[int(version)] = entry.read_text()
    return found


def schema_version(schema: dict[str, Any]) -> int:
    """The version written at the end of a schema's doc ("... version N")."""
    doc = str(schema.get("doc", ""))
    _, _, number = doc.rpartition("version ")
    return int(number) if number.isdigit() else 1


class Codec:
    """Encodes records for a topic and decodes them back into their dataclasses."""

    def __init__(self, registry: SchemaRegistry | None = None):
        self._registry = registry
        self._texts = {name: load_schema_text(name) for name in RECORD_TYPES}
        self._parsed = {
            name: fastavro.parse_schema(json.loads(text)) for name, text in self._texts.items()
        }
        self._versions = {name: schema_version(json.loads(t)) for name, t in self._texts.items()}
        self._headers = {  # encoded once, not per record
            name: ((SCHEMA_HEADER, name.encode()), (VERSION_HEADER, str(version).encode()))
            for name, version in self._versions.items()
        }
        # GLPI's events (the processor's input, decode_many) read without fastavro while
        # their schema is the one event_reader reads; any other record through fastavro.
        self._direct_readers: dict[str, Callable[[bytes], Record]] = {}
        if reads_schema(json.loads(self._texts[ItemChangeEvent.schema_name])):
            self._direct_readers[ItemChangeEvent.schema_name] = read_item_change
        self._ids: dict[tuple[str, str], int] = {}
        self._by_id: dict[int, Any] = {}
        self._older = {  # (name, version) -> the writer schema of records of that version
            (name, version): fastavro.parse_schema(json.loads(text))
            for name in RECORD_TYPES
            for version, text in older_schema_texts(name).items()
        }

    def encode(self, record: Record, topic: str) -> tuple[bytes, Headers]:
        """Value bytes and headers for `record` on `topic`."""
        name = record.schema_name
        prefix, headers = self.framing(name, topic)
        buf = io.BytesIO()
        buf.write(prefix)
        fastavro.schemaless_writer(buf, self._parsed[name], record.to_dict())
        return buf.getvalue(), headers

    def framing(self, name: str, topic: str) -> tuple[bytes, Headers]:
        """What `encode` writes around the Avro of a `name` record on `topic`: the value's
        prefix (the Confluent wire format's magic byte and schema id; nothing without a
        registry) and the headers (a fresh list: callers may add)."""
        prefix = (b"" if self._registry is None
                  else struct.pack(">bI", _MAGIC, self._schema_id(name, topic)))
        return prefix, list(self._headers[name])

    def decode(self, value: bytes | None, headers: MessageHeaders, expected: type[R]) -> R:
        """The record in `value`, or DecodeError saying why it is not one."""
        if value is None:
            raise DecodeError("empty value (tombstone) where a record was expected")
        name = expected.schema_name
        try:
            if self._registry is not None:
                data = self._decode_wire(value, name)
            else:
                found = header(headers, SCHEMA_HEADER)
                if found is None:
                    raise DecodeError(f"no {SCHEMA_HEADER} header")
                if found.decode(errors="replace") != name:
                    raise DecodeError(
                        f"schema {found.decode(errors='replace')!r}, expected {name!r}"
                    )
                data = fastavro.schemaless_reader(io.BytesIO(value), *self._schemas(name, headers))
            if not isinstance(data, dict):
                raise DecodeError("not a record")
            return expected.from_dict(data)
        except (DecodeError, TransientError, ConfigError):
            raise  # a registry down or refusing us is not bad input: no DLQ for it
        except Exception as e:  # fastavro raises many types on garbage: EOFError, ValueError...
            raise DecodeError(f"{name}: {type(e).__name__}: {e}"[:300]) from e

    def decode_many(
        self, records: Sequence[tuple[bytes | None, MessageHeaders]], expected: type[R]
    ) -> list[R | DecodeError]:
        """`decode` of each (value, headers) of a batch, a failure returned in its place.

        Records framed by headers in the current version (the steady state) are read in one
        loop with the schema looked up once (GLPI's events by `read_item_change`, without
        fastavro); any other record, and any that fails there, goes through `decode`, so
        results and errors are exactly `decode`'s."""
        name = expected.schema_name
        schema = self._parsed[name]
        current = tuple(value for _, value in self._headers[name])  # (name, version) bytes
        # The headers `encode` writes, as the Kafka client gives them back: one comparison
        # where two look-ups would be made (any other shape is looked into below).
        as_written = list(self._headers[name])
        read, from_dict = fastavro.schemaless_reader, expected.from_dict
        direct = self._direct_readers.get(name)
        out: list[R | DecodeError] = []
        for value, headers in records:
            if (value is not None and self._registry is None
                    and (headers == as_written
                         or (header(headers, SCHEMA_HEADER), header(headers, VERSION_HEADER))
                         == current)):
                try:
                    if direct is not None:
                        out.append(direct(value))  # type: ignore[arg-type]
                        continue
                    data = read(io.BytesIO(value), schema, None)
                    if isinstance(data, dict):
                        out.append(from_dict(data))
                        continue
                except Exception:  # decode, below, says why as a DecodeError
                    pass
            try:
                out.append(self.decode(value, headers, expected))
            except DecodeError as e:
                out.append(e)
        return out

    def _schemas(self, name: str, headers: MessageHeaders) -> tuple[Any, Any]:
        """(writer, reader) for a header-framed record: an older version is resolved into
        the current schema, its missing fields taking their defaults."""
        found = header(headers, VERSION_HEADER)
        version = int(found) if found is not None and found.isdigit() else self._versions[name]
        if version == self._versions[name]:
            return self._parsed[name], None
        writer = self._older.get((name, version))
        if writer is None:
            raise DecodeError(f"{name} version {version} is not known to this hookstream")
        return writer, self._parsed[name]

    def decode_any(self, value: bytes | None, headers: MessageHeaders, topic: str) -> Record:
        """Decode a record whose type is named by its header, or else implied by its topic."""
        name = (header(headers, SCHEMA_HEADER) or b"").decode(errors="replace")
        expected = RECORD_TYPES.get(name) or RECORD_TYPES.get(topic_schema(topic))
        if expected is None:
            raise DecodeError(f"cannot tell the schema of a record on {topic}")
        return self.decode(value, headers, expected)

    def _decode_wire(self, value: bytes, name: str) -> Any:
        if len(value) < 5 or value[0] != _MAGIC:
            raise DecodeError("not in Confluent wire format (bad magic byte)")
        (schema_id,) = struct.unpack(">I", value[1:5])
        writer = self._writer_schema(schema_id)
        return fastavro.schemaless_reader(io.BytesIO(value[5:]), writer, self._parsed[name])

    def _schema_id(self, name: str, topic: str) -> int:
        key = (name, topic)
        if key not in self._ids:
            assert self._registry is not None
            self._ids[key] = self._registry.register(f"{topic}-value", self._texts[name])
        return self._ids[key]

    def _writer_schema(self, schema_id: int) -> Any:
        if schema_id not in self._by_id:
            assert self._registry is not None
            text = self._registry.schema_by_id(schema_id)  # DecodeError for an unknown id
            self._by_id[schema_id] = fastavro.parse_schema(json.loads(text))
        return self._by_id[schema_id]


def topic_schema(topic: str) -> str:
    """The schema a topic holds, from its name (without prefix)."""
    for suffix, name in (
        ("glpi.item-changes", "ItemChangeEvent"),
        (".webhooks", "WebhookDefinition"),
        (".entities", "Entity"),
        (".instances", "Instance"),
        (".attempts", "AttemptRecord"),
        (".poller-cursors", "PollCursor"),
        (".alerts", "AlertEvent"),
        (".alerts.dlq", "AlertEvent"),
        (".alert-rules", "AlertRule"),
        (".alert-tickets", "AlertTicket"),
        (".alert-actions", "TicketAction"),
    ):
        if topic.endswith(suffix):
            return name
    return "DeliveryRequest"  # deliveries, retry tiers and the DLQ


def record_to_json(record: Record) -> dict[str, Any]:
    """A record as JSON-ready values: bytes as UTF-8 text (or hex), JSON strings parsed."""
    out: dict[str, Any] = {}
    for key, value in record.to_dict().items():
        if isinstance(value, bytes):
            try:
                value = value.decode()
            except UnicodeDecodeError:
                value = value.hex()
        out[key] = value
    return out
