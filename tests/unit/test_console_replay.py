"""The console's Replay (FastAPI TestClient): the form on the webhook page, the confirm
step with a dry run's count, the run started once and its progress page; read-only and
scoped tokens. The admin context is a fake: tests/integration/test_webhooks_replay.py and
test_admin_api.py run the real replay."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from connectors.admin import create_app, new_token, parse_tokens
from connectors.logstore import migrate
from hookstream.control.replay import ReplayJob, ReplayStatus
from hookstream.control.replay_runs import ReplayBusy, ReplayRun
from hookstream.records import WebhookDefinition
from hookstream.records.replays import ReplayCount, replay_identity
from tests.unit.test_console_web import FakeContext, login

HOOK = WebhookDefinition(id="hook-a", version=1, instance="glpi-a", name="a",
                         itemtype="Ticket", event="new", url="https://r.example/a",
                         secret_encrypted="")


@dataclass
class ReplayContext(FakeContext):
    started: list[tuple[str, ReplayJob, str, str]] = field(default_factory=list)
    counted: list[ReplayJob] = field(default_factory=list)
    runs: dict[str, ReplayRun] = field(default_factory=dict)

    def webhooks(self) -> dict[str, Any]:
        return {HOOK.id: HOOK}

    def webhook(self, webhook_id: str) -> Any:
        return HOOK if webhook_id == HOOK.id else None

    def preview(self, webhook: Any, event: Any) -> dict[str, Any]:
        return {"matches": False, "reason": "none"}

    def count_replay(self, job: ReplayJob) -> ReplayStatus:
        self.counted.append(job)
        return ReplayStatus(job.replay_id, job.webhook_id, ReplayCount(40, 7, 5, 0, 2), 40, 40,
                            True, True)

    def replay(self, who: Any, job: ReplayJob, instance: str, via: str = "api") -> ReplayRun:
        if job.replay_id in self.runs and self.runs[job.replay_id].running:
            raise ReplayBusy("running")
        self.started.append((who.name, job, instance, via))
        status = ReplayStatus(job.replay_id, job.webhook_id, ReplayCount(already=2), 10, 40)
        run = self.runs[job.replay_id] = ReplayRun(job, status)
        return run

    def replay_run(self, replay_id: str) -> ReplayRun | None:
        return self.runs.get(replay_id)


@pytest.fixture
def console(tmp_path: Path) -> tuple[TestClient, ReplayContext, dict[str, str]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    migrate(engine)
    plain, lines = {}, []
    for name, instances, mode in (("admin", "*", "rw"), ("reader", "*", "ro"),
                                  ("team-b", "glpi-b", "rw")):
        plain[name], line = new_token(name, instances, mode)
        lines.append(line)
    ctx = ReplayContext(engine)
    client = TestClient(create_app(ctx, parse_tokens(lines)),  # type: ignore[arg-type]
                        base_url="http://console.test", follow_redirects=False)
    return client, ctx, plain


def test_replay_asks_with_a_dry_runs_count_then_runs_once_and_shows_progress(
        console: Any) -> None:
    client, ctx, plain = console
    csrf = login(client, plain["admin"])
    page = client.get("/webhooks/hook-a")
    assert page.status_code == 200 and 'action="/webhooks/hook-a/replay"' in page.text

    asked = client.post("/webhooks/hook-a/replay",
                        data={"csrf": csrf, "since_hours": "2", "rate_per_s": "5"})
    assert asked.status_code == 200 and ctx.started == []  # the confirm step only
    found = re.search(r'name="since_ms" value="(\d+)"', asked.text)  # the replay confirmed
    assert found is not None
    since_ms = int(found.group(1))
    assert abs(since_ms - (time.time() - 2 * 3600) * 1000) < 600_000  # 2 hours back
    replay_id = replay_identity("hook-a", str(since_ms), None)
    assert ctx.counted == [ReplayJob("hook-a", replay_id, since_ms, None, 5.0)]
    count = re.search(r'<p id="replay-count">Events since <time [^>]+>[^<]+</time>: ([^<]*)</p>',
                      asked.text)
    assert count is not None and count.group(1) == (
        "40 read, 7 matching the webhook as it is defined now, 5 to replay, 2 already "
        "replayed before.")
    assert 'id="confirm">Replay 5</button>' in asked.text

    done = client.post("/webhooks/hook-a/replay", data={
        "csrf": csrf, "since_hours": "2", "since_ms": str(since_ms), "rate_per_s": "5",
        "confirm": "yes"})
    assert done.status_code == 303
    assert done.headers["location"] == f"/webhooks/hook-a/replays/{replay_id}"
    assert [(who, job.replay_id, job.dry_run, inst, via) for who, job, inst, via in ctx.started
            ] == [("admin", replay_id, False, "glpi-a", "console")]

    running = client.get(done.headers["location"])
    assert running.status_code == 200
    assert 'hx-trigger="every 1s"' in running.text and "<b>running</b>" in running.text
    assert '<progress id="replay-bar" max="40" value="10">' in running.text
    again = client.post("/webhooks/hook-a/replay", data={
        "csrf": csrf, "since_ms": str(since_ms), "confirm": "yes"})
    assert again.status_code == 303 and len(ctx.started) == 1  # running: followed, not doubled

    final = ReplayStatus(replay_id, "hook-a", ReplayCount(40, 7, 5, 0, 2), 40, 40, True)
    ctx.runs[replay_id] = replace(ctx.runs[replay_id], status=final, ended=True)
    ended = client.get(f"/webhooks/hook-a/replays/{replay_id}/live")
    assert "every 1s" not in ended.text and "<b>finished</b>" in ended.text
    assert ("40 of 40 events of the range read: 7 matched, 5 replayed, 2 already replayed "
            "before, 0 skipped.") in ended.text
    assert 'id="replay-continue"' not in ended.text
    stopped = replace(ctx.runs[replay_id], status=replace(final, finished=False),
                      error="a replay transaction failed")
    shown = client.get(f"/webhooks/hook-a/replays/{replay_id}").text
    assert stopped.error is not None and "<b>finished</b>" in shown
    ctx.runs[replay_id] = stopped
    shown = client.get(f"/webhooks/hook-a/replays/{replay_id}").text
    assert "<b>failed</b>" in shown and 'id="replay-continue"' in shown
    assert f'name="since_ms" value="{since_ms}"' in shown  # the same replay, continued
    assert client.get("/webhooks/hook-a/replays/other").status_code == 404


def test_replay_is_refused_to_read_only_tokens_and_hidden_from_other_instances(
        console: Any) -> None:
    client, ctx, plain = console
    csrf = login(client, plain["reader"])
    assert 'action="/webhooks/hook-a/replay"' not in client.get("/webhooks/hook-a").text
    refused = client.post("/webhooks/hook-a/replay", data={"csrf": csrf, "confirm": "yes"})
    assert refused.status_code == 403 and "read-only" in refused.text
    client.cookies.clear()
    csrf = login(client, plain["team-b"])
    hidden = client.post("/webhooks/hook-a/replay", data={"csrf": csrf, "confirm": "yes"})
    assert hidden.status_code == 404
    bad = client.post("/webhooks/hook-a/replay", data={"csrf": csrf, "rate_per_s": "fast"})
    assert bad.status_code == 404  # the webhook is checked before the form
    assert ctx.started == [] and ctx.counted == []
