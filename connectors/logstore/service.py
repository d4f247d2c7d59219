"""`hookstream run logstore` and `hookstream logstore rebuild`: topic records into the store.

The loop is thin: consume a batch, turn each record into rows (rows.py), write them in
one transaction (store.py), and only then commit the batch's offsets. A crash or SIGKILL
anywhere re-reads at most the batch in flight, whose rows the upserts write again
unchanged. A retention pass runs between batches, a few bounded deletes at a time.

A database outage (PostgreSQL restarting, SQLite locked) does not end the process: the
batch in hand is written again with capped backoff, its offsets uncommitted, /readyz
answering 503 meanwhile; a retention pass that fails is skipped until the next one.
Only SIGTERM ends the process, an outage included.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FrameType
from typing import NamedTuple

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from connectors.logstore.autodisable import AutoDisable
from connectors.logstore.health import HealthSample, health_sample
from connectors.logstore.rows import (
    AttemptRow,
    DeliveryRow,
    ItemRow,
    Source,
    from_attempt,
    from_request,
)
from connectors.logstore.store import LogStore, open_engine
from hookstream.config import Settings
from hookstream.errors import DecodeError, TransientError
from hookstream.io import codec_for, consumer, gauges, metrics, watermarks
from hookstream.io.health import serve
from hookstream.records import (
    ALERT_ACTIONS,
    ATTEMPTS,
    AUDIT,
    DELIVERIES,
    DLQ,
    ITEM_CHANGES,
    OPERATIONS,
    AttemptRecord,
    AuditRecord,
    Codec,
    DeliveryRequest,
    ItemChangeEvent,
    OperationalEvent,
    TicketAction,
    retry_topics,
)

log = logging.getLogger(__name__)
GROUP = "hookstream-logstore"  # with the topic prefix in front
PRUNE_EVERY_S = 60.0
PRUNE_BATCHES = 5  # per pass: retention never holds up the writer for long
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 10.0  # a failed write is tried again after these, doubling


@dataclass(frozen=True, slots=True)
class TopicRole:
    source: Source | None  # None: the attempts or the item changes topic
    tier: str | None = None
    items: bool = False  # glpi.item-changes: the last state of each item
    audit: bool = False  # hookstream.audit: the writes made through the admin API
    operations: bool = False  # hookstream.operations: operational events
    alert_actions: bool = False  # hookstream.alert-actions: what the ticketer did


def topic_roles(settings: Settings) -> dict[str, TopicRole]:
    """Every topic the log store reads, and what its records mean."""
    roles = {
        settings.topic(DELIVERIES): TopicRole(Source.DELIVERIES),
        settings.topic(DLQ): TopicRole(Source.DLQ),
        settings.topic(ATTEMPTS): TopicRole(None),
        settings.topic(ITEM_CHANGES): TopicRole(None, items=True),
        settings.topic(AUDIT): TopicRole(None, audit=True),
        settings.topic(OPERATIONS): TopicRole(None, operations=True),
        settings.topic(ALERT_ACTIONS): TopicRole(None, alert_actions=True),
    }
    for name, tier in zip(retry_topics(settings), settings.retry_tiers, strict=True):
        roles[name] = TopicRole(Source.TIER, tier)
    return roles


class Rows(NamedTuple):
    """The rows of a batch, as `LogStore.write` takes them."""

    deliveries: list[DeliveryRow]
    attempts: list[AttemptRow]
    items: list[ItemRow]
    audit: list[AuditRecord]
    operations: list[OperationalEvent]
    health: list[HealthSample]  # the attempts auto-disable counts
    alert_actions: list[TicketAction]

    @property
    def records(self) -> int:
        """Records these rows come from: each gave one delivery fragment, item, audit,
        operations or alert action row."""
        return (len(self.deliveries) + len(self.items) + len(self.audit) + len(self.operations)
                + len(self.alert_actions))


class Ingest:
    """Turns a batch of messages into rows and writes them."""

    def __init__(self, settings: Settings, store: LogStore, codec: Codec):
        self.roles = topic_roles(settings)
        self.store = store
        self.codec = codec
        self.limit = settings.logstore_body_max_bytes

    def rows(self, messages: Iterable[Message]) -> Rows:
        rows = Rows([], [], [], [], [], [], [])
        for msg in messages:
            if msg.error() is not None:
                continue
            topic = msg.topic() or ""
            role = self.roles.get(topic)
            if role is None:
                continue
            try:
                if role.audit:
                    rows.audit.append(self.codec.decode(msg.value(), msg.headers(), AuditRecord))
                    continue
                if role.operations:
                    rows.operations.append(
                        self.codec.decode(msg.value(), msg.headers(), OperationalEvent))
                    continue
                if role.alert_actions:
                    rows.alert_actions.append(
                        self.codec.decode(msg.value(), msg.headers(), TicketAction))
                    continue
                if role.items:
                    event = self.codec.decode(msg.value(), msg.headers(), ItemChangeEvent)
                    rows.items.append(ItemRow(event))
                    continue
                if role.source is None:
                    record = self.codec.decode(msg.value(), msg.headers(), AttemptRecord)
                    fragment, attempt = from_attempt(
                        record, msg.partition() or 0, msg.offset() or 0, self.limit
                    )
                    rows.attempts.append(attempt)
                    if (sample := health_sample(record)) is not None:
                        rows.health.append(sample)
                else:
                    request = self.codec.decode(msg.value(), msg.headers(), DeliveryRequest)
                    fragment = from_request(request, role.source, role.tier, self.limit)
            except (DecodeError, ValueError) as e:
                # Undecodable records are dead-lettered with their reason already (by the
                # processor or the delivery consumer); the log has nothing to show of them.
                metrics.LOGSTORE_RECORDS.labels("undecodable").inc()
                log.warning("skipped %s[%s]@%s: %s", topic, msg.partition(), msg.offset(), e)
                continue
            rows.deliveries.append(fragment)
        return rows

    def write(self, messages: list[Message]) -> None:
        self.store.write(*self.rows(messages))


class Database:
    """The store as the loop uses it: each outcome sets readiness and the metrics, and an
    outage is logged once when it starts and once when it ends, not at every retry."""

    def __init__(self, store: LogStore, wait: Callable[[float], bool]):
        self.store = store
        self.wait = wait  # sleeps up to the seconds given; True when stopping
        self.failing_since: float | None = None  # time.monotonic() of the first failure
        # Every series from the start, at zero: a dashboard shows 0 rather than no data.
        for outcome in ("written", "undecodable"):
            metrics.LOGSTORE_RECORDS.labels(outcome)
        for operation in ("write", "prune"):
            metrics.LOGSTORE_DB_ERRORS.labels(operation)
        metrics.READY.labels("logstore").set(1)  # the schema was just migrated: it answers

    @property
    def ready(self) -> bool:
        return self.failing_since is None

    def write(self, rows: Rows) -> bool:
        """Write `rows`, again and again with capped backoff while the database cannot be
        reached. False if stopping first: the batch's offsets must stay uncommitted."""
        delay_s = RETRY_FIRST_S
        while True:
            started = time.monotonic()
            try:
                self.store.write(*rows)
            except TransientError as e:
                self._failed("write", e)
                if self.wait(delay_s):
                    return False
                delay_s = min(2 * delay_s, RETRY_MAX_S)
                continue
            metrics.LOGSTORE_WRITE.observe(time.monotonic() - started)
            metrics.LOGSTORE_RECORDS.labels("written").inc(rows.records)
            self._answered()
            return True

    def prune(self, max_age_days: float, clock: Callable[[], float]) -> None:
        """One retention pass; if the database fails, it waits for the next pass."""
        try:
            deleted = self.store.prune(max_age_days, clock=clock, max_batches=PRUNE_BATCHES)
        except TransientError as e:
            self._failed("prune", e)
            return
        metrics.LOGSTORE_PRUNED.inc(deleted)
        self._answered()

    def _failed(self, operation: str, error: TransientError) -> None:
        metrics.LOGSTORE_DB_ERRORS.labels(operation).inc()
        if self.failing_since is None:
            log.warning("%s; trying again until it answers (offsets not committed meanwhile)",
                        error)
            self.failing_since = time.monotonic()
            metrics.READY.labels("logstore").set(0)

    def _answered(self) -> None:
        if self.failing_since is not None:
            log.info("log store database answers again, after %.0f s",
                     time.monotonic() - self.failing_since)
            self.failing_since = None
            metrics.READY.labels("logstore").set(1)


