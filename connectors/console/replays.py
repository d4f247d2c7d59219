"""The console's replay of a webhook: a form on the webhook page, a confirm step with the
count of a dry run, then the run in the background and a page following its progress.

The replay is the admin context's (control/replay.py, as the CLI and the API run it). Its
identity is the webhook and the start of the range, fixed by the form's first post and
carried by the confirm step, so that the count shown and the run are of the same replay,
and confirming again after an interruption continues it.
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations at run
# time, and those naming local aliases (Who) must be objects, not strings.

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from connectors.console.actions import since_and_rate
from connectors.console.web import Console, Refused, Viewer
from hookstream.control.replay import ReplayJob, check_replay_id
from hookstream.control.replay_runs import ReplayBusy
from hookstream.errors import HookstreamError
from hookstream.records import WebhookDefinition
from hookstream.records.replays import replay_identity


def replay_routes(console: Console) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    Who = Annotated[Viewer, Depends(console.viewer)]
    ctx = console.ctx

    def webhook_of(v: Viewer, webhook_id: str) -> WebhookDefinition | None:
        found = ctx.webhook(webhook_id)
        return found if found is not None and v.principal.sees(found.instance) else None

    @router.post("/webhooks/{webhook_id}/replay")
    async def replay(request: Request, v: Who, webhook_id: str) -> Response:
        form = await console.action_form(request, v)
        found = webhook_of(v, webhook_id)
        if found is None:
            return console.render(request, "not_found.html", 404, viewer=v,
                                  what=f"webhook {webhook_id}")
        since_ms, rate = since_and_rate(form, console.clock())
        replay_id = replay_identity(webhook_id, str(since_ms), None)
        job = ReplayJob(webhook_id, replay_id, since_ms, None, rate)
        if form.get("confirm") != "yes":
            try:
                counted = await run_in_threadpool(ctx.count_replay, job)
            except HookstreamError as e:
                raise Refused(409, f"The replay cannot run: {e}") from None
            return console.render(request, "confirm_replay.html", viewer=v, w=found,
                                  count=counted.count, since_ms=since_ms, rate=rate)
        try:
            await run_in_threadpool(ctx.replay, v.principal, job, found.instance, "console")
        except ReplayBusy:
            pass  # already running: follow it
        return RedirectResponse(f"/webhooks/{webhook_id}/replays/{replay_id}", 303)

    def progress(request: Request, v: Viewer, webhook_id: str, replay_id: str,
                 name: str) -> HTMLResponse:
        found = webhook_of(v, webhook_id)
        try:
            run = ctx.replay_run(check_replay_id(replay_id))
        except HookstreamError:
            run = None
        if found is None or run is None or run.job.webhook_id != webhook_id:
            return console.render(request, "not_found.html", 404, viewer=v,
                                  what=f"replay {replay_id} of webhook {webhook_id}")
        return console.render(request, name, viewer=v, w=found, run=run)

    @router.get("/webhooks/{webhook_id}/replays/{replay_id}")
    def replay_page(request: Request, v: Who, webhook_id: str, replay_id: str
                    ) -> HTMLResponse:
        return progress(request, v, webhook_id, replay_id, "replay.html")

    @router.get("/webhooks/{webhook_id}/replays/{replay_id}/live")
    def replay_live(request: Request, v: Who, webhook_id: str, replay_id: str
                    ) -> HTMLResponse:
        return progress(request, v, webhook_id, replay_id, "replay_live.html")

    return router
