"""The Kafka client factory and the translation of librdkafka errors by class."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from hookstream.config import load_settings
from hookstream.errors import (
    ConfigError,
    KafkaAbortable,
    KafkaFailed,
    KafkaFatal,
    KafkaRetriable,
    TransientError,
)
from hookstream.io import consumer, kafka_errors, producer, translate


def error(
    code: int, *, fatal: bool = False, retriable: bool = False, abort: bool = False
) -> KafkaError:
    return KafkaError(code, "broken", fatal=fatal, retriable=retriable, txn_requires_abort=abort)


@pytest.mark.parametrize(
    ("err", "kind"),
    [
        (error(KafkaError._FENCED, fatal=True, abort=True), KafkaFatal),  # fatal wins
        (error(KafkaError._STATE, abort=True, retriable=True), KafkaAbortable),
        (error(KafkaError._TIMED_OUT, retriable=True), KafkaRetriable),
        (error(KafkaError._TRANSPORT), KafkaFailed),
    ],
)
def test_errors_are_translated_by_class(err: KafkaError, kind: type[KafkaFailed]) -> None:
    translated = translate(KafkaException(err), "committing")
    assert type(translated) is kind
    assert isinstance(translated, TransientError)
    assert translated.code == err.name()
    assert str(translated).startswith("committing: broken")


def test_the_block_raises_the_translation_with_its_cause() -> None:
    cause = KafkaException(error(KafkaError.PRODUCER_FENCED, fatal=True))
    with pytest.raises(KafkaFatal) as raised, kafka_errors("sending offsets"):
        raise cause
    assert raised.value.__cause__ is cause


def test_an_invalid_client_property_is_a_configuration_error() -> None:
    settings = load_settings(env={}, bootstrap_servers="127.0.0.1:1")
    with pytest.raises(ConfigError, match=r"no\.such\.property"):
        producer(settings, {"no.such.property": 1})
    with pytest.raises(ConfigError):
        consumer(settings, "g", {"enable.auto.commit": "perhaps"})



def test_overrides_replace_the_factory_defaults() -> None:
    settings = load_settings(env={}, bootstrap_servers="127.0.0.1:1")
    producer(settings, {"linger.ms": 2, "compression.type": "none"}).flush(0)
    # linger.ms is an alias of queue.buffering.max.ms: the override reached librdkafka
    with pytest.raises(ConfigError, match=r"queue\.buffering\.max\.ms.* -5"):
        producer(settings, {"linger.ms": -5})
    consumer(settings, "g", {"auto.offset.reset": "latest"}).close()


def test_the_pipeline_consumers_fetch_in_batches_as_the_settings_say() -> None:
    from connectors.delivery.service import consumer_config
    from hookstream.io import batched_fetches

    settings = load_settings(env={"HOOKSTREAM_KAFKA_FETCH_MIN_BYTES": "1",
                                  "HOOKSTREAM_KAFKA_FETCH_WAIT_MS": "5"}, check_dns=False)
    assert batched_fetches(settings) == {"fetch.min.bytes": 1, "fetch.wait.max.ms": 5}
    assert consumer_config(settings)["fetch.min.bytes"] == 1  # delivery's group consumer
    assert consumer_config(settings)["fetch.wait.max.ms"] == 5
    defaults = load_settings(env={}, bootstrap_servers="127.0.0.1:1")
    consumer(defaults, "g", batched_fetches(defaults)).close()  # librdkafka takes them


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_every_compression_the_setting_allows_builds_a_producer(codec: str) -> None:
    settings = load_settings(env={"HOOKSTREAM_KAFKA_COMPRESSION": codec},
                             bootstrap_servers="127.0.0.1:1")
    producer(settings).flush(0)


def test_kafka_batching_settings_outside_their_range_are_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(env={"HOOKSTREAM_KAFKA_COMPRESSION": "brotli",
                           "HOOKSTREAM_KAFKA_FETCH_MIN_BYTES": "0",
                           "HOOKSTREAM_KAFKA_FETCH_WAIT_MS": "5000"}, check_dns=False)
    assert "kafka_compression 'brotli' is not one of none, gzip, snappy, lz4, zstd" in str(
        refused.value)
    assert "kafka_fetch_min_bytes must be at least 1" in str(refused.value)
