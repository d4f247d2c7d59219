"""SIGKILL of the delivery process under load: nothing lost, duplicates bounded.

The delivery process runs as `python -m hookstream.cli run delivery`, configured only
through HOOKSTREAM_* variables. It is killed once part of the load has reached the
receiver; a second process takes over from the committed offsets (after the dead
member's session times out: 9 s, see connectors/delivery/service.py). The scenario runs once per
module; the tests below check what it recorded.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition

from hookstream.config import Settings
from hookstream.io import consumer as kafka_consumer
from hookstream.io import read_all
from hookstream.records import DELIVERIES, Codec, DeliveryRequest
from tests.conftest import settings_for
from tests.integration.harness import apply_webhooks, cli_env, publish, request_for
from tests.receiver import Received, Receiver

LOOPBACK = ["127.0.0.0/8"]
WEBHOOKS = 6
TOTAL = 3000
MAX_IN_FLIGHT = 64
GROUP = "hookstream-delivery"
REPO = Path(__file__).resolve().parents[2]


def start_delivery(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = cli_env(settings, max_in_flight=str(MAX_IN_FLIGHT), log_level="WARNING")
    env.pop("HOOKSTREAM_CONFIG", None)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "hookstream.cli", "run", "delivery"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def committed(settings: Settings) -> dict[int, int]:
    """The delivery group's committed offset of each deliveries partition (0 if none)."""
    consumer = kafka_consumer(settings, GROUP)
    try:
        topic = settings.topic(DELIVERIES)
        parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
        return {tp.partition: max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10)}
    finally:
        consumer.close()


def positions(settings: Settings) -> dict[str, tuple[int, int]]:
    """Where each delivery id sits in the deliveries topic: (partition, offset)."""
    codec = Codec()
    return {
        codec.decode(m.value(), m.headers(), DeliveryRequest).delivery_id: (
            m.partition() or 0,
            m.offset() or 0,
        )
        for m in read_all(settings, settings.topic(DELIVERIES), timeout_s=10)
    }


@dataclass
class KilledRun:
    expected: dict[bytes, str]  # body -> delivery id
    where: dict[str, tuple[int, int]]  # delivery id -> (partition, offset)
    before: Counter[str]  # requests per delivery id received before the kill
    at_kill: dict[int, int]  # committed offset per partition at the kill
    received: list[Received]  # every request, both processes
    log: str
    seconds: float

    def counts(self) -> Counter[str]:
        return Counter(r.headers.get("webhook-id", "") for r in self.received)

    def uncommitted(self, delivery_id: str) -> bool:
        partition, offset = self.where[delivery_id]
        return offset >= self.at_kill[partition]


@pytest.fixture(scope="module")
def killed(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KilledRun]:
    tmp_path = tmp_path_factory.mktemp("kill")
    settings = settings_for(kafka_bootstrap, tmp_path)
    started = time.monotonic()
    log = tmp_path / "delivery.log"
    with Receiver() as receiver:
        receiver.on("/in", hang_s=0.01)  # a little work per request, as a real target has
        apply_webhooks(
            settings,
            tmp_path,
            *(
                {
                    "id": f"hook-{w}",
                    "url": receiver.url("/in"),
                    "signature_scheme": "both",
                    "allowed_networks": LOOPBACK,
                }
                for w in range(WEBHOOKS)
            ),
        )
        requests = [
            request_for(f"hook-{n % WEBHOOKS}", receiver.url("/in"), n, body=b'{"n": %d}' % n)
            for n in range(TOTAL)
        ]
        publish(settings, requests)
        where = positions(settings)

        first = start_delivery(settings, log)
        second: subprocess.Popen[bytes] | None = None
        try:
            deadline = time.monotonic() + 40
            while len(receiver.requests("/in")) < TOTAL // 5 and time.monotonic() < deadline:
                time.sleep(0.01)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            time.sleep(0.3)  # requests the receiver had already read are recorded
            before = Counter(r.headers.get("webhook-id", "") for r in receiver.requests("/in"))
            at_kill = committed(settings)

            second = start_delivery(settings, log)
            deadline = started + 85
            while time.monotonic() < deadline:
                got = {r.headers.get("webhook-id") for r in receiver.requests("/in")}
                if len(got) >= TOTAL or second.poll() is not None:
                    break
                time.sleep(0.2)
            time.sleep(1.0)  # let repeats still in flight arrive, so they are counted
        finally:
            if first.poll() is None:
                first.kill()
            if second is not None:
                stop(second)
        run = KilledRun(
            {r.body: r.delivery_id for r in requests},
            where,
            before,
            at_kill,
            receiver.requests("/in"),
            log.read_text(errors="replace"),
            time.monotonic() - started,
        )
    duplicates = {d: n for d, n in run.counts().items() if n > 1}
    at_risk = [d for d in before if run.uncommitted(d)]
    print(
        f"\nSIGKILL after {len(before)} of {TOTAL} deliveries received "
        f"({len(at_risk)} of them above the committed offsets {at_kill}); "
        f"{len(duplicates)} deliveries received more than once "
        f"({sum(duplicates.values()) - len(duplicates)} extra requests, "
        f"{sum(1 for d in duplicates if d not in before)} of them never sent before the kill); "
        f"{run.seconds:.1f}s in all"
    )
    yield run


def test_sigkill_under_load_loses_nothing(killed: KilledRun) -> None:
    assert TOTAL // 5 <= len(killed.before) < TOTAL, "the kill was not under load"
    assert set(killed.where) == set(killed.expected.values())
    counts = killed.counts()
    lost = set(killed.expected.values()) - set(counts)
    assert not lost, f"{len(lost)} deliveries lost; delivery log:\n{killed.log[-3000:]}"
    assert set(counts) == set(killed.expected.values())
    for r in killed.received:  # every request of a delivery carries that delivery's id
        assert r.headers["webhook-id"] == killed.expected[r.body]
    assert killed.seconds <= 90


def test_sigkill_repeats_only_what_was_in_flight(killed: KilledRun) -> None:
    duplicates = {d for d, n in killed.counts().items() if n > 1}
    # Only a delivery that had been sent but not committed when the process died may be
    # sent again, and once: the second process resumes from the committed offsets.
    assert all(killed.uncommitted(d) for d in duplicates)
    assert duplicates <= set(killed.before)
    assert max(killed.counts().values()) <= 2
