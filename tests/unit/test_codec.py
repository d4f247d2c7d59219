"""Every schema round-trips through the codec, in both framings; garbage gives DecodeError."""

from __future__ import annotations

import dataclasses
import json
import struct
from typing import Any

import pytest

from hookstream.errors import DecodeError
from hookstream.records import (
    AlertEvent,
    AlertRule,
    AlertTicket,
    AttemptRecord,
    AuditRecord,
    Codec,
    DeliveryRequest,
    EntityRecord,
    InstanceRecord,
    ItemChangeEvent,
    Record,
    TicketAction,
    WebhookDefinition,
    delivery_id_for,
    header,
    make_event,
    topic_schema,
)
from tests.conftest import fixture_item

FIXTURES = [
    "Ticket.json",
    "Change.json",
    "Problem.json",
    "Computer.json",
    "ITILFollowup.json",
    "TicketTask.json",
    "User.json",
]


class DictRegistry:
    """An in-memory schema registry with the Confluent registry's numbering (ids from 1)."""

    def __init__(self) -> None:
        self.schemas: list[str] = []
        self.subjects: dict[str, int] = {}

    def register(self, subject: str, schema_json: str) -> int:
        if schema_json not in self.schemas:
            self.schemas.append(schema_json)
        self.subjects[subject] = self.schemas.index(schema_json) + 1
        return self.subjects[subject]

    def schema_by_id(self, schema_id: int) -> str:
        if not 0 < schema_id <= len(self.schemas):
            raise DecodeError(f"unknown schema id {schema_id}")
        return self.schemas[schema_id - 1]


def sample_records(name: str) -> list[object]:
    item = fixture_item(name)
    event = make_event(
        "glpi-lyon",
        name.removesuffix(".json"),
        item["id"],
        "update",
        item,
        occurred_at=1_762_244_132_000,
        changed_by=23,
    )
    delivery = DeliveryRequest(
        delivery_id=delivery_id_for(event.event_id, "wh-1"),
        webhook_id="wh-1",
        instance=event.instance,
        event_id=event.event_id,
        itemtype=event.itemtype,
        items_id=event.items_id,
        event=event.event,
        method="POST",
        url="https://x.example/h",
        body=json.dumps(item).encode(),
        created_at=1,
        headers={"X-Ticket": str(item["id"])},
        entities_id=event.entities_id,
        attempt=2,
        not_before=5,
        retry_tier=1,
    )
    attempt = AttemptRecord(
        delivery_id=delivery.delivery_id,
        webhook_id="wh-1",
        instance="glpi-lyon",
        itemtype=event.itemtype,
        items_id=event.items_id,
        event="update",
        attempt=1,
        started_at=10,
        finished_at=20,
        outcome="retry_scheduled",
        status_code=503,
        error="Service Unavailable",
        response_headers={"retry-after": "5"},
        response_body=b"busy",
        retry_policy="glpi",
    )
    webhook = WebhookDefinition(
        id="wh-1",
        version=3,
        instance="glpi-lyon",
        name=f"{name} hook",
        itemtype=event.itemtype,
        event="update",
        url="https://x.example/{{ item.id }}",
        secret_encrypted="gAAAA-enc",
        custom_headers={"X-Name": "{{ item.name }}"},
        filter='[{"field": 12}]',
        retry_schedule_s=[10, 60],
        allowed_networks=["10.0.0.0/8"],
        skip_integration_users=True,
    )
    entity = EntityRecord(
        instance="glpi-lyon",
        id=3,
        parent_id=1,
        name="France",
        completename="Root entity > Europe > France",
        ancestors=[0, 1],
    )
    instance = InstanceRecord(
        name="glpi-lyon",
        version=2,
        secret_encrypted="gAAAA-enc",
        api_url="https://glpi.example/apirest.php",
        allowed_networks=["10.0.0.0/8"],
        timezone="Europe/Paris",
    )
    audit = AuditRecord("a" * 32, 1_762_244_132_000, "ops-alice", "dlq.redrive", "wh-1",
                        "redriven 3", event.instance, "console")
    return [event, delivery, attempt, webhook, entity, instance, audit]


@pytest.mark.parametrize("registry", [None, DictRegistry()], ids=["headers", "wire-format"])
@pytest.mark.parametrize("name", FIXTURES)
def test_every_schema_round_trips(name: str, registry: DictRegistry | None) -> None:
    codec = Codec(registry)
    for record in sample_records(name):
        value, headers = codec.encode(record, "hookstream.test")  # type: ignore[arg-type]
        if registry is not None:
            assert value[0] == 0 and struct.unpack(">I", value[1:5])[0] >= 1
        decoded = codec.decode(value, headers, type(record))  # type: ignore[arg-type]
        assert decoded == record


