"""The pure parts of a replay: its identity, delivery ids, progress and the bar."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookstream.cli import main
from hookstream.cli.replay import progress_line
from hookstream.control.replay import replay_plan
from hookstream.matching import RenderFailure, WebhookIndex
from hookstream.records import DeliveryRequest, delivery_id_for
from hookstream.records.replays import (
    PartitionProgress,
    ReplayCount,
    replay_delivery_id,
    replay_identity,
)
from hookstream.render import RenderLimits
from tests.unit.test_plan import ENTITIES, NOW_MS, ticket_event, webhook


def test_a_replay_is_named_by_its_webhook_and_range_as_written() -> None:
    named = replay_identity("hook-1", "2h", None)
    assert named == replay_identity("hook-1", "2h", None)  # a rerun continues it
    assert named.startswith("hook-1-") and len(named) == len("hook-1-") + 12
    others = {replay_identity("hook-2", "2h", None), replay_identity("hook-1", "3h", None),
              replay_identity("hook-1", "2h", "1h")}
    assert named not in others and len(others) == 3
    assert len(replay_identity("x" * 100, "2h", None)) == 53  # fits a group name


def test_replayed_delivery_ids_are_new_and_stable_per_replay() -> None:
    first = replay_delivery_id("ev-1", "hook-1", "r1")
    assert first == replay_delivery_id("ev-1", "hook-1", "r1")
    assert len(first) == 32
    assert len({first, delivery_id_for("ev-1", "hook-1"),
                replay_delivery_id("ev-1", "hook-1", "r2"),
                replay_delivery_id("ev-2", "hook-1", "r1")}) == 4


def test_progress_survives_the_offset_metadata_and_rejects_anything_else() -> None:
    progress = PartitionProgress(position=7, end=12, read=5, matched=3, replayed=2, skipped=1)
    assert PartitionProgress.from_metadata(progress.metadata()) == progress
    assert len(progress.metadata()) < 200
    assert not progress.done and PartitionProgress(12, 12).done
    for other in (None, "", "not json", "[1]", '{"v": 2, "position": 1}', '{"v": 1}',
                  '{"v": 1, "position": "x", "end": 1, "read": 0, "matched": 0, '
                  '"replayed": 0, "skipped": 0}'):
        assert PartitionProgress.from_metadata(other) is None


def test_counts_add_up_and_read_as_a_sentence() -> None:
    total = ReplayCount(read=3, matched=2, replayed=1, skipped=1).plus(ReplayCount(already=4))
    assert total == ReplayCount(3, 2, 1, 1, 4)
    assert total.summary() == ("read 3 events, matched 2, replayed 1, "
                               "already replayed before 4, skipped 1")
    assert total.summary(dry_run=True).startswith("read 3 events, matched 2, would replay 1,")


@pytest.mark.parametrize(("done", "total", "line"), [
    (0, 10, "[..............................]   0% 0/10 events, 0 replayed"),
    (5, 10, "[###############...............]  50% 5/10 events, 0 replayed"),
    (10, 10, "[##############################] 100% 10/10 events, 0 replayed"),
    (0, 0, "[##############################] 100% 0/0 events, 0 replayed"),
])
def test_the_progress_bar(done: int, total: int, line: str) -> None:
    assert progress_line(done, total, 0) == line


def test_replay_plan_uses_the_processors_matching_and_a_new_id() -> None:
    index = WebhookIndex()
    index.put(webhook("europe", entities_id=1, is_recursive=True))
    limits = RenderLimits()
    france, asia = ticket_event(3), ticket_event(2)
    found = replay_plan(france, index, ENTITIES, NOW_MS, limits, "r1")
    assert isinstance(found, DeliveryRequest)
    assert found.delivery_id == replay_delivery_id(france.event_id, "europe", "r1")
    assert (found.webhook_id, found.created_at, found.attempt) == ("europe", NOW_MS, 0)
    assert replay_plan(asia, index, ENTITIES, NOW_MS, limits, "r1") is None  # out of scope
    assert replay_plan(ticket_event(3, "update"), index, ENTITIES, NOW_MS, limits, "r1") is None

    index.put(webhook("europe", version=2, entities_id=1, is_active=False))
    assert replay_plan(france, index, ENTITIES, NOW_MS, limits, "r1") is None  # inactive now

    index.put(webhook("europe", version=3, entities_id=1))
    too_small = RenderLimits(max_body_bytes=10)  # GLPI's default body is larger
    failed = replay_plan(france, index, ENTITIES, NOW_MS, too_small, "r1")
    assert isinstance(failed, RenderFailure)
    assert failed.request.delivery_id == replay_delivery_id(france.event_id, "europe", "r1")


@pytest.fixture
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOOKSTREAM_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("HOOKSTREAM_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing listens


@pytest.mark.usefixtures("_offline")
@pytest.mark.parametrize(("argv", "message"), [
    (["webhooks", "replay"], "hookstream webhooks replay needs a webhook ID"),
    (["webhooks", "replay", "h"], "hookstream webhooks replay needs --since (a date-time or 2h)"),
    (["webhooks", "replay", "h", "--since", "soon"],
     "--since 'soon': not a date-time nor a duration like 2h"),
    (["webhooks", "replay", "h", "--since", "2h", "--until", "later"],
     "--until 'later': not a date-time nor a duration like 2h"),
    (["webhooks", "replay", "h", "--since", "1h", "--until", "2h"],
     "--until '2h' is not after --since '1h'"),
    (["webhooks", "replay", "h", "--since", "2h", "--rate", "fast"],
     "--rate 'fast': not a rate such as 20/s"),
    (["webhooks", "replay", "h", "--since", "2h", "--limit", "0"],
     "--limit 0: must be at least 1"),
    (["webhooks", "replay", "h", "--since", "2h", "--replay-id", "no spaces"],
     "replay id 'no spaces' must be 1-64 of [A-Za-z0-9._-]"),
])
def test_bad_replay_arguments_are_one_line_and_exit_code_2(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err == f"hookstream: {message}\n"


def test_admin_and_operator_hold_a_replays_acls_each_once() -> None:
    from hookstream.control.acls import COMPONENTS, Acl, acls

    for component in COMPONENTS:
        rules = acls(component, "User:x", "p.")
        assert len(rules) == len(set(rules)), component
    for component in ("admin", "operator"):
        rules = set(acls(component, "User:x", "p."))
        assert {Acl("User:x", "group", "p.hookstream-replay-", "PREFIXED", "READ"),
                Acl("User:x", "transactional-id", "p.hookstream-replay-", "PREFIXED", "WRITE"),
                } <= rules
    admin = set(acls("admin", "User:x", "p."))
    assert {Acl("User:x", "topic", "p.glpi.item-changes", "LITERAL", "READ"),
            Acl("User:x", "topic", "p.hookstream.deliveries", "LITERAL", "WRITE")} <= admin
