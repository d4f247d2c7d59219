"""The delivery consumer: hookstream.deliveries and the retry tiers -> HTTP.

One asyncio loop, one pooled aiohttp session behind the SSRF guard, many requests in
flight (bounded globally and per target origin). Offsets are stored only up to the
lowest record whose outcome (attempt record, and retry or DLQ record) Kafka has
acknowledged, so a crash repeats deliveries (same delivery id) and never loses one.

Retry tiers: a record not yet due is held in memory on a timer. Every record on tier
k has not_before >= its produce time + 0.8 x delay_k (jitter is ±20 %, Retry-After
only lengthens), so once a fetched record's produce time + 0.8 x delay is in the
future, nothing behind it is due before then: the partition is paused and resumed
on a timer at that moment. The loop never sleeps and no partition holds up another.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import signal
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

import aiohttp
import uvloop
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from connectors.guard import guarded_connector
from connectors.offsets import OffsetTracker
from connectors.sender import HttpResult, Sender, Target
from hookstream.config import Settings
from hookstream.errors import DecodeError
from hookstream.io import (
    TableFollower,
    codec_for,
    consumer,
    gauges,
    metrics,
    producer,
    webhook_and_entity_applier,
)
from hookstream.policy import (
    DLQ_TIER,
    JITTER,
    NO_TIER,
    Admission,
    CircuitBreakers,
    CircuitState,
    Decision,
    Observed,
    decide,
    origin_of,
    parse_networks,
    secret_box,
)
from hookstream.records import (
    ATTEMPTS,
    DELIVERIES,
    DLQ,
    WEBHOOKS,
    DeliveryRequest,
    Record,
    WebhookDefinition,
    retry_topics,
)

log = logging.getLogger(__name__)
GROUP = "hookstream-delivery"
MAX_HELD = 20_000  # not-yet-due retries kept in memory before a partition is paused
MAX_REMEMBERED = 200_000  # delivery ids whose latest hop is kept, to drop stale copies

TP = tuple[str, int]


class DeliveryService:
    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ):
        self.settings = settings
        self.clock = clock
        self.rand = rand
        self.codec = codec_for(settings)
        self.box = secret_box(settings)
        self.webhooks: dict[str, WebhookDefinition] = {}
        self._targets: dict[str, Target] = {}
        self.global_allow = parse_networks(settings.allowed_networks)
        self.tiers_s = settings.retry_tiers_s
        self.tier_topics = retry_topics(settings)
        self.topic_delay = dict(zip(self.tier_topics, self.tiers_s, strict=True))
        self.deliveries_topic = settings.topic(DELIVERIES)
        self.dlq_topic = settings.topic(DLQ)
        self.attempts_topic = settings.topic(ATTEMPTS)
        self.circuits = CircuitBreakers(
            settings.circuit_failure_threshold, settings.circuit_cooldown_s
        )
        self.stopping = asyncio.Event()
        self.ready = asyncio.Event()
        self.stats: dict[str, int] = defaultdict(int)
        self._trackers: dict[TP, OffsetTracker] = {}
        self._paused: set[TP] = set()
        self._held = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._task_done: asyncio.Future[None] | None = None  # set when a task finishes
        # Offsets to store, per partition: one store_offsets call per loop iteration.
        self._committable: dict[TP, int] = {}
        self._origins: dict[str, str] = {}  # url -> origin (or its fallback)
        self._attempt_counters: dict[tuple[str, str], Any] = {}
        self._fatal: str | None = None
        self._global_slots = asyncio.Semaphore(settings.max_in_flight)
        self._origin_slots: dict[str, asyncio.Semaphore] = {}
        self._origin_waiting: dict[str, int] = defaultdict(int)
        self._handled: OrderedDict[str, float] = OrderedDict()
        self._busy: dict[str, asyncio.Event] = {}
        self._webhook_sem: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._next_slot: dict[str, float] = {}
        self._tables = TableFollower(
            settings,
            [settings.topic(WEBHOOKS)],
            webhook_and_entity_applier(settings, self.codec, self._on_webhook, None),
        )
        self._consumer = consumer(
            settings,
            GROUP,
            {
                "enable.auto.commit": True,
                "enable.auto.offset.store": False,
                "auto.commit.interval.ms": 500,
                # range: partition p of every topic to one consumer, so that the copies of a
                # delivery (same key) on the deliveries and retry topics meet (_is_stale).
                "partition.assignment.strategy": "range",
                "fetch.wait.max.ms": 20,
            },
        )
        self._producer = producer(
            settings, {"linger.ms": 2, "queue.buffering.max.messages": 1_000_000}
        )

    # -- tables ------------------------------------------------------------------------

    def _on_webhook(self, webhook_id: str, definition: WebhookDefinition | None) -> None:
        self._targets.pop(webhook_id, None)
        if definition is None:
            self.webhooks.pop(webhook_id, None)
        else:
            self.webhooks[webhook_id] = definition

    def target(self, webhook_id: str) -> Target | None:
        if webhook_id not in self._targets:
            definition = self.webhooks.get(webhook_id)
            if definition is None:
                return None
            self._targets[webhook_id] = Target.of(definition, self.box)
        return self._targets[webhook_id]

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._tables.catch_up()
        metrics.READY.labels("delivery").set(1)
        self.ready.set()
        self._consumer.subscribe(
            [self.deliveries_topic, *self.tier_topics],
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        connector = guarded_connector(
            self.global_allow, limit=0, ttl_dns_cache=60, enable_cleanup_closed=True
        )
        async with aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
        ) as session:
            self.sender = Sender(
                session,
                self.clock,
                self.settings.cra_cache_s,
                self.settings.response_body_cap_bytes,
            )
            try:
                while not self.stopping.is_set() and self._fatal is None:
                    self._tables.poll(0)
                    self._producer.poll(0)
                    self._store_offsets()
                    gauges.report(  # lag, retry backlog, DLQ depth, circuits: every few s
                        self.settings, GROUP, self._consumer, self._paused, self.circuits,
                        self.webhooks,
                    )
                    if len(self._tasks) >= 4 * self.settings.max_in_flight:
                        # Until a task finishes (what asyncio.wait(FIRST_COMPLETED) does,
                        # without a callback on every task).
                        self._task_done = loop.create_future()
                        await self._task_done
                        self._task_done = None
                        continue
                    batch = await loop.run_in_executor(None, self._fetch)
                    for msg in batch:
                        self._receive(msg)
            finally:
                await self._drain()
        if self._fatal:
            raise RuntimeError(self._fatal)

    def _fetch(self) -> list[Message]:
        """What is there, at once; or else the first record to arrive within 50 ms.
        (consume(n, timeout) waits for n records or the timeout: latency when traffic is light.)
        """
        batch = self._consumer.consume(500, 0)
        if not batch:
            batch = self._consumer.consume(1, 0.05)
            if batch:
                batch += self._consumer.consume(499, 0)
        return batch

    async def _drain(self, timeout_s: float = 30.0) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout_s)
        self._producer.flush(30)
        self._producer.poll(0)
        self._store_offsets()
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException:
            pass  # nothing stored since the last commit
        self._consumer.close()
        self._tables.close()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Offsets already durable but not stored yet: store them before giving up the
        # partitions, so the new owner does not repeat those deliveries.
        revoked = [(tp.topic, tp.partition) for tp in partitions]
        ready = [
            TopicPartition(t, p, self._committable.pop((t, p)))
            for t, p in revoked
            if (t, p) in self._committable
        ]
        if ready:
            try:
                consumer.store_offsets(offsets=ready)
            except KafkaException as e:
                log.debug("store_offsets on revoke failed: %s", e)
        for key in revoked:
            self._trackers.pop(key, None)
            self._paused.discard(key)

    def _receive(self, msg: Message) -> None:
        if msg.error() is not None:
            return
        topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
        tp = (topic, partition)
        if tp in self._paused:
            return  # fetched before the pause took effect; it is read again on resume
        self._trackers.setdefault(tp, OffsetTracker()).add(offset)
        try:
            request = self.codec.decode(msg.value(), msg.headers(), DeliveryRequest)
        except DecodeError as e:
            self._undecodable(msg, e.at(topic, partition, offset))
            return
        now_ms = int(self.clock() * 1000)
        if request.not_before > now_ms and topic in self.topic_delay:
            self._hold(msg, request, now_ms)
        else:
            self._dispatch(tp, offset, request, topic)

    def _hold(self, msg: Message, request: DeliveryRequest, now_ms: int) -> None:
        loop = asyncio.get_running_loop()
        topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
        tp = (topic, partition)
        _, produced_ms = msg.timestamp()
        earliest_next_ms = produced_ms + int((1 - JITTER) * self.topic_delay[topic] * 1000)
        if self._held >= MAX_HELD:
            self._trackers[tp].done(offset)  # not held: read again after the pause
            self._pause(tp, offset, max(request.not_before, now_ms + 1000))
            return
        self._held += 1

        def due() -> None:
            self._held -= 1
            self._dispatch(tp, offset, request, topic)

        loop.call_later((request.not_before - now_ms) / 1000, due)
        if earliest_next_ms > now_ms:
            self._pause(tp, offset + 1, earliest_next_ms)

    def _pause(self, tp: TP, next_offset: int, resume_at_ms: int) -> None:
        part = TopicPartition(tp[0], tp[1], next_offset)
        try:
            self._consumer.pause([part])
            self._consumer.seek(part)
        except KafkaException as e:
            log.debug("pause of %s failed (revoked?): %s", tp, e)
            return
        self._paused.add(tp)
        delay_s = max(0.0, resume_at_ms / 1000 - self.clock())
        asyncio.get_running_loop().call_later(delay_s, self._resume, tp)

    def _resume(self, tp: TP) -> None:
        if tp in self._paused:
            self._paused.discard(tp)
            try:
                self._consumer.resume([TopicPartition(tp[0], tp[1])])
            except KafkaException as e:
                log.debug("resume of %s failed (revoked?): %s", tp, e)

    # -- one delivery --------------------------------------------------------------------

    def _dispatch(self, tp: TP, offset: int, request: DeliveryRequest, topic: str) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(tp, offset, request, topic))
        self._tasks.add(task)
        task.add_done_callback(self._task_finished)

    def _task_finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        waiter = self._task_done
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _origin(self, url: str) -> str:
        origin = self._origins.get(url)
        if origin is None:
            try:
                origin = origin_of(url)
            except ValueError:
                origin = url[:64]
            if len(self._origins) >= 100_000:
                self._origins.clear()
            self._origins[url] = origin
        return origin

    def _is_stale(self, request: DeliveryRequest) -> bool:
        """A copy of a delivery already handled here (a record read again after a crash,
        next to the copy it had forwarded): dropping it avoids sending the delivery twice.

        `_handled` maps delivery id to the highest hop handled (infinity once delivered).
        Copies sharing a key share a partition number, and the range assignor gives the
        same partition of every topic to one consumer, so the copies meet here."""
        handled = self._handled.get(request.delivery_id, -1.0)
        if request.hop <= handled:
            return True
        self._remember(request.delivery_id, float(request.hop))
        return False

    def _remember(self, delivery_id: str, hop: float) -> None:
        self._handled[delivery_id] = hop
        self._handled.move_to_end(delivery_id)
        if len(self._handled) > MAX_REMEMBERED:
            self._handled.popitem(last=False)

    async def _deliver(self, tp: TP, offset: int, request: DeliveryRequest, topic: str) -> None:
        # One record of a delivery at a time: a copy waits for the outcome of the record
        # in flight, which may make it stale.
        while (busy := self._busy.get(request.delivery_id)) is not None:
            await busy.wait()
        if self._is_stale(request):
            self.stats["stale_dropped"] += 1
            self._mark_done(tp, offset)
            return
        done = self._busy[request.delivery_id] = asyncio.Event()
        try:
            await self._attempt(tp, offset, request, topic)
        finally:
            del self._busy[request.delivery_id]
            done.set()

    async def _attempt(self, tp: TP, offset: int, request: DeliveryRequest, topic: str) -> None:
        target = self.target(request.webhook_id)
        if target is None:
            now = int(self.clock() * 1000)
            self._forward_dead(tp, offset, request, "webhook deleted or unknown", now)
            return
        tiers = target.retry_schedule_s or self.tiers_s
        current_tier = _tier_index(self.topic_delay.get(topic), tiers)
        started_ms = int(self.clock() * 1000)
        origin = self._origin(request.url)
        admission = self.circuits.admit(origin, self.clock())
        # Defer only under memory pressure: a slow target may queue while there is room.
        saturated = (
            self._origin_waiting[origin] >= 4 * self.settings.max_in_flight_per_origin
            and len(self._tasks) >= 2 * self.settings.max_in_flight
        )
        if admission is Admission.REJECT:
            observed = Observed(started_ms, started_ms, circuit_open=True, error="circuit open")
        elif saturated:  # a slow target must not fill memory nor hold up the others
            observed = Observed(started_ms, started_ms, deferred=True, error="target saturated")
        else:
            result = await self._send(origin, request, target)
            observed = _observed(result, started_ms, int(self.clock() * 1000))
            if not (result.blocked or result.challenge_failed):
                failed = result.status is None or result.status >= 500 or result.status == 429
                state = self.circuits.record(origin, not failed, self.clock())
                metrics.OPEN_CIRCUITS.set(self.circuits.open_origins())
                if state is CircuitState.OPEN and failed:
                    log.debug("circuit open for %s", origin)
        decision = decide(
            request,
            observed,
            target.retry_policy,
            target.sent_try,
            tiers,
            current_tier,
            self.rand(),
        )
        if decision.forward is None:
            self._remember(request.delivery_id, math.inf)
        self._commit_decision(tp, offset, decision, tiers)

    def _webhook_slots(self, target: Target) -> AbstractAsyncContextManager[object]:
        if target.max_in_flight <= 0:
            return nullcontext()
        key = (target.webhook_id, target.max_in_flight)
        if key not in self._webhook_sem:
            self._webhook_sem[key] = asyncio.Semaphore(target.max_in_flight)
        return self._webhook_sem[key]

    async def _pace(self, target: Target) -> None:
        """The webhook's rate limit: each send takes the next 1/rate time slot."""
        if target.rate_limit_per_s <= 0:
            return
        now = time.monotonic()
        slot = max(now, self._next_slot.get(target.webhook_id, now))
        self._next_slot[target.webhook_id] = slot + 1 / target.rate_limit_per_s
        if slot > now:
            await asyncio.sleep(slot - now)

    async def _send(self, origin: str, request: DeliveryRequest, target: Target) -> HttpResult:
        async with self._webhook_slots(target):
            await self._pace(target)
            return await self._send_to_origin(origin, request, target)

    async def _send_to_origin(
        self, origin: str, request: DeliveryRequest, target: Target
    ) -> HttpResult:
        slots = self._origin_slots.get(origin)
        if slots is None:
            slots = self._origin_slots[origin] = asyncio.Semaphore(
                self.settings.max_in_flight_per_origin
            )
        self._origin_waiting[origin] += 1
        queued = True
        try:
            async with slots:
                self._origin_waiting[origin] -= 1
                queued = False
                async with self._global_slots:
                    metrics.IN_FLIGHT.inc()
                    started = time.perf_counter()
                    try:
                        return await self.sender.send(request, target, self.global_allow)
                    finally:
                        elapsed_s = time.perf_counter() - started
                        metrics.LATENCY.labels(request.webhook_id).observe(elapsed_s)
                        metrics.IN_FLIGHT.dec()
        finally:
            if queued:  # cancelled while waiting for a slot
                self._origin_waiting[origin] -= 1

    # -- producing outcomes durably ------------------------------------------------------

    def _commit_decision(
        self, tp: TP, offset: int, decision: Decision, tiers: tuple[int, ...]
    ) -> None:
        attempt = decision.attempt
        self.stats[attempt.outcome] += 1
        key = (attempt.webhook_id, attempt.outcome)
        counter = self._attempt_counters.get(key)
        if counter is None:
            if len(self._attempt_counters) >= 100_000:
                self._attempt_counters.clear()
            counter = self._attempt_counters[key] = metrics.ATTEMPTS.labels(*key)
        counter.inc()
        if decision.gone:
            metrics.GONE.labels(attempt.webhook_id).inc()
        records: list[tuple[str, str, Record]] = [
            (self.attempts_topic, attempt.delivery_id, attempt)
        ]
        if decision.forward is not None:
            forward = decision.forward
            topic = (
                self.dlq_topic
                if forward.tier == DLQ_TIER
                else self.tier_topics[self.tiers_s.index(tiers[forward.tier])]
            )
            records.append((topic, forward.request.key(), forward.request))
        self._produce_then_done(tp, offset, records)

    def _forward_dead(
        self, tp: TP, offset: int, request: DeliveryRequest, reason: str, now_ms: int
    ) -> None:
        dead = request.evolve(hop=request.hop + 1, last_error=reason)
        self.stats["dead_lettered"] += 1
        self._produce_then_done(tp, offset, [(self.dlq_topic, dead.key(), dead)])

    def _undecodable(self, msg: Message, error: DecodeError) -> None:
        log.warning("%s", error)
        self.stats["undecodable"] += 1
        metrics.UNDECODABLE.labels(msg.topic() or "").inc()
        tp, offset = (msg.topic() or "", msg.partition() or 0), msg.offset() or 0
        headers = [*list(msg.headers() or []), ("hookstream-error", error.reason.encode())]
        self._produce_raw(tp, offset, [(self.dlq_topic, msg.key(), msg.value(), headers)])

    def _produce_then_done(
        self, tp: TP, offset: int, records: list[tuple[str, str, Record]]
    ) -> None:
        raw = []
        for topic, key, record in records:
            value, headers = self.codec.encode(record, topic)
            raw.append((topic, key.encode(), value, headers))
        self._produce_raw(tp, offset, raw)

    def _produce_raw(self, tp: TP, offset: int, records: list[tuple[str, Any, Any, Any]]) -> None:
        remaining = [len(records)]

        def acked(err: Any, msg: Message) -> None:
            if err is not None:
                # The outcome is not durable: stop without storing the offset, so the
                # delivery is read again after a restart.
                self._fatal = f"producing to {msg.topic()} failed: {err}"
                return
            remaining[0] -= 1
            if remaining[0] == 0:
                self._mark_done(tp, offset)

        for topic, key, value, headers in records:
            self._producer.produce(topic, value, key, headers=headers, on_delivery=acked)
        # Acknowledgements are served by the loop's producer.poll(0), once per iteration.

    def _mark_done(self, tp: TP, offset: int) -> None:
        tracker = self._trackers.get(tp)
        if tracker is None:
            return  # revoked: the new owner repeats it (same delivery id)
        committable = tracker.done(offset)
        if committable is not None:
            self._committable[tp] = committable  # stored by _store_offsets

    def _store_offsets(self) -> None:
        """Store, in one call, the committable offset of every partition that advanced."""
        if not self._committable:
            return
        ready, self._committable = self._committable, {}
        offsets = [
            TopicPartition(t, p, offset)
            for (t, p), offset in ready.items()
            if (t, p) in self._trackers  # not revoked meanwhile
        ]
        if not offsets:
            return
        try:
            self._consumer.store_offsets(offsets=offsets)
        except KafkaException as e:
            log.debug("store_offsets failed (revoked?): %s", e)


def _tier_index(delay_s: int | None, tiers: tuple[int, ...]) -> int:
    if delay_s is None:
        return NO_TIER
    return (
        tiers.index(delay_s)
        if delay_s in tiers
        else min(range(len(tiers)), key=lambda i: abs(tiers[i] - delay_s))
    )


def _observed(result: HttpResult, started_ms: int, finished_ms: int) -> Observed:
    return Observed(
        started_ms,
        finished_ms,
        status=result.status,
        error=result.error,
        retry_after=result.headers.get("retry-after"),
        response_headers=result.headers if result.body is not None else None,
        response_body=result.body,
        blocked=result.blocked is not None,
        challenge_failed=result.challenge_failed is not None,
    )


def run_delivery(settings: Settings) -> int:
    """`hookstream run delivery`: until SIGTERM or SIGINT."""

    async def main() -> None:
        service = DeliveryService(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.stopping.set)
        metrics.serve(settings.metrics_port)
        await service.run()
        log.info("delivery stopped: %s", dict(service.stats))

    uvloop.run(main())  # measured: about a fifth more deliveries per CPU second
    return 0
