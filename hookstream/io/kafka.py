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
from hookstream.io.kafka_link import LINK
from hookstream.records import topic_specs


def client_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """The properties every client shares: the brokers, connection security, the
    operator's `kafka_config`, and the process's link watch (its logs and errors)."""
    LINK.connecting_as(principal(settings), settings.kafka_ssl_ca_location)
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        **security_config(settings),
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
    "group.id": "hookstream (one group per component)",
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


def delivery_callback(errors: list[str]) -> Callable[[KafkaError | None, Message], None]:
    """A producer callback that collects delivery failures into `errors`."""

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(f"{msg.topic()}: {err}")

    return on_delivery
