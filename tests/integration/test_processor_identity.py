"""A processor killed mid-transaction stops blocking read_committed readers as soon as its
successor on the same host starts (processors.clients.TransactionalId), not after the
broker's transaction timeout (60 s + its 10 s check).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition

from hookstream.config import Settings
from hookstream.io import consumer, create_topics, flush, producer
from hookstream.records import ITEM_CHANGES
from processors.clients import TransactionalId
from processors.processor import GROUP
from tests.conftest import settings_for
from tests.integration.harness import cli_env

# A child that takes the processor's transactional id, leaves a transaction open with a
# record in it on partition 0, says so, and waits to be killed.
OPEN_AND_HANG = textwrap.dedent(
    """
    import sys, time
    from hookstream.config import load_settings
    from hookstream.io import producer
    from processors.clients import TransactionalId
    from processors.processor import GROUP

    settings = load_settings()
    tid = TransactionalId(settings, GROUP)
    prod = producer(settings, transactional_id=tid.value)
    prod.init_transactions(30)
    prod.begin_transaction()
    prod.produce(sys.argv[1], b"never committed", partition=0)
    prod.flush(30)
    print(tid.value, flush=True)
    time.sleep(600)
    """
)


def slot_holder(settings: Settings, topic: str) -> tuple[subprocess.Popen[str], str]:
    child = subprocess.Popen(
        [sys.executable, "-c", OPEN_AND_HANG, topic],
        env=cli_env(settings), stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert child.stdout is not None
    return child, child.stdout.readline().strip()


def visible_values(settings: Settings, topic: str, timeout_s: float) -> list[bytes]:
    """What a read_committed reader of partition 0 gets within `timeout_s`."""
    reader = consumer(settings, "identity-test-reader")
    reader.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while not values and time.monotonic() < deadline:
        values = [m.value() for m in reader.consume(10, 0.5) if m.error() is None]
    reader.close()
    return values


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    settings = settings_for(kafka_bootstrap, tmp_path)
    create_topics(settings)
    return settings


def kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(10)


def test_a_live_process_never_shares_a_slot_and_a_dead_one_frees_its_own(
    settings: Settings,
) -> None:
    child, child_id = slot_holder(settings, settings.topic(ITEM_CHANGES))
    mine = TransactionalId(settings, GROUP)
    try:
        assert child_id.startswith(f"{settings.topic_prefix}{GROUP}-")
        assert mine.value != child_id  # the child holds its slot
        kill(child)
        successor = TransactionalId(settings, GROUP)
        assert successor.value == child_id  # the killed process's slot, taken again
        successor.release()
    finally:
        mine.release()
        if child.poll() is None:
            child.kill()


def test_a_killed_processors_open_transaction_is_aborted_by_its_successor(
    settings: Settings,
) -> None:
    topic = settings.topic(ITEM_CHANGES)
    child, child_id = slot_holder(settings, topic)
    kill(child)
    after = producer(settings)  # a committed record behind the open transaction
    after.produce(topic, b"after the kill", partition=0)
    flush(after)
    # The dead transaction holds the partition's last stable offset: nothing is readable.
    assert visible_values(settings, topic, timeout_s=3) == []

    successor = TransactionalId(settings, GROUP)
    try:
        assert successor.value == child_id
        prod = producer(settings, transactional_id=successor.value)
        prod.init_transactions(30)  # fences the dead producer and aborts its transaction
        # Within seconds, where without the same id the broker would take 70 s or more.
        assert visible_values(settings, topic, timeout_s=20) == [b"after the kill"]
    finally:
        successor.release()
