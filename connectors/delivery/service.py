"""The delivery consumer: hookstream.deliveries and the retry tiers -> HTTP.

A thin loop: fetch records, hand each to its part, store offsets (the parts are listed
in the package's docstring; the decisions are hookstream.policy's).

Kafka and HTTP come in through the narrow protocols of ports, so the loop's
decisions are unit-tested with in-memory fakes and a recording sender.

Group settings: a killed member's partitions must be resumed by another member within
15 s. The broker notices a dead member after `session.timeout.ms` (9 s; heartbeats every
2 s, so three may be lost to a slow network before it is declared dead); the survivors
then rejoin at their next heartbeat (<= 2 s) and resume from the committed offsets, about
12 s in all. Static membership would not help (a killed static member's partitions wait
for its session timeout, and only its own restart takes them back without a rebalance);
cooperative rebalancing would, but the stale-copy filter needs the range assignor, which
gives partition p of every input topic to one member, and range is an eager assignor.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import aiohttp
import uvloop
from confluent_kafka import TopicPartition

from connectors.delivery.attempt import AttemptRules, Attempts, Targets
from connectors.delivery.http.guard import guarded_connector
from connectors.delivery.http.sender import Sender
from connectors.delivery.limits import Limits
from connectors.delivery.ordering import Ordering
from connectors.delivery.outcomes import OutcomeTopics, OutcomeWriter
from connectors.delivery.ports import TP, HttpSender, Message, RecordSink, RecordSource, Tables
from connectors.delivery.recall import Recall
from connectors.delivery.stale import StaleFilter
from connectors.delivery.tiers import DUE, TierScheduler
from hookstream.config import Settings
from hookstream.errors import DecodeError
from hookstream.io import (
    TableFollower,
    codec_for,
    consumer,
    gauges,
    health,
    metrics,
    producer,
    webhook_and_entity_applier,
)
from hookstream.policy import (
    PER_ITEM,
    CircuitBreakers,
    HeldBound,
    origin_of,
    parse_networks,
    secret_box,
)
from hookstream.records import (
    ATTEMPTS,
    DELIVERIES,
    DLQ,
    WEBHOOKS,
    Codec,
    DeliveryRequest,
    WebhookDefinition,
    retry_topics,
)

log = logging.getLogger(__name__)
GROUP = "hookstream-delivery"
CONSUMER_CONFIG = {
    "enable.auto.commit": True,
    "enable.auto.offset.store": False,
    "auto.commit.interval.ms": 500,
    # range: partition p of every topic to one consumer, so that the copies of a
    # delivery (same key) on the deliveries and retry topics meet (stale).
    "partition.assignment.strategy": "range",
    "fetch.wait.max.ms": 20,
    "session.timeout.ms": 9000,  # see the module docstring
    "heartbeat.interval.ms": 2000,
    # A broker back from a restart is reconnected to within a second, not librdkafka's
    # default of up to 10 s of backoff.
    "reconnect.backoff.max.ms": 1000,
}
READY_PROBE_S = 5.0
DENIED_UNREADY_S = 30.0  # not ready this long after a write refused for a missing ACL
PRODUCER_CONFIG = {
    "linger.ms": 2,  # outcomes are small and latency-bound: batch less than the default
    "queue.buffering.max.messages": 1_000_000,
    "reconnect.backoff.max.ms": 1000,
}


class DeliveryService:
    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        *,
        source: RecordSource | None = None,
        sink: RecordSink | None = None,
        sender: HttpSender | None = None,
        tables: Tables | None = None,
        codec: Codec | None = None,
    ):
        self.settings = settings
        self.clock = clock
        self.rand = rand
        self.codec = codec or codec_for(settings)
        self.targets = Targets(secret_box(settings))
        self.webhooks = self.targets.webhooks
        self._global_allow = parse_networks(settings.allowed_networks)
        self._tiers_s = settings.retry_tiers_s
        tier_topics = retry_topics(settings)
        self._topic_delay = dict(zip(tier_topics, self._tiers_s, strict=True))
        self._inputs = [settings.topic(DELIVERIES), *tier_topics]
        self.stopping = asyncio.Event()
        self.ready = asyncio.Event()
        self.circuits = CircuitBreakers(
            settings.circuit_failure_threshold, settings.circuit_cooldown_s
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._task_done: asyncio.Future[None] | None = None  # set when a task finishes
        self._origins: dict[str, str] = {}  # url -> origin (or its fallback)
        self._feeding: dict[str, set[TP]] = {}  # saturated origin -> partitions paused for it
        self._tables = tables or TableFollower(
            settings,
            [settings.topic(WEBHOOKS)],
            webhook_and_entity_applier(settings, self.codec, self.targets.put, None),
        )
        # confluent-kafka's clients satisfy the protocols; their stubs spell them otherwise.
        self._own_clients = source is None
        self._kafka_seen_at = 0.0  # when Kafka last answered a readiness probe
        self._recall = None if source else Recall(settings, self.codec, self._topic_delay, clock)
        self._consumer: RecordSource = source or cast(
            RecordSource, consumer(settings, GROUP, CONSUMER_CONFIG))
        self._producer: RecordSink = sink or cast(
            RecordSink, producer(settings, PRODUCER_CONFIG))
        loop_later = self._later
        self.outcomes = OutcomeWriter(
            self._consumer,
            self._producer,
            self.codec,
            OutcomeTopics(settings.topic(ATTEMPTS), settings.topic(DLQ), tier_topics,
                          self._tiers_s),
            loop_later,
        )
        self.tiers = TierScheduler(
            self._consumer, clock, self._topic_delay, self._dispatch, self.outcomes.done
        )
        self.stale = StaleFilter()
        self.ordering = Ordering(
            settings.topic(DELIVERIES), self._ordered, self._dispatch, self.tiers,
            self.outcomes.next_offset, self.stale, clock,
            HeldBound(settings.ordering_max_held, settings.ordering_max_held_bytes),
            self.outcomes.count)
        self.outcomes.in_place = self.ordering
        self.limits = Limits(
            settings.max_in_flight,
            settings.max_in_flight_per_origin,
            settings.max_queued_per_origin,
            on_relieved=self._relieved,
        )
        self._max_tasks = 4 * settings.max_in_flight + settings.max_queued_per_origin
        max_age_s = settings.cra_challenge_max_age_s
        rules = AttemptRules(self._tiers_s, self._topic_delay,
                             int(max_age_s * 1000) if max_age_s > 0 else None,
                             self._global_allow)
        self.attempts = Attempts(rules, self.targets.get, self.circuits, self.limits, self.stale,
                                 self.outcomes, clock, rand)
        self.attempts.sender = sender

    @property
    def stats(self) -> dict[str, int]:
        return self.outcomes.stats

    def is_ready(self) -> bool:
        """/readyz: the webhooks table is caught up, the loop runs, and Kafka answers
        (asked at most every READY_PROBE_S, from the endpoint's thread)."""
        if not self.ready.is_set() or self.stopping.is_set():
            return False
        if time.monotonic() - self.outcomes.denied_at < DENIED_UNREADY_S:
            return False  # a write refused for a missing ACL, lately: outcomes pile up
        if not self._own_clients or time.monotonic() - self._kafka_seen_at < READY_PROBE_S:
            return True
        try:
            cast(Any, self._producer).list_topics(self._inputs[0], timeout=2)
        except Exception:  # KafkaException: no broker answered
            return False
        self._kafka_seen_at = time.monotonic()
        return True

    def on_webhook(self, webhook_id: str, definition: WebhookDefinition | None) -> None:
        self.targets.put(webhook_id, definition)

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._tables.catch_up()
        metrics.READY.labels("delivery").set(1)
        self.ready.set()
        self._loop = loop
        self._consumer.subscribe(
            self._inputs, on_assign=self._on_assign, on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        async with self._http() as sender:
            self.attempts.sender = sender
            try:
                while not self.stopping.is_set() and self.outcomes.fatal is None:
                    self._tables.poll(0)
                    self._producer.poll(0)
                    self.outcomes.store_offsets()
                    if self._own_clients:  # the operators' gauges (lag, tiers, circuits)
                        gauges.report(self.settings, GROUP, cast(Any, self._consumer),
                                      self.tiers.paused(DUE), self.circuits, self.webhooks)
                    if len(self._tasks) >= self._max_tasks:
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
        if self.outcomes.fatal:
            raise RuntimeError(self.outcomes.fatal)

    @asynccontextmanager
    async def _http(self) -> AsyncIterator[HttpSender]:
        if self.attempts.sender is not None:
            yield self.attempts.sender
            return
        connector = guarded_connector(
            self._global_allow, limit=0, ttl_dns_cache=60, enable_cleanup_closed=True
        )
        async with aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
        ) as session:
            yield Sender(session, self.clock, self.settings.cra_cache_s,
                         self.settings.response_body_cap_bytes)

    def _fetch(self) -> list[Message]:
        """What is there, at once; or else the first record to arrive within 50 ms.
        (consume(n, timeout) waits for n records or the timeout: latency when traffic is light.)
        """
        batch = self._consumer.consume(500, 0)
        if not batch:
            batch = self._consumer.consume(1, 0.05)
            if batch:
                batch += self._consumer.consume(499, 0)
        return cast(list[Message], batch)

    async def _drain(self, timeout_s: float = 30.0) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout_s)
        self._producer.flush(30)
        self._producer.poll(0)
        self.outcomes.store_offsets()
        try:
            self._consumer.commit(asynchronous=False)
        except Exception as e:  # KafkaException: nothing stored since the last commit
            log.debug("final commit: %s", e)
        self._consumer.close()
        self._tables.close()

    def _later(self, delay_s: float, callback: Callable[[], None]) -> Any:
        return asyncio.get_running_loop().call_later(delay_s, callback)

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Called in the fetching thread: partitions still paused from before a revoke are
        resumed, and what Kafka knows of handled copies seeds the stale filter (on the
        loop, before the records fetched next are received)."""
        self.tiers.assign(consumer, partitions)
        if self._recall is not None:
            hops = self._recall.hops(consumer, partitions)
            if hops:
                self._loop.call_soon_threadsafe(self.stale.seed, hops)

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.outcomes.revoke(consumer, partitions)
        self.tiers.revoke(consumer, partitions)
        self.ordering.revoke(consumer, partitions)

    def _receive(self, msg: Message) -> None:
        if msg.error() is not None:
            return
        topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
        tp = (topic, partition)
        if self.tiers.is_paused(tp):
            return  # fetched before the pause took effect; it is read again on resume
        self.outcomes.track(tp, offset)
        try:
            request = self.codec.decode(msg.value(), msg.headers(), DeliveryRequest)
        except DecodeError as e:
            self.outcomes.undecodable(msg, e.at(topic, partition, offset))
            return
        _, produced_ms = msg.timestamp()
        self.tiers.receive(tp, offset, produced_ms, request)

    # -- one delivery --------------------------------------------------------------------

    def _dispatch(self, tp: TP, offset: int, request: DeliveryRequest, topic: str) -> None:
        if self.ordering.waits(tp, offset, request):
            return  # behind an earlier delivery of its item: goes once that one is finished
        origin = self._origin(request.url)
        if self.limits.hold(origin):
            # The origin holds as many deliveries as it may: stop reading what feeds it.
            self.tiers.pause(tp, self.outcomes.next_offset(tp), f"origin {origin}")
            self._feeding.setdefault(origin, set()).add(tp)
        task = asyncio.get_running_loop().create_task(
            self.attempts.deliver(tp, offset, request, topic, origin,
                                  self.outcomes.generation(tp))
        )
        self._tasks.add(task)
        task.add_done_callback(self._task_finished)

    def _ordered(self, webhook_id: str) -> bool:
        definition = self.webhooks.get(webhook_id)
        return definition is not None and definition.ordering == PER_ITEM

    def _relieved(self, origin: str) -> None:
        for tp in self._feeding.pop(origin, ()):
            self.tiers.lift(tp, f"origin {origin}")

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

def run_delivery(settings: Settings) -> int:
    """`hookstream run delivery`: until SIGTERM or SIGINT."""

    async def main() -> None:
        service = DeliveryService(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.stopping.set)
        server = health.serve(settings.metrics_port, service.is_ready, settings.metrics_host,
                              registry=metrics.registry("delivery"))
        try:
            await service.run()
        finally:
            if server is not None:
                server.shutdown()
        log.info("delivery stopped: %s", dict(service.stats))

    uvloop.run(main())  # measured: about a fifth more deliveries per CPU second
    return 0
