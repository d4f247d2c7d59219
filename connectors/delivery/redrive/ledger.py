"""The redrive's transactions: bounded calls, errors handled by class, nothing twice.

Each transaction holds redriven requests and their ledger entries (the DLQ position
each came from). The records of the open transaction are kept until it commits, so
that a failure loses nothing: retriable calls are made again; an abortable failure
aborts and produces them again; a fatal one (or a call that hung, librdkafka #5456)
builds a new producer of the same id, whose init fences the old one, and produces again
only the records whose position is not in the ledger, since the old transaction may have
committed. Being fenced by another redrive is not retried: two redrives must not fight.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container
from dataclasses import dataclass

from confluent_kafka import Producer

from hookstream.config import Settings
from hookstream.errors import KafkaFailed, KafkaFatal
from hookstream.io import bounded, drop_client, kafka_errors, producer, retried

log = logging.getLogger(__name__)

# librdkafka's names for "a newer producer of this transactional id exists"
FENCED = {"_FENCED", "PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH"}
ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Redriven:
    """One redriven request and its ledger entry."""

    position: str  # "partition:offset" on the DLQ topic
    key: bytes
    value: bytes
    headers: list[tuple[str, str | bytes | None]]
    delivery_id: str


class LedgeredTransactions:
    def __init__(
        self,
        settings: Settings,
        deliveries: str,
        ledger: str,
        transactional_id: str,
        redriven_positions: Callable[[], Container[str]],
    ):
        self._settings, self._id = settings, transactional_id
        self._deliveries, self._ledger = deliveries, ledger
        self._redriven_positions = redriven_positions
        self._timeout_s = settings.kafka_call_timeout_s
        self._pending: list[Redriven] = []
        self._producer = self._new_producer()

    @property
    def open(self) -> int:
        """Records in the open transaction."""
        return len(self._pending)

    def _new_producer(self) -> Producer:
        prod = producer(self._settings, transactional_id=self._id)
        retried(
            lambda: prod.init_transactions(self._timeout_s),
            self._timeout_s + 5,
            "initialising the redrive's transactions",
        )
        return prod

    def add(self, record: Redriven) -> None:
        if not self._pending:
            with kafka_errors("beginning a redrive transaction"):
                self._producer.begin_transaction()
        self._produce(record)
        self._pending.append(record)

    def _produce(self, r: Redriven) -> None:
        with kafka_errors("producing a redriven request"):
            self._producer.produce(self._deliveries, r.value, r.key, headers=r.headers)
            self._producer.produce(self._ledger, r.delivery_id.encode(), r.position.encode())

    def commit(self) -> None:
        """Commit the open transaction, whatever it takes short of a fencing redrive."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                retried(
                    lambda: self._producer.commit_transaction(self._timeout_s),
                    self._timeout_s + 5,
                    "committing a redrive transaction",
                )
                self._pending.clear()
                return
            except KafkaFatal as e:
                if e.code in FENCED:
                    raise
                log.warning("%s; a new producer (attempt %d)", e, attempt)
                self._renew()
            except KafkaFailed as e:  # abortable, or retriable past its attempts
                log.warning("%s; aborted, produced again (attempt %d)", e, attempt)
                self._abort_or_renew()
        raise KafkaFailed(f"a redrive transaction failed {ATTEMPTS} times; run redrive again")

    def _abort_or_renew(self) -> None:
        try:
            bounded(
                lambda: self._producer.abort_transaction(self._timeout_s),
                self._timeout_s + 5,
                "aborting a redrive transaction",
            )
        except KafkaFailed:
            self._renew()
            return
        self._replay(self._pending)

    def _renew(self) -> None:
        old: list[object] = [self._producer]
        self._producer = self._new_producer()  # fences the old one: its transaction is over
        drop_client(old)
        done = self._redriven_positions()  # the old transaction may have committed
        self._replay([r for r in self._pending if r.position not in done])

    def _replay(self, records: list[Redriven]) -> None:
        self._pending = []
        for record in records:
            self.add(record)
