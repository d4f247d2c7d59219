"""GroupWatch: a group consumer stuck out of its group, told from librdkafka's statistics
(the shape librdkafka's stats_cb gives: `cgrp` and `brokers`)."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from hookstream.errors import KafkaFatal
from hookstream.io import GroupWatch
from processors.clients import TransactionalClients
from tests.unit.delivery_fakes import (
    FakeConsumer,
    FakeProducer,
    RecordingSender,
    service,
    settings_for,
)


def stats(join_state: str, broker: str = "UP", state: str = "up") -> dict[str, object]:
    return {"type": "consumer",
            "cgrp": {"state": state, "join_state": join_state, "assignment_size": 0},
            "brokers": {"127.0.0.1:9092/1": {"state": broker, "nodeid": 1},
                        "GroupCoordinator": {"state": broker, "nodeid": -1}}}


def test_a_rebalance_that_ends_is_not_stuck() -> None:
    watch = GroupWatch(stuck_after_s=120)
    assert watch.stuck(stats("wait-join"), 0.0) is None
    assert watch.stuck(stats("wait-unassign-to-complete"), 100.0) is None
    assert watch.stuck(stats("steady"), 110.0) is None
    # away again: the clock starts from there, not from the first rebalance
    assert watch.stuck(stats("wait-join"), 200.0) is None
    assert watch.stuck(stats("wait-join"), 319.0) is None
    assert watch.stuck(stats("wait-join"), 320.0) is not None


def test_away_from_steady_past_the_bound_with_a_broker_up_is_stuck() -> None:
    watch = GroupWatch(stuck_after_s=120)
    assert watch.stuck(stats("wait-unassign-to-complete"), 0.0) is None
    reason = watch.stuck(stats("wait-unassign-to-complete"), 125.0)
    assert reason is not None
    assert "125 s" in reason and "wait-unassign-to-complete" in reason


def test_an_outage_is_not_being_stuck_and_restarts_the_clock() -> None:
    watch = GroupWatch(stuck_after_s=120)
    assert watch.stuck(stats("wait-join"), 0.0) is None
    assert watch.stuck(stats("wait-join", broker="DOWN", state="query-coord"), 500.0) is None
    assert watch.stuck(stats("wait-join"), 600.0) is None  # the broker is back: from here
    assert watch.stuck(stats("wait-join"), 719.0) is None
    assert watch.stuck(stats("wait-join"), 720.0) is not None


@pytest.mark.parametrize("sample", [{"type": "producer", "brokers": {}}, {"cgrp": {}}])
def test_a_client_without_a_group_is_never_stuck(sample: dict[str, object]) -> None:
    watch = GroupWatch(stuck_after_s=0)
    assert watch.stuck(sample, 0.0) is None and watch.stuck(sample, 1e6) is None


def test_delivery_stops_with_the_reason_once_its_consumer_is_stuck(tmp_path: Path) -> None:
    svc = service(settings_for(tmp_path), FakeConsumer(), FakeProducer(), RecordingSender())
    svc._group_watch.stuck_after_s = 0
    svc._on_stats(json.dumps(stats("steady")))
    assert svc.records.fatal is None
    svc._on_stats(json.dumps(stats("wait-unassign-to-complete")))
    assert svc.records.fatal is not None and "out of its group" in svc.records.fatal


def test_the_processors_clients_fail_fatally_once_their_consumer_is_stuck(
    tmp_path: Path,
) -> None:
    """KafkaFatal: the processor's loop builds new clients (tests/integration covers that
    path for any fatal error); no broker is needed, the consumer is only asked for nothing."""
    settings = replace(settings_for(tmp_path), bootstrap_servers="127.0.0.1:9")
    clients = TransactionalClients(settings, "g", "tx-g", threading.Event(), lambda why: None)
    try:
        clients.group_watch.stuck_after_s = 0
        clients.on_stats(json.dumps(stats("steady")))
        assert clients.consume(1, 0) == []
        clients.on_stats(json.dumps(stats("wait-join")))
        with pytest.raises(KafkaFatal, match=r"out of its group .* a new client will"):
            clients.consume(1, 0)
    finally:
        clients.close()
