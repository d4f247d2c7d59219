"""Kafka adapters: the one place Kafka clients are built, topics created and read.

Every Consumer, Producer and AdminClient hookstream uses is built here from the
Settings, and every `KafkaException` is translated here into hookstream's error tree
(hookstream.errors: KafkaRetriable, KafkaAbortable, KafkaFatal), keeping the cause, so
callers react by class as librdkafka documents it and never import confluent_kafka's
error codes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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
from hookstream.io.kafka_link import LINK
from hookstream.records import topic_specs

log = logging.getLogger(__name__)

def client_config(settings: Settings, defaults: Mapping[str, Any] | None = None,
                  **extra: Any) -> dict[str, Any]:
    """The properties every client shares: the brokers, connection security, `defaults`
    then the operator's `kafka_config` over them, and the process's link watch (its logs
    and errors); `extra` last."""
    LINK.connecting_as(principal(settings), settings.kafka_ssl_ca_location)
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        **security_config(settings),
        **(defaults or {}),
        **extra_properties(settings),
        **LINK.callbacks(),
        **extra,
    }


def security_config(settings: Settings) -> dict[str, Any]:
    """librdkafka's security properties from the settings (validated by config.validate)."""
    protocol = settings.kafka_security_protocol
    config: dict[str, Any] = {"security.protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        config["ssl.endpoint.identification.algorithm"] = (
            "https" if settings.kafka_ssl_verify_hostname else "none"
        )
        for name in ("ca", "certificate", "key"):
            if path := getattr(settings, f"kafka_ssl_{name}_location"):
                config[f"ssl.{name}.location"] = path
        if settings.kafka_ssl_key_password:
            config["ssl.key.password"] = settings.kafka_ssl_key_password
    if protocol.startswith("SASL"):
        mechanism = settings.kafka_sasl_mechanism
        config["sasl.mechanism"] = mechanism
        if mechanism == "OAUTHBEARER":  # librdkafka fetches and renews the token itself
            config.update({
                "sasl.oauthbearer.method": "oidc",
                "sasl.oauthbearer.token.endpoint.url": settings.kafka_oauth_token_url,
                "sasl.oauthbearer.client.id": settings.kafka_oauth_client_id,
                "sasl.oauthbearer.client.secret": settings.kafka_oauth_client_secret,
            })
            if settings.kafka_oauth_scope:
                config["sasl.oauthbearer.scope"] = settings.kafka_oauth_scope
        else:
            config["sasl.username"] = settings.kafka_sasl_username
            config["sasl.password"] = settings.kafka_sasl_password
    return config


def principal(settings: Settings) -> str:
    """Who the clients connect as, in the words of Kafka's ACLs where the settings tell."""
    if settings.kafka_security_protocol.startswith("SASL"):
        if settings.kafka_sasl_mechanism == "OAUTHBEARER":
            return f"the OAuth client {settings.kafka_oauth_client_id}"
        return f"User:{settings.kafka_sasl_username}"
    if settings.kafka_ssl_certificate_location:
        return f"the client certificate {settings.kafka_ssl_certificate_location}"
    return ""


# Properties `kafka_config` may not set: a setting owns them, or hookstream's guarantees do.
_OWNED = {
    "bootstrap.servers": "the bootstrap_servers setting",
    "metadata.broker.list": "the bootstrap_servers setting",
    "security.protocol": "the kafka_security_protocol setting",
    "sasl.mechanism": "the kafka_sasl_mechanism setting",
    "sasl.mechanisms": "the kafka_sasl_mechanism setting",
    "sasl.username": "the kafka_sasl_username setting",
    "sasl.password": "the kafka_sasl_password setting",
    "ssl.ca.location": "the kafka_ssl_ca_location setting",
    "ssl.certificate.location": "the kafka_ssl_certificate_location setting",
    "ssl.key.location": "the kafka_ssl_key_location setting",
    "ssl.key.password": "the kafka_ssl_key_password setting",
    "ssl.endpoint.identification.algorithm": "the kafka_ssl_verify_hostname setting",
    "sasl.oauthbearer.token.endpoint.url": "the kafka_oauth_token_url setting",
    "sasl.oauthbearer.client.id": "the kafka_oauth_client_id setting",
    "sasl.oauthbearer.client.secret": "the kafka_oauth_client_secret setting",
    "sasl.oauthbearer.scope": "the kafka_oauth_scope setting",
    "compression.type": "the kafka_compression setting",
    "compression.codec": "the kafka_compression setting",
    "group.id": "hookstream (one group per component)",
    "group.instance.id": "the group_instance_id setting (delivery's and the processor's groups)",
    "transactional.id": "hookstream (the processor's and redrive's transactions)",
    "enable.idempotence": "hookstream's delivery guarantees",
    "isolation.level": "hookstream's delivery guarantees",
    "enable.auto.commit": "hookstream's delivery guarantees",
    "enable.auto.offset.store": "hookstream's delivery guarantees",
    "log_level": "hookstream's Kafka link watch",
    "statistics.interval.ms": "hookstream's Kafka link watch",
}


