"""Static group membership (`group_instance_id`) and the recall beside the loop.

The delivery processes run as `hookstream run delivery` in subprocesses, with their
consumer's session timeout raised to 60 s (SESSION_S) before the command starts: a member
that neither came back under its name nor left the group holds its partitions that long,
longer than any wait below. So each test passes only if the partitions came back without
waiting the session timeout: a restarted process under the same name takes them back, a
stopped one hands them over by leaving.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from connectors.delivery.recall import InQuestion, Recall
from hookstream.config import Settings
from hookstream.io import codec_for
from hookstream.io.kafka import client_config
from hookstream.records import ATTEMPTS, AttemptRecord, DeliveryRequest, Outcome, retry_topics
from tests.conftest import settings_for
from tests.integration.harness import (
    RunningDelivery,
    apply_webhooks,
    cli_env,
    publish,
    read,
    request_for,
    wait_until,
)
from tests.receiver import Receiver

LOOPBACK = ["127.0.0.0/8"]
REPO = Path(__file__).resolve().parents[2]
SESSION_S = 60
GROUP = "hookstream-delivery"
RUN_DELIVERY = (
    "from connectors.delivery import service; "
    f"service.CONSUMER_CONFIG['session.timeout.ms'] = {SESSION_S * 1000}; "
    "from hookstream.cli.main import main; raise SystemExit(main(['run', 'delivery']))"
)


def start(settings: Settings, instance_id: str, log: Path) -> subprocess.Popen[bytes]:
    env = cli_env(settings, group_instance_id=instance_id, max_in_flight="32",
                  log_level="INFO")
    env.pop("HOOKSTREAM_CONFIG", None)
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-c", RUN_DELIVERY], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def members(settings: Settings) -> list[str]:
    """The group's members, by group.instance.id."""
    client = AdminClient(client_config(settings))
    group = client.describe_consumer_groups([GROUP])[GROUP].result(timeout=10)
    return sorted(m.group_instance_id or "" for m in group.members)


def assigned(settings: Settings) -> set[str]:
    """The members holding partitions, by group.instance.id (none while it rebalances)."""
    client = AdminClient(client_config(settings))
    group = client.describe_consumer_groups([GROUP])[GROUP].result(timeout=10)
    if str(group.state) != "ConsumerGroupState.STABLE":
        return set()
    return {m.group_instance_id or "" for m in group.members
            if m.assignment and m.assignment.topic_partitions}


def ids_received(receiver: Receiver) -> Counter[str]:
    return Counter(r.headers.get("webhook-id", "") for r in receiver.requests("/in"))


@pytest.fixture
def setup(kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple[Settings, Receiver]]:
    settings = settings_for(kafka_bootstrap, tmp_path)
    with Receiver() as receiver:
        receiver.on("/in", hang_s=0.01)
        apply_webhooks(settings, tmp_path, *({"id": f"hook-{w}", "url": receiver.url("/in"),
                                              "signature_scheme": "both",  # webhook-id
                                              "allowed_networks": LOOPBACK} for w in range(4)))
        yield settings, receiver


def requests(receiver: Receiver, first: int, count: int) -> list[DeliveryRequest]:
    return [request_for(f"hook-{n % 4}", receiver.url("/in"), n, body=b'{"n": %d}' % n)
            for n in range(first, first + count)]


def test_a_killed_member_restarted_under_its_name_resumes_without_a_duplicate(
        setup: tuple[Settings, Receiver], tmp_path: Path) -> None:
    settings, receiver = setup
    log = tmp_path / "delivery.log"
    before_kill = requests(receiver, 0, 600)
    publish(settings, before_kill)
    first = start(settings, "delivery-0", log)
    try:
        assert wait_until(lambda: len(receiver.requests("/in")) >= 150, 40), log.read_text()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        time.sleep(0.3)  # requests the receiver had already read are recorded
        received_at_kill = ids_received(receiver)
        assert len(received_at_kill) < 600, "the kill was not under load"
        # Delivered, and its attempt record durable: its copy above the committed offset
        # is read again by the successor, and must be recognised as handled (recall).
        durable = {a.delivery_id for a in read(settings, ATTEMPTS, AttemptRecord)
                   if a.outcome == Outcome.DELIVERED}
    finally:
        first.kill()
    second = start(settings, "delivery-0", log)
    try:
        after_restart = requests(receiver, 600, 200)
        publish(settings, after_restart)
        expected = {r.delivery_id for r in before_kill + after_restart}
        # within 30 s, where a member that neither came back nor left holds 60 s
        assert wait_until(lambda: set(ids_received(receiver)) >= expected, 30), (
            f"{len(expected - set(ids_received(receiver)))} not delivered; "
            + log.read_text()[-3000:])
        assert members(settings) == ["delivery-0"]  # the dead member was replaced
        time.sleep(1.0)  # repeats still in flight arrive, so they are counted
    finally:
        stop(second)
    counts = ids_received(receiver)
    assert set(counts) == expected
    assert durable, "nothing was durably delivered before the kill"
    assert all(counts[d] == 1 for d in durable), "a delivery known handled was sent again"
    repeated = {d for d, n in counts.items() if n > 1}
    assert repeated <= set(received_at_kill)  # only what was in flight at the kill
    assert max(counts.values()) <= 2


