"""The processor's Kafka clients: a consumer and a transactional producer, rebuilt whole.

Every blocking call is bounded (hookstream.io.bounded) and every failure arrives as a
class of hookstream.errors, so the loop reacts as librdkafka documents it: retriable
calls are made again here; abortable failures abort the transaction and rewind the
consumer to the committed offsets; fatal ones (fenced, or a call that hung) make the
loop close this pair and build a new one, which rejoins the group and resumes from the
committed offsets.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from hookstream.config import Settings
from hookstream.errors import ConfigError, KafkaFailed, KafkaFatal
from hookstream.io import (
    LINK,
    GroupWatch,
    batched_fetches,
    bounded,
    consumer,
    drop_client,
    kafka_errors,
    leave_group,
    producer,
    retried,
    static_membership,
    translate,
    watched_stats,
)
from processors.dedup import Span

log = logging.getLogger(__name__)

# librdkafka reports a lost connection to every broker with this code (error_cb).
_UNREACHABLE = (KafkaError._ALL_BROKERS_DOWN,)


class TransactionalId:
    """A transactional id stable across restarts on one host: `{prefix}{group}-{host}-{slot}`,
    the lowest slot no live process of this host holds (an flock in a folder of the host's
    temporary directory, whatever each process's state directory).

    A processor killed mid-transaction leaves it open, and read_committed readers of the
    partitions it wrote wait until the broker times it out (transaction.timeout.ms, 60 s,
    plus the broker's 10 s check). Its successor on the same host (a restarted container
    keeps its pod's hostname) takes the freed slot, so its producer's init fences the dead
    one and aborts that transaction at once. Two live processes never share a slot: the
    kernel releases the lock of a process that dies, however it dies.
    """

    SLOTS = 256

    def __init__(self, settings: Settings, group: str):
        folder = Path(tempfile.gettempdir()) / f"hookstream-{os.getuid()}-transactional-ids"
        name, host = f"{settings.topic_prefix}{group}", socket.gethostname()
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            for slot in range(self.SLOTS):
                lock = open(folder / f"{name}-{slot}.lock", "w")  # noqa: SIM115 (held open)
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    lock.close()
                    continue
                self.value, self._lock = f"{name}-{host}-{slot}", lock
                return
        except OSError as e:  # an unwritable temporary directory (set TMPDIR)
            raise ConfigError(f"cannot lock a transactional id slot in {folder}: {e}") from e
        raise ConfigError(f"more than {self.SLOTS} processes of {name} on this host")

    def release(self) -> None:
        self._lock.close()


class TransactionalClients:
    """One consumer of `group` and one producer of `transactional_id`, used together."""

    def __init__(
        self,
        settings: Settings,
        group: str,
        transactional_id: str,
        stopping: threading.Event,
        on_unreachable: Callable[[str], None],
    ):
        self._bound_s = settings.kafka_call_timeout_s
        self._group = group
        self._stopping = stopping
        self._on_unreachable = on_unreachable
        # The same transactional id on every rebuild: the new producer's init fences the
        # abandoned one and aborts its open transaction at once, rather than after
        # transaction.timeout.ms during which read_committed readers would wait.
        self._settings, self._transactional_id = settings, transactional_id
        self.rebalances = 0  # assignments and revocations served by `consume`
        # a consumer stuck out of its group (hookstream.io.group_watch): `consume` raises,
        # and the loop builds new clients
        self.group_watch = GroupWatch()
        self._stuck: str | None = None
        self.on_stats = watched_stats(self.group_watch, self._out_of_group)
        self.producer: Producer = self._new_producer()
        self.consumer: Consumer = consumer(
            settings,
            group,
            {
                "partition.assignment.strategy": "cooperative-sticky",
                # A member that vanished (a killed process, or a consumer closed during an
                # outage, whose LeaveGroup never arrived) holds its partitions until this
                # expires: the restarted broker makes the rebuilt consumer wait for it.
                "session.timeout.ms": 10_000,
                **batched_fetches(settings),
                "error_cb": self._error,
                "stats_cb": self.on_stats,
                # a pod's name (README, Kubernetes): a restarted process takes its
                # partitions back at once; a rebuilt consumer replaces its predecessor
                **static_membership(settings),
            },
        )

    def _new_producer(self) -> Producer:
        return producer(
            self._settings,
            {
                "batch.size": 1_000_000,
                "queue.buffering.max.messages": 1_000_000,
                "error_cb": self._error,
            },
            transactional_id=self._transactional_id,
        )

    def _error(self, error: KafkaError) -> None:
        LINK.on_error(error)  # the process's one account of its Kafka link (the log lines)
        if error.code() in _UNREACHABLE:
            self._on_unreachable(f"{error.str()} ({error.name()})")

    def _out_of_group(self, why: str) -> None:
        self._stuck = why

    def _call_s(self) -> tuple[float, float]:
        """librdkafka's own timeout, and the bound past which the call is abandoned."""
        return self._bound_s, self._bound_s + 5.0

    def start(self, topics: list[str]) -> None:
        self._init_transactions()
        with kafka_errors("subscribing"):
            self.consumer.subscribe(topics, on_assign=self._rebalanced,
                                    on_revoke=self._rebalanced, on_lost=self._rebalanced)

    def _rebalanced(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # confluent-kafka (in)crementally assigns after the callback when it did not
        self.rebalances += 1

    def _init_transactions(self) -> None:
        timeout_s, bound_s = self._call_s()
        retried(
            lambda: self.producer.init_transactions(timeout_s),
            bound_s,
            "initialising transactions",
            self._stopping,
        )

    def recover(self) -> None:
        """A new producer of the same id, and the consumer back at the committed offsets;
        the consumer keeps its group membership and assignment (no rejoin).

        After the broker was unreachable, librdkafka's transactional producer can wait
        forever for the group coordinator in its next send_offsets_to_transaction
        (librdkafka #5456: reproduced here on every broker restart), and a call that hung
        leaves a transaction in an unknown state. The new producer's init fences the old
        one: its transaction is aborted unless it committed, so the committed offsets read
        after it are exactly where processing must resume.
        """
        old: list[object] = [self.producer]
        self.producer = self._new_producer()
        drop_client(old)
        self._init_transactions()
        timeout_s, bound_s = self._call_s()
        assignment = self.consumer.assignment()
        committed = bounded(
            lambda: self.consumer.committed(assignment, timeout=timeout_s),
            bound_s,
            "reading the committed offsets",
            self._stopping,
        )
        try:
            for tp in committed:
                if tp.offset < 0:  # nothing committed yet: auto.offset.reset=earliest
                    tp.offset = OFFSET_BEGINNING
                self.consumer.seek(tp)
        except Exception as e:
            raise KafkaFatal(f"the consumer could not be rewound: {e}") from e

    def consume(self, count: int, timeout_s: float) -> list[Message]:
        self.producer.poll(0)  # serves error_cb and delivery reports while idle
        if self._stuck is not None:
            raise KafkaFatal(self._stuck)
        with kafka_errors("consuming"):
            return [m for m in self.consumer.consume(count, timeout_s) if m.error() is None]

    def begin(self) -> None:
        with kafka_errors("beginning a transaction"):
            self.producer.begin_transaction()

    def start_commit(self, offsets: list[TopicPartition]) -> Committing:
        """The batch's output and its input offsets committed in one transaction, on a
        thread of its own (librdkafka's calls release the GIL) while the caller prepares
        the next batch. The group metadata is read now, before the consumer serves any
        rebalance: a commit made for a generation the group has left fails (KIP-447)."""
        with kafka_errors("reading the group metadata"):
            metadata = self.consumer.consumer_group_metadata()

        def commit() -> None:
            self._send_offsets(offsets, metadata)
            self.commit_transaction()

        return Committing(commit)

    def _send_offsets(self, offsets: list[TopicPartition], metadata: object) -> None:
        timeout_s, bound_s = self._call_s()
        retried(
            lambda: self.producer.send_offsets_to_transaction(offsets, metadata, timeout_s),
            bound_s,
            "sending the batch's offsets",
            self._stopping,
        )

    def commit_transaction(self) -> None:
        timeout_s, bound_s = self._call_s()
        retried(
            lambda: self.producer.commit_transaction(timeout_s),
            bound_s,
            "committing the transaction",
            self._stopping,
        )

    def abort_and_rewind(self, committed: list[TopicPartition]) -> None:
        """Abort the open transaction and seek back to `committed`: the first offsets of the
        aborted batch, which are the committed ones since every batch starts where the
        committed one before it ended. A failure here is fatal: rebuilding rejoins the
        group and resumes from the committed offsets, whatever happened."""
        timeout_s, bound_s = self._call_s()
        try:
            retried(
                lambda: self.producer.abort_transaction(timeout_s),
                bound_s,
                "aborting the transaction",
                self._stopping,
            )
            self._seek(committed)
        except Exception as e:
            raise KafkaFatal(f"the transaction could not be aborted and rewound: {e}") from e

    def rewind(self, committed: list[TopicPartition]) -> None:
        """Seek back to `committed` with no transaction open (a batch read but dropped);
        a failure is fatal, as in `abort_and_rewind`."""
        try:
            self._seek(committed)
        except Exception as e:
            raise KafkaFatal(f"the consumer could not be rewound: {e}") from e

    def _seek(self, committed: list[TopicPartition]) -> None:
        assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        for tp in committed:
            if (tp.topic, tp.partition) in assigned:  # a revoked one: its new owner
                self.consumer.seek(tp)  # starts from the committed offset anyway

    def read_back(self, topic: str, spans: list[Span], each: Callable[[Message], None]) -> None:
        """Call `each` with every record of the spans (processors.dedup.Span), in offset
        order per partition, read by a consumer of its own that joins no group, so the
        group consumer's position and membership are untouched. KafkaFailed when the
        broker fails, or sends nothing for three call bounds (the batch that needed the
        spans is aborted and read again)."""
        reader = consumer(self._settings, f"{self._group}-read-back")
        try:
            with kafka_errors(f"reading {topic} back"):
                self._read_back(reader, topic, spans, each)
        finally:
            try:
                bounded(reader.close, 5.0, "closing the read-back consumer")
            except KafkaFailed as e:
                log.warning("%s", e)

    def _read_back(self, reader: Consumer, topic: str, spans: list[Span],
                   each: Callable[[Message], None]) -> None:
        timeout_s, _ = self._call_s()
        timed = [TopicPartition(topic, s.partition, s.since_ms) for s in spans
                 if s.since_ms is not None]
        found: dict[int, int] = {}
        for tp in reader.offsets_for_times(timed, timeout=timeout_s) if timed else []:
            if tp.error is not None:
                raise translate(tp.error, f"finding {topic}[{tp.partition}] by time")
            found[tp.partition] = tp.offset
        starts: dict[int, int] = {}
        for span in spans:  # from the first record timestamped since_ms or later
            first = found.get(span.partition, span.from_offset)
            if first < 0:  # none is: nothing to read
                first = span.until_offset
            starts[span.partition] = max(span.from_offset, first)
        until = {s.partition: s.until_offset for s in spans
                 if starts[s.partition] < s.until_offset}
        if not until:
            return
        reader.assign([TopicPartition(topic, p, starts[p]) for p in until])
        stall_s = 3 * timeout_s
        deadline = time.monotonic() + stall_s
        # Each span ends before a record the group consumer has read (the batch's first),
        # visible to this read_committed reader too: reaching it ends the span.
        while until:
            if self._stopping.is_set() or time.monotonic() > deadline:
                raise KafkaFailed(f"reading {topic} back: nothing from partitions "
                                  f"{sorted(until)} for {stall_s:.0f}s", "_TIMED_OUT")
            for msg in reader.consume(1000, 0.2):
                deadline = time.monotonic() + stall_s
                partition, error = msg.partition() or 0, msg.error()
                if error is not None:
                    raise translate(error, f"reading {topic}[{partition}] back")
                if partition not in until:
                    continue
                offset = msg.offset() or 0
                if offset < until[partition]:
                    each(msg)
                if offset >= until[partition] - 1:
                    del until[partition]

    def probe(self, topic: str) -> None:
        """A metadata request: raises while no broker answers."""
        timeout_s, bound_s = self._call_s()
        bounded(
            lambda: self.consumer.list_topics(topic, timeout=min(timeout_s, 2.0)),
            bound_s,
            "probing the broker",
            self._stopping,
        )

    def close(self) -> None:
        """Leave the group and drop both clients, never blocking more than a few seconds.

        The producer is not flushed: its open transaction, if any, is aborted by the next
        producer of the same id. librdkafka destroys a client when its last reference
        goes, which can block during an outage, so the references go on a helper thread.
        """
        clients: list[object] = [self.consumer, self.producer]
        del self.consumer, self.producer

        def close_and_drop() -> None:
            try:
                if self._stopping.is_set() and self._settings.group_instance_id:
                    try:  # a static member leaves only when the process stops (README)
                        leave_group(clients[0], 3.0)  # type: ignore[arg-type]
                    except KafkaFailed as e:
                        log.warning("%s", e)
                clients[0].close()  # type: ignore[attr-defined]
            finally:
                clients.clear()

        try:
            bounded(close_and_drop, 5.0, "closing the clients")
        except Exception as e:  # the group notices the member gone on its session timeout
            log.warning("%s", e)


class Committing:
    """A transaction's commit under way on a thread of its own; `wait` joins it and raises
    what it raised. Every call it makes is bounded, so it ends."""

    def __init__(self, commit: Callable[[], None]):
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(commit,), daemon=True,
                                        name="kafka commit")
        self._thread.start()

    def _run(self, commit: Callable[[], None]) -> None:
        try:
            commit()
        except BaseException as e:  # handed to the waiting thread
            self._error = e

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def first_offsets(batch: list[Message]) -> list[TopicPartition]:
    """Where each partition of the batch starts."""
    first: dict[tuple[str, int], int] = {}
    for msg in batch:
        first.setdefault((msg.topic() or "", msg.partition() or 0), msg.offset() or 0)
    return [TopicPartition(t, p, o) for (t, p), o in first.items()]


def next_offsets(batch: list[Message]) -> list[TopicPartition]:
    """The offsets to commit once the batch is done."""
    last: dict[tuple[str, int], int] = {}
    for msg in batch:
        last[(msg.topic() or "", msg.partition() or 0)] = msg.offset() or 0
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
