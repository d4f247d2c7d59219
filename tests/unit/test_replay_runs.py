"""BackgroundReplays: a run is told ended (its `on_end`, the audit record) before anyone can
see it ended or start it again, so the audit trail reads "started, ended, started" per
replay. The replay itself is replaced by a function that returns at once or fails."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from hookstream.config import Settings
from hookstream.control import replay_runs
from hookstream.control.replay import ReplayJob, ReplayStatus
from hookstream.control.replay_runs import BackgroundReplays, ReplayBusy, ReplayRun
from hookstream.errors import KafkaFailed
from hookstream.records.replays import ReplayCount

JOB = ReplayJob("hook-a", "hook-a-r1", since_ms=0)


def finished(settings: Settings, job: ReplayJob, *_: Any, **__: Any) -> ReplayStatus:
    return ReplayStatus(job.replay_id, job.webhook_id, ReplayCount(read=2, replayed=1), 2, 2,
                        finished=True)


def broken(settings: Settings, job: ReplayJob, *_: Any, **__: Any) -> ReplayStatus:
    raise KafkaFailed("reading glpi.item-changes: the broker is away")


@pytest.mark.parametrize("outcome", [finished, broken])
def test_a_run_is_seen_ended_only_once_its_end_was_told(
    monkeypatch: pytest.MonkeyPatch, outcome: Any,
) -> None:
    monkeypatch.setattr(replay_runs, "replay", outcome)
    replays = BackgroundReplays(Settings())
    told: list[tuple[ReplayRun, bool, bool]] = []
    done = threading.Event()

    def on_end(run: ReplayRun) -> None:
        current = replays.get(JOB.replay_id)
        try:
            replays.start(JOB)
            restarted = True
        except ReplayBusy:
            restarted = False
        told.append((run, current is not None and current.running, restarted))
        done.set()

    replays.start(JOB, on_end=on_end)
    assert done.wait(5)
    (run, running_meanwhile, restarted), = told
    assert run.ended and running_meanwhile and not restarted
    if outcome is finished:
        assert run.error is None and run.status.count.replayed == 1
    else:
        assert run.error is not None and "broker is away" in run.error
    deadline = time.monotonic() + 5
    while (last := replays.get(JOB.replay_id)) is not None and last.running \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    assert last == run  # then marked ended, as told