def test_a_static_member_stopped_hands_its_partitions_over_at_once(
        setup: tuple[Settings, Receiver], tmp_path: Path) -> None:
    settings, receiver = setup
    log = tmp_path / "delivery.log"
    leaving, staying = start(settings, "delivery-0", log), start(settings, "delivery-1", log)
    try:
        publish(settings, requests(receiver, 0, 40))
        assert wait_until(lambda: len(ids_received(receiver)) >= 40, 40), log.read_text()
        assert wait_until(lambda: members(settings) == ["delivery-0", "delivery-1"], 20)
        # a settled group: SIGTERM inside a rebalance is best effort (README, Restarts)
        assert wait_until(lambda: assigned(settings) == {"delivery-0", "delivery-1"}, 20)
        time.sleep(1)
        stop(leaving)  # SIGTERM: a rolling update or a scale-down
        assert leaving.returncode == 0
        # it left: the group drops it in seconds (the broker handles the LeaveGroup
        # asynchronously), not after its 60 s session timeout
        assert wait_until(lambda: members(settings) == ["delivery-1"], 10), \
            log.read_text()[-3000:]
        later = requests(receiver, 40, 80)
        publish(settings, later)
        assert wait_until(
            lambda: set(ids_received(receiver)) >= {r.delivery_id for r in later}, 30
        ), log.read_text()[-3000:]
    finally:
        stop(leaving)
        stop(staying)


def test_a_second_process_under_the_same_name_fences_the_first(
        setup: tuple[Settings, Receiver], tmp_path: Path) -> None:
    settings, receiver = setup
    log = tmp_path / "delivery.log"
    first = start(settings, "delivery-0", log)
    second: subprocess.Popen[bytes] | None = None
    try:
        assert wait_until(lambda: members(settings) == ["delivery-0"], 30), log.read_text()
        second = start(settings, "delivery-0", log)  # a misconfiguration
        # Kafka fenced it: it stops, and says why (a bound well above the second's start
        # and the first's next heartbeat, for a loaded machine)
        try:
            code = first.wait(60)
        except subprocess.TimeoutExpired:
            raise AssertionError(log.read_text()[-3000:]) from None
        assert code != 0
        assert "the Kafka consumer stopped" in log.read_text()
        publish(settings, requests(receiver, 0, 20))  # the second one has the partitions
        assert wait_until(lambda: len(ids_received(receiver)) == 20, 30), log.read_text()
        assert second.poll() is None
    finally:
        stop(first)
        if second is not None:
            stop(second)


class HeldRecall(Recall):
    """The real recall, whose evidence is read only once the test lets it."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.candidates_read = threading.Event()
        self.go_on = threading.Event()
        self.in_question: InQuestion | None = None

    def hops(self, owner: Any, assigned: list[TopicPartition],
             on_candidates: Callable[[InQuestion], object] = lambda _: None,
             ) -> list[tuple[str, float]]:
        def held(in_question: InQuestion) -> None:
            on_candidates(in_question)
            self.in_question = in_question
            self.candidates_read.set()
            assert self.go_on.wait(60)

        return super().hops(owner, assigned, held)


def test_the_recall_holds_only_the_deliveries_in_question(
        setup: tuple[Settings, Receiver]) -> None:
    settings, receiver = setup
    # Never committed: every record published before the start is a candidate.
    in_question = requests(receiver, 0, 20)
    publish(settings, in_question)
    topic_delay = dict(zip(retry_topics(settings), settings.retry_tiers_s, strict=True))
    recall = HeldRecall(settings, codec=codec_for(settings), topic_delay_s=topic_delay)
    with RunningDelivery(settings, recall=recall):
        assert recall.candidates_read.wait(30)
        assert recall.in_question is not None
        assert recall.in_question.delivery_ids == {r.delivery_id for r in in_question}
        fresh = requests(receiver, 100, 20)  # other items: not in question
        # Same items as the first five in question, other events: they wait with them.
        same_items = [request_for(f"hook-{n % 4}", receiver.url("/in"), n,
                                  body=b'{"again": %d}' % n).evolve(
                          event_id=f"again-{n}", delivery_id=f"again-{n}") for n in range(5)]
        publish(settings, fresh + same_items)
        fresh_ids = {r.delivery_id for r in fresh}
        assert wait_until(lambda: set(ids_received(receiver)) >= fresh_ids, 30)
        time.sleep(0.5)
        waiting = {r.delivery_id for r in in_question + same_items}
        assert not waiting & set(ids_received(receiver)), "delivered before the recall ended"

        recall.go_on.set()
        everything = fresh_ids | waiting
        assert wait_until(lambda: set(ids_received(receiver)) >= everything, 30)
        time.sleep(0.5)
    counts = ids_received(receiver)
    assert set(counts) == everything and max(counts.values()) == 1