def extra_properties(settings: Settings) -> dict[str, str]:
    """The `kafka_config` setting's properties; a property a setting or hookstream owns, or
    a secret (which belongs in a setting read from a file), is a ConfigError."""
    extra: dict[str, str] = {}
    for entry in settings.kafka_config:
        name, _, value = entry.partition("=")
        name = name.strip()
        if name in _OWNED:
            raise ConfigError(f"kafka_config: {name} is set by {_OWNED[name]}")
        if any(word in name for word in ("password", "secret", ".pem")):
            raise ConfigError(f"kafka_config: {name} is a secret; kafka_config is not kept "
                              "secret (use the kafka_* settings, or a file location property)")
        extra[name] = value.strip()
    return extra


def check_client_config(settings: Settings) -> None:
    """Build (and drop) a client from the settings, so that a property librdkafka does not
    know, or a value it refuses, is a ConfigError at start-up rather than at first use."""
    _built(AdminClient, client_config(settings)).poll(0)


Overrides = Mapping[str, Any]  # librdkafka properties, e.g. {"linger.ms": 2}

# A consumer's read-ahead, bounded. librdkafka's defaults keep up to 64 MiB of records
# queued ahead of the application (queued.max.messages.kbytes) and fetch up to 50 MiB at a
# time (fetch.max.bytes), 1 MiB a partition, compressed, so more once decompressed: a
# consumer with a backlog held some 200 MiB it had not asked for yet (bench/README,
# delivery). A few thousand records a second need a few MiB ahead: 1 MiB fetches, a
# quarter of it per partition (a larger record still comes whole), 4 MiB queued (the
# operator's kafka_config may set other values: `consumer(..., defaults=)`). A full
# queue postpones the partition's next fetch by fetch.queue.backoff.ms, 1 s by default:
# that stalled a reader faster than 4 MiB a second (the stale-copy recall took 15 s instead
# of 6), so it is short.
BOUNDED_PREFETCH: dict[str, Any] = {
    "queued.max.messages.kbytes": 4096,
    "queued.min.messages": 10_000,
    "fetch.max.bytes": 1_048_576,
    "max.partition.fetch.bytes": 262_144,
    "fetch.queue.backoff.ms": 10,
}


def producer(
    settings: Settings, overrides: Overrides | None = None, *, transactional_id: str | None = None
) -> Producer:
    """An idempotent producer (broker retries never duplicate a record), transactional
    when `transactional_id` is given."""
    config: dict[str, Any] = {"enable.idempotence": True, "linger.ms": 5,
                              "compression.type": settings.kafka_compression}
    if transactional_id is not None:
        config["transactional.id"] = transactional_id
    return _built(Producer, client_config(settings, **{**config, **(overrides or {})}))


def consumer(settings: Settings, group: str, overrides: Overrides | None = None, *,
             defaults: Overrides | None = None) -> Consumer:
    """A consumer of `group` that commits explicitly and reads committed records only;
    `defaults` are properties the operator's `kafka_config` may change, `overrides` not."""
    config = {
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
    }
    return _built(Consumer, client_config(settings, defaults, **{**config, **(overrides or {})}))


def batched_fetches(settings: Settings) -> dict[str, int]:
    """The fetch properties of the consumers that carry every event (the processor's and
    delivery's): the broker answers a fetch once it holds `kafka_fetch_min_bytes` for it, or
    after `kafka_fetch_wait_ms`, rather than for each record as it comes (librdkafka's
    default of one byte), so a busy pipeline makes a few large fetches instead of many
    small ones."""
    return {"fetch.min.bytes": settings.kafka_fetch_min_bytes,
            "fetch.wait.max.ms": settings.kafka_fetch_wait_ms}


def static_membership(settings: Settings) -> dict[str, str]:
    """The consumer property of static group membership (KIP-345), for the consumers of
    delivery's and the processor's groups only: {} without a `group_instance_id`."""
    return {"group.instance.id": settings.group_instance_id} if settings.group_instance_id else {}


