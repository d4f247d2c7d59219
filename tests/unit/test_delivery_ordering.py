"""Ordered delivery per item in the delivery loop, without a broker (in-memory consumer and
producer, recording sender): a failed head is retried in place while other items flow,
the held bound pauses and resumes, a revoke drops what is held."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import TopicPartition

from connectors.delivery import DeliveryService
from connectors.delivery.http import HttpResult, Target
from connectors.delivery.ordering import ORDERING
from hookstream.io import metrics
from hookstream.records import DeliveryRequest
from tests.unit.delivery_fakes import (
    ATTEMPTS,
    DELIVERIES,
    DLQ,
    FakeConsumer,
    FakeProducer,
    RecordingSender,
    request,
    run_until,
    service,
    settings_for,
    webhook,
)

URL = "https://hooks.example.com/in"


def held_gauge() -> float:
    return float(metrics.ORDERING_HELD._value.get())

TP0 = (DELIVERIES, 0)
RETRY_TOPICS = ("hookstream.retry.1s", "hookstream.retry.2s", "hookstream.retry.3s")


def of_item(n: int, item: int) -> DeliveryRequest:
    return request("w1", URL, n).evolve(items_id=item)


def failing_once(*numbers: int, status: int = 503
                 ) -> Callable[[DeliveryRequest, Target], HttpResult]:
    """Fails the first attempt of the deliveries `numbers`; everything else is delivered."""
    failed: set[str] = set()

    def script(r: DeliveryRequest, t: Target) -> HttpResult:
        if int(r.delivery_id.split("-")[1]) in numbers and r.delivery_id not in failed:
            failed.add(r.delivery_id)
            return HttpResult(status)
        return HttpResult(200)

    return script


def delivered(svc: DeliveryService, producer: FakeProducer) -> list[int]:
    """Delivery numbers in the order of their delivered attempt records."""
    return [int(a.delivery_id.split("-")[1]) for a in producer.on(ATTEMPTS)
            if a.outcome == "delivered"]


def ordered_service(tmp_path: Path, consumer: FakeConsumer, producer: FakeProducer,
                    sender: RecordingSender, **settings: object) -> DeliveryService:
    config = settings_for(tmp_path, **settings)
    return service(config, consumer, producer, sender,
                   webhook(config, "w1", URL, ordering="per_item"))


def test_a_failed_head_is_retried_in_place_and_nothing_of_its_item_overtakes_it(
        tmp_path: Path) -> None:
    consumer, producer = FakeConsumer(), FakeProducer()
    sender = RecordingSender(failing_once(0))
    for n, item in [(0, 7), (1, 7), (2, 7), (3, 8), (4, 8)]:
        consumer.add(DELIVERIES, 0, of_item(n, item))
    svc = ordered_service(tmp_path, consumer, producer, sender)

    async def scenario() -> None:
        task = asyncio.get_running_loop().create_task(svc.run())
        async with asyncio.timeout(5):
            while delivered(svc, producer) != [3, 4]:  # item 8 flows while 7 waits
                await asyncio.sleep(0.005)
            assert svc.ordering.held == 3  # 1 and 2 waiting, 0 waiting for its retry
            assert consumer.stored.get(TP0) is None  # nothing committed past the head
            while consumer.stored.get(TP0) != 5:  # the retry is due after 1 s (tier 1s)
                await asyncio.sleep(0.005)
        svc.stopping.set()
        await task

    asyncio.run(scenario())
    assert delivered(svc, producer) == [3, 4, 0, 1, 2]
    assert [r.items_id for r in sender.sent if r.items_id == 7] == [7] * 4  # 0 twice, 1, 2
    retry = [a for a in producer.on(ATTEMPTS) if a.outcome == "retry_scheduled"]
    assert [(a.delivery_id, a.attempt, a.hop) for a in retry] == [("w1-0", 1, 0)]
    assert [r for topic in RETRY_TOPICS for r in producer.on(topic)] == []  # no copy
    second = [a for a in producer.on(ATTEMPTS) if a.delivery_id == "w1-0"][-1]
    assert (second.attempt, second.hop, second.trigger) == (2, 0, "retry")  # same record
    assert svc.ordering.held == 0 and svc.ordering.holds(TP0) == 0
    assert svc.stats["retried_in_place"] == 1


def test_a_dead_lettered_head_lets_the_rest_of_its_item_go(tmp_path: Path) -> None:
    consumer, producer = FakeConsumer(), FakeProducer()
    sender = RecordingSender(failing_once(0, status=410))  # Gone: never retried, DLQ at once
    for n in range(3):
        consumer.add(DELIVERIES, 0, of_item(n, 7))
    svc = ordered_service(tmp_path, consumer, producer, sender)
    asyncio.run(run_until(svc, lambda: consumer.stored.get(TP0) == 3))
    assert [r.delivery_id for r in producer.on(DLQ)] == ["w1-0"]
    assert delivered(svc, producer) == [1, 2]
    assert [r.delivery_id for r in sender.sent] == ["w1-0", "w1-1", "w1-2"]


def test_other_items_and_webhooks_are_never_held(tmp_path: Path) -> None:
    """While one item's head hangs, every other item and the unordered webhook are sent."""
    config = settings_for(tmp_path)
    consumer, producer = FakeConsumer(), FakeProducer()
    hanging = asyncio.Event()

    async def receiver(r: DeliveryRequest, t: Target, allow: object = ()) -> HttpResult:
        sent.append(r)
        if r.delivery_id == "w1-0":
            await hanging.wait()
        return HttpResult(200)

    sent: list[DeliveryRequest] = []
    sender = RecordingSender()
    sender.send = receiver  # type: ignore[method-assign]
    slow = "https://slow.example.com/in"  # an origin of its own: its one slot is not shared
    consumer.add(DELIVERIES, 0, of_item(0, 7).evolve(url=slow))
    consumer.add(DELIVERIES, 0, of_item(1, 7).evolve(url=slow))
    for n in range(2, 8):
        consumer.add(DELIVERIES, 0, of_item(n, 100 + n))
    for n in range(8, 10):
        consumer.add(DELIVERIES, 0, request("w2", URL, n).evolve(items_id=7))
    svc = service(config, consumer, producer, sender,
                  webhook(config, "w1", URL, ordering="per_item"), webhook(config, "w2", URL))

    async def scenario() -> None:
        task = asyncio.get_running_loop().create_task(svc.run())
        async with asyncio.timeout(5):
            while len(producer.on(ATTEMPTS)) < 8:
                await asyncio.sleep(0.005)
            assert "w1-1" not in {r.delivery_id for r in sent}  # behind the hanging head
            hanging.set()
            while consumer.stored.get(TP0) != 10:
                await asyncio.sleep(0.005)
        svc.stopping.set()
        await task

    asyncio.run(scenario())
    ids = [r.delivery_id for r in sent]
    assert ids.index("w1-1") == len(ids) - 1  # everything else went before it
    assert {a.outcome for a in producer.on(ATTEMPTS)} == {"delivered"}


