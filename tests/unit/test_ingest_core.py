"""The pure core of the ingest endpoint: signature, timestamp, payload, verdicts, dedup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hookstream.policy import (
    Accept,
    AcceptedRequests,
    Challenge,
    IncomingRequest,
    IngestInstance,
    Reject,
    assess,
    cra_expected_answer,
    cra_token,
    glpi_signature,
    parse_networks,
)
from hookstream.records import make_event
from hookstream.render import default_payload
from tests.conftest import FIXTURES

SECRET = "s3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3c"
NOW = 1_764_000_000
INSTANCE = IngestInstance("glpi-a", SECRET, tolerance_s=3600)
BODY = (FIXTURES / "webhook_default_payloads" / "Ticket_new.json").read_bytes()


def request(
    body: bytes = BODY,
    timestamp: int | str | None = NOW - 30,
    signature: str | None = "",
    method: str = "POST",
    itemtype: str = "Ticket",
    crc_token: str | None = None,
    source: str = "127.0.0.1",
) -> IncomingRequest:
    ts = None if timestamp is None else str(timestamp)
    if signature == "" and ts is not None and ts.isdigit():
        signature = glpi_signature(SECRET, body, int(ts))
    return IncomingRequest(itemtype, method, body, signature or None, ts, crc_token, source)


def verdict(req: IncomingRequest, instance: IngestInstance = INSTANCE) -> object:
    return assess(req, instance, NOW, max_body_bytes=100_000)


@pytest.mark.parametrize(
    ("req", "status", "outcome"),
    [
        (request(signature=None), 401, "bad_signature"),
        (request(signature="0" * 64), 401, "bad_signature"),
        (request(signature=glpi_signature("other", BODY, NOW - 30)), 401, "bad_signature"),
        (request(timestamp=None, signature="ab"), 401, "bad_signature"),
        (request(timestamp=NOW - 3601), 401, "stale"),
        (request(timestamp=NOW + 301), 401, "stale"),
        (request(timestamp="12ab", signature="x"), 401, "stale"),
        (request(body=b"x" * 100_001), 413, "too_large"),
        (request(body=b"not json"), 400, "invalid"),
        (request(body=b"[1, 2]"), 400, "invalid"),
        (request(body=b'{"item": {"id": 1}, "event": "purge"}'), 400, "invalid"),
        (request(body=b'{"item": {"id": "1"}, "event": "new"}'), 400, "invalid"),
        (request(body=b'{"item": [], "event": "new"}'), 400, "invalid"),
        (request(body=b'{"item": {"id": 1}, "event": "new", "parent_item": 3}'), 400, "invalid"),
        (request(body=b'{"item": {"id": 1}, "event": "new", "extra": 1}'), 400, "invalid"),
        (request(itemtype="Ticket;drop"), 400, "invalid"),
        (request(method="DELETE"), 405, "bad_method"),
        (request(crc_token="not-the-token", method="GET", signature=None), 401, "bad_challenge"),
    ],
)
def test_rejections(req: IncomingRequest, status: int, outcome: str) -> None:
    result = verdict(req)
    assert isinstance(result, Reject), result
    assert (result.status, result.outcome) == (status, outcome)
    assert SECRET not in result.reason


def test_source_outside_the_instance_networks_is_forbidden() -> None:
    closed = IngestInstance("glpi-a", SECRET, tuple(parse_networks(["10.0.0.0/8"])))
    result = verdict(request(source="192.0.2.1"), closed)
    assert isinstance(result, Reject) and result.status == 403
    assert isinstance(verdict(request(source="10.1.2.3"), closed), Accept)
    assert isinstance(verdict(request(source="::ffff:10.1.2.3"), closed), Accept)


def test_cra_challenge_is_answered_for_glpis_token_only() -> None:
    token = cra_token(SECRET)
    result = verdict(request(method="GET", crc_token=token, signature=None, timestamp=None))
    assert result == Challenge(cra_expected_answer(SECRET, token))


@pytest.mark.parametrize("method", ["POST", "GET", "PUT", "PATCH", "UPDATE"])
def test_every_glpi_method_is_accepted(method: str) -> None:
    assert isinstance(verdict(request(method=method)), Accept)


BODIES = sorted(FIXTURES.glob("webhook_default_payloads/*.json")) + sorted(
    FIXTURES.glob("latest/webhook_default_payloads/*.json")
)


@pytest.mark.parametrize("path", BODIES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_accepted_event_reproduces_the_body_and_is_keyed_like_produce(path: Path) -> None:
    body = path.read_bytes()
    itemtype = path.stem.rsplit("_", 1)[0]
    result = verdict(request(body=body, itemtype=itemtype))
    assert isinstance(result, Accept)
    event = result.event
    data = json.loads(body)
    produced = make_event("glpi-a", itemtype, data["item"]["id"], data["event"], data["item"],
                          occurred_at=event.occurred_at, parent_item=data.get("parent_item"),
                          source=event.source)
    assert event.key() == produced.key() == f"glpi-a:{itemtype}:{data['item']['id']}"
    # the same values in the same key order (ingest writes compact JSON, produce spaced)
    for mine, theirs in ((event.item, produced.item), (event.parent_item, produced.parent_item)):
        assert (mine is None) == (theirs is None)
        if mine is not None and theirs is not None:
            assert list(json.loads(mine).items()) == list(json.loads(theirs).items())
    owner = data["item"] if "entity" in data["item"] else data["parent_item"]
    assert event.entities_id == owner["entity"]["id"]  # a followup's is its ticket's
    assert event.occurred_at == (NOW - 30) * 1000
    parent = None if event.parent_item is None else json.loads(event.parent_item)
    assert default_payload(json.loads(event.item), event.event, parent) == body
    assert result.exact in (True, None)  # checked for one key in EXACT_SAMPLE


def test_a_retry_has_the_same_key_and_other_changes_do_not() -> None:
    first, retry = verdict(request()), verdict(request())
    later = verdict(request(timestamp=NOW - 29))
    other_type = verdict(request(itemtype="Change"))
    assert isinstance(first, Accept) and isinstance(retry, Accept)
    assert isinstance(later, Accept) and isinstance(other_type, Accept)
    assert first.dedup_key == retry.dedup_key and first.event == retry.event
    assert len({first.dedup_key, later.dedup_key, other_type.dedup_key}) == 3
    assert first.event.event_id != later.event.event_id


def test_accepted_memory_is_bounded_in_time_and_entries() -> None:
    memory = AcceptedRequests(capacity=3, ttl_s=10)
    for i in range(3):
        memory.add(bytes([i]), now_s=100 + i)
    assert memory.seen(b"\x00", 105) and len(memory) == 3
    memory.add(b"\x03", 105)  # full: the oldest goes early
    assert not memory.seen(b"\x00", 105) and memory.evicted_early == 1
    assert memory.seen(b"\x01", 110.9) and not memory.seen(b"\x01", 111)
    assert len(memory) == 2
    memory.add(b"\x03", 112)  # \x02 expired; \x03 already there: not added twice
    assert len(memory) == 1 and memory.seen(b"\x03", 112)


def test_an_item_orjson_refuses_is_carried_by_json() -> None:
    raw = b'{"id": 7, "name": "half \\ud83d pair"}'  # a lone surrogate: orjson refuses
    body = b'{"item": ' + raw + b', "event": "update"}'
    result = verdict(request(body=body))
    assert isinstance(result, Accept)
    assert json.loads(result.event.item) == json.loads(raw)
