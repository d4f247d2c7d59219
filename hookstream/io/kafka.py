"""Kafka adapters: the one place Kafka clients are built, topics created and read.

Every Consumer, Producer and AdminClient hookstream uses is built here from the
Settings, and every `KafkaException` is translated here into hookstream's error tree
(hookstream.errors: KafkaRetriable, KafkaAbortable, KafkaFatal), keeping the cause, so
callers react by class as librdkafka documents it and never import confluent_kafka's
error codes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from hookstream.config import Settings
from hookstream.errors import (
    ConfigError,
    KafkaAbortable,
    KafkaFailed,
    KafkaFatal,
    KafkaRetriable,
    TransientError,
)
from hookstream.records import topic_specs


def client_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    # librdkafka logs transient retries as warnings; errors are still logged.
    return {"bootstrap.servers": settings.bootstrap_servers, "log_level": 3, **extra}


Overrides = Mapping[str, Any]  # librdkafka properties, e.g. {"linger.ms": 2}


def producer(
    settings: Settings, overrides: Overrides | None = None, *, transactional_id: str | None = None
) -> Producer:
    """An idempotent producer (broker retries never duplicate a record), transactional
    when `transactional_id` is given."""
    config: dict[str, Any] = {"enable.idempotence": True, "linger.ms": 5, "compression.type": "lz4"}
    if transactional_id is not None:
        config["transactional.id"] = transactional_id
    return _built(Producer, client_config(settings, **{**config, **(overrides or {})}))


def consumer(settings: Settings, group: str, overrides: Overrides | None = None) -> Consumer:
    """A consumer of `group` that commits explicitly and reads committed records only."""
    config = {
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
    }
    return _built(Consumer, client_config(settings, **{**config, **(overrides or {})}))


def admin(settings: Settings, overrides: Overrides | None = None) -> AdminClient:
    return _built(AdminClient, client_config(settings, **(overrides or {})))


Client = TypeVar("Client", Producer, Consumer, AdminClient)


def _built(kind: type[Client], config: dict[str, Any]) -> Client:
    try:
        return kind(config)
    except KafkaException as e:  # an unknown or invalid property: a configuration error
        raise ConfigError(f"Kafka client configuration: {_describe(e)}") from e


def translate(error: KafkaException | KafkaError, what: str) -> KafkaFailed:
    """The hookstream error for a failed Kafka call, by librdkafka's documented class:
    fatal (the client is unusable, e.g. fenced) before abortable before retriable."""
    err = error.args[0] if isinstance(error, KafkaException) else error
    if not isinstance(err, KafkaError):
        return KafkaFailed(f"{what}: {error}")
    message, code = f"{what}: {err.str()} ({err.name()})", err.name()
    if err.fatal():
        return KafkaFatal(message, code)
    if err.txn_requires_abort():
        return KafkaAbortable(message, code)
    if err.retriable():
        return KafkaRetriable(message, code)
    return KafkaFailed(message, code)


@contextmanager
def kafka_errors(what: str) -> Iterator[None]:
    """Run a block of Kafka calls; a `KafkaException` leaves it translated (`translate`)."""
    try:
        yield
    except KafkaException as e:
        raise translate(e, what) from e


def _describe(e: KafkaException) -> str:
    err = e.args[0] if e.args else e
    return err.str() if isinstance(err, KafkaError) else str(err)


def create_topics(settings: Settings, timeout_s: float = 30.0) -> list[tuple[str, str]]:
    """Create every missing topic; existing ones are left as they are. Idempotent."""
    client = admin(settings)
    with kafka_errors(f"cannot reach Kafka at {settings.bootstrap_servers}"):
        existing = client.list_topics(timeout=timeout_s).topics
    report: list[tuple[str, str]] = []
    missing = []
    for spec in topic_specs(settings):
        if spec.name in existing:
            have = len(existing[spec.name].partitions)
            note = (
                ""
                if have == spec.partitions
                else f" ({have} partitions, config says {spec.partitions})"
            )
            report.append((spec.name, "exists" + note))
        else:
            missing.append(
                NewTopic(
                    spec.name,
                    num_partitions=spec.partitions,
                    replication_factor=settings.replication_factor,
                    config=spec.config,
                )
            )
    futures = client.create_topics(missing, request_timeout=timeout_s) if missing else {}
    for name, future in futures.items():
        try:
            future.result()
            report.append((name, "created"))
        except KafkaException as e:
            if e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:  # created meanwhile
                report.append((name, "exists"))
            else:
                raise translate(e, f"creating topic {name}") from e
    _wait_for_leaders(client, [name for name, state in report if state == "created"], timeout_s)
    order = {spec.name: i for i, spec in enumerate(topic_specs(settings))}
    return sorted(report, key=lambda r: order[r[0]])


def _wait_for_leaders(client: AdminClient, topics: list[str], timeout_s: float) -> None:
    """New topics answer NOT_LEADER until the controller has elected their leaders."""
    deadline = time.monotonic() + timeout_s
    while topics and time.monotonic() < deadline:
        with kafka_errors("waiting for the leaders of new topics"):
            meta = client.list_topics(timeout=timeout_s).topics
        topics = [
            t
            for t in topics
            if t not in meta
            or meta[t].error is not None
            or any(p.leader < 0 for p in meta[t].partitions.values())
        ]
        if topics:
            time.sleep(0.1)


_ELECTION = (
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
)


def watermarks(cons: Consumer, tp: TopicPartition, timeout_s: float) -> tuple[int, int]:
    """Low and high offsets, retried through a leader election."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            low, high = cons.get_watermark_offsets(tp, timeout=timeout_s)
            return int(low), int(high)
        except KafkaException as e:
            error = e.args[0]
            if time.monotonic() > deadline or not (error.retriable() or error.code() in _ELECTION):
                raise translate(e, f"offsets of {tp.topic}[{tp.partition}]") from e
            time.sleep(0.1)


def flush(prod: Producer, timeout_s: float = 30.0) -> None:
    """Wait for every produced record; a record still queued after the timeout is an error."""
    remaining = prod.flush(timeout_s)
    if remaining:
        raise TransientError(f"{remaining} record(s) not acknowledged by Kafka in {timeout_s:.0f}s")


def read_all(settings: Settings, topic: str, timeout_s: float = 30.0) -> Iterator[Message]:
    """Every record of `topic` from the beginning up to its current end, without a group."""
    cons = consumer(settings, "hookstream-reader", {"enable.partition.eof": True})
    try:
        with kafka_errors(f"reading {topic}"):
            meta = cons.list_topics(topic, timeout=timeout_s).topics[topic]
        if meta.error is not None:
            raise TransientError(f"topic {topic}: {meta.error}")
        parts = [TopicPartition(topic, p, 0) for p in meta.partitions]
        ends = {}
        for tp in parts:
            low, high = watermarks(cons, tp, timeout_s)
            if high > low:
                ends[tp.partition] = high
            tp.offset = low
        cons.assign(parts)
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            msg = cons.poll(0.5)
            if msg is None:
                continue
            partition, error = msg.partition() or 0, msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    ends.pop(partition, None)
                continue
            yield msg
            if (msg.offset() or 0) + 1 >= ends.get(partition, 0):
                ends.pop(partition, None)
    finally:
        cons.close()


def delivery_callback(errors: list[str]) -> Callable[[KafkaError | None, Message], None]:
    """A producer callback that collects delivery failures into `errors`."""

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(f"{msg.topic()}: {err}")

    return on_delivery
