"""Copies of an event on glpi.item-changes (the same event id: a GLPI retry that reached
another ingest replica) give one delivery request, whichever processor meets them: the
same process far apart in the topic, a restarted one, the new owner after a rebalance."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from dataclasses import replace

from prometheus_client import REGISTRY

from hookstream.config import Settings
from hookstream.records import DELIVERIES, ITEM_CHANGES, DeliveryRequest
from processors.processor import Processor
from tests.integration.harness import publish, read, wait_until
from tests.integration.test_processor import (
    assert_exactly,
    expected_without_render_errors,
    mixed_events,
    run_until,
    settle,
    setup_tables,
    spawn_processor,
    wait_for_output,
)


def skipped(instance: str) -> float:
    return REGISTRY.get_sample_value("hookstream_processor_duplicate_events_total",
                                     {"glpi_instance": instance}) or 0.0


def requests(settings: Settings) -> list[DeliveryRequest]:
    return read(settings, DELIVERIES, DeliveryRequest)


def pairs(settings: Settings) -> Counter[tuple[str, str]]:
    return Counter((r.event_id, r.webhook_id) for r in requests(settings))


def test_an_event_produced_twice_far_apart_gives_one_delivery_request(
    settings: Settings,
) -> None:
    settings = replace(settings, processor_batch_size=50)
    setup_tables(settings)
    events = mixed_events(600)
    twice = [e for e in events[:20] if expected_without_render_errors([e])]
    publish(settings, [*events, *twice], ITEM_CHANGES)  # 600 records and more between copies
    skipped_before = skipped("glpi-a")
    processor = Processor(settings)
    run_until(processor, lambda: processor.stats["events"] >= len(events) + len(twice))

    got = requests(settings)
    assert_exactly(Counter((r.event_id, r.webhook_id) for r in got),
                   expected_without_render_errors(events))
    assert len({r.delivery_id for r in got}) == len(got)
    assert processor.stats["duplicates"] == len(twice)
    copies_of_a = sum(1 for e in twice if e.instance == "glpi-a")
    assert skipped("glpi-a") - skipped_before == copies_of_a


def test_a_copy_past_the_window_is_planned_again_with_the_same_delivery_ids(
    settings: Settings,
) -> None:
    settings = replace(settings, processor_dedup_window_s=2.0)
    setup_tables(settings)
    [event] = [e for e in mixed_events(10) if expected_without_render_errors([e])][:1]
    publish(settings, [event], ITEM_CHANGES)
    time.sleep(3)  # the copy's record timestamp is past the window of the first
    publish(settings, [event, event], ITEM_CHANGES)  # the second is inside the first's
    processor = Processor(settings)
    run_until(processor, lambda: processor.stats["events"] >= 3)

    got = requests(settings)
    assert processor.stats["duplicates"] == 1
    per_copy = len(expected_without_render_errors([event]))
    assert len(got) == 2 * per_copy
    assert len({r.delivery_id for r in got}) == per_copy  # receivers can still tell


def test_after_a_sigkill_the_restarted_processor_still_skips_copies_of_earlier_events(
    settings: Settings,
) -> None:
    """The restarted process starts with no memory: it reads it back from the partitions."""
    setup_tables(settings)
    events = mixed_events(1000)
    before, after = events[:600], events[600:]
    publish(settings, before, ITEM_CHANGES)
    first = spawn_processor(settings)
    try:
        total_before = sum(expected_without_render_errors(before).values())
        assert wait_for_output(settings, settings.topic(DELIVERIES), total_before) >= total_before
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(60)
    # every event planned before the kill comes again, interleaved with new ones
    publish(settings, [e for pair in zip(before, after, strict=False) for e in pair], ITEM_CHANGES)
    publish(settings, before[len(after):], ITEM_CHANGES)
    expected = expected_without_render_errors(events)
    second = spawn_processor(settings)
    try:
        got = settle(settings, settings.topic(DELIVERIES), sum(expected.values()))
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
    assert_exactly(got, expected)


def test_after_a_rebalance_the_new_owner_skips_copies_the_old_one_planned(
    settings: Settings,
) -> None:
    setup_tables(settings)
    events = mixed_events(800)
    planned, fresh = events[:400], events[400:]
    publish(settings, planned, ITEM_CHANGES)
    first, second = Processor(settings), Processor(settings)
    threads = [threading.Thread(target=p.run, daemon=True) for p in (first, second)]
    threads[0].start()
    try:
        assert wait_until(lambda: first.stats["events"] >= len(planned), 60)
        threads[1].start()  # joins the group: one of the two partitions moves to it
        for start in range(0, len(fresh), 20):
            publish(settings, fresh[start:start + 20], ITEM_CHANGES)
            if second.stats["events"]:
                break
            time.sleep(0.5)
        assert second.stats["events"], "the second processor was given no partition"
        publish(settings, [*planned, *fresh[start + 20:]], ITEM_CHANGES)
        assert wait_until(
            lambda: first.stats["events"] + second.stats["events"] >= 2 * len(planned)
            + len(fresh), 60)
    finally:
        for p in (first, second):
            p.stopping.set()
        for t in threads:
            t.join(30)
    assert_exactly(pairs(settings), expected_without_render_errors(events))
    # both skipped copies: the second of events the first had planned before the rebalance
    assert second.stats["duplicates"] > 0 and first.stats["duplicates"] > 0
    assert first.stats["duplicates"] + second.stats["duplicates"] == len(planned)
