"""The delivery consumer: hookstream.deliveries and the retry tiers -> HTTP.

A thin loop: fetch records, receive each (checkpoint it, decode it, hand it to the
schedule, which submits it to the worker when due), store offsets. The parts are listed
in the package's docstring; the decisions are hookstream.policy's.

Kafka and HTTP come in through the narrow protocols of ports, so the loop's
decisions are unit-tested with in-memory fakes and a recording sender.

Group settings. With `group_instance_id` set (the Helm chart sets each pod's name), the
consumer is a static member (KIP-345): a process restarted under the same name gets its
previous partitions back as soon as it has joined, without a rebalance and without waiting
for the dead process's session timeout; on SIGTERM it leaves the group explicitly
(`leave_group`: a static member's close() alone does not), so a rolling update or a
scale-down hands its partitions over at once. A member that dies and does not come back
(a lost node), or any member without a `group_instance_id` (dynamic, the default), holds
its partitions until `session.timeout.ms` (9 s; heartbeats every 2 s, so three may be
lost to a slow network before it is declared dead); the survivors then rejoin at their
next heartbeat (<= 2 s) and resume from the committed offsets. Two processes must never
share a name: Kafka fences the older one, which stops (`ends_the_consumer`).

The assignment is eager (range): the stale-copy filter needs partition p of every input
topic at one member, which range gives and the cooperative assignors do not promise.
The stale-copy recall that follows an assignment runs beside the loop (RecallGate): only
deliveries it may find handled wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import aiohttp
import uvloop
from confluent_kafka import TopicPartition

from connectors.delivery.checkpoint import DUE, Checkpoint
from connectors.delivery.http import Sender, Targets
from connectors.delivery.http.guard import guarded_connector
from connectors.delivery.limits import Limits
from connectors.delivery.operations import OperationalEvents
from connectors.delivery.ordering import Ordering
from connectors.delivery.ports import (
    TP,
    HttpSender,
    Job,
    Message,
    RecordSink,
    RecordSource,
    Tables,
)
from connectors.delivery.recall import Recall, RecallGate
from connectors.delivery.record import OutcomeTopics, Records
from connectors.delivery.schedule import Schedule
from connectors.delivery.stale import StaleFilter
from connectors.delivery.worker import AttemptRules, Worker
from hookstream.config import Settings
from hookstream.errors import DecodeError, KafkaFailed
from hookstream.io import (
    BOUNDED_PREFETCH,
    GroupWatch,
    TableFollower,
    batched_fetches,
    codec_for,
    consumer,
    ends_the_consumer,
    freeze_start_up,
    gauges,
    health,
    leave_group,
    metrics,
    producer,
    reachable,
    static_membership,
    watched_stats,
    webhook_and_entity_applier,
)
from hookstream.policy import PER_ITEM, CircuitBreakers, HeldBound, parse_networks, secret_box
from hookstream.records import (
    ATTEMPTS,
    DELIVERIES,
    DLQ,
    OPERATIONS,
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
    "session.timeout.ms": 9000,  # see the module docstring (group settings)
    "heartbeat.interval.ms": 2000,
    # A broker back from a restart is reconnected to within a second, not librdkafka's
    # default of up to 10 s of backoff.
    "reconnect.backoff.max.ms": 1000,
}
READY_PROBE_S = 5.0
DENIED_UNREADY_S = 30.0  # not ready this long after a write refused for a missing ACL
PRODUCER_CONFIG = {
    # Outcomes hold up nothing on the way to the receiver, only the offset they settle
    # and a per_item webhook's next delivery of the item: a longer linger than the
    # factory's 5 ms puts more of them in each produce request (librdkafka sends one
    # request per partition and linger window): a fifth fewer at 300 deliveries/s
    "linger.ms": 20,
    "queue.buffering.max.messages": 1_000_000,
    "reconnect.backoff.max.ms": 1000,
}


def consumer_config(settings: Settings) -> dict[str, Any]:
    """The group consumer's properties, with the member's static identity if it has one."""
    return {**CONSUMER_CONFIG, **batched_fetches(settings), **static_membership(settings)}


class DeliveryService:
    """The loop: fetch, receive (decode, schedule, submit to the worker), store offsets;
    rebalances (recall on assignment, checkpoint on revoke) and readiness."""

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
        recall: Recall | None = None,
    ):
        self.settings = settings
        self.clock = clock
        self.codec = codec or codec_for(settings)
        self.targets = Targets(secret_box(settings))
        self.webhooks = self.targets.webhooks
        tiers_s = settings.retry_tiers_s
        tier_topics = retry_topics(settings)
        topic_delay_s = dict(zip(tier_topics, tiers_s, strict=True))
        self._inputs = [settings.topic(DELIVERIES), *tier_topics]
        self.stopping = asyncio.Event()
        self.ready = asyncio.Event()
        self._tables = tables or TableFollower(
            settings,
            [settings.topic(WEBHOOKS)],
            webhook_and_entity_applier(settings, self.codec, self.targets.put, None),
        )
        # confluent-kafka's clients satisfy the protocols; their stubs spell them otherwise.
        self._own_clients = source is None
        self._kafka_seen_at = 0.0  # when Kafka last answered a readiness probe
        self._recall = recall or (
            None if source else Recall(settings, self.codec, topic_delay_s, clock))
        self._assignments = 0  # counts assignments; each starts a recall (RecallGate)
        # a consumer stuck out of its group stops the loop; the process exits, to be
        # restarted (README, Guarantees)
        self._group_watch = GroupWatch()
        self._on_stats = watched_stats(self._group_watch, self._stuck)
        self._consumer: RecordSource = source or cast(
            RecordSource,
            consumer(settings, GROUP, {**consumer_config(settings), "stats_cb": self._on_stats},
                     defaults=BOUNDED_PREFETCH))
        self._producer: RecordSink = sink or cast(
            RecordSink, producer(settings, PRODUCER_CONFIG))
        operations = OperationalEvents(self.codec, settings.topic(OPERATIONS), self._producer)
        self.checkpoint = Checkpoint(self._consumer, clock)
        self.records = Records(
            self._producer, self.codec,
            OutcomeTopics(settings.topic(ATTEMPTS), settings.topic(DLQ), tier_topics, tiers_s),
            self.checkpoint, operations,
        )
        self.circuits = CircuitBreakers(
            settings.circuit_failure_threshold, settings.circuit_cooldown_s
        )
        self.limits = Limits(
            settings.max_in_flight,
            settings.max_in_flight_per_origin,
            settings.max_queued_per_origin,
        )
        self.stale = StaleFilter()
        max_age_s = settings.cra_challenge_max_age_s
        rules = AttemptRules(tiers_s, topic_delay_s,
                             int(max_age_s * 1000) if max_age_s > 0 else None,
                             parse_networks(settings.allowed_networks),
                             4 * settings.max_in_flight + settings.max_queued_per_origin)
        self.worker = Worker(rules, self.targets, self.circuits, self.limits, self.stale,
                             self.checkpoint, self.records, clock, rand, operations)
        self.worker.sender = sender
        self.ordering = Ordering(
            settings.topic(DELIVERIES), self._ordered, self.worker.submit, self.checkpoint,
            self.stale, clock,
            HeldBound(settings.ordering_max_held, settings.ordering_max_held_bytes),
            self.records.count)
        self.records.in_place = self.ordering
        self.checkpoint.finished = self.ordering.finished
        self.gate = RecallGate(
            self.ordering.submit, self.stale.seed, self.checkpoint.owns,
            pause=lambda tp: self.checkpoint.pause(tp, "recall"),
            lift=lambda tp: self.checkpoint.lift(tp, "recall"),
        )
        self.schedule = Schedule(self.checkpoint, clock, topic_delay_s, self.gate.submit)

    @property
    def stats(self) -> dict[str, int]:
        return self.records.stats

    def is_ready(self) -> bool:
        """/readyz: the webhooks table is caught up, the loop runs, and Kafka answers
        (asked at most every READY_PROBE_S, from the endpoint's thread)."""
        if not self.ready.is_set() or self.stopping.is_set():
            return False
        if time.monotonic() - self.records.denied_at < DENIED_UNREADY_S:
            return False  # a write refused for a missing ACL, lately: outcomes pile up
        if not self._own_clients or time.monotonic() - self._kafka_seen_at < READY_PROBE_S:
            return True
        if not reachable(cast(Any, self._producer), self._inputs[0]):
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
            self.worker.open(sender)
            try:
                while not self.stopping.is_set() and self.records.fatal is None:
                    self._tables.poll(0)
                    self._producer.poll(0)
                    self.checkpoint.store_offsets()
                    if self._own_clients:  # the operators' gauges (lag, tiers, circuits)
                        gauges.report(self.settings, GROUP, cast(Any, self._consumer),
                                      self.checkpoint.paused(DUE), self.circuits, self.webhooks)
                    if self.worker.full:
                        await self.worker.room()
                        continue
                    batch = await loop.run_in_executor(None, self._fetch)
                    for msg, request in batch:
                        self._receive(msg, request)
            finally:
                await self._drain()
        if self.records.fatal:
            raise RuntimeError(self.records.fatal)

    @asynccontextmanager
    async def _http(self) -> AsyncIterator[HttpSender]:
        if self.worker.sender is not None:
            yield self.worker.sender
            return
        connector = guarded_connector(
            parse_networks(self.settings.allowed_networks), limit=0, ttl_dns_cache=60,
            enable_cleanup_closed=True,
        )
        # No cookie jar: a receiver's Set-Cookie must not ride along on later deliveries
        # (other webhooks of the same host included); GLPI keeps none either.
        async with aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",),
            cookie_jar=aiohttp.DummyCookieJar(),
        ) as session:
            yield Sender(session, self.clock, self.settings.cra_cache_s,
                         self.settings.response_body_cap_bytes)

    def _fetch(self) -> list[tuple[Message, DeliveryRequest | DecodeError | None]]:
        """What is there, at once; or else the first record to arrive within 50 ms.
        (consume(n, timeout) waits for n records or the timeout: latency when traffic is light.)
        Each record comes decoded (None for an error event): in this thread, off the loop's.
        """
        batch = self._consumer.consume(500, 0)
        if not batch:
            batch = self._consumer.consume(1, 0.05)
            if batch:
                batch += self._consumer.consume(499, 0)
        messages = cast(list[Message], batch)
        fine = [(msg, msg.error() is None) for msg in messages]
        decoded = iter(self.codec.decode_many(
            [(msg.value(), msg.headers()) for msg, ok in fine if ok], DeliveryRequest))
        return [(msg, next(decoded) if ok else None) for msg, ok in fine]

    def _receive(self, msg: Message, request: DeliveryRequest | DecodeError | None) -> None:
        error = msg.error()
        if error is not None:
            if ends_the_consumer(error):  # fenced: another process took our group_instance_id
                self.records.fatal = f"the Kafka consumer stopped: {error.str()}"
            return
        tp, offset = TP(msg.topic() or "", msg.partition() or 0), msg.offset() or 0
        if self.checkpoint.is_paused(tp):
            return  # fetched before the pause took effect; it is read again on resume
        generation = self.checkpoint.read(tp, offset)
        if isinstance(request, DecodeError):
            self.records.undecodable(msg, request.at(tp.topic, tp.partition, offset))
            return
        assert request is not None, "_fetch decodes every record that is not an error event"
        _, produced_ms = msg.timestamp()
        self.schedule.receive(Job(tp, offset, request, generation), produced_ms)

    async def _drain(self, timeout_s: float = 30.0) -> None:
        await self.worker.drain(timeout_s)
        self._producer.flush(30)
        self._producer.poll(0)
        self.checkpoint.store_offsets()
        try:
            self.checkpoint.commit()
        except KafkaFailed as e:  # e.g. nothing stored since the last commit
            log.debug("final commit: %s", e)
        if self.settings.group_instance_id and self._own_clients:
            try:  # a static member stopped (SIGTERM): its partitions go to the others now
                leave_group(cast(Any, self._consumer))
            except KafkaFailed as e:  # they wait for its session timeout instead
                log.warning("%s", e)
        self._consumer.close()
        self._tables.close()

    # -- rebalances (called in the fetching thread) ---------------------------------------

    def _stuck(self, why: str) -> None:
        if self.records.fatal is None:
            self.records.fatal = why

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Called in the fetching thread: partitions still paused from before a revoke are
        resumed; the recall of what Kafka knows of handled copies starts beside the loop,
        and the gate holds what it may make stale until it ends (posted to the loop, so
        before the records fetched next are received)."""
        self.checkpoint.assign(TP(tp.topic, tp.partition) for tp in partitions)
        if self._recall is None or not partitions:
            return
        self._assignments += 1
        assignment, post = self._assignments, self._loop.call_soon_threadsafe
        post(self.gate.assigned, assignment)
        threading.Thread(target=self._recall_beside, args=(consumer, partitions, assignment),
                         name="stale-copy recall", daemon=True).start()

    def _recall_beside(self, consumer: Any, partitions: list[TopicPartition],
                       assignment: int) -> None:
        assert self._recall is not None
        post = self._loop.call_soon_threadsafe
        hops: list[tuple[str, float]] = []
        try:
            hops = self._recall.hops(
                consumer, partitions,
                lambda in_question: post(self.gate.known, assignment, in_question))
        except RuntimeError as e:  # the consumer was closed meanwhile (stopping)
            log.debug("stale-copy recall abandoned: %s", e)
        finally:
            try:
                post(self.gate.recalled, assignment, hops)
            except RuntimeError:  # the loop is closed: the process is stopping
                pass

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        revoked = [TP(tp.topic, tp.partition) for tp in partitions]
        self.checkpoint.revoke(revoked)
        self.ordering.revoke(revoked)

    def _ordered(self, webhook_id: str) -> bool:
        """Whether the webhook's deliveries go one at a time per item (`ordering: per_item`)."""
        definition = self.webhooks.get(webhook_id)
        return definition is not None and definition.ordering == PER_ITEM


def run_delivery(settings: Settings) -> int:
    """`hookstream run delivery`: until SIGTERM or SIGINT."""

    async def main() -> None:
        service = DeliveryService(settings)
        # What start-up made lives as long as the process: out of the collector's sight, a
        # full collection scans only what deliveries made. (Larger thresholds saved more CPU
        # but held cyclic garbage past the RSS target: bench/README.)
        freeze_start_up()
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
