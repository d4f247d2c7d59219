"""The console's pages: the queue (live), deliveries, webhooks with preview, items.

Every page reads through the log store queries and the admin context with the logged-in
token's principal: `p.scope` in every query and `p.sees` for every webhook, exactly as the
admin API does, so a token sees the same things in both and what it may not see is "not
found" in both.
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations at run
# time, and those naming local aliases (Who, Text) must be objects, not strings.

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from connectors.console.stats import day_counts, recent_item
from connectors.console.web import Console, Viewer
from connectors.logstore import (
    Cursor,
    DeliveryFilter,
    delivery_detail,
    last_item,
    list_deliveries,
    queue_view,
)
from connectors.logstore.queries import BadCursor
from hookstream.control.webhooks import redacted
from hookstream.records import WebhookDefinition

DELIVERY_ID = re.compile(r"^[0-9a-f]{1,64}$")
STATES = ("pending", "waiting", "delivered", "dead_lettered", "render_error", "blocked")
PAGE = 50
GROUPS_SHOWN = 100  # webhooks in the queue table, most queued first
Text = Annotated[str | None, Query(max_length=255)]


def page_routes(console: Console) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    Who = Annotated[Viewer, Depends(console.viewer)]
    ctx = console.ctx

    def not_found(request: Request, v: Viewer, what: str) -> HTMLResponse:
        return console.render(request, "not_found.html", 404, viewer=v, what=what)

    def visible_webhooks(v: Viewer) -> list[WebhookDefinition]:
        return sorted((d for d in ctx.webhooks().values() if v.principal.sees(d.instance)),
                      key=lambda d: (d.instance, d.id))

    def log_page(v: Viewer, where: DeliveryFilter, cursor: str | None) -> dict[str, Any]:
        try:
            at = None if not cursor else Cursor.decode(cursor)
        except BadCursor:
            at = None
        page = list_deliveries(ctx.engine, where, v.principal.scope, at, PAGE)
        return {"rows": page.items, "next_cursor": page.next_cursor}

    @router.get("/")
    def home() -> Response:
        return RedirectResponse("/queue", 303)

    def queue_values(v: Viewer, instance: str | None, webhook: str | None,
                     state: str | None) -> dict[str, Any]:
        view = queue_view(ctx.engine, v.principal.scope, console.now_ms())
        shown = None if instance is None or v.principal.sees(instance) else "none"
        where = DeliveryFilter(instance=instance or None, webhook_id=webhook or None,
                               state=state if state in STATES else None)
        recent = {"rows": [], "next_cursor": None} if shown == "none" else log_page(
            v, where, None)
        rows = by_webhook(view["groups"])
        return {"view": view, "recent": recent, "viewer": v, "rows": rows[:GROUPS_SHOWN],
                "more_rows": max(0, len(rows) - GROUPS_SHOWN),
                "filters": {"instance": instance or "", "webhook": webhook or "",
                            "state": state or ""}}

    @router.get("/queue")
    def queue(request: Request, v: Who, instance: Text = None, webhook: Text = None,
              state: Text = None, redriven: int | None = None) -> HTMLResponse:
        values = queue_values(v, instance, webhook, state)
        return console.render(request, "queue.html", **values, redriven=redriven,
                              webhooks=visible_webhooks(v), states=STATES,
                              live_query=str(request.url.query))

    @router.get("/queue/live")
    def queue_live(request: Request, v: Who, instance: Text = None, webhook: Text = None,
                   state: Text = None) -> HTMLResponse:
        return console.render(request, "queue_live.html",
                              **queue_values(v, instance, webhook, state))

    @router.get("/deliveries/{delivery_id}")
    def delivery(request: Request, v: Who, delivery_id: str,
                 sent: Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$")] = None,
                 status: Annotated[int | None, Query(ge=100, le=599)] = None) -> HTMLResponse:
        found = None if not DELIVERY_ID.match(delivery_id) else delivery_detail(
            ctx.engine, delivery_id, v.principal.scope)
        if found is None:
            return not_found(request, v, f"delivery {delivery_id}")
        return console.render(request, "delivery.html", viewer=v, d=found, sent=sent,
                              sent_status=status)

    @router.get("/webhooks")
    def webhooks(request: Request, v: Who) -> HTMLResponse:
        counts = day_counts(ctx.engine, v.principal.scope, console.now_ms())
        return console.render(request, "webhooks.html", viewer=v, webhooks=visible_webhooks(v),
                              counts=counts)

    @router.get("/webhooks/{webhook_id}")
    def webhook(request: Request, v: Who, webhook_id: str, cursor: Text = None,
                items_id: Annotated[int | None, Query(ge=0, le=2**53)] = None) -> HTMLResponse:
        found = ctx.webhook(webhook_id)
        if found is None or not v.principal.sees(found.instance):
            return not_found(request, v, f"webhook {webhook_id}")
        return console.render(
            request, "webhook.html", viewer=v, w=found, definition=redacted(found),
            preview=_preview(console, v, found, items_id), items_id=items_id,
            log=log_page(v, DeliveryFilter(webhook_id=webhook_id), cursor))

    @router.get("/items/{instance}/{itemtype}/{items_id}")
    def item(request: Request, v: Who, instance: str, itemtype: str, items_id: int,
             cursor: Text = None) -> HTMLResponse:
        if not v.principal.sees(instance):
            return not_found(request, v, f"{itemtype} {items_id} of {instance}")
        where = DeliveryFilter(instance=instance, itemtype=itemtype, items_id=items_id)
        return console.render(request, "item.html", viewer=v, instance=instance,
                              itemtype=itemtype, items_id=items_id,
                              log=log_page(v, where, cursor))

    return router


def _preview(console: Console, v: Viewer, webhook: WebhookDefinition,
             items_id: int | None) -> dict[str, Any]:
    """The webhook rendered against one item's last change (the given id, or the most
    recent item of its itemtype), as the API's preview does it."""
    scope = v.principal.scope
    if items_id is None:
        event = recent_item(console.ctx.engine, webhook.instance, webhook.itemtype, scope)
    else:
        event = last_item(console.ctx.engine, webhook.instance, webhook.itemtype, items_id,
                          scope)
    if event is None:
        return {"missing": True}
    try:
        result = console.ctx.preview(webhook, event)
    except ValueError as e:
        return {"missing": False, "error": str(e), "items_id": event["items_id"]}
    return {"missing": False, "items_id": event["items_id"], "event": event["event"], **result}


def by_webhook(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The queue view's (instance, webhook, state, tier) counts as one row per webhook,
    most queued first: a table a person can read."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for g in groups:
        row = rows.setdefault((g["instance"], g["webhook_id"]), {
            "instance": g["instance"], "webhook_id": g["webhook_id"], "total": 0,
            "pending": 0, "waiting": {}, "dead_lettered": 0, "render_error": 0, "blocked": 0,
            "oldest": None})
        row["total"] += g["count"]
        if g["state"] == "waiting":
            tier = g["tier"] or "unknown"
            row["waiting"][tier] = row["waiting"].get(tier, 0) + g["count"]
        else:
            row[g["state"]] += g["count"]
        if g["state"] in ("pending", "waiting") and (
                row["oldest"] is None or g["oldest_created_at"] < row["oldest"]):
            row["oldest"] = g["oldest_created_at"]
    return sorted(rows.values(), key=lambda r: (-r["total"], r["instance"], r["webhook_id"]))