def test_glpi_item_json_survives_byte_for_byte() -> None:
    event = sample_records("Ticket.json")[0]
    assert isinstance(event, ItemChangeEvent)
    codec = Codec()
    decoded = codec.decode(*codec.encode(event, "t"), ItemChangeEvent)
    assert json.loads(decoded.item) == fixture_item("Ticket.json")
    assert list(json.loads(decoded.item)) == list(fixture_item("Ticket.json"))  # key order


def test_headers_name_schema_and_version() -> None:
    _, headers = Codec().encode(sample_records("Ticket.json")[0], "t")  # type: ignore[arg-type]
    assert header(headers, "hookstream-schema") == b"ItemChangeEvent"
    assert header(headers, "hookstream-schema-version") == b"2"


@pytest.mark.parametrize(
    "value, headers, reason",
    [
        (b"\x00\x01garbage", [("hookstream-schema", b"ItemChangeEvent")], "ItemChangeEvent"),
        (b"", [("hookstream-schema", b"ItemChangeEvent")], "EOFError"),
        (b"abc", [], "no hookstream-schema header"),
        (b"abc", [("hookstream-schema", b"DeliveryRequest")], "expected 'ItemChangeEvent'"),
        (None, [], "tombstone"),
    ],
)
def test_malformed_bytes_raise_decode_error(
    value: bytes | None, headers: list[tuple[str, bytes]], reason: str
) -> None:
    with pytest.raises(DecodeError) as info:
        Codec().decode(value, headers, ItemChangeEvent)
    assert reason in str(info.value)
    located = info.value.at("glpi.item-changes", 3, 42)
    assert "glpi.item-changes[3]@42" in str(located)


def test_wire_format_rejects_bad_magic_and_unknown_id() -> None:
    codec = Codec(DictRegistry())
    with pytest.raises(DecodeError, match="magic"):
        codec.decode(b"\x01\x00\x00\x00\x01x", None, ItemChangeEvent)
    with pytest.raises(DecodeError, match="unknown schema id 99"):
        codec.decode(b"\x00\x00\x00\x00\x63x", None, ItemChangeEvent)


def test_topic_schema_by_name() -> None:
    assert topic_schema("p.glpi.item-changes") == "ItemChangeEvent"
    assert topic_schema("hookstream.webhooks") == "WebhookDefinition"
    assert topic_schema("hookstream.retry.10s") == "DeliveryRequest"
    assert topic_schema("hookstream.attempts") == "AttemptRecord"


def test_event_id_is_stable_and_content_sensitive() -> None:
    item = fixture_item("Ticket.json")
    a = make_event("i", "Ticket", 1, "update", item, occurred_at=1)
    b = make_event("i", "Ticket", 1, "update", item, occurred_at=999)
    c = make_event("i", "Ticket", 1, "update", {**item, "name": "other"}, occurred_at=1)
    assert a.event_id == b.event_id != c.event_id
    assert a.entities_id == 3  # taken from item.entity.id


_DEFINITION_V4 = {"skip_integration_users": False}
_DEFINITION_V3 = {"previous_secret_encrypted": "", "previous_secret_until_ms": 0,
                  "ordering": "none", **_DEFINITION_V4}
_ATTEMPT_V4 = {"retry_policy": None}
_ATTEMPT_V3 = {"trigger": "", "trigger_tier": None, "actor": None, "request_method": None,
               "request_url": None, "request_headers": {}, "body_sha256": None,
               "reason": None, "next_step": None, **_ATTEMPT_V4}


@pytest.mark.parametrize(("name", "version", "added"), [
    ("WebhookDefinition", 1, {"escaping": "hookstream", **_DEFINITION_V3}),
    ("WebhookDefinition", 2, _DEFINITION_V3),
    ("WebhookDefinition", 3, _DEFINITION_V4),
    ("ItemChangeEvent", 1, {"changed_by": None}),
    ("AttemptRecord", 1, {"hop": 0, **_ATTEMPT_V3}),
    ("AttemptRecord", 2, _ATTEMPT_V3),
    ("AttemptRecord", 3, _ATTEMPT_V4),
    ("Instance", 1, {"timezone": "UTC"}),
])
def test_records_of_an_earlier_schema_version_still_decode(
        name: str, version: int, added: dict[str, object]) -> None:
    import io

    import fastavro

    from hookstream.records.codec import RECORD_TYPES, older_schema_texts

    text = older_schema_texts(name)[version]
    old_schema = fastavro.parse_schema(json.loads(text))
    record = next(r for r in sample_records("Ticket.json") if type(r).schema_name == name)
    old_fields = {f["name"] for f in json.loads(text)["fields"]}
    assert set(added).isdisjoint(old_fields)  # the fields this version did not have
    buf = io.BytesIO()
    fastavro.schemaless_writer(
        buf, old_schema, {k: v for k, v in record.to_dict().items() if k in old_fields})  # type: ignore[attr-defined]
    headers = [("hookstream-schema", name.encode()),
               ("hookstream-schema-version", str(version).encode())]
    decoded = Codec().decode(buf.getvalue(), headers, RECORD_TYPES[name])
    kept = {k: v for k, v in decoded.to_dict().items() if k not in added}
    assert kept == {k: v for k, v in record.to_dict().items() if k not in added}  # type: ignore[attr-defined]
    for field, default in added.items():
        assert getattr(decoded, field) == default
    unknown = [("hookstream-schema", name.encode()), ("hookstream-schema-version", b"99")]
    with pytest.raises(DecodeError, match="version 99 is not known"):
        Codec().decode(buf.getvalue(), unknown, RECORD_TYPES[name])


