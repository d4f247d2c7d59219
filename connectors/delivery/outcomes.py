"""The outcome writer: attempt records, retry and DLQ records, and the offsets they free.

An offset is stored only once every record of its outcome has been acknowledged by Kafka
(STYLE.md 9), and only up to the lowest record whose outcome is not durable yet
(OffsetTracker), so a crash repeats deliveries (same delivery id) and never loses one.

A record Kafka did not acknowledge (the broker was away for longer than the producer's
delivery timeout) is produced again rather than ending the process: its offset stays
unstored meanwhile, so nothing is lost either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from connectors.delivery.offsets import OffsetTracker
from connectors.delivery.ports import TP, Message, RecordSink, RecordSource
from hookstream.errors import DecodeError
from hookstream.io import Throttled, denied, metrics
from hookstream.policy import DLQ_TIER, Decision, topic_of
from hookstream.records import Codec, DeliveryRequest, Record

log = logging.getLogger(__name__)
Raw = tuple[str, Any, Any, Any]  # topic, key, value, headers


class InPlace(Protocol):
    """Retries kept in memory instead of forwarded to a tier (connectors.delivery.ordering)."""

    def keeps(self, tp: TP, offset: int, topic: str, copy: DeliveryRequest, owned: bool
              ) -> bool: ...
    def finished(self, tp: TP, offset: int) -> None: ...


class OutcomeWriter:
    def __init__(self, consumer: RecordSource, producer: RecordSink, codec: Codec,
                 topics: OutcomeTopics, later: Callable[[float, Callable[[], None]], Any]):
        self._consumer = consumer
        self._producer = producer
        self._codec = codec
        self._topics = topics
        self._later = later  # loop.call_later: a failed produce is tried again after a while
        self._trackers: dict[TP, OffsetTracker] = {}
        self._committable: dict[TP, int] = {}  # stored by store_offsets, once per iteration
        self._counters: dict[tuple[str, str], Any] = {}
        self._next: dict[TP, int] = {}  # one past the last offset read, per partition
        self._generation: dict[TP, int] = {}  # bumped when a partition is revoked
        self.stats: dict[str, int] = {}
        self.unacknowledged = 0  # produce failures retried (broker away)
        self.fatal: str | None = None  # the producer is unusable: the loop stops
        self.denied_at = 0.0  # when Kafka last refused a write for a missing ACL (monotonic)
        self._failures = Throttled(log)  # the same failure retried: said once a minute
        self.in_place: InPlace | None = None  # set by the service (ordering)

    # -- offsets -------------------------------------------------------------------------

    def track(self, tp: TP, offset: int) -> None:
        self._trackers.setdefault(tp, OffsetTracker()).add(offset)
        self._next[tp] = offset + 1

    def generation(self, tp: TP) -> int:
        return self._generation.get(tp, 0)

    def owns(self, tp: TP, generation: int) -> bool:
        """Whether `tp` is still owned as it was when a record of `generation` was read."""
        return self._generation.get(tp, 0) == generation

    def next_offset(self, tp: TP) -> int:
        """Where reading `tp` goes on: one past the last record read (for a pause)."""
        return self._next[tp]

    def done(self, tp: TP, offset: int) -> None:
        """The outcome of the record at `offset` is durable (or it needed none)."""
        tracker = self._trackers.get(tp)
        if tracker is None:
            return  # revoked: the new owner repeats it (same delivery id)
        committable = tracker.done(offset)
        if committable is not None:
            self._committable[tp] = committable
        if self.in_place is not None:
            self.in_place.finished(tp, offset)

    def pending(self, tp: TP) -> int:
        tracker = self._trackers.get(tp)
        return 0 if tracker is None else len(tracker)

    def store_offsets(self) -> None:
        """Store, in one call, the committable offset of every partition that advanced."""
        if not self._committable:
            return
        ready, self._committable = self._committable, {}
        offsets = [TopicPartition(t, p, o) for (t, p), o in ready.items()
                   if (t, p) in self._trackers]  # not revoked meanwhile
        if offsets:
            try:
                self._consumer.store_offsets(offsets=offsets)
            except KafkaException as e:
                log.debug("store_offsets failed (revoked?): %s", e)

    def revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Offsets already durable but not stored yet are stored before the partitions go,
        so the new owner does not repeat those deliveries."""
        revoked = [(tp.topic, tp.partition) for tp in partitions]
        ready = [TopicPartition(t, p, self._committable.pop((t, p)))
                 for t, p in revoked if (t, p) in self._committable]
        if ready:
            try:
                consumer.store_offsets(offsets=ready)
            except KafkaException as e:
                log.debug("store_offsets on revoke failed: %s", e)
        for key in revoked:
            self._trackers.pop(key, None)
            self._next.pop(key, None)
            self._generation[key] = self._generation.get(key, 0) + 1

    # -- records -------------------------------------------------------------------------

    def decision(self, tp: TP, offset: int, decision: Decision, tiers_s: tuple[int, ...],
                 generation: int | None = None) -> None:
        """The attempt record, and the retry or DLQ record, of one decision (made while
        `tp` was owned as of `generation`)."""
        attempt = decision.attempt
        self.count(attempt.outcome)
        key = (attempt.webhook_id, attempt.outcome)
        counter = self._counters.get(key)
        if counter is None:
            if len(self._counters) >= 100_000:
                self._counters.clear()
            counter = self._counters[key] = metrics.ATTEMPTS.labels(*key)
        counter.inc()
        if decision.gone:
            metrics.GONE.labels(attempt.webhook_id).inc()
        value, headers = self._codec.encode(attempt, self._topics.attempts)
        raw: list[Raw] = [(self._topics.attempts, attempt.delivery_id.encode(), value, headers)]
        forward = decision.forward
        if forward is not None:
            topic = (self._topics.dlq if forward.tier == DLQ_TIER else
                     self._topics.tiers[topic_of(forward.tier, tiers_s, self._topics.tiers_s)])
            if (forward.tier != DLQ_TIER and self.in_place is not None
                    and self.in_place.keeps(tp, offset, topic, forward.request,
                                            generation is None or self.owns(tp, generation))):
                self._produce(tp, offset, raw, settles=False)  # the attempt record only
                return
            raw.append(self._encoded(topic, forward.request))
        self._produce(tp, offset, raw)

    def dead(self, tp: TP, offset: int, request: DeliveryRequest, reason: str) -> None:
        """To the DLQ without an attempt (the webhook is gone)."""
        self.count("dead_lettered")
        dead = request.evolve(hop=request.hop + 1, last_error=reason)
        self._produce(tp, offset, [self._encoded(self._topics.dlq, dead)])

    def undecodable(self, msg: Message, error: DecodeError) -> None:
        """The raw record to the DLQ with the reason in a header: nothing is lost."""
        log.warning("%s", error)
        self.count("undecodable")
        metrics.UNDECODABLE.labels(msg.topic() or "").inc()
        tp, offset = (msg.topic() or "", msg.partition() or 0), msg.offset() or 0
        headers = [*list(msg.headers() or []), ("hookstream-error", error.reason.encode())]
        self._produce(tp, offset, [(self._topics.dlq, msg.key(), msg.value(), headers)])

    def _encoded(self, topic: str, record: Record) -> Raw:
        value, headers = self._codec.encode(record, topic)
        key = record.key() if isinstance(record, DeliveryRequest) else ""
        return (topic, key.encode(), value, headers)

    def count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1

    def _produce(self, tp: TP, offset: int, records: list[Raw], settles: bool = True) -> None:
        """Produce `records`; once Kafka has them all, the record at `offset` is done,
        unless `settles` is False (a retry kept in place: the record is not finished)."""
        remaining = [len(records)]

        def acked(record: Raw) -> Callable[[Any, Any], None]:
            def on_delivery(err: Any, msg: Any) -> None:
                if err is not None and err.fatal():
                    self.fatal = f"producing to {record[0]} failed: {err}"
                    return
                if err is not None:
                    # Not durable: produce it again shortly; the offset waits for it.
                    self.unacknowledged += 1
                    self._failed(record, err, on_delivery)
                    return
                remaining[0] -= 1
                if remaining[0] == 0 and settles:
                    self.done(tp, offset)
            return on_delivery

        for record in records:
            self._send(record, acked(record))
        # Acknowledgements are served by the loop's producer.poll(0), once per iteration.

    def _send(self, record: Raw, on_delivery: Callable[[Any, Any], None]) -> None:
        topic, key, value, headers = record
        try:
            self._producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
        except BufferError:  # the local queue is full (broker away for long): wait
            self._later(0.5, lambda: self._send(record, on_delivery))
        except KafkaException as e:  # refused at once (a topic known to deny this client)
            self._failed(record, e.args[0], on_delivery)

    def _failed(self, record: Raw, err: Any, on_delivery: Callable[[Any, Any], None]) -> None:
        """A produce that did not reach Kafka: said (once a minute), tried again in 1 s."""
        reason = str(err)
        if err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            reason, self.denied_at = denied("WRITE", "topic", record[0]), time.monotonic()
        self._failures.warning(f"producing to {record[0]} failed, trying again: {reason}")
        self._later(1.0, lambda: self._send(record, on_delivery))


class OutcomeTopics:
    """Where outcomes go: names resolved once from the settings."""

    def __init__(self, attempts: str, dlq: str, tiers: tuple[str, ...],
                 tiers_s: tuple[int, ...]) -> None:
        self.attempts, self.dlq, self.tiers, self.tiers_s = attempts, dlq, tiers, tiers_s
