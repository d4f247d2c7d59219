"""A replay's transactions (control/replay.py): its deliveries and its progress together.

The progress is the offsets of the replay's own consumer group, sent to the transaction
with the range's end and counts in their metadata, so a delivery is on Kafka exactly when
its event counts as replayed. Unlike the redrive's transactions (connectors/redrive_txn.py)
it does not produce a failed transaction again: it aborts it and says so, and the next run
of the replay continues from the committed progress, as after a kill.
"""

from __future__ import annotations

import logging

from confluent_kafka import Consumer, Producer, TopicPartition

from hookstream.config import Settings
from hookstream.errors import HookstreamError, KafkaFailed
from hookstream.io import bounded, kafka_errors, producer, retried
from hookstream.records.replays import PartitionProgress

log = logging.getLogger(__name__)


class ReplayTransactions:
    """The replay's transactions: deliveries, then the progress as offsets, committed
    together. A failure aborts what is open and raises: the transaction is on Kafka whole
    (a commit whose answer was lost) or not at all, and the next run continues from the
    progress that is."""

    def __init__(self, settings: Settings, transactional_id: str, timeout_s: float):
        self.timeout_s = timeout_s
        self.open = 0  # deliveries in the open transaction
        self._began = False
        self._producer: Producer = producer(settings, transactional_id=transactional_id)
        retried(lambda: self._producer.init_transactions(timeout_s), timeout_s + 5,
                "initialising the replay's transactions")

    def produce(self, topic: str, value: bytes, key: bytes,
                headers: list[tuple[str, str | bytes | None]]) -> None:
        self._begin()
        with kafka_errors("producing a replayed delivery"):
            while True:
                try:
                    self._producer.produce(topic, value, key, headers=headers)
                    break
                except BufferError:  # the local queue is full: let acknowledgements drain it
                    self._producer.poll(0.1)
        self._producer.poll(0)
        self.open += 1

    def commit(self, topic: str, progress: dict[int, PartitionProgress],
               source: Consumer) -> None:
        """Commit the open deliveries with `progress`, or abort them and raise."""
        self._begin()
        offsets = [TopicPartition(topic, p, pr.position, metadata=pr.metadata())
                   for p, pr in sorted(progress.items())]
        try:
            with kafka_errors("reading the replay's group"):
                group = source.consumer_group_metadata()
            retried(lambda: self._producer.send_offsets_to_transaction(
                offsets, group, self.timeout_s), self.timeout_s + 5,
                "committing the replay's progress")
            retried(lambda: self._producer.commit_transaction(self.timeout_s),
                    self.timeout_s + 5, "committing a replay transaction")
        except HookstreamError as e:
            self._abort()
            raise KafkaFailed(f"{e}; the open transaction is on Kafka whole or not at all: "
                              "run the replay again to continue") from e
        self._began, self.open = False, 0

    def _begin(self) -> None:
        if not self._began:
            with kafka_errors("beginning a replay transaction"):
                self._producer.begin_transaction()
            self._began = True

    def _abort(self) -> None:
        try:
            bounded(lambda: self._producer.abort_transaction(self.timeout_s),
                    self.timeout_s + 5, "aborting a replay transaction")
        except KafkaFailed as e:  # the broker aborts it at the transaction timeout
            log.warning("%s", e)