def test_an_attempt_record_v3_is_read_by_a_version_2_reader() -> None:
    """FULL compatibility of the v3 fields: a consumer of the previous release (a log store
    not yet upgraded) reads the new records, ignoring what it does not know."""
    import io

    import fastavro

    from hookstream.records import AttemptRecord
    from hookstream.records.codec import load_schema_text, older_schema_texts

    record = AttemptRecord("d", "w", "glpi", "Ticket", 1, "new", 1, 0, 5, "delivered",
                           status_code=200, hop=2, trigger="retry", trigger_tier="10s",
                           request_headers={"X-GLPI-signature": "ab"}, next_step="done.")
    writer = fastavro.parse_schema(json.loads(load_schema_text("AttemptRecord")))
    reader = fastavro.parse_schema(json.loads(older_schema_texts("AttemptRecord")[2]))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, writer, record.to_dict())
    old = fastavro.schemaless_reader(io.BytesIO(buf.getvalue()), writer, reader)
    assert old["hop"] == 2 and old["status_code"] == 200 and "trigger" not in old


@pytest.mark.parametrize("reader_version", [1, 2, 3])
def test_an_attempt_record_v4_is_read_by_every_earlier_reader(reader_version: int) -> None:
    """FULL compatibility of `retry_policy`: a log store or consumer of an earlier release
    reads v4 records, without the field it does not know."""
    import io

    import fastavro

    from hookstream.records.codec import load_schema_text, older_schema_texts

    record = AttemptRecord("d", "w", "glpi", "Ticket", 1, "new", 2, 0, 5, "retry_scheduled",
                           status_code=401, hop=1, trigger="first", retry_policy="glpi")
    writer = fastavro.parse_schema(json.loads(load_schema_text("AttemptRecord")))
    reader = fastavro.parse_schema(
        json.loads(older_schema_texts("AttemptRecord")[reader_version]))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, writer, record.to_dict())
    old = fastavro.schemaless_reader(io.BytesIO(buf.getvalue()), writer, reader)
    assert old["status_code"] == 401 and old["outcome"] == "retry_scheduled"
    assert "retry_policy" not in old


def test_attempt_records_of_every_version_decode_into_the_current_one() -> None:
    """v1..v4 written, each read by the current codec: the policy only from v4 on."""
    import io

    import fastavro

    from hookstream.records.codec import load_schema_text, older_schema_texts

    texts = {**older_schema_texts("AttemptRecord"), 4: load_schema_text("AttemptRecord")}
    assert sorted(texts) == [1, 2, 3, 4]
    record = AttemptRecord("d", "w", "glpi", "Ticket", 1, "new", 1, 0, 5, "dead_lettered",
                           status_code=410, retry_policy="default")
    for version, text in texts.items():
        schema = json.loads(text)
        names = {f["name"] for f in schema["fields"]}
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, fastavro.parse_schema(schema),
                                   {k: v for k, v in record.to_dict().items() if k in names})
        headers = [("hookstream-schema", b"AttemptRecord"),
                   ("hookstream-schema-version", str(version).encode())]
        decoded = Codec().decode(buf.getvalue(), headers, AttemptRecord)
        assert decoded.status_code == 410
        assert decoded.retry_policy == ("default" if version == 4 else None)


def test_every_webhook_definition_version_carries_its_retry_policy() -> None:
    """GLPI's rule is the default for definitions built without the field (YAML, API), but
    no stored record lacks it: every version of the schema has it, so a definition
    published as `default` keeps `default` whichever release reads it."""
    import io

    import fastavro

    from hookstream.records.codec import load_schema_text, older_schema_texts

    texts = {**older_schema_texts("WebhookDefinition"), 0: load_schema_text("WebhookDefinition")}
    for text in texts.values():
        assert "retry_policy" in {f["name"] for f in json.loads(text)["fields"]}
    [current] = [f for f in json.loads(texts[0])["fields"] if f["name"] == "retry_policy"]
    declared = {f.name: f.default for f in dataclasses.fields(WebhookDefinition)}
    assert current["default"] == "glpi" == declared["retry_policy"]
    old = fastavro.parse_schema(json.loads(texts[1]))
    chosen = next(r for r in sample_records("Ticket.json") if isinstance(r, WebhookDefinition))
    for policy in ("default", "glpi"):
        data = {k: v for k, v in chosen.to_dict().items() if k != "escaping"}
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, old, {**data, "retry_policy": policy})
        headers = [("hookstream-schema", b"WebhookDefinition"),
                   ("hookstream-schema-version", b"1")]
        assert Codec().decode(buf.getvalue(), headers, WebhookDefinition).retry_policy == policy


