"""The delivery loop's decisions, without a broker: in-memory consumer and producer, and a
recording sender (STYLE.md 10). The integration tests run the same loop on real Kafka."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from connectors.delivery.http import HttpResult
from connectors.delivery.ports import TP
from hookstream.records import DeliveryRequest
from tests.unit.delivery_fakes import (
    ATTEMPTS,
    DELIVERIES,
    DLQ,
    FakeConsumer,
    FakeMessage,
    FakeProducer,
    RecordingSender,
    request,
    run_until,
    service,
    settings_for,
    webhook,
)

URL = "https://hooks.example.com/in"


def lag_observations() -> float:
    return REGISTRY.get_sample_value("hookstream_delivery_lag_seconds_count") or 0.0
RETRY_1S, RETRY_2S = "hookstream.retry.1s", "hookstream.retry.2s"


def test_delivered_records_the_attempt_and_stores_the_offset(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    consumer, producer, sender = FakeConsumer(), FakeProducer(), RecordingSender()
    for n in range(3):
        consumer.add(DELIVERIES, 0, request("w1", URL, n))
    svc = service(settings, consumer, producer, sender, webhook(settings, "w1", URL))
    observed = lag_observations()
    asyncio.run(run_until(svc, lambda: consumer.stored.get((DELIVERIES, 0)) == 3))
    assert [r.delivery_id for r in sender.sent] == ["w1-0", "w1-1", "w1-2"]
    assert lag_observations() == observed + 3  # one per delivered delivery
    attempts = producer.on(ATTEMPTS)
    assert [(a.outcome, a.attempt, a.hop) for a in attempts] == [("delivered", 1, 0)] * 3
    assert consumer.closed
    assert svc.limits.tracked() == (0, 0)  # nothing kept once nothing is in use


def test_retryable_failure_goes_to_the_first_tier_topic(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    consumer, producer = FakeConsumer(), FakeProducer()
    sender = RecordingSender(lambda r, t: HttpResult(503))
    consumer.add(DELIVERIES, 0, request("w1", URL, 1))
    svc = service(settings, consumer, producer, sender, webhook(settings, "w1", URL))
    observed = lag_observations()
    asyncio.run(run_until(svc, lambda: consumer.stored.get((DELIVERIES, 0)) == 1))
    assert lag_observations() == observed  # not delivered: no lag
    [attempt] = producer.on(ATTEMPTS)
    [retry] = producer.on(RETRY_1S)
    assert attempt.outcome == "retry_scheduled" and attempt.status_code == 503
    assert (retry.attempt, retry.hop, retry.not_before) == (1, 1, 1_001_000)  # rand 0.5


def test_a_stale_copy_is_dropped_not_sent(tmp_path: Path) -> None:
    """The retry copy (hop 1) was handled before the original (hop 0) is read again, as
    after a crash: the original is dropped and its offset still stored."""
    settings = settings_for(tmp_path)
    consumer, producer, sender = FakeConsumer(), FakeProducer(), RecordingSender()
    original = request("w1", URL, 1)
    consumer.add(RETRY_1S, 0, original.evolve(hop=1, attempt=1))
    svc = service(settings, consumer, producer, sender, webhook(settings, "w1", URL))

    async def scenario() -> None:
        await run_until(svc, lambda: consumer.stored.get((RETRY_1S, 0)) == 1)

    asyncio.run(scenario())
    consumer.add(DELIVERIES, 0, original)
    svc.stopping.clear()
    asyncio.run(run_until(svc, lambda: consumer.stored.get((DELIVERIES, 0)) == 1))
    assert [r.hop for r in sender.sent] == [1]
    assert svc.stats["stale_dropped"] == 1


def test_token_endpoint_failure_never_opens_the_targets_circuit(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, circuit_failure_threshold=2)
    consumer, producer = FakeConsumer(), FakeProducer()

    def script(r: object, target: object) -> HttpResult:
        if getattr(target, "webhook_id", "") == "bad-oauth":
            return HttpResult(error="oauth: token endpoint answered HTTP 401", token_failed=True)
        return HttpResult(200)

    sender = RecordingSender(script)
    for n in range(6):
        consumer.add(DELIVERIES, 0, request("bad-oauth", URL, n))
    for n in range(6, 12):
        consumer.add(DELIVERIES, 0, request("good", URL, n))
    hooks = (webhook(settings, "bad-oauth", URL), webhook(settings, "good", URL))
    svc = service(settings, consumer, producer, sender, *hooks)
    asyncio.run(run_until(svc, lambda: consumer.stored.get((DELIVERIES, 0)) == 12))
    outcomes = [(a.webhook_id, a.outcome) for a in producer.on(ATTEMPTS)]
    assert outcomes.count(("good", "delivered")) == 6
    assert ("bad-oauth", "retry_scheduled") in outcomes
    assert not [o for o in outcomes if o[1] == "circuit_open"]
    assert len(svc.circuits.not_closed()) == 0


def test_challenge_failing_past_its_maximum_age_goes_to_the_dlq(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, cra_challenge_max_age_s=60)
    consumer, producer = FakeConsumer(), FakeProducer()
    failed = HttpResult(error="CRA challenge failed", challenge_failed="CRA challenge failed")
    sender = RecordingSender(lambda r, t: failed)
    # clock 1000 s: created 30 s ago waits on a tier, created 120 s ago goes to the DLQ
    consumer.add(DELIVERIES, 0, request("cra", URL, 1, created_at=970_000))
    consumer.add(DELIVERIES, 0, request("cra", URL, 2, created_at=880_000))
    svc = service(settings, consumer, producer, sender, webhook(settings, "cra", URL))
    asyncio.run(run_until(svc, lambda: consumer.stored.get((DELIVERIES, 0)) == 2))
    outcomes = {a.delivery_id: (a.outcome, a.attempt) for a in producer.on(ATTEMPTS)}
    assert outcomes == {"cra-1": ("challenge_failed", 0), "cra-2": ("dead_lettered", 0)}
    [dead] = producer.on(DLQ)
    assert dead.delivery_id == "cra-2" and "past its maximum age" in (dead.last_error or "")
    assert [r.delivery_id for r in producer.on(RETRY_1S)] == ["cra-1"]


def test_a_saturated_origin_pauses_its_partition_and_resumes_it(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, max_queued_per_origin=4, max_in_flight_per_origin=2)
    consumer, producer = FakeConsumer(), FakeProducer()
    sender = RecordingSender()
    for n in range(10):
        consumer.add(DELIVERIES, 0, request("slow", URL, n))
    svc = service(settings, consumer, producer, sender, webhook(settings, "slow", URL))

    async def scenario() -> None:
        sender.gate = asyncio.Event()  # the receiver does not answer yet
        task = asyncio.get_running_loop().create_task(svc.run())
        async with asyncio.timeout(5):
            while not consumer.pauses:
                await asyncio.sleep(0.005)
            # Held in memory up to the bound, then the partition is paused after the
            # fourth record; nothing is produced as `deferred`.
            assert consumer.pauses[0] == (DELIVERIES, 0, 4)
            assert (DELIVERIES, 0) in consumer.paused
            assert sender.in_flight <= 2  # the adaptive limit starts low
            sender.gate.set()
            while consumer.stored.get((DELIVERIES, 0)) != 10:
                await asyncio.sleep(0.005)
        svc.stopping.set()
        await task

    asyncio.run(scenario())
    assert consumer.resumes and (DELIVERIES, 0) not in consumer.paused
    assert sorted(r.items_id for r in sender.sent) == list(range(10))  # each once
    assert {a.outcome for a in producer.on(ATTEMPTS)} == {"delivered"}


def test_an_unacknowledged_outcome_is_produced_again(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    consumer, producer, sender = FakeConsumer(), FakeProducer(fail=1), RecordingSender()
    consumer.add(DELIVERIES, 0, request("w1", URL, 1))
    svc = service(settings, consumer, producer, sender, webhook(settings, "w1", URL))
    asyncio.run(run_until(svc, lambda: consumer.stored.get((DELIVERIES, 0)) == 1))
    assert producer.failed == 1 and svc.records.unacknowledged == 1
    assert [a.outcome for a in producer.on(ATTEMPTS)] == ["delivered"]
    assert len(sender.sent) == 1  # the outcome is produced again, not the request sent again


def test_a_not_yet_due_retry_is_held_and_its_partition_paused(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    consumer, producer, sender = FakeConsumer(), FakeProducer(), RecordingSender()
    now = [1000.0]
    due_at = request("w1", URL, 1, attempt=1, hop=1, not_before=1_000_200)
    consumer.add(RETRY_2S, 1, due_at, produced_ms=999_900)
    consumer.add(RETRY_2S, 1, request("w1", URL, 2, attempt=1, hop=1, not_before=1_000_300),
                 produced_ms=999_950)
    svc = service(settings, consumer, producer, sender, webhook(settings, "w1", URL),
                  clock=lambda: now[0])

    async def scenario() -> None:
        task = asyncio.get_running_loop().create_task(svc.run())
        async with asyncio.timeout(5):
            while not consumer.pauses:
                await asyncio.sleep(0.005)
            # produced at 999.9 s on the 2 s tier: nothing behind it is due before
            # 999.9 + 0.8 x 2 s, so the partition is paused right after the first record.
            assert consumer.pauses[0] == (RETRY_2S, 1, 1)
            assert sender.sent == []
            while not sender.sent:  # its timer (0.2 s) fires
                await asyncio.sleep(0.005)
        svc.stopping.set()
        await task

    asyncio.run(scenario())
    assert [r.delivery_id for r in sender.sent] == ["w1-1"]
    assert svc.schedule.held == 0


def test_records_of_a_revoked_partition_not_yet_sent_are_abandoned(tmp_path: Path) -> None:
    """Only requests in flight at a rebalance may be repeated by the new owner."""
    from confluent_kafka import TopicPartition

    settings = settings_for(tmp_path, max_in_flight_per_origin=4)  # starts at 1 in flight
    consumer, producer, sender = FakeConsumer(), FakeProducer(), RecordingSender()
    for n in range(5):
        consumer.add(DELIVERIES, 0, request("w1", URL, n))
    svc = service(settings, consumer, producer, sender, webhook(settings, "w1", URL))

    async def scenario() -> None:
        sender.gate = asyncio.Event()
        task = asyncio.get_running_loop().create_task(svc.run())
        async with asyncio.timeout(5):
            while not sender.sent:
                await asyncio.sleep(0.005)
            svc._on_revoke(consumer, [TopicPartition(DELIVERIES, 0)])  # a rebalance
            sender.gate.set()
            while svc.stats.get("abandoned_on_revoke", 0) < 4:
                await asyncio.sleep(0.005)
        svc.stopping.set()
        await task

    asyncio.run(scenario())
    assert [r.items_id for r in sender.sent] == [0]  # the one in flight, nothing more
    assert len(svc.stale) <= 1  # the abandoned ones are not remembered as handled
    assert consumer.stored.get((DELIVERIES, 0)) is None  # the new owner repeats from 0


def test_an_undecodable_record_goes_to_the_dlq_as_it_came_with_why_and_where(
        tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    consumer, producer, sender = FakeConsumer(), FakeProducer(), RecordingSender()
    consumer.queued.append(FakeMessage(DELIVERIES, 0, 0, b"\x00garbage", [("x-kept", b"1")],
                                       b"k"))
    consumer.add(DELIVERIES, 0, request("w1", URL, 1))
    svc = service(settings, consumer, producer, sender, webhook(settings, "w1", URL))
    asyncio.run(run_until(svc, lambda: consumer.stored.get((DELIVERIES, 0)) == 2))
    [(_, value, headers)] = [r for r in producer.records if r[0] == DLQ]
    assert value == b"\x00garbage" and [r.delivery_id for r in sender.sent] == ["w1-1"]
    named = dict(headers)
    assert named["x-kept"] == b"1" and named["hookstream-error"] == b"no hookstream-schema header"
    assert named["hookstream-source"] == f"{DELIVERIES}:0:0".encode()
    assert svc.stats["undecodable"] == 1


def test_a_bug_while_sending_is_said_loudly_not_taken_for_no_answer(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(tmp_path, circuit_failure_threshold=1)
    consumer, producer = FakeConsumer(), FakeProducer()

    def script(r: DeliveryRequest, target: object) -> HttpResult:
        if r.delivery_id == "w1-1":
            raise ValueError("a bug of hookstream's own")
        return HttpResult(200)

    sender = RecordingSender(script)
    for n in (1, 2):
        consumer.add(DELIVERIES, 0, request("w1", URL, n))
    svc = service(settings, consumer, producer, sender, webhook(settings, "w1", URL))
    with caplog.at_level(logging.ERROR, "connectors.delivery.worker"):
        asyncio.run(run_until(svc, lambda: len(producer.on(ATTEMPTS)) == 1))
    assert [(a.delivery_id, a.outcome) for a in producer.on(ATTEMPTS)] == [("w1-2", "delivered")]
    assert not svc.circuits.not_closed()  # the target was not blamed
    assert (DELIVERIES, 0) not in consumer.stored  # w1-1 is delivered again after a restart
    assert "delivery of w1-1 failed" in caplog.text and "a bug" in caplog.text


def test_a_retry_falling_due_while_draining_is_left_for_the_next_owner(tmp_path: Path) -> None:
    """Once the loop stops, a held retry whose timer fires starts no request (the HTTP
    session is about to close: it would fail as "Connector is closed" and be charged to
    the target); its offset is not stored, so the next owner reads it again."""
    settings = settings_for(tmp_path)
    consumer, producer, sender = FakeConsumer(), FakeProducer(), RecordingSender()
    consumer.add(DELIVERIES, 0, request("w1", URL, 0))  # in flight when the stop comes
    consumer.add(RETRY_2S, 1, request("w1", URL, 1, attempt=1, hop=1, not_before=1_000_100),
                 produced_ms=999_900)  # held 0.1 s on a timer
    svc = service(settings, consumer, producer, sender, webhook(settings, "w1", URL))

    async def scenario() -> None:
        sender.gate = asyncio.Event()
        task = asyncio.get_running_loop().create_task(svc.run())
        async with asyncio.timeout(5):
            while not (sender.sent and svc.schedule.held):
                await asyncio.sleep(0.005)
            svc.stopping.set()  # drain: waits for w1-0, while the retry's timer fires
            await asyncio.sleep(0.3)
            sender.gate.set()
            await task

    asyncio.run(scenario())
    assert [r.items_id for r in sender.sent] == [0]
    assert consumer.stored.get((RETRY_2S, 1)) is None
    assert consumer.stored.get((DELIVERIES, 0)) == 1


def test_a_retry_not_held_because_the_schedule_is_full_is_not_committed(
        tmp_path: Path) -> None:
    """Past the schedule's bound a not-yet-due retry is given back and its partition paused
    at it: its offset must not be stored meanwhile, or a crash then would lose it."""
    settings = settings_for(tmp_path)
    consumer, producer, sender = FakeConsumer(), FakeProducer(), RecordingSender()
    consumer.add(RETRY_2S, 1, request("w1", URL, 1, attempt=1, hop=1, not_before=1_000_500),
                 produced_ms=999_900)
    svc = service(settings, consumer, producer, sender, webhook(settings, "w1", URL))
    svc.schedule._max_held = 0

    async def scenario() -> None:
        await run_until(svc, lambda: bool(consumer.pauses))
        await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert consumer.pauses[0][:2] == (RETRY_2S, 1)
    assert sender.sent == []
    assert consumer.stored.get((RETRY_2S, 1)) is None


def test_a_partition_paused_when_revoked_is_resumed_when_assigned_again(tmp_path: Path) -> None:
    """librdkafka keeps a partition paused through an eager rebalance that gives it back,
    while the checkpoint forgets why it paused it on revoke: it must be resumed, or its
    retries wait forever (seen in bench/chaos/ordering.py --ordering none)."""
    from confluent_kafka import TopicPartition

    settings = settings_for(tmp_path)
    consumer, producer, sender = FakeConsumer(), FakeProducer(), RecordingSender()
    svc = service(settings, consumer, producer, sender, webhook(settings, "w1", URL))
    tier = [TopicPartition(RETRY_2S, 0)]
    svc.checkpoint.pause(TP(RETRY_2S, 0), "origin a", 5)
    assert (RETRY_2S, 0) in consumer.paused
    svc._on_revoke(consumer, tier)
    svc._on_assign(consumer, tier)
    assert (RETRY_2S, 0) not in consumer.paused and not svc.checkpoint.is_paused(TP(RETRY_2S, 0))
