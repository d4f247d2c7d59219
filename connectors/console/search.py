"""The console's search box: what a text can name, and where it leads. Pure: the page
looks up the candidates (delivery ids from the log store, webhooks in memory).

    glpi-a:Ticket:42        an item: its view
    3f9c, 3f9c0e...         a delivery id or its start (hex): the delivery, if only one
    to-helpdesk, Helpdesk   a webhook, by id or name (exact, else contained, any case)

One match goes straight to it; several, or none, to a list of what matched.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from hookstream.records import WebhookDefinition

ITEM = re.compile(r"^([^:\s]+):([^:\s]+):(\d{1,15})$")
HEX = re.compile(r"^[0-9a-fA-F]{1,64}$")
MAX_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Terms:
    """What a search text may be: an item's path, a delivery id prefix, a webhook text."""

    text: str
    item_path: str | None
    id_prefix: str | None


def terms(text: str) -> Terms:
    text = text.strip()[:MAX_LENGTH]
    item = ITEM.match(text)
    path = None if item is None else "/items/{}/{}/{}".format(
        quote(item[1], safe=""), quote(item[2], safe=""), item[3])
    return Terms(text, path, text.lower() if HEX.match(text) else None)


def matching_webhooks(text: str, webhooks: Sequence[WebhookDefinition]
                      ) -> list[WebhookDefinition]:
    """Webhooks whose id or name is the text (any case); if none, those containing it."""
    needle = text.casefold()
    if not needle:
        return []
    exact = [w for w in webhooks if needle in (w.id.casefold(), w.name.casefold())]
    return exact or [w for w in webhooks
                     if needle in w.id.casefold() or needle in w.name.casefold()]


def destination(t: Terms, webhooks: Sequence[WebhookDefinition],
                delivery_ids: Sequence[str]) -> str | None:
    """Where the search goes when exactly one thing matched, else None (the list).
    `delivery_ids`: up to two ids starting with the prefix (two: more than one)."""
    if t.item_path is not None:
        return t.item_path
    found = [f"/deliveries/{d}" for d in delivery_ids] + [
        f"/webhooks/{quote(w.id, safe='')}" for w in webhooks]
    return found[0] if len(found) == 1 else None
