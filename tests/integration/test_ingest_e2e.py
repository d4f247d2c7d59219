"""GLPI's webhooks end to end: fake GLPI -> ingest -> processor -> delivery -> receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from pathlib import Path

import yaml

from hookstream.config import Settings
from hookstream.control import admin
from hookstream.io import create_topics
from processors.processor import Processor
from tests.conftest import FIXTURES
from tests.fake_glpi import FakeGlpiSender
from tests.integration.harness import RunningDelivery, apply_webhooks
from tests.integration.test_ingest import SECRET, RunningIngest, apply_instances, post_all
from tests.receiver import Receiver

TARGET_SECRET = "TargetSecretTargetSecretTargetSecret0042"  # the receiver's, not GLPI's
BODIES = sorted(FIXTURES.glob("webhook_default_payloads/*.json"))


def test_default_payloads_arrive_byte_identical_and_a_glpi_retry_is_not_delivered_twice(
    settings: Settings, tmp_path: Path
) -> None:
    create_topics(settings)
    apply_instances(settings, tmp_path)
    tree = tmp_path / "entities.yaml"
    tree.write_text(yaml.safe_dump({"instance": "glpi-a", "entities": [
        {"id": 0, "parent_id": None, "name": "Root entity"},
        {"id": 1, "parent_id": 0, "name": "Europe"},
        {"id": 3, "parent_id": 1, "name": "France"},
        {"id": 6, "parent_id": 1, "name": "Deutschland"},
        {"id": 7, "parent_id": 6, "name": "München"},
    ]}))
    admin.apply_entities(settings, tree)
    kinds = [p.stem.rsplit("_", 1) for p in BODIES]  # [itemtype, event]
    with Receiver() as receiver:
        apply_webhooks(settings, tmp_path, *[
            {"id": f"to-{itemtype}", "itemtype": itemtype, "event": event,
             "url": receiver.url(f"/in/{itemtype}"), "secret": TARGET_SECRET,
             "entities_id": 0, "is_recursive": True, "allowed_networks": ["127.0.0.0/8"]}
            for itemtype, event in kinds
        ])
        processor = Processor(settings)
        thread = threading.Thread(target=processor.run, daemon=True)
        thread.start()
        try:
            with RunningIngest(settings) as ingest, RunningDelivery(settings):
                glpi, now = FakeGlpiSender(SECRET), int(time.time())
                rows = [glpi.queue(f"{ingest.url}/glpi/glpi-a/{itemtype}", p.read_bytes(), now)
                        for (itemtype, _), p in zip(kinds, BODIES, strict=True)]
                assert asyncio.run(post_all(rows, glpi)) == [200] * len(rows)
                got = receiver.wait_for(len(rows), timeout_s=60)
                # GLPI lost our answer and resends the Ticket row, byte for byte.
                assert asyncio.run(post_all([rows[-1]], glpi)) == [200]
                time.sleep(3)
                got = receiver.requests()
        finally:
            processor.stopping.set()
            thread.join(30)
    assert sorted(r.path for r in got) == sorted(f"/in/{t}" for t, _ in kinds)  # once each
    for (itemtype, _), path in zip(kinds, BODIES, strict=True):
        [request] = [r for r in got if r.path == f"/in/{itemtype}"]
        assert request.body == path.read_bytes()  # GLPI's body, byte for byte
        ts = request.headers["x-glpi-timestamp"]
        expected = hmac.new(TARGET_SECRET.encode(), request.body + ts.encode(),
                            hashlib.sha256).hexdigest()
        assert request.headers["x-glpi-signature"] == expected
        assert json.loads(request.body)["item"]["id"] > 0
