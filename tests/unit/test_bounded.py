"""Blocking Kafka calls with a bound: a call that hangs is abandoned, not waited for."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import KafkaError, KafkaException

from hookstream.errors import KafkaAbortable, KafkaFatal, KafkaRetriable
from hookstream.io import HUNG, bounded, retried
from hookstream.io.bounded import CANCEL_GRACE_S


def test_a_call_that_returns_gives_its_value() -> None:
    assert bounded(lambda: 42, 1.0, "answering") == 42


def test_a_call_that_hangs_is_abandoned_after_its_bound() -> None:
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(KafkaFatal) as raised:
        bounded(lambda: release.wait(30), 0.3, "sending offsets")
    assert time.monotonic() - started < 2
    assert raised.value.code == HUNG and "sending offsets" in str(raised.value)
    release.set()


def test_stopping_abandons_a_hanging_call_after_a_short_grace() -> None:
    release, cancel = threading.Event(), threading.Event()
    cancel.set()
    started = time.monotonic()
    with pytest.raises(KafkaFatal, match="stopping"):
        bounded(lambda: release.wait(30), 60.0, "committing", cancel)
    assert time.monotonic() - started < CANCEL_GRACE_S + 2
    release.set()


def test_a_kafka_failure_is_translated_with_its_cause() -> None:
    cause = KafkaException(KafkaError(KafkaError._STATE, "no", txn_requires_abort=True))

    def fail() -> None:
        raise cause

    with pytest.raises(KafkaAbortable) as raised:
        bounded(fail, 1.0, "committing")
    assert raised.value.__cause__ is cause


def test_retriable_failures_are_retried_then_given_up() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "slow", retriable=True))
        return "done"

    assert retried(flaky, 1.0, "committing", attempts=3) == "done"
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(KafkaRetriable):
        retried(flaky, 1.0, "committing", attempts=2)
    assert len(calls) == 2
