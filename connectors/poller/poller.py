"""One GLPI instance polled: its streams (itemtype x live/trash), one request at a time.

A poll of a stream: search the changes after the cursor, keep the page not yet produced
(`cursor.fresh`), read those items and the rows their foreign keys point at, map them to
the GLPI 11 shape (`legacy.to_hl`), produce the events, wait for Kafka's acknowledgement,
then move and save the cursor. A full page is followed at once by the next; a stream that
is caught up waits its interval. Errors (GLPI or Kafka) back off exponentially, per stream,
up to `backoff_max_s`; nothing moves the cursor but acknowledged events.

Load on GLPI: every call goes through the instance's one GlpiClient from one thread, so at
most one request is in flight per instance.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from connectors.poller.glpi_items import PollerApi
from hookstream.errors import HookstreamError
from hookstream.io import metrics
from hookstream.records import ItemChangeEvent, PollCursor, make_event
from hookstream.records.changed_by import changed_by_in_row
from hookstream.records.cursor import (
    LIVE,
    TRASH,
    Change,
    advance,
    changed_by_others,
    event_of,
    fresh,
    search_after,
    search_span,
)
from hookstream.records.legacy import ITIL, lookups_needed, parse_glpi_time, to_hl

log = logging.getLogger(__name__)


class Out(Protocol):
    def produce(self, events: Sequence[ItemChangeEvent]) -> None: ...
    def save(self, cursor: PollCursor) -> None: ...


@dataclass(frozen=True, slots=True)
class PollerConfig:
    itemtypes: tuple[str, ...]
    intervals_s: dict[str, float]
    default_interval_s: float
    page_size: int
    tz: ZoneInfo
    team: bool = True
    skip_own_changes: bool = True
    names_ttl_s: float = 300.0
    backoff_max_s: float = 300.0

    def interval_s(self, itemtype: str) -> float:
        return self.intervals_s.get(itemtype, self.default_interval_s)


class Names:
    """Linked rows (dropdowns, users, groups, entities) read in batches, kept a while."""

    def __init__(self, api: PollerApi, ttl_s: float, clock: Callable[[], float]):
        self._api, self._ttl_s, self._clock = api, ttl_s, clock
        self._rows: dict[tuple[str, int], tuple[float, dict[str, Any]]] = {}

    def get(self, wanted: set[tuple[str, int]], batch: int) -> dict[tuple[str, int], Any]:
        now = self._clock()
        missing = sorted(k for k in wanted
                         if k not in self._rows or now - self._rows[k][0] > self._ttl_s)
        for n in range(0, len(missing), batch):
            for key, row in self._api.items(missing[n:n + batch]).items():
                self._rows[key] = (now, row)
        return {k: self._rows[k][1] for k in wanted if k in self._rows}


class InstancePoller:
    def __init__(
        self,
        instance: str,
        api: PollerApi,
        out: Out,
        cursors: dict[str, PollCursor],
        config: PollerConfig,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.instance, self.api, self.out, self.config = instance, api, out, config
        self._clock, self._monotonic = clock, monotonic
        self._cursors = dict(cursors)
        self._names = Names(api, config.names_ttl_s, monotonic)

    def cursor(self, itemtype: str, stream: str) -> PollCursor:
        key = f"{self.instance}:{itemtype}:{stream}"
        return self._cursors.get(key) or PollCursor(self.instance, itemtype, stream)

    def poll(self, itemtype: str, stream: str) -> int:
        """One page of one stream produced; returns how many changes it held."""
        cursor, size = self.cursor(itemtype, stream), self.config.page_size
        rows = self.api.changed(itemtype, search_after(cursor), stream == TRASH,
                                search_span(cursor, size))
        page = fresh(cursor, rows, size)
        if not page:
            return 0
        events = self._events(cursor, page)
        self.out.produce(events)
        moved = advance(cursor, page, int(self._clock() * 1000))
        self.out.save(moved)
        self._cursors[moved.key()] = moved
        for event in events:
            metrics.POLLER_CHANGES.labels(self.instance, itemtype, event.event).inc()
        return len(page)

    def _own_change(self, cursor: PollCursor, row: dict[str, Any]) -> bool:
        """Whether the integration's own user made every change of `row` since the cursor
        (its write-back followups, the tickets it opens): GLPI issue #20902's loop."""
        if not self.config.skip_own_changes or "users_id_lastupdater" not in row:
            return False
        own = self.api.user_id()
        if int(row.get("users_id_lastupdater") or 0) != own:
            return False
        history = self.api.history(cursor.itemtype, int(row["id"]))
        if changed_by_others(history, own, cursor, int(row["id"])):
            return False
        metrics.POLLER_OWN_CHANGES.labels(self.instance, cursor.itemtype).inc()
        return True

    def _changed_by(self, itemtype: str, event: str, row: dict[str, Any]) -> int | None:
        """GLPI's last updater; None when it is the integration's own user on a row that
        `_own_change` let through: its history holds another user's change too."""
        changed_by = changed_by_in_row(itemtype, event, row)
        if self.config.skip_own_changes and changed_by == self.api.user_id():
            return None
        return changed_by

    def _events(self, cursor: PollCursor, page: list[Change]) -> list[ItemChangeEvent]:
        itemtype, stream = cursor.itemtype, cursor.stream
        rows = self.api.items([(itemtype, c.items_id) for c in page])
        wanted_deleted = 1 if stream == TRASH else 0
        # an item that moved to or from the trash since the search belongs to the other stream
        current = [rows[(itemtype, c.items_id)] for c in page if (itemtype, c.items_id) in rows
                   and int(rows[(itemtype, c.items_id)].get("is_deleted") or 0) == wanted_deleted]
        current = [row for row in current if not self._own_change(cursor, row)]
        actors = {int(r["id"]): self.api.actors(itemtype, int(r["id"])) for r in current
                  if self.config.team and itemtype in ITIL}
        wanted: set[tuple[str, int]] = set()
        for row in current:
            wanted |= lookups_needed(itemtype, row, actors.get(int(row["id"])))
        names = self._names.get(wanted, self.config.page_size)
        events = []
        for row in current:
            item = to_hl(itemtype, row, names, self.config.tz, actors.get(int(row["id"])))
            date_mod = str(row.get("date_mod") or "")
            occurred = parse_glpi_time(date_mod, self.config.tz) if date_mod else None
            entity = row.get("entities_id")
            event = event_of(stream, row.get("date_creation"), row.get("date_mod")).value
            events.append(make_event(
                self.instance, itemtype, int(row["id"]), event, item,
                occurred_at=int(occurred.timestamp() * 1000) if occurred else 0,
                entities_id=entity if isinstance(entity, int) else None,
                source="poller",
                changed_by=self._changed_by(itemtype, event, row),
            ))
        return events

    def run(self, stop: threading.Event) -> None:
        """Poll every stream on its schedule until `stop` is set."""
        streams = [(t, s) for t in self.config.itemtypes for s in (LIVE, TRASH)]
        due = {s: 0.0 for s in streams}
        failures = {s: 0 for s in streams}
        caught_up = {t: self._clock() for t in self.config.itemtypes}
        while not stop.is_set():
            stream = min(streams, key=lambda s: due[s])
            wait = due[stream] - self._monotonic()
            if wait > 0:
                self._report_ages(caught_up)
                if stop.wait(min(wait, 5.0)):
                    return
                continue
            itemtype, kind = stream
            started = self._monotonic()
            try:
                produced = self.poll(itemtype, kind)
            except Exception as e:  # one stream failing never stops the rest
                failures[stream] += 1
                delay = min(self.config.backoff_max_s, 2.0 ** failures[stream])
                metrics.POLLER_ERRORS.labels(self.instance, itemtype).inc()
                log.warning("poller %s %s/%s: %s; next try in %.0fs", self.instance, itemtype,
                            kind, e, delay, exc_info=not isinstance(e, HookstreamError))
                due[stream] = self._monotonic() + delay
                continue
            metrics.POLLER_LATENCY.labels(self.instance, itemtype).observe(
                self._monotonic() - started)
            failures[stream] = 0
            if produced < self.config.page_size:  # caught up: wait the interval
                if kind == LIVE:
                    caught_up[itemtype] = self._clock()
                due[stream] = self._monotonic() + self.config.interval_s(itemtype)
            self._report_ages(caught_up)

    def _report_ages(self, caught_up: dict[str, float]) -> None:
        now = self._clock()
        for itemtype, moment in caught_up.items():
            metrics.POLLER_CURSOR_AGE.labels(self.instance, itemtype).set(now - moment)