def alert_samples() -> dict[str, Record]:
    """One record of each alerts-into-tickets schema, by schema name."""
    event = AlertEvent(event_id="e1", instance="glpi-lyon", source="alertmanager",
                       fingerprint="f1", status="firing", name="DiskFull", starts_at=1,
                       received_at=2, labels={"severity": "critical"},
                       annotations={"summary": "disk full"}, generator_url="http://p/g",
                       links={"external_url": "http://am"})
    rule = AlertRule(id="disk", version=2, instance="glpi-lyon", name_template="{{ alert.name }}",
                     content_template="c", match_labels={"severity": "critical"},
                     match_labels_regex={"team": "db|web"}, match_sources=["alertmanager"],
                     urgency_label="severity", urgency_values={"critical": 5}, on_refire="new")
    ticket = AlertTicket(instance="glpi-lyon", source="alertmanager", fingerprint="f1",
                         rule_id="disk", tickets_id=42, state="open", marker="hs-abc",
                         opened_at=1, last_firing_at=2, alert_offset=17)
    action = TicketAction(action_id="a1", alert_event_id="e1", alert_key=ticket.key(),
                          instance="glpi-lyon", source="alertmanager", fingerprint="f1",
                          alert_name="DiskFull", alert_status="firing", action="opened", at=3,
                          rule_id="disk", tickets_id=42, latency_ms=120)
    return {r.schema_name: r for r in (event, rule, ticket, action)}


def test_alert_ticket_records_round_trip_on_their_topics() -> None:
    samples = alert_samples()
    event, rule = samples["AlertEvent"], samples["AlertRule"]
    ticket, action = samples["AlertTicket"], samples["TicketAction"]
    for codec in (Codec(), Codec(DictRegistry())):
        for record, topic in ((event, "hookstream.alerts"), (event, "hookstream.alerts.dlq"),
                              (rule, "hookstream.alert-rules"),
                              (ticket, "hookstream.alert-tickets"),
                              (action, "hookstream.alert-actions")):
            value, headers = codec.encode(record, topic)
            assert codec.decode_any(value, headers, topic) == record
            assert topic_schema(topic) == record.schema_name
    assert ticket.key() == "glpi-lyon:alertmanager:f1" == action.key()


def test_decode_many_gives_what_decode_gives_record_by_record() -> None:
    """A batch decoded at once: the same records, and each failure decode's own DecodeError
    in its place, whatever the batch mixes (an older version, garbage, a tombstone, another
    schema)."""
    import io

    import fastavro

    from hookstream.records.codec import older_schema_texts

    codec = Codec()
    event = sample_records("Ticket.json")[0]
    assert isinstance(event, ItemChangeEvent)
    current = codec.encode(event, "t")
    old_text = json.loads(older_schema_texts("ItemChangeEvent")[1])
    old = io.BytesIO()
    fastavro.schemaless_writer(old, fastavro.parse_schema(old_text), {
        k: v for k, v in event.to_dict().items() if k != "changed_by"})
    batch: list[tuple[bytes | None, Any]] = [
        current,
        (old.getvalue(), [("hookstream-schema", b"ItemChangeEvent"),
                          ("hookstream-schema-version", b"1")]),
        (b"\x00\x01garbage", current[1]),
        (None, current[1]),
        (b"abc", [("hookstream-schema", b"DeliveryRequest")]),
        (current[0], {"hookstream-schema": b"ItemChangeEvent",  # headers as a dict
                      "hookstream-schema-version": b"2"}),
    ]
    decoded = codec.decode_many(batch, ItemChangeEvent)
    assert len(decoded) == len(batch)
    for (value, headers), got in zip(batch, decoded, strict=True):
        try:
            expected: object = codec.decode(value, headers, ItemChangeEvent)
        except DecodeError as e:
            assert isinstance(got, DecodeError) and str(got) == str(e)
        else:
            assert got == expected
    assert decoded[0] == event and decoded[5] == event
    assert isinstance(decoded[1], ItemChangeEvent) and decoded[1].changed_by is None
    assert [type(d) for d in decoded[2:5]] == [DecodeError] * 3
