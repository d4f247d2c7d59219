"""Periodic gauges: consumer lag per partition, retry backlog per tier, DLQ depth, the age
of the oldest undelivered delivery, circuit state per origin, webhook info.

The delivery component's monitor (the one given its paused tiers) alone reports the ages
and the DLQ depth (io/dlq_depth.py, with a second consumer of its own in the background
thread).

A component calls `report(...)` from its loop on every iteration; it returns at once
unless `metrics_interval_s` has passed. The consumer's assignment and positions are
local librdkafka calls, made in the loop's own thread (a consumer is not shared across
threads). Everything that asks the broker -- high watermarks, the group's committed
offsets, the record at the head of a partition -- is done by a background thread with a
consumer of its own, so the loop never waits on the broker. That thread stops itself
and withdraws its series once `report` has not been called for a while (the component
stopped), so no close() has to be wired into the components.

Why lag is split for the retry tiers: a tier partition whose head is not due yet is
paused by the delivery consumer, so its lag is waiting, not work. `hookstream_retry_due`
counts the lag of tier partitions that are not paused, `hookstream_retry_waiting` the
lag of paused ones; KEDA scales delivery on the former.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaException, TopicPartition

from hookstream.config import Settings
from hookstream.errors import DecodeError
from hookstream.io import metrics
from hookstream.io.dlq_depth import DeadLetterFollower
from hookstream.io.kafka import consumer as build_consumer
from hookstream.io.schema_registry import codec_for
from hookstream.records import (
    DELIVERIES,
    DLQ,
    ITEM_CHANGES_DLQ,
    REDRIVEN,
    DeliveryRequest,
    retry_topics,
)

log = logging.getLogger(__name__)
TP = tuple[str, int]
IDLE_INTERVALS = 6  # reports missed before the background thread gives up
QUERY_TIMEOUT_S = 5.0
HEAD_WAIT_S = 5.0


class CircuitView(Protocol):
    def not_closed(self) -> Mapping[str, object]: ...


class WebhookView(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def instance(self) -> str: ...


@dataclass(frozen=True, slots=True)
class BrokerView:
    """What the background thread last learnt from the broker."""

    watermarks: Mapping[TP, tuple[int, int]] = field(default_factory=dict)  # (low, high)
    committed: Mapping[TP, int] = field(default_factory=dict)
    # (offset, created_at) of the record at each partition's committed offset: the oldest
    # the group has not finished; kept while that offset stays, so it is read once
    heads: Mapping[TP, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Readings:
    lag: dict[tuple[str, ...], float]  # (group, topic, partition)
    retry_due: dict[tuple[str, ...], float]  # (tier,)
    retry_waiting: dict[tuple[str, ...], float]
    oldest_s: dict[tuple[str, ...], float]


def readings(
    group: str,
    positions: Mapping[TP, int],
    broker: BrokerView,
    paused: Collection[TP],
    tiers: Mapping[str, str],
    age_topics: Collection[str],
    now_ms: int,
) -> Readings:
    """The gauges from positions and the broker's view (pure: tested with fixed vectors).

    A position not known yet (nothing fetched since assignment) falls back to the
    committed offset, then to the low watermark (auto.offset.reset=earliest).

    The oldest undelivered age of a topic is the largest age of its partitions' heads (the
    record at the committed offset) read so far, 0 when no partition has anything
    unfinished; a topic with unfinished records and no head read yet has no series rather
    than a wrong 0."""
    lag: dict[tuple[str, ...], float] = {}
    due: dict[tuple[str, ...], float] = {(label,): 0.0 for label in tiers.values()}
    waiting = dict(due)
    for (topic, partition), position in sorted(positions.items()):
        marks = broker.watermarks.get((topic, partition))
        if marks is None:
            continue  # not queried yet: no series rather than a wrong one
        low, high = marks
        start = position if position >= 0 else broker.committed.get((topic, partition), -1)
        behind = float(max(0, high - max(start, low)))
        lag[(group, topic, str(partition))] = behind
        if topic in tiers:
            bucket = waiting if (topic, partition) in paused else due
            bucket[(tiers[topic],)] += behind
    ages: dict[str, list[float]] = {}  # per topic: its heads' ages (none: all finished)
    unread: set[str] = set()
    for tp in positions:
        topic = tp[0]
        if topic not in age_topics or tp not in broker.watermarks:
            continue
        low, high = broker.watermarks[tp]
        start = max(broker.committed.get(tp, -1), low)
        head = broker.heads.get(tp)
        ages.setdefault(topic, [])
        if head is not None and head[0] == start < high:
            ages[topic].append(max(0.0, (now_ms - head[1]) / 1000))
        elif start < high:
            unread.add(topic)
    oldest: dict[tuple[str, ...], float] = {
        (topic,): max(found, default=0.0) for topic, found in ages.items()
        if found or topic not in unread}
    return Readings(lag, due, waiting, oldest)


class _Monitor:
    """One component's gauges: the loop side (`report`) and the broker side (a thread)."""

    def __init__(self, settings: Settings, group: str, owner: str, delivery: bool) -> None:
        self.settings, self.group, self.owner = settings, group, owner
        self.interval_s = max(0.2, settings.metrics_interval_s)
        tier_topics = retry_topics(settings)
        self.tiers = {t: t.rsplit("hookstream.retry.", 1)[-1] for t in tier_topics}
        self.dlq_topics = (settings.topic(DLQ), settings.topic(ITEM_CHANGES_DLQ))
        self.age_topics = frozenset((settings.topic(DELIVERIES), *tier_topics))
        # the delivery group's ages and DLQ depth only: the log store reads the same
        # topics, but what it has read is not what is delivered; one DLQ depth is enough
        self.reports_ages = delivery
        self.broker = BrokerView()
        self.dlq_depth: dict[tuple[str, ...], float] | None = None  # None: not caught up
        self.next_report = 0.0
        self.last_report = time.monotonic()
        self._wanted: frozenset[TP] = frozenset()
        self._lock = threading.Lock()
        self.stopped = False
        self._thread = threading.Thread(target=self._follow, daemon=True, name=f"gauges-{group}")
        self._thread.start()

    def report(
        self,
        consumer: Consumer,
        paused: Collection[TP] | None,
        circuits: CircuitView | None,
        webhooks: Mapping[str, WebhookView] | None,
    ) -> None:
        now = time.monotonic()
        self.last_report = now
        if now < self.next_report:
            return
        self.next_report = now + self.interval_s
        try:
            assigned = consumer.assignment()
            positions = {(tp.topic, tp.partition): tp.offset for tp in consumer.position(assigned)}
        except (KafkaException, RuntimeError) as e:  # closing, or mid-rebalance
            log.debug("gauges: no positions: %s", e)
            return
        with self._lock:
            self._wanted = frozenset(positions)
            broker = self.broker
            dlq_depth = self.dlq_depth
        tiers = self.tiers if paused is not None else {}
        age_topics = self.age_topics if self.reports_ages else frozenset()
        got = readings(self.group, positions, broker, paused or (), tiers,
                       age_topics, int(time.time() * 1000))
        metrics.CONSUMER_LAG.replace(self.owner, got.lag)
        if tiers:
            metrics.RETRY_DUE.replace(self.owner, got.retry_due)
            metrics.RETRY_WAITING.replace(self.owner, got.retry_waiting)
        if dlq_depth is not None:
            metrics.DLQ_DEPTH.replace(self.owner, dlq_depth)
        if self.reports_ages:
            metrics.OLDEST_UNDELIVERED.replace(self.owner, got.oldest_s)
        if circuits is not None:
            metrics.CIRCUIT_OPEN.replace(self.owner, {
                (metrics.ORIGINS(_origin_label(origin)),): 1.0
                for origin in circuits.not_closed()})
        if webhooks is not None:
            metrics.WEBHOOK_INFO.replace(self.owner, {
                (w.instance, w.id): 1.0 for w in list(webhooks.values())
                if metrics.WEBHOOK_IDS(w.id) != metrics.OTHER})

    # -- the broker side, in its own thread --------------------------------------------

    def _follow(self) -> None:
        # silent: the component's own consumer already logs the broker's troubles
        client = build_consumer(self.settings, self.group,
                                {"enable.auto.commit": False, "log_level": 0})
        codec = codec_for(self.settings)
        follower = None
        if self.reports_ages:
            follower = DeadLetterFollower(
                build_consumer(self.settings, self.group, {
                    "enable.auto.commit": False, "log_level": 0, "enable.partition.eof": True}),
                self.dlq_topics, self.settings.topic(DLQ), self.settings.topic(REDRIVEN),
                QUERY_TIMEOUT_S)
        try:
            while time.monotonic() - self.last_report < IDLE_INTERVALS * self.interval_s + 10:
                started = time.monotonic()
                try:
                    self._query(client, codec, follower)
                except Exception as e:  # a gauge thread must outlive any broker trouble
                    log.debug("gauges: broker query failed: %s", e, exc_info=True)
                time.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))
        finally:
            self.stopped = True
            client.close()
            if follower is not None:
                follower.close()
            for snapshot in (metrics.CONSUMER_LAG, metrics.RETRY_DUE, metrics.RETRY_WAITING,
                             metrics.DLQ_DEPTH, metrics.OLDEST_UNDELIVERED,
                             metrics.CIRCUIT_OPEN, metrics.WEBHOOK_INFO):
                snapshot.replace(self.owner, {})

    def _query(self, client: Consumer, codec: Any, follower: DeadLetterFollower | None) -> None:
        """Watermarks and committed offsets, published at once; then the heads' ages
        (reading records may take a moment), published again."""
        with self._lock:
            assigned = sorted(self._wanted)
        wanted = set(assigned)
        for topic in self.dlq_topics if follower is not None else ():
            meta = client.list_topics(topic, timeout=QUERY_TIMEOUT_S).topics.get(topic)
            if meta is not None and meta.error is None:
                wanted.update((topic, p) for p in meta.partitions)
        watermarks: dict[TP, tuple[int, int]] = {}
        for tp in sorted(wanted):
            marks = client.get_watermark_offsets(TopicPartition(*tp), QUERY_TIMEOUT_S, cached=False)
            if marks is not None:  # None: the broker did not answer in time
                watermarks[tp] = (int(marks[0]), int(marks[1]))
        asked = [TopicPartition(t, p) for t, p in assigned]
        committed = {
            (tp.topic, tp.partition): tp.offset
            for tp in (client.committed(asked, timeout=QUERY_TIMEOUT_S) if asked else [])
        }
        known = self.broker.heads
        heads: dict[TP, tuple[int, int]] = {}
        pending = []  # heads not read yet: the group finished the one read before
        for t, p in assigned if self.reports_ages else ():
            if t not in self.age_topics or (t, p) not in watermarks:
                continue
            low, high = watermarks[(t, p)]
            start = max(committed.get((t, p), -1), low)
            if start >= high:
                continue
            if (t, p) in known and known[(t, p)][0] == start:
                heads[(t, p)] = known[(t, p)]
            else:
                pending.append(TopicPartition(t, p, start))
        with self._lock:
            self.broker = BrokerView(watermarks, committed, heads)
        if follower is not None:
            depth = follower.refresh(
                {tp: low for tp, (low, _) in watermarks.items() if tp[0] in self.dlq_topics})
            with self._lock:
                self.dlq_depth = depth
        heads.update(self._heads(client, codec, pending))
        with self._lock:
            self.broker = BrokerView(watermarks, committed, heads)

    def _heads(self, client: Consumer, codec: Any, pending: list[TopicPartition]
               ) -> dict[TP, tuple[int, int]]:
        """(offset, created_at) of the first record at or after each given offset (the
        oldest record the group has not finished), read with this thread's own consumer."""
        heads: dict[TP, tuple[int, int]] = {}
        if not pending:
            return heads
        starts = {(tp.topic, tp.partition): tp.offset for tp in pending}
        client.assign(pending)
        # a partition whose only unread entry is a transaction marker yields no record
        deadline = time.monotonic() + HEAD_WAIT_S
        try:
            while len(heads) < len(pending) and time.monotonic() < deadline:
                msg = client.poll(0.2)
                if msg is None or msg.error() is not None:
                    continue
                tp = (msg.topic() or "", msg.partition() or 0)
                if tp in heads:
                    continue
                try:
                    created = codec.decode(msg.value(), msg.headers(), DeliveryRequest).created_at
                except DecodeError:
                    created = msg.timestamp()[1]  # undecodable: its produce time
                # keyed by the offset asked for: a marker before the record is skipped
                heads[tp] = (starts[tp], created)
                client.pause([TopicPartition(*tp)])
        finally:
            client.unassign()
        return heads


