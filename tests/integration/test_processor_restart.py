"""The processor survives a broker restart: alive, /readyz 503 then 200, exactly once.

These tests start a broker of their own (tests/conftest.py `own_broker`) so they may stop
and restart it; the processor runs as a `hookstream run processor` process, as deployed.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from hookstream.config import Settings
from hookstream.devbroker import LocalBroker
from hookstream.records import DELIVERIES, ITEM_CHANGES, DeliveryRequest
from tests.conftest import settings_for
from tests.integration.harness import cli_env, publish, read
from tests.integration.test_processor import (
    expected_without_render_errors,
    mixed_events,
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
        wait_for(lambda: readyz(port) == 200, 60, "/readyz 200 once the broker is back")
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
