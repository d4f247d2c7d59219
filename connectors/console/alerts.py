"""The console's Alerts page: the alert rules (what each matches, where its tickets go), the
alerts the ticketer handled with their status, ticket and latest action, and one alert's
history. Read-only: rules are applied with `hookstream alerts apply`.

The list's view is in its URL, as the deliveries' is (filters.py): instance, status,
action, q (part of a name or fingerprint), and the page's cursor.
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations at run
# time, and those naming local aliases (Who) must be objects, not strings.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from connectors.console.filters import page_link
from connectors.console.web import Console, Viewer
from connectors.logstore import AlertCursor, AlertFilter, alert_history, list_alerts
from connectors.logstore.alerts import ACTIONS, STATUSES
from connectors.logstore.queries import BadCursor, BadFilter
from hookstream.alerting.links import ticket_url

PAGE = 50
FILTERS = ("instance", "status", "action", "q")


def alert_routes(console: Console) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    Who = Annotated[Viewer, Depends(console.viewer)]
    ctx = console.ctx

    def with_ticket(row: dict[str, Any], instance: str) -> dict[str, Any]:
        return {**row, "ticket_url": ticket_url(ctx.api_url(instance), row["tickets_id"])}

    @router.get("/alerts")
    def alerts(request: Request, v: Who) -> HTMLResponse:
        params = request.query_params
        values = {k: params[k].strip() for k in FILTERS if params.get(k, "").strip()}
        where = AlertFilter(values.get("instance"), values.get("status"),
                            values.get("action"), values.get("q"))
        try:
            cursor = AlertCursor.decode(params["cursor"]) if params.get("cursor") else None
            newer = cursor is not None and params.get("newer") == "1"
            page = list_alerts(ctx.engine, where, v.principal.scope, cursor, PAGE, newer)
        except (BadCursor, BadFilter) as e:
            problem = f"cursor: {e}" if isinstance(e, BadCursor) else str(e)
            return console.render(request, "refused.html", 400, viewer=v,
                                  message=f"This list cannot be shown: {problem}")
        rules = sorted((r for r in ctx.alert_rules().values() if v.principal.sees(r.instance)),
                       key=lambda r: (r.instance, r.order, r.id))
        return console.render(
            request, "alerts.html", viewer=v, rules=rules, values=values,
            rows=[with_ticket(r, r["instance"]) for r in page.items],
            statuses=STATUSES, actions=ACTIONS,
            older=page.next_cursor and page_link("/alerts", values, page.next_cursor),
            newer=page.prev_cursor and page_link("/alerts", values, page.prev_cursor, True),
            first=page_link("/alerts", values) if cursor else None)

    @router.get("/alerts/{alert_key:path}")
    def alert(request: Request, v: Who, alert_key: str) -> HTMLResponse:
        found = alert_history(ctx.engine, alert_key, v.principal.scope)
        if found is None:
            return console.render(request, "not_found.html", 404, viewer=v,
                                  what=f"alert {alert_key}")
        rule = ctx.alert_rules().get(found["rule_id"])
        return console.render(
            request, "alert.html", viewer=v, a=with_ticket(found, found["instance"]), rule=rule,
            history=[with_ticket(h, found["instance"]) for h in found["history"]])

    return router
