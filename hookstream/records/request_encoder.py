"""A new delivery request's record on hookstream.deliveries, written from its parts.

The processor plans one request per webhook that fires and encodes it at once. Building a
DeliveryRequest, its field dict and fastavro's generic writer for that costs more than
the rest of the request's encoding; here the Avro is written from the event, the webhook
and the rendered URL, headers and body, with what the requests of one webhook or of one
event share encoded once. The bytes are exactly `Codec.encode(DeliveryRequest(...))`'s
for the request `matching.plan` builds (tests/unit/test_request_encoder.py compares them),
and the encoder refuses to start on a DeliveryRequest schema other than the one it writes.

Avro binary encoding, as the specification gives it: int and long are zigzag varints; a
string or bytes is its length then its bytes (UTF-8 for strings); a union is the index
of the branch then its value; a map is blocks of a count then its key and value pairs,
ended by a zero count.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hookstream.records.codec import Codec, load_schema_text
from hookstream.records.definitions import WebhookDefinition
from hookstream.records.events import DeliveryRequest, ItemChangeEvent, delivery_id_for

# The schema this encoder writes, field by field (name, Avro type).
WRITTEN_FIELDS: tuple[tuple[str, Any], ...] = (
    ("delivery_id", "string"),
    ("webhook_id", "string"),
    ("webhook_version", "long"),
    ("instance", "string"),
    ("event_id", "string"),
    ("itemtype", "string"),
    ("items_id", "long"),
    ("event", "string"),
    ("entities_id", ["null", "long"]),
    ("method", "string"),
    ("url", "string"),
    ("headers", {"type": "map", "values": "string"}),
    ("body", "bytes"),
    ("created_at", "long"),
    ("attempt", "int"),
    ("not_before", "long"),
    ("retry_tier", "int"),
    ("hop", "int"),
    ("last_error", ["null", "string"]),
    ("last_status", ["null", "int"]),
)
# A new request's last fields: attempt, not_before, retry_tier and hop 0, no last error
# and no last status (the null branch of each union).
_NEW_REQUEST_TAIL = bytes(6)


class RequestEncoder:
    """Values of new requests (`DeliveryRequest` with its defaults: attempt 0, hop 0, no
    last error) for one topic; `headers` are the records' headers, shared (never changed)."""

    def __init__(self, codec: Codec, topic: str) -> None:
        fields = json.loads(load_schema_text(DeliveryRequest.schema_name))["fields"]
        if tuple((f["name"], f["type"]) for f in fields) != WRITTEN_FIELDS:
            raise RuntimeError("the DeliveryRequest schema changed: update RequestEncoder "
                               "(hookstream/records/request_encoder.py) to write it")
        self._prefix, self.headers = codec.framing(DeliveryRequest.schema_name, topic)
        # webhook id -> (the definition, its webhook_id and webhook_version, its method)
        self._webhooks: dict[str, tuple[WebhookDefinition, bytes, bytes]] = {}
        self._event: ItemChangeEvent | None = None  # the last event, and its fields' Avro
        self._event_fields = b""
        self._created_at, self._created_at_field = -1, b""

    def encode(self, event: ItemChangeEvent, webhook: WebhookDefinition, url: str,
               headers: Mapping[str, str], body: bytes, created_at: int) -> bytes:
        """The value of the request `webhook` renders for `event` (`url`, `headers`,
        `body`), created at `created_at` (Unix ms)."""
        cached = self._webhooks.get(webhook.id)
        if cached is None or cached[0] is not webhook:
            cached = self._webhooks[webhook.id] = (
                webhook, _string(webhook.id) + _long(webhook.version),
                _string(webhook.http_method.upper()))
        if event is not self._event:
            self._event, self._event_fields = event, b"".join((
                _string(event.instance), _string(event.event_id), _string(event.itemtype),
                _long(event.items_id), _string(event.event),
                b"\x00" if event.entities_id is None else b"\x02" + _long(event.entities_id)))
        if created_at != self._created_at:
            self._created_at, self._created_at_field = created_at, _long(created_at)
        parts = [self._prefix, _string(delivery_id_for(event.event_id, webhook.id)), cached[1],
                 self._event_fields, cached[2], _string(url)]
        if headers:
            parts.append(_long(len(headers)))
            for name, value in headers.items():
                parts.append(_string(name))
                parts.append(_string(value))
        parts += (b"\x00", _long(len(body)), body, self._created_at_field, _NEW_REQUEST_TAIL)
        return b"".join(parts)


def _long(n: int) -> bytes:
    """Avro's int or long: zigzag, then 7 bits a byte, the low ones first."""
    n = (n << 1) ^ (n >> 63)
    if n < 0x80:
        return _ONE_BYTE[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_ONE_BYTE = [bytes((n,)) for n in range(0x80)]


def _string(text: str) -> bytes:
    data = text.encode()
    size = len(data)
    return (_SHORT_SIZE[size] if size < 64 else _long(size)) + data


# The one-byte sizes of strings under 64 bytes (ids, names, most URLs and header values),
# looked up rather than zigzagged by `_long` for each.
_SHORT_SIZE = [_long(n) for n in range(64)]


__all__ = ["WRITTEN_FIELDS", "RequestEncoder"]