def test_past_the_held_bound_the_partition_is_paused_and_resumed_below_half(
        tmp_path: Path) -> None:
    consumer, producer, sender = FakeConsumer(), FakeProducer(), RecordingSender()
    for n in range(6):
        consumer.add(DELIVERIES, 0, of_item(n, 7))
    svc = ordered_service(tmp_path, consumer, producer, sender, ordering_max_held=2)

    async def scenario() -> None:
        sender.gate = asyncio.Event()  # the head does not get an answer yet
        task = asyncio.get_running_loop().create_task(svc.run())
        async with asyncio.timeout(5):
            while not consumer.pauses:
                await asyncio.sleep(0.005)
            # 1 and 2 wait behind 0: the bound of 2 is reached, reading stops after 2.
            assert consumer.pauses[0] == (DELIVERIES, 0, 3)
            assert svc.checkpoint.paused(ORDERING) == [TP0] and svc.ordering.held == 2
            assert held_gauge() == 2.0  # the gauge operators see
            sender.gate.set()
            while consumer.stored.get(TP0) != 6:
                await asyncio.sleep(0.005)
        svc.stopping.set()
        await task

    asyncio.run(scenario())
    assert consumer.resumes and TP0 not in consumer.paused
    assert delivered(svc, producer) == [0, 1, 2, 3, 4, 5]  # paused, never dropped
    assert [r.delivery_id for r in sender.sent] == [f"w1-{n}" for n in range(6)]


