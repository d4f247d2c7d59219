"""The stream processor: glpi.item-changes -> hookstream.deliveries, exactly once.

A plain confluent-kafka consume-transform-produce loop. Each batch is one Kafka
transaction holding its delivery requests, render failures (attempt record and DLQ
entry), undecodable inputs (glpi.item-changes.dlq) and the batch's input offsets, so a
crash or rebalance never loses nor duplicates a delivery request.

An event already planned that comes again (the same event id: a GLPI retry that reached
another ingest replica) is skipped: processors.dedup holds the recent ids of each input
partition, read back from the partition itself (`_recall`) when this process's memory
does not end where a batch starts (a restart, a partition newly assigned), so whatever
process reads a partition decides alike.

While a batch's transaction commits (on a thread of its own: librdkafka's calls release
the GIL), the next batch is consumed, checked against the memory of event ids (the
committing batch's ids staged in it), planned and encoded (`_prepare`); once the commit
succeeded it is produced in a new transaction and its own commit started (`_start`). An
abort of the committing batch rewinds both; a fatal error, a loss of the link (the
producer is replaced first: `TransactionalClients.recover`), a rebalance served while it
was in flight (it may have reset a partition to the committed offsets) or a stop throws
the prepared batch away and it is read again. Tables are as good for a prepared batch as
for any: a change read after it was prepared applies from the next one.

The loop survives the broker: every Kafka call is bounded (processors.clients), an
abortable failure aborts the batch and reads it again, a fatal one (fenced, or a call
that hung) rebuilds the clients, which rejoin the group and resume from the committed
offsets. It ends only on SIGTERM (or a configuration error at start); /readyz says 503
while Kafka cannot be reached and 200 again once batches commit.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import FrameType

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message, TopicPartition
from prometheus_client import Counter

from hookstream.config import Settings
from hookstream.errors import DecodeError, KafkaFailed, KafkaFatal, TransientError
from hookstream.io import (
    HUNG,
    TableFollower,
    Throttled,
    codec_for,
    denied,
    denied_topics,
    freeze_start_up,
    gauges,
    health,
    kafka_errors,
    metrics,
    webhook_and_entity_applier,
)
from hookstream.matching import EntityTable, Rendered, RenderFailure, WebhookIndex, plan_rendered
from hookstream.records import (
    ATTEMPTS,
    DELIVERIES,
    DLQ,
    ENTITIES,
    INSTANCES,
    ITEM_CHANGES,
    ITEM_CHANGES_DLQ,
    OPERATIONS,
    WEBHOOKS,
    DeliveryRequest,
    InstanceRecord,
    ItemChangeEvent,
    OperationalEvent,
    Outcome,
    Record,
    RequestEncoder,
    as_item_change,
    dead_letter_headers,
    delivery_key,
)
from hookstream.render import RenderLimits
from processors.clients import (
    Committing,
    TransactionalClients,
    TransactionalId,
    first_offsets,
    next_offsets,
)
from processors.dedup import Copy, RecentEvents, Span

log = logging.getLogger(__name__)
GROUP = "hookstream-processor"


class Processor:
    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        stopping: threading.Event | None = None,
    ):
        self.settings = settings
        self.clock = clock
        self.codec = codec_for(settings)
        self.requests = RequestEncoder(self.codec, settings.topic(DELIVERIES))
        self.index = WebhookIndex()
        self.entities = EntityTable()
        self.limits = RenderLimits(
            max_body_bytes=settings.max_body_bytes, max_render_s=settings.render_timeout_s
        )
        # The same limits in each instance's time zone (GLPI renders in its own); an instance
        # not here (unknown, or in UTC) gets `limits`.
        self.instance_limits: dict[str, RenderLimits] = {}
        self.integration_users: dict[str, frozenset[int]] = {}  # by instance, when it names any
        self.topics = {
            name: settings.topic(name)
            for name in (ITEM_CHANGES, ITEM_CHANGES_DLQ, DELIVERIES, DLQ, ATTEMPTS)
        }
        # Operational events are matched as events too (webhooks about webhooks).
        self.operations_topic = settings.topic(OPERATIONS)
        self.stopping = stopping or threading.Event()
        self.ready = threading.Event()
        # what committed transactions hold (an aborted batch read again counts once)
        self.stats = {"events": 0, "deliveries": 0, "render_errors": 0, "undecodable": 0,
                      "duplicates": 0, "skipped": 0}
        self.recent = RecentEvents(int(settings.processor_dedup_window_s * 1000),
                                   settings.processor_dedup_entries)
        self._forgotten = 0  # recent.total_forgotten already counted in the metric
        self.rebuilds = 0  # times the clients were rebuilt after a fatal failure
        # The batch whose commit is under way while the next one is prepared (`_step`).
        self._in_flight: BatchInFlight | None = None
        self._counters = {name: metrics.Children(labels) for name, labels in _METRICS.items()}
        self._tables = TableFollower(
            settings,
            [settings.topic(WEBHOOKS), settings.topic(ENTITIES), settings.topic(INSTANCES)],
            webhook_and_entity_applier(
                settings, self.codec, self._on_webhook, self.entities, self._on_instance
            ),
        )
        # KIP-447: fencing comes from the consumer group metadata, so the id only has to be
        # unique among live processes; it is kept across rebuilds (TransactionalClients)
        # and taken again by a restarted process (TransactionalId).
        self._transactional_id = TransactionalId(settings, GROUP)
        self._clients: TransactionalClients | None = self._new_clients()
        self._started = False  # transactions initialised and the input subscribed
        self._recover = False  # after an outage or a hung call (TransactionalClients.recover)
        self._aborts = Throttled(log)  # the same abort in a loop: said once a minute

    def _new_clients(self) -> TransactionalClients:
        return TransactionalClients(
            self.settings, GROUP, self._transactional_id.value, self.stopping, self._unreachable
        )

    def _on_webhook(self, webhook_id: str, definition: object) -> None:
        from hookstream.records import WebhookDefinition

        if isinstance(definition, WebhookDefinition):
            self.index.put(definition)
            if definition.id in self.index.invalid:
                log.error(
                    "webhook %s v%d cannot be compiled: %s",
                    definition.id,
                    definition.version,
                    self.index.invalid[definition.id],
                )
        else:
            self.index.remove(webhook_id)

    def _on_instance(self, name: str, instance: InstanceRecord | None) -> None:
        window_s = self.settings.processor_dedup_window_s
        if instance is not None and instance.timestamp_tolerance_s + 300 > window_s:
            log.warning("instance %s: timestamp tolerance %ss exceeds the event id memory of "
                        "%.0fs; raise processor_dedup_window_s", name,
                        instance.timestamp_tolerance_s, window_s)
        if instance is None or not instance.integration_users:
            self.integration_users.pop(name, None)
        else:
            self.integration_users[name] = frozenset(instance.integration_users)
        if instance is None or instance.timezone == self.limits.timezone:
            self.instance_limits.pop(name, None)
        else:
            self.instance_limits[name] = replace(self.limits, timezone=instance.timezone)

    # -- readiness -----------------------------------------------------------------------

    def _unreachable(self, why: str) -> None:
        """Not ready until a batch commits. The cause is logged where it is known: by the
        Kafka link watch (an outage, once), or by the caller (a hung call, a failed step)."""
        log.debug("not ready: %s", why)
        self.ready.clear()
        self._recover = True
        metrics.READY.labels("processor").set(0)

    def _processing(self) -> None:
        if not self.ready.is_set():
            log.info("processing: %d webhooks, %d entities", len(self.index), len(self.entities))
        self.ready.set()
        metrics.READY.labels("processor").set(1)

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        """Run until `stopping` is set, whatever the broker does meanwhile."""
        backoff_s = 0.5
        try:
            while not self.stopping.is_set():
                try:
                    self._step()
                    backoff_s = 0.5
                except KafkaFatal as e:
                    if e.code == HUNG and self._started and not self.stopping.is_set():
                        log.warning("%s; a new producer, back to the committed offsets", e)
                        self._unreachable(str(e))  # recovers in the next step
                        continue
                    log.warning("%s; building new Kafka clients", e)
                    self._unreachable(str(e))
                    self._drop_clients()
                    self.rebuilds += 1
                    self.stopping.wait(backoff_s)
                    backoff_s = min(backoff_s * 2, 2.0)
                except TransientError as e:  # KafkaFailed of other classes, tables not loaded
                    log.warning("%s; trying again", e)
                    self._unreachable(str(e))
                    self.stopping.wait(backoff_s)
                    backoff_s = min(backoff_s * 2, 2.0)
        finally:
            self._drop_clients()
            self._tables.close()
            self._transactional_id.release()

    def _step(self) -> None:
        """One batch consumed and prepared while the one before it commits (if any), then,
        once that one committed, produced and its own commit started."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None and self._recover:  # the link failed meanwhile: land first
            self._land(self._clients, in_flight, [])
            in_flight = None
        clients = self._ready_clients() if in_flight is None else self._clients
        assert clients is not None  # a batch in flight has its clients
        prepared: PreparedBatch | None = None
        batch: list[Message] = []
        rebalanced, rebalances = False, clients.rebalances
        try:
            if in_flight is not None:
                self._poll_tables(clients)
            batch = clients.consume(
                self.settings.processor_batch_size, self.settings.processor_batch_ms / 1000
            )
            # A rebalance served by that consume may have reset a partition of the batch in
            # flight to its committed offset, before that batch: `batch` is not used.
            rebalanced = in_flight is not None and clients.rebalances != rebalances
            if rebalanced and batch:
                log.info("rebalanced while a batch committed: the next one is read again")
            elif batch:
                prepared = self._prepare(clients, batch, staged=in_flight is not None)
        except KafkaFailed as e:
            if not batch or isinstance(e, KafkaFatal):
                raise
            self._aborts.warning(f"the batch will be read again: {e}")
        finally:
            committed = in_flight is None or self._land(clients, in_flight, batch)
        if self._recover:  # the link failed meanwhile: the next step recovers the clients
            return  # and seeks every partition back to its committed offset
        if prepared is None or self.stopping.is_set():
            if committed and (batch or rebalanced):  # dropped: read again where it starts,
                # and the batch that committed before it read again from nowhere but its end
                ended = next_offsets(in_flight.prepared.batch) if in_flight and rebalanced else []
                clients.rewind(_merged(first_offsets(batch), ended))
            return
        if committed:
            self._in_flight = self._start(clients, prepared)

    def _ready_clients(self) -> TransactionalClients:
        """The clients, started (or recovered), with the tables caught up and polled."""
        if not self._tables.caught_up:  # at start: nothing is processed on partial tables
            self._tables.catch_up()
            freeze_start_up()
        clients = self._clients
        if clients is None:
            clients = self._clients = self._new_clients()
        if not self._started:
            clients.start([self.topics[ITEM_CHANGES], self.operations_topic])
            self._started, self._recover = True, False
            self._processing()
        if self._recover:  # after an outage, once a broker answers, before any batch
            clients.probe(self.topics[ITEM_CHANGES])  # raises while none does
            clients.recover()
            self._recover = False
            self._processing()
        self._poll_tables(clients)
        return clients

    def _poll_tables(self, clients: TransactionalClients) -> None:
        self._tables.poll(0)
        gauges.report(self.settings, GROUP, clients.consumer)  # lag, every few seconds

    def _drop_clients(self) -> None:
        if self._in_flight is not None:  # stopping, or a failure outside the loop's steps
            try:
                self._land(self._clients, self._in_flight, [])
            except KafkaFailed as e:
                log.warning("%s", e)
            self._in_flight = None
        if self._clients is not None:
            self._clients.close()
        self._clients, self._started = None, False

    def _prepare(self, clients: TransactionalClients, batch: list[Message],
                 staged: bool) -> PreparedBatch:
        """Everything of a batch but its transaction: decoded, checked against the memory
        of recent event ids (and the `staged` batch's, whose commit is under way), planned
        and encoded. Uses the tables as they are now: a definition changed later counts
        from the next batch, as for any batch."""
        prepared = PreparedBatch(batch)
        if not staged:
            self.recent.begin()
        self._recall(clients, batch)
        now_ms = int(self.clock() * 1000)
        prepared.stats["events"] += len(batch)
        for msg, event in zip(batch, self._decoded(batch), strict=True):
            self._transform(prepared, msg, event, now_ms)
        return prepared

    def _start(self, clients: TransactionalClients,
               prepared: PreparedBatch) -> BatchInFlight | None:
        """A transaction for the prepared batch: its records produced, its commit started.
        None when it was aborted (it is read again)."""
        offsets = next_offsets(prepared.batch)
        try:
            clients.begin()
            producer = clients.producer
            with kafka_errors("producing the batch"):
                for record in prepared.records:
                    try:
                        producer.produce(record.topic, record.value, record.key,
                                         headers=record.headers)
                    except BufferError:  # the local queue is full
                        self._produce_when_drained(clients, record)
                    producer.poll(0)
            self.recent.stage({tp.partition: tp.offset for tp in offsets
                               if tp.topic == self.topics[ITEM_CHANGES]})
            return BatchInFlight(prepared, clients.start_commit(offsets))
        except KafkaFatal:
            raise
        except KafkaFailed as e:
            self._aborted(clients, e, first_offsets(prepared.batch))
            return None

    def _land(self, clients: TransactionalClients | None, in_flight: BatchInFlight,
              batch: list[Message]) -> bool:
        """Wait for the batch in flight to commit; True when it did. Its counters count
        then; when it is aborted, it and `batch` (read meanwhile) are read again."""
        try:
            in_flight.commit.wait()
        except KafkaFatal:
            raise
        except KafkaFailed as e:
            assert clients is not None
            self._aborted(clients, e, _merged(first_offsets(batch),
                                              first_offsets(in_flight.prepared.batch)))
            return False
        self.recent.commit_staged()
        prepared = in_flight.prepared
        for (name, label), n in prepared.counts.items():
            self._counters[name](label).inc(n)
        for name, n in prepared.stats.items():
            self.stats[name] += n
        if (forgotten := self.recent.total_forgotten) > self._forgotten:
            metrics.DEDUP_FORGOTTEN.inc(forgotten - self._forgotten)
            self._forgotten = forgotten
        self._processing()
        return True

    def _read_again(self, clients: TransactionalClients, batch: list[Message],
                    landed: BatchInFlight | None) -> None:
        """Rewind the consumer to where `batch` starts, and each partition of the batch
        that committed before it (`landed`) to where that one ended."""
        ended = next_offsets(landed.prepared.batch) if landed is not None else []
        clients.rewind(_merged(first_offsets(batch), ended))

    def _aborted(self, clients: TransactionalClients, e: KafkaFailed,
                 rewind_to: list[TopicPartition]) -> None:
        """Abort the open transaction and rewind the consumer to `rewind_to`: abortable,
        retriable past its attempts, or unclassified."""
        reason = str(e)
        # a denied output (refused at once, or in the delivery reports at commit): say
        # which, and stay unready until a batch commits
        outputs = [t for name, t in self.topics.items() if name != ITEM_CHANGES]
        if e.code in ("TOPIC_AUTHORIZATION_FAILED", "_INCONSISTENT") and (
            refused := denied_topics(clients.producer, outputs)
        ):
            reason = denied("WRITE", "topic", ", ".join(refused))
            self.ready.clear()
            metrics.READY.labels("processor").set(0)
        self._aborts.warning(f"transaction aborted, the batch will be read again: {reason}")
        clients.abort_and_rewind(rewind_to)

    def _recall(self, clients: TransactionalClients, batch: list[Message]) -> None:
        """The memory of each partition of the batch that this process's does not end
        where the batch starts (a restart, a partition newly assigned, a batch committed
        whose outcome was not learned), read back from the partition; memories of
        partitions no longer read are dropped. Of glpi.item-changes only: operational
        events are hookstream's own, not GLPI's resends."""
        topic = self.topics[ITEM_CHANGES]
        with kafka_errors("reading the assignment"):
            assigned = {tp.partition for tp in clients.consumer.assignment() if tp.topic == topic}
        firsts = {msg.partition() or 0: msg for msg in reversed(batch)  # the earliest wins
                  if msg.topic() == topic}
        self.recent.keep_only(assigned | set(firsts))
        spans = [span for partition, msg in firsts.items()
                 if (span := self.recent.span(partition, msg.offset() or 0, _timestamp_ms(msg)))]
        if not spans:
            return
        started = time.monotonic()
        copies: dict[int, list[Copy]] = {span.partition: [] for span in spans}

        def remember(msg: Message) -> None:
            try:
                event = self.codec.decode(msg.value(), msg.headers(), ItemChangeEvent)
            except DecodeError:
                return  # never planned: no copy of it can be skipped
            copies[msg.partition() or 0].append(Copy(event.event_id, _timestamp_ms(msg)))

        clients.read_back(topic, spans, remember)
        for span in spans:
            self.recent.rebuild(span, copies[span.partition])
        log.info("event ids of partitions %s read back: %d records in %.1fs",
                 _spans(spans), sum(map(len, copies.values())), time.monotonic() - started)

    def _decoded(self, batch: list[Message]) -> list[ItemChangeEvent | DecodeError]:
        """The batch's events, in its order, or why a record is not one: GLPI's events
        decoded in one pass (Codec.decode_many), operational events one by one."""
        changes = [msg for msg in batch if msg.topic() != self.operations_topic]
        decoded = iter(self.codec.decode_many([(m.value(), m.headers()) for m in changes],
                                              ItemChangeEvent))
        if len(changes) == len(batch):
            return list(decoded)
        return [next(decoded) if msg.topic() != self.operations_topic else self._operation(msg)
                for msg in batch]

    def _operation(self, msg: Message) -> ItemChangeEvent | DecodeError:
        try:
            return as_item_change(self.codec.decode(msg.value(), msg.headers(), OperationalEvent))
        except DecodeError as e:
            return e

    def _transform(self, out: PreparedBatch, msg: Message, event: ItemChangeEvent | DecodeError,
                   now_ms: int) -> None:
        if isinstance(event, DecodeError):
            self._dead_letter_input(out, msg, event)
            return
        out.counts[("events", event.instance)] += 1
        if msg.topic() == self.topics[ITEM_CHANGES] and self.recent.is_copy(
            msg.partition() or 0, Copy(event.event_id, _timestamp_ms(msg))
        ):
            out.stats["duplicates"] += 1
            out.counts[("duplicates", event.instance)] += 1
            return
        limits = self.instance_limits.get(event.instance, self.limits)
        integration_users = self.integration_users.get(event.instance, frozenset())
        planned = 0
        for result in plan_rendered(event, self.index, self.entities, now_ms, limits,
                                    integration_users):
            if isinstance(result, Rendered):  # encoded from its parts: no DeliveryRequest
                d, r = result.webhook, result.request
                value = self.requests.encode(event, d, r.url, r.headers, r.body, now_ms)
                key = delivery_key(d.id, event.itemtype, event.items_id).encode()
                out.records.append(_Output(self.topics[DELIVERIES], value, key,
                                           self.requests.headers))
                planned += 1
            elif isinstance(result, RenderFailure):
                self._render_failed(out, result, now_ms)
            else:
                out.stats["skipped"] += 1
                out.counts[("skipped_integration_user", result.instance)] += 1
        if planned:
            out.stats["deliveries"] += planned
            out.counts[("planned", event.instance)] += planned

    def _encode(self, out: PreparedBatch, topic: str, key: str, record: Record) -> None:
        value, headers = self.codec.encode(record, self.topics[topic])
        out.records.append(_Output(self.topics[topic], value, key.encode(), headers))

    @staticmethod
    def _produce_when_drained(clients: TransactionalClients, out: _Output) -> None:
        """Produce once acknowledgements have drained the full local queue enough."""
        while True:
            clients.producer.poll(0.1)
            try:
                clients.producer.produce(out.topic, out.value, out.key, headers=out.headers)
                return
            except BufferError:
                continue

    def _render_failed(self, out: PreparedBatch, failure: RenderFailure, now_ms: int) -> None:
        out.stats["render_errors"] += 1
        out.counts[("render_errors", failure.request.webhook_id)] += 1
        r = failure.request
        record = r.attempt_record(0, now_ms, now_ms, Outcome.RENDER_ERROR, error=failure.reason)
        self._encode(out, ATTEMPTS, r.delivery_id, record)
        self._encode(out, DLQ, r.key(), r)

    def _dead_letter_input(self, out: PreparedBatch, msg: Message, error: DecodeError) -> None:
        out.stats["undecodable"] += 1
        out.counts[("undecodable", msg.topic() or "")] += 1
        located = error.at(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
        log.warning("%s", located)
        out.records.append(_Output(self.topics[ITEM_CHANGES_DLQ], msg.value(), msg.key(),
                                   dead_letter_headers(msg.headers(), located)))


@dataclass(frozen=True, slots=True)
class _Output:
    """A record of a batch's transaction, encoded."""

    topic: str
    value: bytes | None
    key: bytes | None
    headers: list[tuple[str, str | bytes | None]] | None


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A batch decoded, planned and encoded: its records and what they count (added to the
    metrics and `stats` when its transaction commits)."""

    batch: list[Message]
    records: list[_Output] = field(default_factory=list)
    counts: Tally[tuple[str, str]] = field(default_factory=Tally)
    stats: Tally[str] = field(default_factory=Tally)


@dataclass(frozen=True, slots=True)
class BatchInFlight:
    """A batch produced whose commit is under way."""

    prepared: PreparedBatch
    commit: Committing


def _merged(*offsets: list[TopicPartition]) -> list[TopicPartition]:
    """Offsets by partition, the later lists' winning."""
    by_partition = {(tp.topic, tp.partition): tp for each in offsets for tp in each}
    return list(by_partition.values())


_METRICS: dict[str, Callable[[str], Counter]] = {
    "events": metrics.EVENTS.labels,
    "planned": metrics.REQUESTS_PLANNED.labels,
    "render_errors": metrics.RENDER_ERRORS.labels,
    "undecodable": metrics.UNDECODABLE.labels,
    "duplicates": metrics.DUPLICATE_EVENTS.labels,
    "skipped_integration_user": lambda instance: metrics.SKIPPED.labels(instance,
                                                                        "integration_user"),
}


def _timestamp_ms(msg: Message) -> int | None:
    kind, value = msg.timestamp()
    return None if kind == TIMESTAMP_NOT_AVAILABLE or value < 0 else int(value)


def _spans(spans: list[Span]) -> str:
    return ", ".join(f"{s.partition} [{s.from_offset}, {s.until_offset})" for s in spans)


def run_processor(settings: Settings) -> int:
    """`hookstream run processor`: until SIGTERM or SIGINT, whatever Kafka does."""
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: finishing the open transaction and exiting", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    processor: Processor | None = None
    health.serve(settings.metrics_port, lambda: processor is not None and processor.ready.is_set(),
                 settings.metrics_host, registry=metrics.registry("processor"))
    backoff_s = 0.5
    while processor is None and not stopping.is_set():
        try:  # reads the tables' topics: waits for a broker that is not there yet
            processor = Processor(settings, stopping=stopping)
        except TransientError as e:
            log.warning("cannot start yet: %s", e)
            stopping.wait(backoff_s)
            backoff_s = min(backoff_s * 2, 2.0)
    if processor is not None:
        processor.run()
        log.info(
            "processor stopped: %s (clients rebuilt %d times)", processor.stats, processor.rebuilds
        )
    return 0


__all__ = ["DeliveryRequest", "Processor", "run_processor"]
