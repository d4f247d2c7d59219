"""Replay: the events still on glpi.item-changes in a time range, into one webhook again.

Each event of the range is matched against the webhook's current definition only (active
flag, entity scope, filter), with the processor's own code (matching.plan) and the
instance's time zone, and what matches is written to hookstream.deliveries as a new
delivery with a new id (records.replays). Used by `hookstream webhooks replay` and by
the admin API and console, which share this control-plane package.

Exactly once, as the DLQ redrive: one transactional producer per replay writes the
deliveries and the replay's progress (committed offsets of a consumer group of its own,
with the range's end and the counts in their metadata) in one Kafka transaction. A run
killed at any point leaves what it committed, and nothing else (read_committed); a run
of the same replay continues from there. A second run of the same replay started while
one is running fences the first (same transactional id). The range is taken by record
timestamps (offsets_for_times); its end is fixed by the first transaction of the replay,
at --until or at the end of each partition when it began, so events that arrive later
(which the processor delivers) are never replayed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from confluent_kafka import Consumer, Message, TopicPartition

from hookstream.config import Settings
from hookstream.control.admin import current_webhooks, load_entities
from hookstream.control.instances import current_instances
from hookstream.control.replay_txn import ReplayTransactions
from hookstream.errors import DecodeError, KafkaFailed, UsageError
from hookstream.io import (
    bounded,
    codec_for,
    consumer,
    end_of_partition,
    kafka_errors,
    watermarks,
)
from hookstream.matching import EntityTable, RenderFailure, Skipped, WebhookIndex, plan
from hookstream.records import (
    DELIVERIES,
    ITEM_CHANGES,
    Codec,
    DeliveryRequest,
    ItemChangeEvent,
)
from hookstream.records.replays import (
    REPLAY_ID,
    PartitionProgress,
    ReplayCount,
    replay_delivery_id,
)
from hookstream.render import RenderLimits

log = logging.getLogger(__name__)
BATCH = 100  # deliveries per transaction


@dataclass(frozen=True, slots=True)
class ReplayJob:
    """What to replay. `limit` stops a run after that many deliveries (0: no limit); a
    run of the same replay continues it."""

    webhook_id: str
    replay_id: str
    since_ms: int
    until_ms: int | None = None
    rate_per_s: float = 0.0
    dry_run: bool = False
    limit: int = 0


@dataclass(frozen=True, slots=True)
class ReplayStatus:
    """A replay as it goes: `done` of `total` records of this run's range read, `count`
    what this run did so far."""

    replay_id: str
    webhook_id: str
    count: ReplayCount
    done: int
    total: int
    finished: bool = False
    dry_run: bool = False


def check_replay_id(replay_id: str) -> str:
    if not REPLAY_ID.match(replay_id):
        raise UsageError(f"replay id {replay_id!r} must be 1-64 of [A-Za-z0-9._-]")
    return replay_id


def replay_group(settings: Settings, replay_id: str) -> str:
    """The consumer group holding a replay's progress, also its transactional id."""
    return f"{settings.topic_prefix}hookstream-replay-{replay_id}"


def replay_plan(event: ItemChangeEvent, webhook: WebhookIndex, entities: EntityTable,
                now_ms: int, limits: RenderLimits, replay_id: str,
                integration_users: frozenset[int] = frozenset(),
                ) -> DeliveryRequest | RenderFailure | None:
    """The new delivery (or render failure) of one event for the one webhook in
    `webhook`, or None when that webhook does not fire for it or skips it, as the
    processor does (the instance's `integration_users`). Pure."""
    results = plan(event, webhook, entities, now_ms, limits, integration_users)
    if not results:
        return None
    [result] = results
    if isinstance(result, Skipped):
        return None
    request = result.request if isinstance(result, RenderFailure) else result
    fresh = request.evolve(
        delivery_id=replay_delivery_id(event.event_id, request.webhook_id, replay_id))
    return RenderFailure(fresh, result.reason) if isinstance(result, RenderFailure) else fresh


