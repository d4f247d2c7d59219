"""The processor survives a broker restart: alive, /readyz 503 then 200, exactly once.

These tests start a broker of their own (tests/conftest.py `own_broker`) so they may stop
and restart it; the processor runs as a `hookstream run processor` process, as deployed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from hookstream.config import Settings
from hookstream.devbroker import LocalBroker
from hookstream.io import read_all
from hookstream.records import DELIVERIES, ITEM_CHANGES, DeliveryRequest
from processors.clients import TransactionalClients
from processors.processor import GROUP, Processor
from tests.conftest import settings_for
from tests.integration.harness import cli_env, publish, read
from tests.integration.test_processor import (
    assert_exactly,
    expected_without_render_errors,
    mixed_events,
    run_until,
    setup_tables,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            status: int = answer.status
            return status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0  # not listening yet


def wait_for(condition: object, timeout_s: float, what: str) -> float:
    """Seconds until `condition()` holds; fails the test after `timeout_s`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout_s:.0f}s")


def spawn(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = cli_env(settings, processor_batch_size="100", metrics_port=str(port))
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "hookstream.cli", "run", "processor"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def requests_by_delivery_id(settings: Settings) -> Counter[str]:
    return Counter(r.delivery_id for r in read(settings, DELIVERIES, DeliveryRequest))


@pytest.mark.slow
def test_broker_restart_mid_stream_is_survived_exactly_once(
    own_broker: LocalBroker, tmp_path: Path
) -> None:
    settings = settings_for(own_broker.bootstrap, tmp_path)
    setup_tables(settings)
    events = mixed_events(1200)
    before, after = events[:800], events[800:]
    expected = expected_without_render_errors(events)
    port = free_port()
    processor = spawn(settings, port, tmp_path / "processor.log")
    try:
        wait_for(lambda: readyz(port) == 200, 90, "processor ready")
        for start in range(0, len(before), 100):  # a stream, not one burst
            publish(settings, before[start : start + 100], ITEM_CHANGES)
        own_broker.stop()  # mid-stream: part of `before` is not processed yet
        wait_for(lambda: readyz(port) == 503, 30, "/readyz 503 during the outage")
        time.sleep(10)
        assert processor.poll() is None, "the processor exited during the outage"
        own_broker.start()
        back = time.monotonic()
        publish(settings, after, ITEM_CHANGES)
        # bounded, not timed: how fast it comes back is bench/chaos/processor.py's figure
        # (once 84 s in a CI run whose other restart tests were slow too)
        wait_for(lambda: readyz(port) == 200, 120, "/readyz 200 once the broker is back")
        total = sum(expected.values())
        wait_for(
            lambda: sum(requests_by_delivery_id(settings).values()) >= total,
            90,
            "every delivery request after the restart",
        )
        resumed_s = time.monotonic() - back
        time.sleep(2)  # duplicates, if any, would show by now
        got = requests_by_delivery_id(settings)
        assert processor.poll() is None, "the processor exited after the outage"
    finally:
        processor.send_signal(signal.SIGTERM)
        code = processor.wait(30)
    print(f"broker back -> every request processed: {resumed_s:.1f}s")
    assert [d for d, n in got.items() if n > 1] == []
    pairs = Counter((r.event_id, r.webhook_id) for r in read(settings, DELIVERIES, DeliveryRequest))
    assert pairs == expected
    assert code == 0


def test_sigterm_during_an_outage_exits_promptly(own_broker: LocalBroker, tmp_path: Path) -> None:
    settings = settings_for(own_broker.bootstrap, tmp_path)
    setup_tables(settings)
    publish(settings, mixed_events(100), ITEM_CHANGES)
    port = free_port()
    processor = spawn(settings, port, tmp_path / "processor.log")
    try:
        wait_for(lambda: readyz(port) == 200, 90, "processor ready")
        own_broker.stop()
        wait_for(lambda: readyz(port) == 503, 30, "/readyz 503 during the outage")
        time.sleep(3)  # well inside the outage: clients retrying, calls pending
        processor.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        code = processor.wait(20)
        print(f"SIGTERM during the outage -> exit: {time.monotonic() - sent:.1f}s")
        assert code == 0
    finally:
        if processor.poll() is None:
            processor.kill()
            processor.wait(10)


@pytest.mark.slow
def test_a_broker_paused_inside_commit_transaction_costs_no_request_and_no_duplicate(
    own_broker: LocalBroker, tmp_path: Path
) -> None:
    """The broker SIGSTOPped while a batch's commit_transaction is in flight (its offsets
    already sent): the commit times out, the abort conflicts with it, the clients are
    rebuilt, and the old commit settles when the broker wakes. Exactly once regardless."""
    settings = replace(settings_for(own_broker.bootstrap, tmp_path), processor_batch_size=100,
                       kafka_call_timeout_s=3.0)
    setup_tables(settings)
    events = mixed_events(1500)
    expected = expected_without_render_errors(events)
    publish(settings, events, ITEM_CHANGES)
    pid = own_broker.status().pid
    assert pid is not None
    paused: list[float] = []

    class PausingClients(TransactionalClients):
        _commits_seen = 0

        def commit_transaction(self) -> None:
            if not paused and self._commits_seen >= 3:  # a few batches in, once
                os.kill(pid, signal.SIGSTOP)
                paused.append(time.monotonic())
                threading.Timer(PAUSE_S, os.kill, (pid, signal.SIGCONT)).start()
            self._commits_seen += 1
            super().commit_transaction()

    class PausingProcessor(Processor):
        def _new_clients(self) -> TransactionalClients:
            return PausingClients(self.settings, GROUP, self._transactional_id.value,
                                  self.stopping, self._unreachable)

    total = sum(expected.values())

    def every_request_committed() -> bool:
        # The batch whose commit outcome the processor could not learn is not in its
        # counts when that commit did settle: check the topic once the rest is counted.
        return (processor.stats["events"] >= len(events) - settings.processor_batch_size
                and sum(1 for _ in read_all(settings, settings.topic(DELIVERIES))) >= total)

    processor = PausingProcessor(settings)
    run_until(processor, every_request_committed, timeout_s=180)
    assert paused, "the broker was never paused"
    got = Counter((r.event_id, r.webhook_id) for r in read(settings, DELIVERIES, DeliveryRequest))
    print(f"clients rebuilt {processor.rebuilds} times; stats {processor.stats}")
    assert_exactly(got, expected)
    assert processor.rebuilds >= 1  # the path: commit timed out, abort conflicted, rebuilt


PAUSE_S = 20.0  # past three 3 s commit attempts and the abort that follows
