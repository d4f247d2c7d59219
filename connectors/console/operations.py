"""The console's operational events: the list (webhook.disabled, delivery.dead_lettered,
circuit.opened, from the log store), and the Enable action of a disabled webhook.

Enable goes as the console's other actions (actions.py): a writable token, the session's
CSRF token, first a page saying what will happen, whose form posts again with
`confirm=yes`; then the admin context publishes, the audit trail records it
(`webhook.enable`), and a flash message says what was done.
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations at run
# time, and those naming local aliases (Who) must be objects, not strings.

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from connectors.console.web import Console, Viewer
from connectors.logstore import list_operations
from hookstream.records import AuditAction, OperationType

PAGE = 50


def operation_routes(console: Console) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    Who = Annotated[Viewer, Depends(console.viewer)]
    ctx = console.ctx

    @router.get("/operations")
    def operations(request: Request, v: Who,
                   webhook: Annotated[str | None, Query(max_length=255)] = None,
                   before_ms: Annotated[int | None, Query(ge=0, le=2**53)] = None,
                   before_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{1,64}$")] = None,
                   ) -> HTMLResponse:
        """Operational events, newest first; a token scoped to instances sees those of its
        instances."""
        webhook = webhook or None
        rows = list_operations(ctx.engine, v.principal.scope, webhook, before_ms, before_id,
                               PAGE + 1)
        older = None
        if len(rows) > PAGE:
            rows, last = rows[:PAGE], rows[PAGE - 1]
            query = {"webhook": webhook} if webhook else {}
            older = "/operations?" + urlencode({**query, "before_ms": last["at_ms"],
                                                "before_id": last["event_id"]})
        return console.render(request, "operations.html", viewer=v, rows=rows,
                              webhook=webhook, types=[str(t) for t in OperationType],
                              older=older)

    @router.post("/webhooks/{webhook_id}/enable")
    async def enable(request: Request, v: Who, webhook_id: str) -> Response:
        form = await console.action_form(request, v)
        found = ctx.webhook(webhook_id)
        if found is None or not v.principal.sees(found.instance):
            return console.render(request, "not_found.html", 404, viewer=v,
                                  what=f"webhook {webhook_id}")
        if form.get("confirm") != "yes":
            return console.render(request, "confirm_enable.html", viewer=v, w=found)
        definition, changed = await run_in_threadpool(ctx.enable_webhook, found)
        state = "enabled" if changed else "already active"
        await run_in_threadpool(ctx.audit, v.principal, AuditAction.WEBHOOK_ENABLE, webhook_id,
                                state, definition.instance, "console")
        text = (f"Enabled: {webhook_id} receives new events again (v{definition.version})."
                if changed else f"{webhook_id} was active already.")
        return console.flash(request, RedirectResponse(f"/webhooks/{webhook_id}", 303), v,
                             "success" if changed else "info", text)

    return router
