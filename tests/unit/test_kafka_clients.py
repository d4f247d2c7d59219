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
