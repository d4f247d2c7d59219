"""Judging one GLPI 11 native webhook request: the pure core of the ingest endpoint.

`assess` takes what the HTTP layer read (instance, itemtype, method, query, headers,
body, source address) plus the instance's decrypted settings and the current time, and
returns one explicit verdict: `Accept` (an ItemChangeEvent to produce), `Reject` (an
HTTP status and the reason) or `Challenge` (the answer to GLPI's CRA challenge).

Nothing here does I/O; the secret, the clock and the limits are arguments.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from hookstream.policy.signing import cra_expected_answer, cra_token, glpi_signature
from hookstream.policy.ssrf import Network
from hookstream.records import ItemChangeEvent
from hookstream.records.changed_by import changed_by_in_payload
from hookstream.render import default_payload

EVENTS = frozenset({"new", "update", "delete"})
# GLPI class names: Ticket, ITILFollowup, Glpi\CustomAsset\RackAsset...
ITEMTYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}(\\[A-Za-z][A-Za-z0-9_]{0,63}){0,4}$")
# GLPI posts by default, but a webhook may be set to GET, PUT, PATCH or UPDATE.
METHODS = frozenset({"POST", "GET", "PUT", "PATCH", "UPDATE"})
FUTURE_SKEW_S = 300  # clocks of GLPI and hookstream may disagree a little
SOURCE = "glpi-webhook"
EXACT_SAMPLE = 16


@dataclass(frozen=True, slots=True)
class IngestInstance:
    """What the endpoint needs of an instance: decrypted secret, parsed networks."""

    name: str
    secret: str
    networks: tuple[Network, ...] = ()
    tolerance_s: int = 3600


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    itemtype: str
    method: str
    body: bytes
    signature: str | None  # X-GLPI-signature
    timestamp: str | None  # X-GLPI-timestamp
    crc_token: str | None  # GLPI's CRA challenge (query parameter)
    source: str  # the peer address


@dataclass(frozen=True, slots=True)
class Accept:
    event: ItemChangeEvent
    dedup_key: bytes
    timestamp_s: int
    # hookstream's default payload for the event is these very bytes; None: not checked
    # (one request in EXACT_SAMPLE is, by its key: the check costs as much as the rest)
    exact: bool | None


@dataclass(frozen=True, slots=True)
class Reject:
    status: int
    reason: str
    outcome: str  # a metric label: bad_signature, stale, forbidden, invalid...


@dataclass(frozen=True, slots=True)
class Challenge:
    answer: str


Verdict = Accept | Reject | Challenge


def source_allowed(address: str, networks: Sequence[Network]) -> bool:
    """An empty list allows any source; else the address must be in one network."""
    if not networks:
        return True
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in networks)


def signature_valid(secret: str, body: bytes, timestamp: str, signature: str) -> bool:
    """GLPI's signature over body + timestamp digits, compared in constant time."""
    expected = glpi_signature(secret, body, int(timestamp))
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


def dedup_key(instance: str, itemtype: str, timestamp: str, body: bytes) -> bytes:
    """Identifies one GLPI queued row: GLPI resends the same body and timestamp on retry."""
    digest = hashlib.sha256(f"{instance}\x1f{itemtype}\x1f{timestamp}\x1f".encode())
    digest.update(body)
    return digest.digest()[:16]


def parse_payload(body: bytes) -> tuple[dict[str, Any], str, dict[str, Any] | None]:
    """GLPI's default payload: (item, event, parent_item); ValueError says what is wrong."""
    try:
        # ~3x faster, same values and key order; integers past 64 bits (which PHP's
        # json_encode never writes) would come out as floats
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:  # what orjson refuses (a lone surrogate escape...), json may still read
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"body is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object with item and event")
    unknown = sorted(set(data) - {"item", "event", "parent_item"})
    if unknown:
        raise ValueError(f"unexpected key(s) {', '.join(unknown)}: not GLPI's default payload")
    item = data.get("item")
    if not isinstance(item, dict):
        raise ValueError("item must be a JSON object")
    items_id = item.get("id")
    if not isinstance(items_id, int) or isinstance(items_id, bool) or items_id < 0:
        raise ValueError("item.id must be a non-negative integer")
    event = data.get("event")
    if event not in EVENTS:
        raise ValueError(f"event must be new, update or delete, not {event!r}")
    parent = data.get("parent_item")
    if parent is not None and not isinstance(parent, dict):
        raise ValueError("parent_item must be a JSON object")
    return item, str(event), parent