def test_a_revoke_drops_what_is_held_and_the_new_owner_reads_it_again(
        tmp_path: Path) -> None:
    consumer, producer, sender = FakeConsumer(), FakeProducer(), RecordingSender()
    for n in range(4):
        consumer.add(DELIVERIES, 0, of_item(n, 7))
    svc = ordered_service(tmp_path, consumer, producer, sender)

    async def scenario() -> None:
        sender.gate = asyncio.Event()
        task = asyncio.get_running_loop().create_task(svc.run())
        async with asyncio.timeout(5):
            while svc.ordering.held < 3 or not sender.in_flight:  # the head is sent
                await asyncio.sleep(0.005)
            svc._on_revoke(consumer, [TopicPartition(DELIVERIES, 0)])  # a rebalance
            assert (svc.ordering.held, svc.ordering.held_bytes) == (0, 0)
            assert svc.ordering.holds(TP0) == 0
            sender.gate.set()
            while not producer.on(ATTEMPTS):
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.05)
        svc.stopping.set()
        await task

    asyncio.run(scenario())
    assert [r.delivery_id for r in sender.sent] == ["w1-0"]  # the followers never went
    assert consumer.stored.get(TP0) is None  # the new owner reads all four again


def test_a_head_failing_while_revoked_is_read_again_and_sent_not_forwarded(
        tmp_path: Path) -> None:
    """A rebalance gives the partition back to the same process: the head in flight
    when it was revoked fails; it is not forwarded to a tier (the follower could overtake
    it) and the stale filter does not drop it when it is read again."""
    consumer, producer = FakeConsumer(), FakeProducer()
    sender = RecordingSender(failing_once(0))
    consumer.add(DELIVERIES, 0, of_item(0, 7))
    consumer.add(DELIVERIES, 0, of_item(1, 7))
    svc = ordered_service(tmp_path, consumer, producer, sender)

    async def scenario() -> None:
        sender.gate = asyncio.Event()
        task = asyncio.get_running_loop().create_task(svc.run())
        async with asyncio.timeout(5):
            while svc.ordering.held < 1 or not sender.in_flight:  # the head is sent
                await asyncio.sleep(0.005)
            svc._on_revoke(consumer, [TopicPartition(DELIVERIES, 0)])
            sender.gate.set()  # the head fails, its partition no longer owned
            while not producer.on(ATTEMPTS):
                await asyncio.sleep(0.005)
            consumer.seek(TopicPartition(DELIVERIES, 0, 0))  # assigned again, read again
            while consumer.stored.get(TP0) != 2:
                await asyncio.sleep(0.005)
        svc.stopping.set()
        await task

    asyncio.run(scenario())
    assert [r for topic in RETRY_TOPICS for r in producer.on(topic)] == []
    assert [r.delivery_id for r in sender.sent] == ["w1-0", "w1-0", "w1-1"]
    assert delivered(svc, producer) == [0, 1]
    assert svc.stats["ordering_given_up_on_revoke"] == 1


def test_a_retry_waiting_in_place_is_read_again_after_a_revoke(tmp_path: Path) -> None:
    consumer, producer = FakeConsumer(), FakeProducer()
    sender = RecordingSender(failing_once(0))
    consumer.add(DELIVERIES, 0, of_item(0, 7))
    consumer.add(DELIVERIES, 0, of_item(1, 7))
    svc = ordered_service(tmp_path, consumer, producer, sender)

    async def scenario() -> None:
        task = asyncio.get_running_loop().create_task(svc.run())
        async with asyncio.timeout(5):
            while svc.stats.get("retried_in_place", 0) < 1:
                await asyncio.sleep(0.005)
            svc._on_revoke(consumer, [TopicPartition(DELIVERIES, 0)])  # timer cancelled
            assert svc.ordering.held == 0
            consumer.seek(TopicPartition(DELIVERIES, 0, 0))
            while consumer.stored.get(TP0) != 2:
                await asyncio.sleep(0.005)
        svc.stopping.set()
        await task

    asyncio.run(scenario())
    assert delivered(svc, producer) == [0, 1]
    # attempted again from the record's own count: attempt 1 again, not 2
    assert [(a.outcome, a.attempt) for a in producer.on(ATTEMPTS)] == [
        ("retry_scheduled", 1), ("delivered", 1), ("delivered", 1)]