def replay(
    settings: Settings,
    job: ReplayJob,
    on_progress: Callable[[ReplayStatus], None] = lambda status: None,
    clock: Callable[[], float] = time.time,
    stopping: threading.Event | None = None,
) -> ReplayStatus:
    """Run (or continue) a replay; its last status. UsageError for a webhook that does
    not exist or cannot be compiled; KafkaFailed when a transaction fails (run the
    replay again: it continues from what was committed)."""
    check_replay_id(job.replay_id)
    definition = current_webhooks(settings).get(job.webhook_id)
    if definition is None:
        raise UsageError(f"no webhook {job.webhook_id!r}")
    index = WebhookIndex()
    index.put(definition)
    if definition.id in index.invalid:
        raise UsageError(f"webhook {definition.id} cannot be compiled: "
                         f"{index.invalid[definition.id]}")
    instance = current_instances(settings).get(definition.instance)
    limits = RenderLimits(max_body_bytes=settings.max_body_bytes,
                          max_render_s=settings.render_timeout_s,
                          timezone=instance.timezone if instance else "UTC")
    run = _Run(settings, job, index, load_entities(settings), limits, clock,
               frozenset(instance.integration_users if instance else ()))
    try:
        return run.go(on_progress, stopping or threading.Event())
    finally:
        run.close()


