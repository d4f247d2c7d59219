"""The poller's cursor: how far a stream of changes of one itemtype has been produced.

GLPI's `date_mod` has a one-second resolution and many items can share a second, so the
cursor is the second of the last produced change plus the ids already produced at that
second. The next poll asks for `date_mod >= cursor` (GLPI's search: `morethan` one second
earlier) and drops the ids already seen: ties are neither lost nor repeated. The cursor
moves only after a page's events are acknowledged by Kafka, so a crash repeats a page
(the same item state gives the same event id) and never skips one.

Two streams per itemtype: `live` (items not in the trash: new and update) and `trash`
(GLPI's trash sets is_deleted=1 and date_mod: delete).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, ClassVar

from hookstream.records.events import ItemEvent, Record
from hookstream.records.instances import is_timezone

LIVE, TRASH = "live", "trash"
EPOCH = "1970-01-01 00:00:00"
_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True, slots=True)
class PollCursor(Record):
    """One stream's position, on the compacted topic hookstream.poller-cursors."""

    schema_name: ClassVar[str] = "PollCursor"

    instance: str
    itemtype: str
    stream: str
    date_mod: str = EPOCH  # GLPI's local time, 'YYYY-MM-DD HH:MM:SS'
    ids_at: list[int] = field(default_factory=list)  # ids produced at that second
    updated_at: int = 0  # ms, when the cursor was last moved

    def key(self) -> str:
        return f"{self.instance}:{self.itemtype}:{self.stream}"


@dataclass(frozen=True, slots=True)
class Change:
    """One row of a search answer: an item and its date_mod."""

    items_id: int
    date_mod: str


def search_after(cursor: PollCursor) -> str:
    """The value for GLPI's `morethan` (strictly after) that includes the cursor's second."""
    moment = datetime.strptime(cursor.date_mod[:19], _FORMAT) - timedelta(seconds=1)
    return moment.strftime(_FORMAT)


def search_span(cursor: PollCursor, page_size: int) -> int:
    """How many rows to ask for: a page beyond the ids already seen, which may come first."""
    return page_size + len(cursor.ids_at)


def fresh(cursor: PollCursor, rows: Sequence[Change], page_size: int) -> list[Change]:
    """The next page to produce: rows not yet produced, oldest first, at most `page_size`.

    A row before the cursor (GLPI answered more than asked) or at the cursor's second with
    an id already seen was produced before.
    """
    seen = set(cursor.ids_at)
    keep = [
        r for r in rows
        if r.date_mod[:19] > cursor.date_mod[:19]
        or (r.date_mod[:19] == cursor.date_mod[:19] and r.items_id not in seen)
    ]
    keep.sort(key=lambda r: (r.date_mod[:19], r.items_id))
    return keep[:page_size]


def advance(cursor: PollCursor, produced: Sequence[Change], now_ms: int) -> PollCursor:
    """The cursor after `produced` (a page from `fresh`) is acknowledged."""
    if not produced:
        return cursor
    last = max(r.date_mod[:19] for r in produced)
    at_last = {r.items_id for r in produced if r.date_mod[:19] == last}
    if last == cursor.date_mod[:19]:
        at_last |= set(cursor.ids_at)
    return replace(cursor, date_mod=last, ids_at=sorted(at_last), updated_at=now_ms)


_LOG_USER = re.compile(r"\((\d+)\)\s*$")  # GLPI's history names users 'Real Name (7)'


def changed_by_others(history: Sequence[Mapping[str, Any]], own_user_id: int,
                      cursor: PollCursor, items_id: int) -> bool:
    """Whether an item's GLPI history (Log rows) holds a change by a user other than
    `own_user_id` that the stream has not produced: after the cursor's second, or at it
    when the item was not produced at it. A row naming no user id (cron, mail collector)
    counts as another user's."""
    for row in history:
        when = str(row.get("date_mod") or "")[:19]
        if when < cursor.date_mod[:19] or (
                when == cursor.date_mod[:19] and items_id in cursor.ids_at):
            continue
        found = _LOG_USER.search(str(row.get("user_name") or ""))
        if found is None or int(found[1]) != own_user_id:
            return True
    return False


def event_of(stream: str, date_creation: str | None, date_mod: str | None) -> ItemEvent:
    """new when the item was created at its last modification, update otherwise; every
    change seen in the trash is a delete."""
    if stream == TRASH:
        return ItemEvent.DELETE
    if date_creation and date_mod and date_creation[:19] == date_mod[:19]:
        return ItemEvent.NEW
    return ItemEvent.UPDATE


def intervals_of(spec: Sequence[str], default_s: float) -> dict[str, float]:
    """`("Computer=300",)` as {itemtype: seconds}; itemtypes not named use `default_s`."""
    out: dict[str, float] = {}
    for entry in spec:
        itemtype, sep, seconds = entry.partition("=")
        if not sep or not itemtype.strip():
            raise ValueError(f"poller interval {entry!r} must be ITEMTYPE=SECONDS")
        value = float(seconds)
        if value <= 0:
            raise ValueError(f"poller interval {entry!r} must be positive")
        out[itemtype.strip()] = value
    return out


def poller_problems(timezone: str, intervals: Sequence[str]) -> list[str]:
    """What is wrong with the poller's settings (config validation)."""
    problems = []
    if not is_timezone(timezone):
        problems.append(f"poller_timezone {timezone!r} is not an IANA timezone such as "
                        "Europe/Paris")
    try:
        intervals_of(intervals, 30.0)
    except ValueError as e:
        problems.append(str(e))
    return problems