def _origin_label(origin: str) -> str:
    """scheme://host:port as origin_of() spells it; anything else (a URL with a path or
    credentials, from a fallback) is never used as a label."""
    return origin if _ORIGIN.fullmatch(origin) else "_invalid"


_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#@\s]+:[0-9]{1,5}")
# Keyed by the consumer itself, not id(consumer): holding it keeps its id from being
# reused by a later consumer (another group, another broker) while its monitor lives.
_monitors: dict[Consumer, _Monitor] = {}
_configured = False


def owner_of(group: str, consumer: Consumer) -> str:
    """The owner under which the gauges of this consumer are kept (io/metrics.Snapshot)."""
    return f"{group}/{id(consumer)}"


def report(
    settings: Settings,
    group: str,
    consumer: Consumer,
    paused: Collection[TP] | None = None,
    circuits: CircuitView | None = None,
    webhooks: Mapping[str, WebhookView] | None = None,
) -> None:
    """Refresh this consumer's gauges if `metrics_interval_s` has passed; cheap otherwise.

    Call it from the thread that polls `consumer`. `paused` (the retry tiers' consumer):
    partitions paused because their head is not due. `circuits` and `webhooks`: the
    delivery consumer's breakers and definitions, for the per-origin and info gauges."""
    global _configured
    if not _configured:
        metrics.configure(settings.metrics_webhook_cap)
        _configured = True
    monitor = _monitors.get(consumer)
    if monitor is None or monitor.stopped:
        for key in [k for k, m in _monitors.items() if m.stopped]:
            del _monitors[key]
        monitor = _monitors[consumer] = _Monitor(settings, group, owner_of(group, consumer),
                                                 delivery=paused is not None)
    monitor.report(consumer, paused, circuits, webhooks)