class _Run:
    """One run of a replay: set up, then read the range once."""

    def __init__(self, settings: Settings, job: ReplayJob, index: WebhookIndex,
                 entities: EntityTable, limits: RenderLimits, clock: Callable[[], float],
                 integration_users: frozenset[int]):
        self.settings, self.job, self.index, self.entities = settings, job, index, entities
        self.limits, self.clock, self.integration_users = limits, clock, integration_users
        self.codec: Codec = codec_for(settings)
        self.topic, self.deliveries = settings.topic(ITEM_CHANGES), settings.topic(DELIVERIES)
        self.timeout_s = settings.kafka_call_timeout_s
        group = replay_group(settings, job.replay_id)
        # First the producer: its init aborts a transaction a killed run left open, whose
        # offsets would otherwise keep `committed` waiting.
        self.txn = None if job.dry_run else ReplayTransactions(settings, group, self.timeout_s)
        self.consumer: Consumer = consumer(settings, group, {"enable.partition.eof": True})

    def close(self) -> None:
        self.consumer.close()

    def go(self, on_progress: Callable[[ReplayStatus], None],
           stopping: threading.Event) -> ReplayStatus:
        progress, resumed = self._progress()
        if self.txn is not None and not resumed:  # fixes the range's end for every run
            self.txn.commit(self.topic, progress, self.consumer)
        start = {p: pr.position for p, pr in progress.items()}
        already = sum(pr.replayed for pr in progress.values())
        total = sum(pr.end - pr.position for pr in progress.values())
        count = ReplayCount(already=already)

        def status(finished: bool = False) -> ReplayStatus:
            done = sum(progress[p].position - start[p] for p in progress)
            return ReplayStatus(self.job.replay_id, self.job.webhook_id, count, done, total,
                                finished, self.job.dry_run)

        pending = {p for p, pr in progress.items() if not pr.done}
        self.consumer.assign([TopicPartition(self.topic, p, progress[p].position)
                              for p in sorted(pending)])
        started, last_report = time.monotonic(), 0.0
        on_progress(status())
        while pending and not stopping.is_set():
            if self.job.limit and count.replayed >= self.job.limit:
                break
            msg = self.consumer.poll(0.5)
            if msg is None:
                continue
            p = msg.partition() or 0
            if end_of_partition(msg, f"reading {self.topic}"):
                self._finish(p, progress, pending)  # only control records were left
                continue
            if p not in pending:
                continue
            offset = msg.offset() or 0
            if offset >= progress[p].end:
                self._finish(p, progress, pending)
                continue
            step = self._one(msg)
            count = count.plus(step)
            progress[p] = _advanced(progress[p], offset + 1, step)
            if progress[p].done:
                self._finish(p, progress, pending)
            if self.txn is not None and (self.txn.open >= BATCH or not pending):
                self.txn.commit(self.topic, progress, self.consumer)
            if self.txn is not None and self.job.rate_per_s > 0 and step.replayed:
                ahead_s = count.replayed / self.job.rate_per_s - (time.monotonic() - started)
                if ahead_s > 0:  # paced: never ahead of count / rate
                    self.txn.commit(self.topic, progress, self.consumer)
                    on_progress(status())
                    stopping.wait(ahead_s)
            if time.monotonic() - last_report >= 0.2:
                last_report = time.monotonic()
                on_progress(status())
        if self.txn is not None:
            self.txn.commit(self.topic, progress, self.consumer)
        final = status(finished=not pending)
        on_progress(final)
        return final

    def _progress(self) -> tuple[dict[int, PartitionProgress], bool]:
        """Each partition's progress as committed by earlier runs (True), or this
        replay's range as it is now (False)."""
        with kafka_errors(f"reading {self.topic}"):
            meta = self.consumer.list_topics(self.topic, timeout=self.timeout_s).topics[self.topic]
        if meta.error is not None:
            raise KafkaFailed(f"topic {self.topic}: {meta.error}")
        parts = [TopicPartition(self.topic, p) for p in sorted(meta.partitions)]
        committed = bounded(lambda: self.consumer.committed(parts, timeout=self.timeout_s),
                            self.timeout_s + 5, "reading the replay's progress")
        earlier = {tp.partition: PartitionProgress.from_metadata(tp.metadata)
                   for tp in committed}
        if any(earlier.values()):  # a partition added since has nothing of the range
            return {p: pr or PartitionProgress(0, 0) for p, pr in earlier.items()}, True
        return self._range([tp.partition for tp in parts]), False

    def _range(self, partitions: list[int]) -> dict[int, PartitionProgress]:
        def first_at(ms: int) -> dict[int, int]:
            asked = [TopicPartition(self.topic, p, ms) for p in partitions]
            with kafka_errors(f"finding offsets of {self.topic} by time"):
                found = self.consumer.offsets_for_times(asked, timeout=self.timeout_s)
            return {tp.partition: tp.offset for tp in found}  # -1: none that late

        ends = {p: watermarks(self.consumer, TopicPartition(self.topic, p), self.timeout_s)[1]
                for p in partitions}
        since = first_at(self.job.since_ms)
        until = first_at(self.job.until_ms) if self.job.until_ms is not None else {}
        out = {}
        for p, high in ends.items():
            end = min(high, until[p]) if until.get(p, -1) >= 0 else high
            start = since[p] if since[p] >= 0 else end
            out[p] = PartitionProgress(min(start, end), end)
        return out

    def _finish(self, p: int, progress: dict[int, PartitionProgress], pending: set[int]) -> None:
        progress[p] = replace(progress[p], position=max(progress[p].position, progress[p].end))
        if p in pending:
            pending.discard(p)
            self.consumer.pause([TopicPartition(self.topic, p)])

    def _one(self, msg: Message) -> ReplayCount:
        """One record of the range: written (unless a dry run) when it matches."""
        try:
            event = self.codec.decode(msg.value(), msg.headers(), ItemChangeEvent)
        except DecodeError as e:
            log.warning("skipped: %s", e.at(msg.topic() or "", msg.partition() or 0,
                                               msg.offset() or 0))
            return ReplayCount(read=1, skipped=1)
        now_ms = int(self.clock() * 1000)
        result = replay_plan(event, self.index, self.entities, now_ms, self.limits,
                             self.job.replay_id, self.integration_users)
        if result is None:
            return ReplayCount(read=1)
        if isinstance(result, RenderFailure):
            log.warning("skipped event %s: render error: %s", event.event_id, result.reason)
            return ReplayCount(read=1, matched=1, skipped=1)
        if self.txn is not None:
            value, headers = self.codec.encode(result, self.deliveries)
            self.txn.produce(self.deliveries, value, result.key().encode(), headers)
        return ReplayCount(read=1, matched=1, replayed=1)


def _advanced(pr: PartitionProgress, position: int, step: ReplayCount) -> PartitionProgress:
    return replace(pr, position=position, read=pr.read + step.read,
                   matched=pr.matched + step.matched, replayed=pr.replayed + step.replayed,
                   skipped=pr.skipped + step.skipped)
