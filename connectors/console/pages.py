"""The console's pages: the queue (live), deliveries, search, webhooks with preview, items.

Every page reads through the log store queries and the admin context with the logged-in
token's principal: `p.scope` in every query and `p.sees` for every webhook, exactly as the
admin API does, so a token sees the same things in both and what it may not see is "not
found" in both.
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations at run
# time, and those naming local aliases (Who, Text) must be objects, not strings.

import re
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from connectors.console.filters import ListView, parse_view
from connectors.console.picture import MAX_OPEN_MS, pictures
from connectors.console.search import destination, matching_webhooks, terms
from connectors.console.stats import day_counts, recent_item
from connectors.console.timeline import timeline
from connectors.console.web import HEADERS, Console, Viewer
from connectors.logstore import (
    AuditFilter,
    DeliveryFilter,
    delivery_detail,
    last_item,
    list_audit,
    list_deliveries,
    queue_view,
    request_body,
)
from connectors.logstore.queries import OUTCOMES, STATES, BadFilter
from hookstream.control.webhooks import redacted
from hookstream.records import AuditAction, WebhookDefinition

DELIVERY_ID = re.compile(r"^[0-9a-f]{1,64}$")
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

    def bad_filter(request: Request, v: Viewer, e: BadFilter) -> HTMLResponse:
        return console.render(request, "refused.html", 400, viewer=v,
                              message=f"This list cannot be shown: {e}")

    def log_page(request: Request, v: Viewer, path: str,
                 fixed: DeliveryFilter | None = None) -> dict[str, Any]:
        """One page of a list, as its URL asks (BadFilter for a value no delivery has),
        with the links to the older and newer pages and the form's choices."""
        view: ListView = parse_view(request.query_params, fixed)
        page = list_deliveries(ctx.engine, view.where, v.principal.scope, view.cursor, PAGE,
                               view.newer)
        return {"rows": page.items, "path": path, "values": view.values,
                "older": page.next_cursor and view.link(path, page.next_cursor),
                "newer": page.prev_cursor and view.link(path, page.prev_cursor, newer=True),
                "first": view.link(path) if view.cursor else None,
                "states": STATES, "outcomes": OUTCOMES, "webhooks": visible_webhooks(v)}

    @router.get("/")
    def home() -> Response:
        return RedirectResponse("/queue", 303)

    def queue_values(request: Request, v: Viewer) -> dict[str, Any]:
        view = queue_view(ctx.engine, v.principal.scope, console.now_ms())
        rows = by_webhook(view["groups"])
        return {"view": view, "log": log_page(request, v, "/queue"), "viewer": v,
                "rows": rows[:GROUPS_SHOWN], "more_rows": max(0, len(rows) - GROUPS_SHOWN)}

    @router.get("/queue")
    def queue(request: Request, v: Who) -> HTMLResponse:
        try:
            values = queue_values(request, v)
        except BadFilter as e:
            return bad_filter(request, v, e)
        return console.render(request, "queue.html", **values,
                              webhooks=visible_webhooks(v), live_query=str(request.url.query))

    @router.get("/queue/live")
    def queue_live(request: Request, v: Who) -> HTMLResponse:
        try:
            return console.render(request, "queue_live.html", **queue_values(request, v))
        except BadFilter as e:
            return bad_filter(request, v, e)

    @router.get("/deliveries")
    def deliveries(request: Request, v: Who) -> HTMLResponse:
        try:
            log = log_page(request, v, "/deliveries")
        except BadFilter as e:
            return bad_filter(request, v, e)
        return console.render(request, "deliveries.html", viewer=v, log=log)

    @router.get("/search")
    def search(request: Request, v: Who, q: Text = None) -> Response:
        t = terms(q or "")
        hooks = matching_webhooks(t.text, visible_webhooks(v))
        ids = [] if t.id_prefix is None else [r["delivery_id"] for r in list_deliveries(
            ctx.engine, DeliveryFilter(id_prefix=t.id_prefix), v.principal.scope,
            limit=2).items]
        target = destination(t, hooks, ids)
        if target is not None:
            return RedirectResponse(target, 303)
        if len(ids) > 1 and not hooks:
            return RedirectResponse(f"/deliveries?id={t.id_prefix}", 303)
        return console.render(request, "search.html", viewer=v, q=t.text, hooks=hooks,
                              ids=ids, id_prefix=t.id_prefix)

    @router.get("/deliveries/{delivery_id}")
    def delivery(request: Request, v: Who, delivery_id: str) -> HTMLResponse:
        found = None if not DELIVERY_ID.match(delivery_id) else delivery_detail(
            ctx.engine, delivery_id, v.principal.scope)
        if found is None:
            return not_found(request, v, f"delivery {delivery_id}")
        return console.render(request, "delivery.html", viewer=v, d=found,
                              timeline=timeline(found["attempt_log"]))

    @router.get("/audit")
    def audit(request: Request, v: Who, token: Text = None,
              action: Annotated[str | None, Query(max_length=32)] = None,
              before_ms: Annotated[int | None, Query(ge=0, le=2**53)] = None,
              before_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{1,64}$")] = None,
              ) -> HTMLResponse:
        """The audit trail, newest first, filtered by token name and action; a token
        scoped to instances sees the writes on its instances."""
        token, action = token or None, action or None
        rows = list_audit(ctx.engine, AuditFilter(token, action, before_ms, before_id),
                          v.principal.scope, PAGE + 1)
        older = None
        if len(rows) > PAGE:
            rows, last = rows[:PAGE], rows[PAGE - 1]
            query = {k: val for k, val in (("token", token), ("action", action)) if val}
            older = "/audit?" + urlencode({**query, "before_ms": last["at_ms"],
                                           "before_id": last["audit_id"]})
        return console.render(request, "audit.html", viewer=v, rows=rows, token=token,
                              action=action, actions=[str(a) for a in AuditAction],
                              older=older)

    @router.get("/deliveries/{delivery_id}/body")
    def delivery_body(request: Request, v: Who, delivery_id: str) -> Response:
        """The request body as the exact bytes sent (as stored: a body longer than the
        store's limit is refused rather than served cut)."""
        found = None if not DELIVERY_ID.match(delivery_id) else request_body(
            ctx.engine, delivery_id, v.principal.scope)
        if found is None:
            return not_found(request, v, f"delivery {delivery_id}")
        data, truncated = found
        if truncated:
            return console.render(request, "refused.html", 409, viewer=v, message=(
                "This body was stored truncated (it is longer than the log store keeps): "
                "its size and SHA-256 are on the delivery page."))
        return Response(data, 200, media_type="application/octet-stream", headers={
            **HEADERS, "Content-Disposition":
                f'attachment; filename="{delivery_id[:12]}-body.bin"'})

    @router.get("/webhooks")
    def webhooks(request: Request, v: Who) -> HTMLResponse:
        now_ms = console.now_ms()
        hooks = visible_webhooks(v)
        counts = day_counts(ctx.engine, v.principal.scope, now_ms)
        shown = pictures(ctx.engine, [w.id for w in hooks], v.principal.scope, now_ms,
                         every_webhook=True)
        return console.render(request, "webhooks.html", viewer=v, webhooks=hooks,
                              counts=counts, pictures=shown, max_open_min=MAX_OPEN_MS // 60_000)

    @router.get("/webhooks/{webhook_id}")
    def webhook(request: Request, v: Who, webhook_id: str,
                items_id: Annotated[int | None, Query(ge=0, le=2**53)] = None) -> HTMLResponse:
        found = ctx.webhook(webhook_id)
        if found is None or not v.principal.sees(found.instance):
            return not_found(request, v, f"webhook {webhook_id}")
        try:
            log = log_page(request, v, f"/webhooks/{webhook_id}",
                           DeliveryFilter(webhook_id=webhook_id))
        except BadFilter as e:
            return bad_filter(request, v, e)
        [picture] = pictures(ctx.engine, [webhook_id], v.principal.scope, console.now_ms(),
                             css_class="chart chart-large").values()
        return console.render(
            request, "webhook.html", viewer=v, w=found, definition=redacted(found),
            preview=_preview(console, v, found, items_id), items_id=items_id, log=log,
            picture=picture)

    @router.get("/items/{instance}/{itemtype}/{items_id}")
    def item(request: Request, v: Who, instance: str, itemtype: str, items_id: int
             ) -> HTMLResponse:
        if not v.principal.sees(instance):
            return not_found(request, v, f"{itemtype} {items_id} of {instance}")
        path = f"/items/{quote(instance, safe='')}/{quote(itemtype, safe='')}/{items_id}"
        where = DeliveryFilter(instance=instance, itemtype=itemtype, items_id=items_id)
        try:
            log = log_page(request, v, path, where)
        except BadFilter as e:
            return bad_filter(request, v, e)
        return console.render(request, "item.html", viewer=v, instance=instance,
                              itemtype=itemtype, items_id=items_id, log=log)

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