def leave_group(consumer: Consumer, timeout_s: float = 5.0) -> None:
    """Leave the group before `close()`, also as a static member (which close() alone does
    not: KIP-345 keeps it in the group for its session timeout, waiting for its restart).

    librdkafka sends the LeaveGroup once the revocation is served (a consume call), after a
    rebalance in progress, and only if the client is not terminating yet: hence
    unsubscribe, then consume until the member id is dropped (it is when the LeaveGroup
    goes). Best effort: the group notices a member that did not leave on its session
    timeout."""
    deadline = time.monotonic() + timeout_s
    with kafka_errors("leaving the group"):
        consumer.unsubscribe()
        while consumer.memberid() and time.monotonic() < deadline:
            consumer.consume(1, 0.1)  # serves the revocation; records are not read any more
        for _ in range(5):  # and lets the LeaveGroup go out (close() would drop it in flight)
            consumer.consume(1, 0.1)


def ends_the_consumer(error: KafkaError) -> bool:
    """Whether a consumer's error event means it is done for good: librdkafka's _FATAL, as
    when another member joined the group under its group.instance.id (fenced)."""
    return bool(error.code() == KafkaError._FATAL or error.fatal())


def drop_client(holder: list[object]) -> None:
    """Let go of a replaced client, held alone by `holder`: librdkafka destroys a client when
    its last reference goes, which can block during an outage, so it goes on a thread."""
    threading.Thread(target=holder.clear, daemon=True, name="kafka drop client").start()


def admin(settings: Settings, overrides: Overrides | None = None) -> AdminClient:
    return _built(AdminClient, client_config(settings, **(overrides or {})))


Client = TypeVar("Client", Producer, Consumer, AdminClient)


def _built(kind: type[Client], config: dict[str, Any]) -> Client:
    try:
        return kind(config)
    except KafkaException as e:  # an unknown or invalid property: a configuration error
        raise ConfigError(f"Kafka client configuration: {_describe(e)}") from e
    except (TypeError, ValueError) as e:  # confluent-kafka's own checks of a value's type
        raise ConfigError(f"Kafka client configuration: {e}") from e


def denied(operation: str, resource: str, name: str) -> str:
    """The line a missing ACL gets: who was denied what on which resource, and the fix."""
    who = LINK.principal or "this client"
    return (f"Kafka denies {who} {operation} on {resource} {name}: an ACL is missing "
            "(`hookstream kafka acls --component C --principal P` prints those needed)")


def denied_topics(client: Producer | Consumer, topics: list[str], timeout_s: float = 5.0
                  ) -> list[str]:
    """Which of `topics` the broker denies this client (their metadata says so)."""
    with kafka_errors("reading topic metadata"):
        meta = client.list_topics(timeout=timeout_s).topics
    return [
        t for t in topics
        if t not in meta  # a topic the client may not describe is left out of the list
        or (meta[t].error is not None
            and meta[t].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED)
    ]


_DENIED = (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
           KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
           KafkaError.CLUSTER_AUTHORIZATION_FAILED)
_UNREACHABLE = (KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN,
                KafkaError._AUTHENTICATION, KafkaError._SSL)


def translate(error: KafkaException | KafkaError, what: str) -> KafkaFailed:
    """The hookstream error for a failed Kafka call, by librdkafka's documented class:
    fatal (the client is unusable, e.g. fenced) before abortable before retriable."""
    err = error.args[0] if isinstance(error, KafkaException) else error
    if not isinstance(err, KafkaError):
        return KafkaFailed(f"{what}: {error}")
    message, code = f"{what}: {err.str()} ({err.name()})", err.name()
    if err.code() in _UNREACHABLE and (cause := LINK.cause()):
        message += f"; Kafka unreachable: {cause}"
    elif err.code() in _DENIED:
        message += f"; Kafka denies it to {LINK.principal or 'this client'}: an ACL is missing"
    if err.fatal():
        return KafkaFatal(message, code)
    if err.txn_requires_abort():
        return KafkaAbortable(message, code)
    if err.retriable():
        return KafkaRetriable(message, code)
    return KafkaFailed(message, code)


def is_topic_denied(failure: KafkaFailed) -> bool:
    """Whether `failure` is the broker denying this client a topic (an ACL is missing)."""
    return failure.code == "TOPIC_AUTHORIZATION_FAILED"


def reachable(client: Producer | Consumer | AdminClient, topic: str, timeout_s: float = 2.0
              ) -> bool:
    """Whether a broker answers a metadata request about `topic` within `timeout_s`."""
    try:
        client.list_topics(topic, timeout=timeout_s)
    except KafkaException:
        return False
    return True


