"""RequestEncoder: a new request's record written from its parts is Codec.encode's, byte for
byte, for the request plan() builds."""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

import pytest

from hookstream.matching import (
    Rendered,
    WebhookIndex,
    build_tree,
    plan_rendered,
    request_for,
)
from hookstream.matching.entities import EntityTable
from hookstream.records import (
    DELIVERIES,
    Codec,
    DeliveryRequest,
    ItemChangeEvent,
    RequestEncoder,
    WebhookDefinition,
    delivery_key,
    make_event,
)
from hookstream.records.codec import load_schema_text
from hookstream.render import RenderedRequest
from tests.unit.test_codec import DictRegistry

TOPIC = "hookstream.deliveries"
NOW_MS = 1_762_245_332_000


def definition(id: str = "hook-1", **fields: Any) -> WebhookDefinition:
    base: dict[str, Any] = {
        "version": 3, "instance": "glpi-a", "name": id, "itemtype": "Ticket",
        "event": "update", "url": "https://receiver.example/hook", "secret_encrypted": "",
        "is_active": True,
    }
    return WebhookDefinition(id=id, **{**base, **fields})


def event(**fields: Any) -> ItemChangeEvent:
    base: dict[str, Any] = {
        "event_id": "e" * 32, "instance": "glpi-a", "itemtype": "Ticket", "items_id": 42,
        "event": "update", "entities_id": 3, "occurred_at": NOW_MS, "item": "{}",
    }
    return ItemChangeEvent(**{**base, **fields})


def expected(codec: Codec, e: ItemChangeEvent, d: WebhookDefinition, rendered: RenderedRequest,
             now_ms: int) -> bytes:
    request = request_for(e, Rendered(d, rendered), now_ms)
    value, headers = codec.encode(request, TOPIC)
    assert headers == codec.encode(request, TOPIC)[1]
    return value


CASES = [
    (event(), definition(), RenderedRequest("https://r.example/1", {}, b"")),
    (event(entities_id=None), definition(http_method="put"),
     RenderedRequest("https://r.example/é?q=ü", {"Content-Type": "application/json"},
                     b'{"a": 1}')),
    (event(items_id=-5, entities_id=0), definition(version=0),
     RenderedRequest("", {"X-A": "1", "X-É": "ünï 😀", "X-Long": "v" * 300}, bytes(range(256)))),
    (event(items_id=2**63 - 1, entities_id=-(2**63)), definition(version=2**40, id="h" * 200),
     RenderedRequest("u" * 70_000, {f"h{n}": str(n) for n in range(70)}, b"x" * 1_000_000)),
    (event(instance="glpi-😀", itemtype="Computer", event="new", event_id="ä" * 40),
     definition(instance="glpi-😀", itemtype="Computer", event="new"),
     RenderedRequest("https://r.example/", {"A": ""}, b"\x00")),
]


@pytest.mark.parametrize("registry", [None, DictRegistry()], ids=["headers", "wire-format"])
@pytest.mark.parametrize(("e", "d", "rendered"), CASES)
def test_the_value_is_codec_encodes_for_the_request_plan_builds(
    registry: DictRegistry | None, e: ItemChangeEvent, d: WebhookDefinition,
    rendered: RenderedRequest,
) -> None:
    codec = Codec(registry)
    encoder = RequestEncoder(codec, TOPIC)
    value = encoder.encode(e, d, rendered.url, rendered.headers, rendered.body, NOW_MS)
    assert value == expected(codec, e, d, rendered, NOW_MS)
    assert encoder.headers == codec.encode(request_for(e, Rendered(d, rendered), NOW_MS),
                                           TOPIC)[1]
    decoded = codec.decode(value, encoder.headers, DeliveryRequest)
    assert decoded == request_for(e, Rendered(d, rendered), NOW_MS)


def test_what_it_keeps_between_records_never_leaks_into_the_next() -> None:
    """The parts kept from one webhook, event and creation time to the next: a webhook's new
    version, another event (even an equal one) and another time are written anew."""
    codec, rng = Codec(), random.Random(5)
    encoder = RequestEncoder(codec, TOPIC)
    definitions = [definition(f"hook-{n}", http_method=m) for n, m in enumerate(("post", "put"))]
    events = [event(event_id=f"{n:032d}", items_id=n, entities_id=rng.choice((None, 1, 300)))
              for n in range(6)]
    for _ in range(200):
        n = rng.randrange(len(definitions))
        if rng.random() < 0.2:  # a new version under the same id
            definitions[n] = dataclasses.replace(definitions[n], version=definitions[n].version
                                                 + 1, http_method=rng.choice(("get", "post")))
        e = rng.choice(events)
        if rng.random() < 0.2:
            e = dataclasses.replace(e)  # equal, not the same object
        now_ms = NOW_MS + rng.choice((0, 1, 10**6))
        rendered = RenderedRequest(f"https://r.example/{rng.random()}",
                                   {"X": str(rng.random())} if rng.random() < 0.5 else {},
                                   rng.randbytes(rng.randrange(300)))
        value = encoder.encode(e, definitions[n], rendered.url, rendered.headers,
                               rendered.body, now_ms)
        assert value == expected(codec, e, definitions[n], rendered, now_ms)


def test_the_processor_path_writes_what_plan_would_have_written() -> None:
    """plan_rendered's parts, encoded, and plan's requests, encoded, over real templates."""
    entities = EntityTable()
    for entity in build_tree("glpi-a", [(0, -1, "Root"), (3, 0, "France")]):
        entities.put(entity)
    index = WebhookIndex()
    index.put(definition("default", event="update", entities_id=0, is_recursive=True))
    index.put(definition("custom", event="update", entities_id=0, is_recursive=True,
                         http_method="put", url="https://r.example/{{ item.id }}",
                         use_default_payload=False, payload='{"name": "{{ item.name }}"}',
                         custom_headers={"X-Item": "{{ item.id }}"}))
    e = make_event("glpi-a", "Ticket", 7, "update", {"id": 7, "name": "Écran / 😀"},
                   occurred_at=NOW_MS, entities_id=3)
    codec = Codec()
    encoder = RequestEncoder(codec, TOPIC)
    results = plan_rendered(e, index, entities, NOW_MS)
    assert [r.webhook.id for r in results if isinstance(r, Rendered)] == ["default", "custom"]
    for result in results:
        assert isinstance(result, Rendered)
        r = result.request
        request = request_for(e, result, NOW_MS)
        assert encoder.encode(e, result.webhook, r.url, r.headers, r.body, NOW_MS) == (
            codec.encode(request, TOPIC)[0])
        assert delivery_key(result.webhook.id, e.itemtype, e.items_id) == request.key()


def test_a_changed_schema_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = json.loads(load_schema_text("DeliveryRequest"))
    schema["fields"].append({"name": "priority", "type": "int", "default": 0})
    monkeypatch.setattr("hookstream.records.request_encoder.load_schema_text",
                        lambda name: json.dumps(schema))
    with pytest.raises(RuntimeError, match="DeliveryRequest schema changed"):
        RequestEncoder(Codec(), DELIVERIES)
