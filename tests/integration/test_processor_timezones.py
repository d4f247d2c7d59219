"""The processor renders each event's dates in its GLPI instance's time zone, followed live
from the instances topic: a change applies without a restart."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import yaml

from hookstream.config import Settings
from hookstream.control.instances import apply_instances
from hookstream.records import DELIVERIES, ITEM_CHANGES, DeliveryRequest, make_event
from processors.processor import Processor
from tests.integration.harness import apply_webhooks, publish, read, wait_until

# GLPI's item dates are local times of its time zone, without an offset.
DATES = "{{ item.date_mod|date('c') }} {{ 'now'|date('e') }}"


def set_timezones(settings: Settings, tmp_path: Path, zones: dict[str, str]) -> None:
    path = tmp_path / "instances.yaml"
    path.write_text(yaml.safe_dump({"instances": [
        {"name": name, **({"timezone": zone} if zone else {})} for name, zone in zones.items()
    ]}))
    apply_instances(settings, path)


def bodies(settings: Settings, items_id: int, count: int) -> list[tuple[str, str]]:
    """(instance, body) of the `count` delivery requests for item `items_id`, once there."""

    def found() -> list[DeliveryRequest]:
        return read(settings, DELIVERIES, DeliveryRequest, lambda r: r.items_id == items_id)

    assert wait_until(lambda: len(found()) >= count), f"fewer than {count} requests"
    return sorted((r.instance, r.body.decode()) for r in found())


def publish_events(settings: Settings, items_id: int, *instances: str) -> None:
    item: dict[str, Any] = {"id": items_id, "date_mod": "2024-05-02 10:15:00"}
    publish(settings, [make_event(i, "Ticket", items_id, "new", item, occurred_at=items_id)
                       for i in instances], ITEM_CHANGES)


def test_dates_render_in_the_instance_time_zone_followed_live(settings: Settings,
                                                              tmp_path: Path) -> None:
    hooks = [{"id": f"{i}-dates", "instance": i, "url": "https://hooks.example.com/d",
              "use_default_payload": False, "payload": DATES} for i in ("glpi-a", "glpi-b")]
    apply_webhooks(settings, tmp_path, *hooks)
    set_timezones(settings, tmp_path, {"glpi-a": "Europe/Paris", "glpi-b": ""})
    processor = Processor(settings)
    thread = threading.Thread(target=processor.run, daemon=True)
    thread.start()
    try:
        publish_events(settings, 1, "glpi-a", "glpi-b")
        assert bodies(settings, 1, 2) == [
            ("glpi-a", "2024-05-02T10:15:00+02:00 Europe/Paris"),
            ("glpi-b", "2024-05-02T10:15:00+00:00 UTC"),  # no setting: UTC
        ]

        set_timezones(settings, tmp_path, {"glpi-a": "Asia/Tokyo", "glpi-b": ""})
        assert wait_until(lambda: processor.instance_limits["glpi-a"].timezone == "Asia/Tokyo",
                          timeout_s=10)
        publish_events(settings, 2, "glpi-a")
        assert bodies(settings, 2, 1) == [("glpi-a", "2024-05-02T10:15:00+09:00 Asia/Tokyo")]
    finally:
        processor.stopping.set()
        thread.join(30)
    assert not thread.is_alive()