def _entity_of(item: Mapping[str, Any] | None) -> int | None:
    entity = item.get("entity") if item is not None else None
    ident = entity.get("id") if isinstance(entity, dict) else None
    return ident if isinstance(ident, int) and not isinstance(ident, bool) else None


def _timestamp_problem(timestamp: str, now_s: float, tolerance_s: int) -> str | None:
    if not timestamp.isdigit() or len(timestamp) > 12:
        return "X-GLPI-timestamp must be Unix seconds"
    age_s = now_s - int(timestamp)
    if age_s > tolerance_s:
        return f"X-GLPI-timestamp is {age_s:.0f}s old, beyond the {tolerance_s}s tolerance"
    if age_s < -FUTURE_SKEW_S:
        return f"X-GLPI-timestamp is {-age_s:.0f}s in the future"
    return None


def _challenge(instance: IngestInstance, token: str) -> Verdict:
    # Answer only GLPI's own token: answering any token would make this endpoint an
    # HMAC oracle that signs whatever an attacker sends, webhook bodies included.
    if not hmac.compare_digest(token.encode(), cra_token(instance.secret).encode()):
        return Reject(401, "crc_token is not this instance's challenge", "bad_challenge")
    return Challenge(cra_expected_answer(instance.secret, token))


def assess(
    request: IncomingRequest, instance: IngestInstance, now_s: float, max_body_bytes: int
) -> Verdict:
    """The verdict on one request to /glpi/{instance}/{itemtype}."""
    if not source_allowed(request.source, instance.networks):
        return Reject(403, f"source {request.source} is not allowed for this instance", "forbidden")
    if request.method not in METHODS:
        return Reject(405, f"GLPI does not send {request.method}", "bad_method")
    if (
        request.method == "GET"
        and request.crc_token is not None
        and request.signature is None
    ):
        return _challenge(instance, request.crc_token)
    if len(request.body) > max_body_bytes:
        return Reject(413, f"body over {max_body_bytes} bytes", "too_large")
    if not request.signature or not request.timestamp:
        return Reject(401, "X-GLPI-signature and X-GLPI-timestamp are required", "bad_signature")
    problem = _timestamp_problem(request.timestamp, now_s, instance.tolerance_s)
    if problem is not None:
        return Reject(401, problem, "stale")
    if not signature_valid(instance.secret, request.body, request.timestamp, request.signature):
        return Reject(401, "X-GLPI-signature does not match", "bad_signature")
    if not ITEMTYPE.match(request.itemtype):
        return Reject(400, f"{request.itemtype[:70]!r} is not a GLPI itemtype", "invalid")
    try:
        item, event, parent = parse_payload(request.body)
    except ValueError as e:
        return Reject(400, str(e)[:300], "invalid")
    return accept(instance.name, request.itemtype, request.timestamp, request.body,
                  item, event, parent)


def accept(
    instance: str,
    itemtype: str,
    timestamp: str,
    body: bytes,
    item: Mapping[str, Any],
    event: str,
    parent: Mapping[str, Any] | None,
) -> Accept:
    """The event for a verified, valid body, with the fields `hookstream produce` gives it.

    occurred_at is GLPI's timestamp: the moment GLPI queued the change. The event id is
    the dedup key, so a GLPI retry carries the same id (and the same delivery ids) while
    two different requests never share one; make_event's id, a hash of the item state,
    would merge two updates that leave an item unchanged. Followups, tasks, solutions and
    validations carry no entity of their own: GLPI matches them by their parent's entity,
    which `parent_item` carries, so the event takes it from there.
    """
    key = dedup_key(instance, itemtype, timestamp, body)
    made = ItemChangeEvent(
        event_id=key.hex(),
        instance=instance,
        itemtype=itemtype,
        items_id=int(item["id"]),
        event=event,
        entities_id=_entity_of(item) if "entity" in item else _entity_of(parent),
        occurred_at=int(timestamp) * 1000,
        item=_json(item),
        parent_item=None if parent is None else _json(parent),
        source=SOURCE,
        changed_by=changed_by_in_payload(itemtype, event, item),
    )
    exact: bool | None = None
    if key[0] % EXACT_SAMPLE == 0:
        try:
            exact = default_payload(item, event, parent) == body
        except (TypeError, ValueError):
            exact = False
    return Accept(made, key, int(timestamp), exact)


def _json(value: Mapping[str, Any]) -> str:
    """The JSON text of a parsed body part: orjson (a tenth of json's time on 3 KiB), or
    json for what orjson refuses (a lone surrogate, read by parse_payload's fallback)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(value, ensure_ascii=False)
