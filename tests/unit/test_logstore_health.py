"""Each webhook's target health in the log store (SQLite): folded with the batch it came
in, idempotent when a batch is written again, and read back for auto-disable's verdict.
Also: `webhooks apply` keeps an auto-disabled webhook disabled."""

from __future__ import annotations

from pathlib import Path

from connectors.logstore import LogStore
from connectors.logstore.health import HealthSample, health_sample
from connectors.logstore.store import open_engine
from hookstream.config import load_settings
from hookstream.control.switch import disabled
from hookstream.control.webhooks import build
from hookstream.policy import TargetHealth, secret_box, verdict
from hookstream.records import AttemptRecord, Outcome

DAY = 86_400_000
T0 = 1_800_000_000_000


def store(tmp_path: Path) -> LogStore:
    return LogStore(open_engine(load_settings(env={}, check_dns=False,
                                              state_dir=str(tmp_path / "state"))))


def test_batches_fold_into_each_webhooks_health_and_a_batch_again_changes_nothing(
        tmp_path: Path) -> None:
    log = store(tmp_path)
    first = [HealthSample("down", T0, False), HealthSample("up", T0, True),
             HealthSample("down", T0 + DAY, False)]
    log.write([], [], health=first)
    second = [HealthSample("down", T0 + 5 * DAY, False), HealthSample("up", T0 + DAY, False)]
    log.write([], [], health=second)
    log.write([], [], health=second)  # read again after a crash
    found = log.health(["down", "up", "never"])
    assert found == {"down": TargetHealth(None, T0, T0 + 5 * DAY),
                     "up": TargetHealth(T0, T0 + DAY, T0 + DAY)}
    assert verdict(found["down"], T0 + 5 * DAY, 5 * DAY) is not None
    assert verdict(found["up"], T0 + 5 * DAY, 5 * DAY) is None  # last failure not fresh
    log.write([], [], health=[HealthSample("down", T0 + 2 * DAY, True)])  # a late success
    assert log.health(["down"])["down"].first_failure_ms == T0 + 5 * DAY


def test_only_attempts_that_say_something_of_the_target_are_sampled() -> None:
    def attempt(outcome: Outcome) -> AttemptRecord:
        return AttemptRecord("d", "w", "glpi-a", "Ticket", 1, "new", 1, T0, T0 + 5,
                             str(outcome))

    assert health_sample(attempt(Outcome.DELIVERED)) == HealthSample("w", T0 + 5, True)
    assert health_sample(attempt(Outcome.RETRY_SCHEDULED)) == HealthSample("w", T0 + 5, False)
    assert health_sample(attempt(Outcome.CIRCUIT_OPEN)) is None
    assert health_sample(attempt(Outcome.RENDER_ERROR)) is None


def test_apply_keeps_an_auto_disabled_webhook_disabled(tmp_path: Path) -> None:
    box = secret_box(load_settings(env={}, check_dns=False, state_dir=str(tmp_path / "s")))
    raw = {"id": "h", "instance": "glpi-a", "name": "h", "itemtype": "Ticket", "event": "new",
           "url": "https://t.example/h", "is_active": True, "secret": "s" * 40}
    applied = build(raw, box, None)
    off = disabled(applied, "every attempt failed", T0)
    again = build(raw, box, off)
    assert again is off  # the same YAML applied again: nothing to publish
    changed = build({**raw, "name": "renamed"}, box, off)
    assert (changed.is_active, changed.disabled_reason, changed.disabled_at_ms) == (
        False, "every attempt failed", T0)
    assert changed.version == off.version + 1
    turned_off = build({**raw, "is_active": False}, box, off)  # the operator's own choice
    assert (turned_off.is_active, turned_off.disabled_at_ms) == (False, 0)
