"""No loops on the real broker (GLPI issue #20902): a webhook with skip_integration_users does
not fire for a change made by one of its instance's integration users, named by id or by
login (resolved through the fake GLPI's API at apply time); every other webhook fires, and
a change by another user or by an unknown one reaches both."""

from __future__ import annotations

import threading
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

from connectors.glpi import user_ids_through_glpi
from hookstream.config import Settings
from hookstream.control.instances import apply_instances
from hookstream.records import DELIVERIES, ITEM_CHANGES, DeliveryRequest, make_event
from processors.processor import Processor
from tests.fake_glpi import FakeGlpiApi, RunningGlpiApi
from tests.integration.harness import apply_webhooks, publish, read, wait_until

BOT, ALERTS_BOT, PERSON = 7, 12, 23


def apply_instance(settings: Settings, tmp_path: Path, url: str,
                   integration_users: list[int | str]) -> None:
    path = tmp_path / "instances.yaml"
    path.write_text(yaml.safe_dump({"name": "glpi-a", "api_url": url, "app_token": "app",
                                    "user_token": "user",
                                    "integration_users": integration_users}))
    apply_instances(settings, path, user_ids_through_glpi(settings))


def skipped() -> float:
    return REGISTRY.get_sample_value("hookstream_processor_skipped_total", {
        "glpi_instance": "glpi-a", "reason": "integration_user"}) or 0.0


def test_changes_by_integration_users_reach_only_webhooks_that_do_not_skip_them(
        settings: Settings, tmp_path: Path) -> None:
    apply_webhooks(settings, tmp_path,
                   {"id": "to-chat", "url": "https://chat.example/hook",
                    "skip_integration_users": True},
                   {"id": "to-cmdb", "url": "https://cmdb.example/hook"})
    glpi = FakeGlpiApi("app", "user")
    glpi.add("User", id=ALERTS_BOT, name="alerts-bot")
    glpi.add("User", id=40, name="alerts-bot-2")  # "contains" the login: not it
    with RunningGlpiApi(glpi) as url:
        apply_instance(settings, tmp_path, url, [BOT, "alerts-bot"])
    processor = Processor(settings)
    thread = threading.Thread(target=processor.run, daemon=True)
    thread.start()
    before = skipped()
    try:
        assert wait_until(lambda: processor.integration_users.get("glpi-a") == {BOT, ALERTS_BOT})
        by = {1: BOT, 2: ALERTS_BOT, 3: PERSON, 4: None}  # item id -> who changed it
        publish(settings, [make_event("glpi-a", "Ticket", items_id, "new", {"id": items_id},
                                      occurred_at=items_id, entities_id=0, changed_by=user)
                           for items_id, user in by.items()], ITEM_CHANGES)

        def fired() -> set[tuple[int, str]]:
            return {(r.items_id, r.webhook_id) for r in read(settings, DELIVERIES,
                                                             DeliveryRequest)}

        # the skip and the other webhook's request of one event commit in one transaction
        want = {(1, "to-cmdb"), (2, "to-cmdb"), (3, "to-chat"), (3, "to-cmdb"),
                (4, "to-chat"), (4, "to-cmdb")}
        assert wait_until(lambda: fired() >= want), fired()
        assert fired() == want
        assert wait_until(lambda: processor.stats["skipped"] == 2)
        assert skipped() == before + 2
    finally:
        processor.stopping.set()
        thread.join(30)
    assert not thread.is_alive()