def _stop_on_signals(stop: list[bool]) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.append(True)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


def _waiter(should_stop: Callable[[], bool], tick: Callable[[], None]
            ) -> Callable[[float], bool]:
    """A sleep of up to `seconds` that ends early when stopping (True then), calling `tick`
    as it starts (the lag gauges, which go on while a write waits for the database)."""
    def wait(seconds: float) -> bool:
        tick()
        deadline = time.monotonic() + seconds
        while not should_stop() and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        return should_stop()

    return wait


def _disable_failing(autodisable: AutoDisable, rows: Rows) -> None:
    """Auto-disable's check of the webhooks this batch has attempts of. A database that
    fails now is not a reason to hold the batch: their next attempts ask again."""
    try:
        autodisable.check({s.webhook_id for s in rows.health})
    except TransientError as e:
        log.warning("auto-disable check skipped: %s", e)


def _commit(cons: Consumer) -> None:
    """The batch's offsets, synchronously (a crash right after re-reads nothing that is not
    in the store). A failure is not fatal: a consumer out of its group after a long outage
    (max.poll.interval.ms) or a broker away only means the batch is read again, and its
    rows written again unchanged."""
    try:
        cons.commit(asynchronous=False)
    except KafkaException as e:
        log.warning("offsets not committed (the batch will be read again): %s", e)


