"""Circuit breakers per target origin, on a real broker with real receivers.

Two receivers listen on two ports, so they are two origins: one fails (503) or hangs,
the other is healthy. Threshold 3, cool-down 2 s; retry tiers are 1 s, 2 s, 3 s.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

from hookstream.config import Settings
from hookstream.records import ATTEMPTS, AttemptRecord, DeliveryRequest
from tests.integration.harness import (
    RunningDelivery,
    apply_webhooks,
    attempts_of,
    publish,
    read,
    request_for,
    wait_until,
)
from tests.receiver import Receiver

LOOPBACK = ["127.0.0.0/8"]
REAL = ("delivered", "retry_scheduled", "dead_lettered")  # outcomes of a request made


def all_delivered(settings: Settings, requests: list[DeliveryRequest]) -> bool:
    ids = {r.delivery_id for r in requests}
    done = read(
        settings,
        ATTEMPTS,
        AttemptRecord,
        lambda a: a.delivery_id in ids and a.outcome == "delivered",
    )
    return {a.delivery_id for a in done} == ids


def on_tier(settings: Settings, tier: str, delivery_id: str) -> list[DeliveryRequest]:
    return read(
        settings,
        f"hookstream.retry.{tier}",
        DeliveryRequest,
        lambda r: r.delivery_id == delivery_id,
    )


def test_open_circuit_skips_requests_and_probes_once(settings: Settings, tmp_path: Path) -> None:
    settings = dataclasses.replace(settings, circuit_failure_threshold=3, circuit_cooldown_s=2.0)
    with Receiver() as down, Receiver() as healthy:
        down.on("/down", statuses=[503])
        apply_webhooks(
            settings,
            tmp_path,
            {
                "id": "down",
                "url": down.url("/down"),
                "sent_try": 20,
                "signature_scheme": "standard",
                "allowed_networks": LOOPBACK,
            },
            {"id": "ok", "url": healthy.url("/ok"), "allowed_networks": LOOPBACK},
        )
        failing = [request_for("down", down.url("/down"), n) for n in range(3)]
        skipped = [request_for("down", down.url("/down"), n) for n in range(3, 7)]
        fine = [request_for("ok", healthy.url("/ok"), n) for n in range(40)]
        publish(settings, [*failing, *fine[:20]])
        with RunningDelivery(settings):
            # Three concurrent failures open the circuit...
            # (the receiver's own count: reading the attempts topic would be slower, and
            # these must arrive well within the cool-down)
            assert len(down.wait_for(3, "/down", timeout_s=20)) >= 3
            publish(settings, [*skipped, *fine[20:]])
            # ...until the cool-down is over and one probe goes out.
            assert wait_until(lambda: len(down.requests("/down")) >= 4, timeout_s=20)
            probe_at = down.requests("/down")[3].at

            def rejected_after_probe() -> bool:
                return any(
                    a.outcome == "circuit_open" and a.started_at / 1000 > probe_at
                    for a in attempts_of(settings, "down")
                )

            assert wait_until(rejected_after_probe, timeout_s=20)
            assert wait_until(lambda: all_delivered(settings, fine), timeout_s=30)
        sent = down.requests("/down")
        history = attempts_of(settings, "down")

    # Every attempt that was not skipped is one HTTP request, and the other way round.
    real = [a for a in history if a.outcome in REAL]
    assert len(real) == len(sent) >= 4
    assert [a.outcome for a in history[:3]] == ["retry_scheduled"] * 3
    assert sorted(r.headers["webhook-id"] for r in sent[:3]) == sorted(
        r.delivery_id for r in failing
    )
    assert history[3].outcome == "circuit_open"  # the circuit opened at the third failure
    # Once open, requests only go as single probes, each between rejected deliveries.
    outcomes = [a.outcome for a in history[3:]]
    for before, after in itertools.pairwise(outcomes):
        assert not (before in REAL and after in REAL), outcomes
    skipped_records = [a for a in history if a.outcome == "circuit_open"]
    assert all(a.error == "circuit open" and a.status_code is None for a in skipped_records)

    # A skipped delivery spends no attempt and moves on to the next tier.
    for request in skipped:
        first = next(a for a in history if a.delivery_id == request.delivery_id)
        assert first.outcome == "circuit_open" and first.attempt == 0
        # (it may later have been the probe: that failure lands on the 1 s tier too)
        moved = on_tier(settings, "1s", request.delivery_id)
        assert [(r.attempt, r.last_error) for r in moved][:1] == [(0, "circuit open")]
        assert all(r.attempt == 1 for r in moved[1:])
    for request in failing:  # its 1 s retry came due while open: on to the 2 s tier
        mine = [a for a in history if a.delivery_id == request.delivery_id]
        assert [(a.outcome, a.attempt) for a in mine[:2]] == [
            ("retry_scheduled", 1),
            ("circuit_open", 1),
        ]
        assert [r.attempt for r in on_tier(settings, "1s", request.delivery_id)] == [1]
        assert 1 in [r.attempt for r in on_tier(settings, "2s", request.delivery_id)]

    # The healthy origin was not held up: each delivery once, first try.
    assert len(healthy.requests("/ok")) == len(fine)
    ok = attempts_of(settings, "ok")
    assert {(a.outcome, a.attempt) for a in ok} == {("delivered", 1)}
    assert len(ok) == len(fine)


def test_hanging_target_does_not_hold_up_a_healthy_one(settings: Settings, tmp_path: Path) -> None:
    settings = dataclasses.replace(settings, max_in_flight=8, max_in_flight_per_origin=4)
    with Receiver() as hanging, Receiver() as healthy:
        hanging.on("/hang", hang_s=3.0)
        apply_webhooks(
            settings,
            tmp_path,
            {
                "id": "hang",
                "url": hanging.url("/hang"),
                "timeout_s": 0.5,
                "allowed_networks": LOOPBACK,
            },
            {"id": "ok", "url": healthy.url("/ok"), "allowed_networks": LOOPBACK},
        )
        stuck = [request_for("hang", hanging.url("/hang"), n) for n in range(30)]
        fine = [request_for("ok", healthy.url("/ok"), n) for n in range(60)]
        mixed = [r for pair in zip(stuck, fine[:30], strict=True) for r in pair]
        publish(settings, [*mixed, *fine[30:]])
        with RunningDelivery(settings):
            done = wait_until(lambda: all_delivered(settings, fine), timeout_s=45)
        hung = attempts_of(settings, "hang")
    assert done, "the healthy target's deliveries were held up by the hanging one"
    assert len(healthy.requests("/ok")) == len(fine)
    # The hanging target really hung: nothing delivered, the real attempts timed out.
    assert hung and all(a.outcome in ("retry_scheduled", "circuit_open", "deferred") for a in hung)
    timed_out = [a for a in hung if a.outcome == "retry_scheduled"]
    errors = {a.error for a in timed_out}
    assert timed_out and errors == {"timeout after 0.5s"}, errors