class Partitions:
    """Calls on a group consumer's partitions, which a rebalance may take at any moment.

    librdkafka refuses a pause, resume, seek or offset store on a partition no longer
    assigned. That refusal is expected (the partition's new owner reads it again from the
    committed offsets): each call returns whether it took, and a refusal is logged at debug.
    Partitions are (topic, partition) pairs; offsets are the next to read or to commit.
    """

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer

    def pause(self, tp: tuple[str, int]) -> bool:
        return self._call(f"pausing {tp}", lambda: self._consumer.pause([TopicPartition(*tp)]))

    def resume(self, tp: tuple[str, int]) -> bool:
        return self._call(f"resuming {tp}", lambda: self._consumer.resume([TopicPartition(*tp)]))

    def seek(self, tp: tuple[str, int], offset: int) -> bool:
        return self._call(f"seeking {tp}",
                          lambda: self._consumer.seek(TopicPartition(*tp, offset)))

    def store_offsets(self, offsets: Mapping[tuple[str, int], int]) -> bool:
        parts = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        return not parts or self._call(
            "storing offsets", lambda: self._consumer.store_offsets(offsets=parts))

    def commit(self) -> None:
        """Commit the stored offsets now (KafkaFailed if the broker does not take them)."""
        with kafka_errors("committing offsets"):
            self._consumer.commit(asynchronous=False)

    @staticmethod
    def _call(what: str, call: Callable[[], object]) -> bool:
        try:
            call()
        except KafkaException as e:
            log.debug("%s (revoked?)", translate(e, what))
            return False
        return True


class kafka_errors:  # a function to its callers: `with kafka_errors(what):`
    """Run a block of Kafka calls; a `KafkaException` leaves it translated (`translate`).
    (A class, not a generator: it wraps every produce of the delivery loop.)"""

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: object) -> None:
        if isinstance(error, KafkaException):
            raise translate(error, self._what) from error


def _describe(e: KafkaException) -> str:
    err = e.args[0] if e.args else e
    return err.str() if isinstance(err, KafkaError) else str(err)


def create_topics(settings: Settings, timeout_s: float = 30.0) -> list[tuple[str, str]]:
    """Create every missing topic; existing ones are left as they are. Idempotent."""
    client = admin(settings)
    try:
        cluster = client.list_topics(timeout=timeout_s)
    except KafkaException as e:
        client.poll(0)  # serve the error callbacks: the cause (credentials, TLS) is there
        raise translate(e, f"cannot reach Kafka at {settings.bootstrap_servers}") from e
    existing, replicas = cluster.topics, replication(settings, len(cluster.brokers))
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
                    replication_factor=replicas,
                    config={**spec.config, "min.insync.replicas": str(
                        settings.min_insync_replicas or (2 if replicas >= 3 else 1))},
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


def replication(settings: Settings, brokers: int) -> int:
    """The replication factor of new topics: the setting, or as many brokers as the
    cluster has up to 3 (three replicas, two in sync: a write survives a broker's loss)."""
    return settings.replication_factor or min(3, max(1, brokers))


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
        ranges = []
        for p in meta.partitions:
            low, high = watermarks(cons, TopicPartition(topic, p), timeout_s)
            ranges.append((TopicPartition(topic, p, low), high))
        yield from read_ranges(cons, ranges, time.monotonic() + timeout_s)
    finally:
        cons.close()


def end_of_partition(msg: Message, what: str) -> bool:
    """Whether a polled message is librdkafka's end-of-partition event (with
    `enable.partition.eof`); False for a record; a failed message raises its error,
    translated."""
    error = msg.error()
    if error is None:
        return False
    if error.code() == KafkaError._PARTITION_EOF:
        return True
    raise translate(error, what)


def read_ranges(reader: Consumer, ranges: Sequence[tuple[TopicPartition, int]],
                deadline: float) -> Iterator[Message]:
    """The records of each (start, end) range, the start included and the end not, read
    side by side until every range is read or `deadline` (time.monotonic()) has passed.
    The reader is assigned the ranges' partitions (its config enables partition EOF, which
    ends a range early where records were removed or aborted)."""
    ends = {(tp.topic, tp.partition): end for tp, end in ranges if tp.offset < end}
    if not ends:
        return
    reader.assign([tp for tp, _ in ranges if (tp.topic, tp.partition) in ends])
    while ends and time.monotonic() < deadline:
        with kafka_errors("reading to the end"):
            # what is ready, without waiting: consume() with a timeout waits it out unless
            # the batch fills, which made every small read last a multiple of it; so only
            # an empty take waits, for its first record
            batch = reader.consume(1000, 0) or [m for m in [reader.poll(0.2)] if m is not None]
        for msg in batch:
            at, error = (msg.topic() or "", msg.partition() or 0), msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    ends.pop(at, None)
                continue
            end, offset = ends.get(at), msg.offset() or 0
            if end is None or offset >= end:
                continue
            if offset + 1 >= end:
                del ends[at]
            yield msg


def delivery_callback(errors: list[str]) -> Callable[[KafkaError | None, Message], None]:
    """A producer callback that collects delivery failures into `errors`."""

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(f"{msg.topic()}: {err}")

    return on_delivery
