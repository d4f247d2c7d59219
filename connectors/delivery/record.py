"""Outcome records: the attempt record, and the retry or DLQ record, of each delivery.

A record's offset is marked done (checkpoint) once every record of its outcome has been
acknowledged by Kafka. A record Kafka did not acknowledge (the broker was away for longer
than the producer's delivery timeout) is produced again rather than ending the process:
its offset stays unstored meanwhile, so nothing is lost either way. A fatal producer
error stops the loop (`fatal`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from connectors.delivery.checkpoint import Checkpoint
from connectors.delivery.operations import OperationalEvents
from connectors.delivery.ports import TP, Job, Message, RecordSink
from hookstream.errors import DecodeError, KafkaFailed, KafkaFatal
from hookstream.io import Throttled, denied, is_topic_denied, kafka_errors, metrics, translate
from hookstream.policy import DLQ_TIER, Decision, topic_of
from hookstream.records import Codec, DeliveryRequest, Record, dead_letter_headers

log = logging.getLogger(__name__)
Acknowledged = Callable[[Any, Any], None]  # the producer's on_delivery(err, msg)


@dataclass(frozen=True, slots=True)
class OutcomeTopics:
    """Where outcomes go: names resolved once from the settings."""

    attempts: str
    dlq: str
    tiers: tuple[str, ...]
    tiers_s: tuple[int, ...]  # the delay of each tier topic


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce, encoded."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Any


class InPlace(Protocol):
    """Retries kept in memory instead of forwarded to a tier (connectors.delivery.ordering)."""

    def keeps(self, job: Job, topic: str, copy: DeliveryRequest, owned: bool) -> bool: ...


class Records:
    def __init__(self, producer: RecordSink, codec: Codec, topics: OutcomeTopics,
                 checkpoint: Checkpoint, operations: OperationalEvents | None = None):
        self._producer = producer
        self._operations = operations
        self.in_place: InPlace | None = None  # retries kept in memory (ordering), if any
        self._codec = codec
        self._topics = topics
        self._checkpoint = checkpoint
        self._counters: dict[tuple[str, str], Any] = {}
        self.stats: dict[str, int] = {}
        self.unacknowledged = 0  # produce failures retried (broker away)
        self.fatal: str | None = None  # the producer is unusable: the loop stops
        self.denied_at = 0.0  # when Kafka last refused a write for a missing ACL (monotonic)
        self._failures = Throttled(log)  # the same failure retried: said once a minute

    def decision(self, job: Job, decision: Decision, tiers_s: tuple[int, ...]) -> None:
        """The attempt record, and the retry or DLQ record, of one decision."""
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
        records = [Outgoing(self._topics.attempts, attempt.delivery_id.encode(), value, headers)]
        forward = decision.forward
        if forward is not None:
            topic = (self._topics.dlq if forward.tier == DLQ_TIER else
                     self._topics.tiers[topic_of(forward.tier, tiers_s, self._topics.tiers_s)])
            if (forward.tier != DLQ_TIER and self.in_place is not None
                    and self.in_place.keeps(job, topic, forward.request,
                                            self._checkpoint.owns(job.tp, job.generation))):
                self._produce(job.tp, job.offset, records, settles=False)  # the attempt only
                return
            records.append(self._encoded(topic, forward.request))
            if forward.tier == DLQ_TIER and self._operations is not None:
                records += [Outgoing(*event) for event in
                            self._operations.dead_lettered(forward.request, attempt)]
        self._produce(job.tp, job.offset, records)

    def dead_letter(self, job: Job, reason: str) -> None:
        """To the DLQ without an attempt (the webhook is gone)."""
        self.count("dead_lettered")
        dead = job.request.evolve(hop=job.request.hop + 1, last_error=reason)
        self._produce(job.tp, job.offset, [self._encoded(self._topics.dlq, dead)])

    def undecodable(self, msg: Message, error: DecodeError) -> None:
        """The raw record to the DLQ as it came, with why and where (`error`, located)."""
        log.warning("%s", error)
        self.count("undecodable")
        metrics.UNDECODABLE.labels(error.topic).inc()
        raw = Outgoing(self._topics.dlq, msg.key(), msg.value(),
                       dead_letter_headers(msg.headers(), error))
        self._produce(TP(error.topic, error.partition), error.offset, [raw])

    def count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1

    def _encoded(self, topic: str, record: Record) -> Outgoing:
        value, headers = self._codec.encode(record, topic)
        key = record.key() if isinstance(record, DeliveryRequest) else ""
        return Outgoing(topic, key.encode(), value, headers)

    def _produce(self, tp: TP, offset: int, records: list[Outgoing], settles: bool = True
                 ) -> None:
        """Produce `records`; once Kafka has acknowledged them all, `offset` is done, unless
        `settles` is False (a retry kept in place: the record is not finished)."""
        remaining = [len(records)]

        def acknowledged(record: Outgoing) -> Acknowledged:
            def on_delivery(err: Any, msg: Any) -> None:
                if err is not None:
                    failure = translate(err, f"producing to {record.topic}")
                    if isinstance(failure, KafkaFatal):
                        self.fatal = str(failure)
                        return
                    # Not durable: produce it again shortly; the offset waits for it.
                    self.unacknowledged += 1
                    self._failed(record, failure, on_delivery)
                    return
                remaining[0] -= 1
                if remaining[0] == 0 and settles:
                    self._checkpoint.done(tp, offset)
            return on_delivery

        for record in records:
            self._produce_one(record, acknowledged(record))
        # Acknowledgements are served by the loop's producer.poll(0), once per iteration.

    def _produce_one(self, record: Outgoing, on_delivery: Acknowledged) -> None:
        try:
            with kafka_errors(f"producing to {record.topic}"):
                self._producer.produce(record.topic, record.value, record.key,
                                       headers=record.headers, on_delivery=on_delivery)
        except BufferError:  # the local queue is full (broker away for long): wait
            self._later(0.5, record, on_delivery)
        except KafkaFailed as e:  # refused at once (a topic known to deny this client)
            self._failed(record, e, on_delivery)

    def _failed(self, record: Outgoing, failure: KafkaFailed, on_delivery: Acknowledged
                ) -> None:
        """A produce that did not reach Kafka: said (once a minute), tried again in 1 s."""
        reason = str(failure)
        if is_topic_denied(failure):
            reason, self.denied_at = denied("WRITE", "topic", record.topic), time.monotonic()
        self._failures.warning(f"producing to {record.topic} failed, trying again: {reason}")
        self._later(1.0, record, on_delivery)

    def _later(self, delay_s: float, record: Outgoing, on_delivery: Acknowledged) -> None:
        asyncio.get_running_loop().call_later(delay_s, self._produce_one, record, on_delivery)