def run_logstore(
    settings: Settings,
    should_stop: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.time,
) -> int:
    """Follow the topics into the store until SIGTERM (or `should_stop`)."""
    stop: list[bool] = []
    if should_stop is None:
        _stop_on_signals(stop)
        should_stop = lambda: bool(stop)  # noqa: E731
    engine = open_engine(settings)
    store = LogStore(engine)
    ingest = Ingest(settings, store, codec_for(settings))
    autodisable = AutoDisable(settings, store, clock) if settings.autodisable_after_s else None
    group = settings.topic_prefix + GROUP
    cons = consumer(settings, group)
    cons.subscribe(list(ingest.roles))
    database = Database(store, _waiter(should_stop, lambda: gauges.report(settings, group, cons)))
    health = serve(settings.metrics_port, ready=lambda: database.ready,
                   host=settings.metrics_host, registry=metrics.registry("logstore"))
    next_prune = clock()
    try:
        while not should_stop():
            # error events (a topic not created yet) carry no offset to commit
            messages = [m for m in cons.consume(settings.logstore_batch_size, 0.5)
                        if m.error() is None]
            gauges.report(settings, group, cons)  # lag, every few seconds
            if messages:
                rows = ingest.rows(messages)
                if not database.write(rows):
                    break  # stopping during an outage: the batch is read again next time
                if autodisable is not None and rows.health:
                    _disable_failing(autodisable, rows)
                _commit(cons)
            if clock() >= next_prune:
                database.prune(settings.logstore_retention_days, clock)
                next_prune = clock() + PRUNE_EVERY_S
    finally:
        cons.close()
        if autodisable is not None:
            autodisable.close()
        engine.dispose()
        if health is not None:
            health.shutdown()
    return 0


def _ends(cons: Consumer, topics: Iterable[str]) -> list[tuple[TopicPartition, int]]:
    """Every partition of `topics` with its low watermark set and its high one beside."""
    found = []
    for topic in topics:
        meta = cons.list_topics(topic, timeout=30).topics[topic]
        for partition in meta.partitions:
            tp = TopicPartition(topic, partition)
            low, high = watermarks(cons, tp, 30)
            tp.offset = low
            found.append((tp, high))
    return found


def rebuild(settings: Settings, on_progress: Callable[[int], None] = lambda n: None) -> int:
    """Empty the store and read every topic again from its start; then the group's offsets
    are set to where the rebuild stopped, so `run logstore` goes on from there. Run it
    with the log store stopped. Returns the number of records read."""
    engine = open_engine(settings)
    store = LogStore(engine)
    ingest = Ingest(settings, store, codec_for(settings))
    cons = consumer(settings, settings.topic_prefix + GROUP)
    read = 0
    try:
        parts = _ends(cons, ingest.roles)
        store.clear()
        ends = {(tp.topic, tp.partition): high for tp, high in parts}
        positions = {(tp.topic, tp.partition): tp.offset for tp, _ in parts}
        left = {k for k, high in ends.items() if positions[k] < high}
        cons.assign([tp for tp, _ in parts])
        deadline = time.monotonic() + 60.0  # without progress
        while left and time.monotonic() < deadline:
            messages = [m for m in cons.consume(settings.logstore_batch_size, 0.5)
                        if m.error() is None]
            if messages:
                deadline = time.monotonic() + 60.0
                ingest.write(messages)
                read += len(messages)
                on_progress(read)
            # Where the consumer stands, past transaction markers too (they take offsets).
            for tp in cons.position([TopicPartition(t, p) for t, p in left]):
                key = (tp.topic, tp.partition)
                positions[key] = max(positions[key], tp.offset)
                if tp.offset >= ends[key]:
                    left.discard(key)
        cons.commit(
            offsets=[TopicPartition(t, p, off) for (t, p), off in positions.items()],
            asynchronous=False,
        )
    finally:
        cons.close()
        engine.dispose()
    return read