def test_a_copy_on_a_retry_tier_is_not_held(tmp_path: Path) -> None:
    """Forwarded before the option was turned on: it goes as before, by its tier."""
    consumer, producer, sender = FakeConsumer(), FakeProducer(), RecordingSender()
    consumer.add(DELIVERIES, 0, of_item(0, 7))
    consumer.add(RETRY_TOPICS[0], 0, of_item(9, 7).evolve(attempt=1, hop=1))
    svc = ordered_service(tmp_path, consumer, producer, sender)

    async def scenario() -> None:
        sender.gate = asyncio.Event()
        task = asyncio.get_running_loop().create_task(svc.run())
        async with asyncio.timeout(5):
            while len(sender.sent) < 2:
                await asyncio.sleep(0.005)
            sender.gate.set()
            while consumer.stored.get((RETRY_TOPICS[0], 0)) != 1:
                await asyncio.sleep(0.005)
        svc.stopping.set()
        await task

    asyncio.run(scenario())
    assert sorted(r.delivery_id for r in sender.sent) == ["w1-0", "w1-9"]


def test_a_retry_waiting_for_its_slot_when_revoked_is_read_again_and_sent(
        tmp_path: Path) -> None:
    """The retry in place of item 7 waits for the origin's one slot (item 8 hangs in it)
    when the partition is revoked: given up, and read again, it is sent, not taken for a
    copy superseded by its own retry."""
    config = settings_for(tmp_path, max_in_flight_per_origin=4)  # starts at 1 in flight
    consumer, producer = FakeConsumer(), FakeProducer()
    hanging, sent = asyncio.Event(), []
    tries: dict[str, int] = {}

    async def receiver(r: DeliveryRequest, t: Target, allow: object = ()) -> HttpResult:
        sent.append(r.delivery_id)
        tries[r.delivery_id] = tries.get(r.delivery_id, 0) + 1
        if r.delivery_id == "w1-1" and tries["w1-1"] == 1:
            await hanging.wait()
        return HttpResult(503 if tries[r.delivery_id] == 1 and r.items_id == 7 else 200)

    sender = RecordingSender()
    sender.send = receiver  # type: ignore[method-assign]
    consumer.add(DELIVERIES, 0, of_item(0, 7))
    consumer.add(DELIVERIES, 0, of_item(1, 8))
    svc = service(config, consumer, producer, sender,
                  webhook(config, "w1", URL, ordering="per_item"))

    async def scenario() -> None:
        task = asyncio.get_running_loop().create_task(svc.run())
        async with asyncio.timeout(5):
            while svc.stats.get("retried_in_place", 0) < 1 or svc.ordering.held:
                await asyncio.sleep(0.005)  # the retry is due and waits for the slot
            svc._on_revoke(consumer, [TopicPartition(DELIVERIES, 0)])
            hanging.set()
            while svc.worker._tasks:  # abandoned in its slot wait, or before it ran
                await asyncio.sleep(0.005)
            consumer.seek(TopicPartition(DELIVERIES, 0, 0))  # assigned again, read again
            while consumer.stored.get(TP0) != 2:
                await asyncio.sleep(0.005)
        svc.stopping.set()
        await task

    asyncio.run(scenario())
    assert sent.count("w1-0") == 2  # failed once, then sent again after the revoke
    assert 0 in delivered(svc, producer)
    assert svc.stats.get("stale_dropped", 0) == 1  # w1-1, delivered before the revoke
