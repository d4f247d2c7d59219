"""The log store's pure core: records to rows, and a merge that ignores reading order."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from connectors.logstore.queries import BadCursor, Cursor
from connectors.logstore.rows import (
    Body,
    DeliveryRow,
    Source,
    State,
    from_attempt,
    from_request,
    merge,
    merge_all,
)
from hookstream.policy.redact import redact_headers
from hookstream.records import DeliveryRequest, delivery_id_for

T0 = 1_700_000_000_000


def request(**changes: object) -> DeliveryRequest:
    base = DeliveryRequest(
        delivery_id=delivery_id_for("e1", "hook"), webhook_id="hook", instance="glpi-a",
        event_id="e1", itemtype="Ticket", items_id=7, event="new", method="POST",
        url="https://example.test/in", body=b'{"id": 7}', created_at=T0,
        headers={"Content-Type": "application/json", "X-Api-Key": "s3cret"},
    )
    return base.evolve(**changes)


def lifecycle() -> list[DeliveryRow]:
    """A delivery's story: sent, retried, blocked, dead-lettered, redriven, delivered."""
    r0 = request()
    tier = r0.evolve(hop=1, attempt=1, not_before=T0 + 10_000, retry_tier=0)
    dead = tier.evolve(hop=2, attempt=2, last_error="blocked: 10.0.0.1")
    again = dead.evolve(hop=3, attempt=0, last_error=None)
    rows = [
        from_request(r0, Source.DELIVERIES, None, 1024),
        from_attempt(r0.attempt_record(1, T0 + 5, T0 + 9, "retry_scheduled", status_code=503),
                     0, 1, 1024)[0],
        from_request(tier, Source.TIER, "10s", 1024),
        from_attempt(tier.attempt_record(2, T0 + 10_001, T0 + 10_002, "blocked",
                                         error="blocked: 10.0.0.1"), 0, 2, 1024)[0],
        from_request(dead, Source.DLQ, None, 1024),
        from_request(again, Source.DELIVERIES, None, 1024),
        from_attempt(again.attempt_record(1, T0 + 20_000, T0 + 20_010, "delivered",
                                          status_code=200), 0, 3, 1024)[0],
    ]
    return rows


@pytest.mark.parametrize(
    ("upto", "state", "tier"),
    [(1, State.PENDING, None), (2, State.WAITING, None), (3, State.WAITING, "10s"),
     (4, State.BLOCKED, None), (5, State.BLOCKED, None), (6, State.PENDING, None),
     (7, State.DELIVERED, None)],
)
def test_each_step_sets_the_state_glpi_shows(upto: int, state: State, tier: str | None) -> None:
    [row] = merge_all(lifecycle()[:upto])
    assert (row.state, row.tier) == (state, tier)


def test_merge_gives_the_same_row_in_any_reading_order() -> None:
    rows = lifecycle()
    expected = merge_all(rows)
    for order in itertools.islice(itertools.permutations(rows), 0, None, 37):
        assert merge_all(list(order)) == expected
    random.seed(1)
    for _ in range(50):
        shuffled = random.sample(rows, len(rows))
        twice = shuffled + random.sample(rows, 3)  # re-read records change nothing
        assert merge_all(twice) == expected


def test_merge_is_commutative_for_attempt_only_fragments() -> None:
    a, b = lifecycle()[1], lifecycle()[6]
    assert merge(a, b) == merge(b, a)
    assert merge(a, b).url is None and merge(a, b).state == State.DELIVERED


def test_dlq_copy_keeps_the_attempts_specific_verdict() -> None:
    rows = lifecycle()
    [row] = merge_all([rows[4], rows[3]])  # DLQ copy read before the blocked attempt
    assert row.state == State.BLOCKED and row.last_error == "blocked: 10.0.0.1"
    [generic] = merge_all([rows[4]])
    assert generic.state == State.DEAD_LETTERED


def test_render_error_from_the_processor() -> None:
    r = request()
    attempt, _ = from_attempt(r.attempt_record(0, T0, T0, "render_error", error="bad template"),
                              1, 9, 1024)
    [row] = merge_all([from_request(r, Source.DLQ, None, 1024), attempt])
    assert row.state == State.RENDER_ERROR and row.last_error == "bad template"


def test_request_fields_stored_with_credentials_redacted_and_body_capped() -> None:
    row = from_request(request(body=b"x" * 100), Source.DELIVERIES, None, 10)
    assert json.loads(row.headers or "") == {
        "Content-Type": "application/json", "X-Api-Key": "••••(6 chars)"}
    assert row.body == Body(b"x" * 10, 100, Body.of(b"x" * 100, 1000).sha256, True)
    assert row.next_attempt_at == T0


def test_redaction_masks_authorization_and_keeps_signature_headers() -> None:
    out = redact_headers({"X-GLPI-signature": "abc", "Authorization": "Bearer t",
                          "webhook-signature": "v1,x", "Accept": "a"})
    assert out == {"X-GLPI-signature": "abc", "Authorization": "Bearer ••••(1 chars)",
                   "webhook-signature": "v1,x", "Accept": "a"}


def test_forced_send_that_failed_leaves_the_state() -> None:
    r = request()
    failed, row = from_attempt(r.attempt_record(1, T0, T0 + 1, "failed", status_code=500),
                               0, 5, 1024)
    assert failed.state is None and row.status_code == 500 and row.spent
    [merged] = merge_all([from_request(r, Source.DELIVERIES, None, 1024), failed])
    assert merged.state == State.PENDING


def test_cursor_round_trip_and_garbage() -> None:
    cursor = Cursor(T0, "abc.def")
    assert Cursor.decode(cursor.encode()) == cursor
    for bad in ("", "!!!", "bm90LWEtY3Vyc29y"):
        with pytest.raises(BadCursor):
            Cursor.decode(bad)
