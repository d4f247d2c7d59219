"""The poller's cursor: ties at one second neither lost nor repeated, pages, event kinds."""

from __future__ import annotations

import pytest

from hookstream.records import PollCursor
from hookstream.records.cursor import (
    LIVE,
    TRASH,
    Change,
    advance,
    changed_by_others,
    event_of,
    fresh,
    intervals_of,
    poller_problems,
    search_after,
    search_span,
)
from hookstream.records.events import ItemEvent

T0, T1, T2 = "2025-11-04 09:00:00", "2025-11-04 09:00:01", "2025-11-04 09:00:02"


def cursor(date_mod: str = T1, ids: list[int] | None = None) -> PollCursor:
    return PollCursor("glpi-a", "Ticket", LIVE, date_mod, ids or [])


def test_the_search_includes_the_cursors_second_and_asks_past_the_ids_seen() -> None:
    assert search_after(cursor(T1)) == T0
    assert search_after(cursor("2025-01-01 00:00:00")) == "2024-12-31 23:59:59"
    assert search_span(cursor(T1, [4, 5, 6]), 50) == 53


@pytest.mark.parametrize(("ids_at", "rows", "page", "expected"), [
    # ids already produced at the cursor's second are dropped, new ties kept
    ([1, 2], [Change(2, T1), Change(3, T1), Change(1, T1), Change(9, T2)], 10,
     [Change(3, T1), Change(9, T2)]),
    # rows before the cursor (GLPI answered more) were produced before
    ([], [Change(7, T0), Change(8, T1)], 10, [Change(8, T1)]),
    # oldest first, ties by id, at most a page
    ([], [Change(9, T2), Change(5, T1), Change(4, T1)], 2, [Change(4, T1), Change(5, T1)]),
    ([1], [Change(1, T1)], 10, []),
])
def test_fresh(ids_at: list[int], rows: list[Change], page: int, expected: list[Change]) -> None:
    assert fresh(cursor(T1, ids_at), rows, page) == expected


@pytest.mark.parametrize(("start", "produced", "expected_date", "expected_ids"), [
    # same second: the ids add up
    (cursor(T1, [1, 2]), [Change(3, T1)], T1, [1, 2, 3]),
    # a later second: only the ids at that second
    (cursor(T1, [1, 2]), [Change(3, T1), Change(5, T2), Change(4, T2)], T2, [4, 5]),
    # nothing produced: the cursor stays
    (cursor(T1, [1]), [], T1, [1]),
])
def test_advance(start: PollCursor, produced: list[Change], expected_date: str,
                 expected_ids: list[int]) -> None:
    moved = advance(start, produced, now_ms=123)
    assert (moved.date_mod, moved.ids_at) == (expected_date, expected_ids)
    assert moved.key() == "glpi-a:Ticket:live"


def test_many_ties_over_several_pages_are_each_produced_once() -> None:
    """300 items in one second, pages of 50, GLPI's order of ties changing every call."""
    import random

    rows = [Change(i, T1) for i in range(1, 301)] + [Change(1000, T2)]
    shuffle, at, produced = random.Random(3), cursor(T0), []
    for _ in range(20):
        answer = rows[:]
        shuffle.shuffle(answer)
        answer.sort(key=lambda r: r.date_mod)
        page = fresh(at, answer[:search_span(at, 50)], 50)
        if not page:
            break
        produced += [r.items_id for r in page]
        at = advance(at, page, 0)
    assert sorted(produced) == [*range(1, 301), 1000]
    assert len(produced) == len(set(produced))


@pytest.mark.parametrize(("stream", "created", "modified", "expected"), [
    (LIVE, T1, T1, ItemEvent.NEW),
    (LIVE, T0, T1, ItemEvent.UPDATE),
    (LIVE, None, T1, ItemEvent.UPDATE),  # GLPI 9.x items have no date_creation
    (TRASH, T1, T1, ItemEvent.DELETE),
    (TRASH, T0, T2, ItemEvent.DELETE),
])
def test_event_of(stream: str, created: str | None, modified: str | None,
                  expected: ItemEvent) -> None:
    assert event_of(stream, created, modified) == expected


def test_intervals_and_settings_problems() -> None:
    assert intervals_of(("Computer=300", " Ticket = 5"), 30) == {"Computer": 300.0,
                                                                 "Ticket": 5.0}
    assert poller_problems("Europe/Paris", ()) == []
    problems = poller_problems("Mars/Olympus", ("Ticket",))
    assert "not an IANA timezone" in problems[0] and "ITEMTYPE=SECONDS" in problems[1]
    with pytest.raises(ValueError, match="positive"):
        intervals_of(("Ticket=0",), 30)


def log(when: str, user: str) -> dict[str, str]:
    return {"date_mod": when, "user_name": user}


@pytest.mark.parametrize(("history", "ids_at", "by_others"), [
    # only the integration's user (7) since the cursor: its own change
    ([log(T2, "hookstream integration (7)"), log(T1, "hookstream (7)")], [], False),
    # a person's change after the cursor, then hookstream's followup: a change
    ([log(T2, "hookstream (7)"), log(T2, "glpi (2)")], [], True),
    # a person's change at the cursor's second, this item not produced at it: a change
    ([log(T2, "hookstream (7)"), log(T1, "glpi (2)")], [], True),
    # ... produced at it already: no change
    ([log(T2, "hookstream (7)"), log(T1, "glpi (2)")], [42], False),
    # before the cursor: produced long ago
    ([log(T2, "hookstream (7)"), log(T0, "glpi (2)")], [], False),
    # no user id (a cron task, the mail collector): someone else's
    ([log(T2, "cron_mailgate")], [], True),
    ([], [], False),
])
def test_changed_by_others(history: list[dict[str, str]], ids_at: list[int],
                           by_others: bool) -> None:
    assert changed_by_others(history, 7, cursor(T1, ids_at), 42) is by_others
