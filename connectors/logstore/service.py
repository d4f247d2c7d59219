"""`hookstream run logstore` and `hookstream logstore rebuild`: topic records into the store.

The loop is thin: consume a batch, turn each record into rows (rows.py), write them in
one transaction (store.py), and only then commit the batch's offsets. A crash or SIGKILL
anywhere re-reads at most the batch in flight, whose rows the upserts write again
unchanged. A retention pass runs between batches, a few bounded deletes at a time.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FrameType

from confluent_kafka import Consumer, Message, TopicPartition

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
from hookstream.errors import DecodeError
from hookstream.io import codec_for, consumer, watermarks
from hookstream.io.health import serve
from hookstream.records import (
    ATTEMPTS,
    DELIVERIES,
    DLQ,
    ITEM_CHANGES,
    AttemptRecord,
    Codec,
    DeliveryRequest,
    ItemChangeEvent,
    retry_topics,
)

log = logging.getLogger(__name__)
GROUP = "hookstream-logstore"  # with the topic prefix in front
PRUNE_EVERY_S = 60.0
PRUNE_BATCHES = 5  # per pass: retention never holds up the writer for long


@dataclass(frozen=True, slots=True)
class TopicRole:
    source: Source | None  # None: the attempts or the item changes topic
    tier: str | None = None
    items: bool = False  # glpi.item-changes: the last state of each item


def topic_roles(settings: Settings) -> dict[str, TopicRole]:
    """Every topic the log store reads, and what its records mean."""
    roles = {
        settings.topic(DELIVERIES): TopicRole(Source.DELIVERIES),
        settings.topic(DLQ): TopicRole(Source.DLQ),
        settings.topic(ATTEMPTS): TopicRole(None),
        settings.topic(ITEM_CHANGES): TopicRole(None, items=True),
    }
    for name, tier in zip(retry_topics(settings), settings.retry_tiers, strict=True):
        roles[name] = TopicRole(Source.TIER, tier)
    return roles


class Ingest:
    """Turns a batch of messages into rows and writes them."""

    def __init__(self, settings: Settings, store: LogStore, codec: Codec):
        self.roles = topic_roles(settings)
        self.store = store
        self.codec = codec
        self.limit = settings.logstore_body_max_bytes
        self.counts = {"records": 0, "undecodable": 0}

    def rows(
        self, messages: Iterable[Message]
    ) -> tuple[list[DeliveryRow], list[AttemptRow], list[ItemRow]]:
        fragments: list[DeliveryRow] = []
        attempt_rows: list[AttemptRow] = []
        item_rows: list[ItemRow] = []
        for msg in messages:
            if msg.error() is not None:
                continue
            topic = msg.topic() or ""
            role = self.roles.get(topic)
            if role is None:
                continue
            self.counts["records"] += 1
            try:
                if role.items:
                    event = self.codec.decode(msg.value(), msg.headers(), ItemChangeEvent)
                    item_rows.append(ItemRow(event))
                    continue
                if role.source is None:
                    record = self.codec.decode(msg.value(), msg.headers(), AttemptRecord)
                    fragment, attempt = from_attempt(
                        record, msg.partition() or 0, msg.offset() or 0, self.limit
                    )
                    attempt_rows.append(attempt)
                else:
                    request = self.codec.decode(msg.value(), msg.headers(), DeliveryRequest)
                    fragment = from_request(request, role.source, role.tier, self.limit)
            except (DecodeError, ValueError) as e:
                # Undecodable records are dead-lettered with their reason already (by the
                # processor or the delivery consumer); the log has nothing to show of them.
                self.counts["undecodable"] += 1
                log.warning("skipped %s[%s]@%s: %s", topic, msg.partition(), msg.offset(), e)
                continue
            fragments.append(fragment)
        return fragments, attempt_rows, item_rows

    def write(self, messages: list[Message]) -> None:
        self.store.write(*self.rows(messages))


def _stop_on_signals(stop: list[bool]) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.append(True)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


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
    cons = consumer(settings, settings.topic_prefix + GROUP)
    cons.subscribe(list(ingest.roles))
    health = serve(settings.metrics_port, ready=lambda: True, host=settings.metrics_host)
    next_prune = clock()
    try:
        while not should_stop():
            messages = cons.consume(settings.logstore_batch_size, 0.5)
            if messages:
                ingest.write(messages)
                # The rows are committed: now the offsets (synchronously, so a crash
                # right after re-reads nothing that is not in the store).
                cons.commit(asynchronous=False)
            if clock() >= next_prune:
                store.prune(settings.logstore_retention_days, clock=clock,
                            max_batches=PRUNE_BATCHES)
                next_prune = clock() + PRUNE_EVERY_S
    finally:
        cons.close()
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
