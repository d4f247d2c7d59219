"""The filters of the console's lists, read from the URL's query and written back into links.

A list's whole view is in its URL (filters, and the cursor of the page shown), so a link
can be shared and a reload shows the same rows. Pure: the pages do the reading.

    state, outcome, status   the delivery's state, its last attempt's outcome and status
    since, until             created at or after / before, `YYYY-MM-DDTHH:MM[:SS]` in UTC
    instance, webhook, id    GLPI instance, webhook id, start of the delivery id
    cursor, newer            the page: older than the cursor, or with newer=1 newer than it
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import urlencode

from connectors.logstore.queries import BadCursor, BadFilter, Cursor, DeliveryFilter

FILTERS = ("state", "outcome", "status", "since", "until", "instance", "webhook", "id")
TIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")


@dataclass(frozen=True, slots=True)
class ListView:
    where: DeliveryFilter
    values: dict[str, str]  # the filters given, as given: the form's values and the links'
    cursor: Cursor | None
    newer: bool

    def link(self, path: str, cursor: str | None = None, newer: bool = False) -> str:
        """This view's filters at `path`, on the page of `cursor`."""
        return page_link(path, self.values, cursor, newer)


def page_link(path: str, values: Mapping[str, str], cursor: str | None = None,
              newer: bool = False) -> str:
    query = {k: v for k, v in values.items() if v}
    if cursor:
        query["cursor"] = cursor
        if newer:
            query["newer"] = "1"
    return f"{path}?{urlencode(query)}" if query else path


def parse_time(name: str, text: str) -> int:
    """A time of the form (UTC) as Unix ms; BadFilter naming the field otherwise."""
    for fmt in TIME_FORMATS:
        try:
            return int(datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp() * 1000)
        except ValueError:
            continue
    raise BadFilter(f"{name}: a time as YYYY-MM-DDTHH:MM (UTC), not {text[:40]!r}")


def parse_view(params: Mapping[str, str], fixed: DeliveryFilter | None = None) -> ListView:
    """The view a list's query asks for, within `fixed` (a webhook's or an item's page):
    BadFilter, saying which value and what it should be, for anything no delivery has."""
    values = {k: params[k].strip() for k in FILTERS if params.get(k, "").strip()}
    status = values.get("status")
    if status is not None and not status.isdigit():
        raise BadFilter("status: an HTTP status code, 100 to 599")
    where = DeliveryFilter(
        state=values.get("state"), outcome=values.get("outcome"),
        status_code=None if status is None else int(status),
        since_ms=None if "since" not in values else parse_time("since", values["since"]),
        until_ms=None if "until" not in values else parse_time("until", values["until"]),
        instance=values.get("instance"), webhook_id=values.get("webhook"),
        id_prefix=values["id"].lower() if "id" in values else None)
    if fixed is not None:
        where = replace(where, **{k: v for k in fixed.__dataclass_fields__
                                  if (v := getattr(fixed, k)) is not None})
    where.check()
    try:
        cursor = Cursor.decode(params["cursor"]) if params.get("cursor") else None
    except BadCursor as e:
        raise BadFilter(f"cursor: {e}") from None
    return ListView(where, values, cursor, cursor is not None and params.get("newer") == "1")
