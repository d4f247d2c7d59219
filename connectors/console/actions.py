"""Logging in and out, and the console's actions: force send, redrive, secret rotation.

Login checks the token with the admin API's `authenticate` and keeps only a signed session
in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS). The login form has a nonce of
its own (a cookie and a field), so another site cannot log a browser in under its token.
Actions go through `Console.action_form` (same origin, the session's CSRF token, a
writable token) and then the admin context's own calls, the same as the API's routes.

Acting takes care: resending a delivery already delivered, and every redrive, first
answer a page saying what would happen (how many, to targets answering what), whose form
posts again with `confirm=yes`. Each action's result comes back as a flash message of
the session (never from the URL), and each write goes to the audit trail with the
token's name.
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations at run
# time, and those naming local aliases (Who, Text) must be objects, not strings.

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from connectors.admin.auth import authenticate
from connectors.console.pages import DELIVERY_ID
from connectors.console.session import (
    COOKIE,
    LOGIN_COOKIE,
    LOGIN_TTL_S,
    SESSION_TTL_S,
    same_secret,
)
from connectors.console.web import Console, Refused, Viewer
from connectors.logstore import delivery_detail
from hookstream.policy import parse_grace
from hookstream.records import AuditAction, only_instance, redrive_target, send_result

MAX_RATE_PER_S = 100_000.0


def action_routes(console: Console) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    Who = Annotated[Viewer, Depends(console.viewer)]
    ctx = console.ctx

    def login_page(request: Request, status: int = 200, error: str | None = None
                   ) -> HTMLResponse:
        nonce, cookie = console.signer.new_login_nonce(console.clock())
        page = console.render(request, "login.html", status, nonce=nonce, error=error)
        _set_cookie(request, page, LOGIN_COOKIE, cookie, LOGIN_TTL_S, path="/login")
        return page

    @router.get("/login")
    def login_form(request: Request) -> HTMLResponse:
        return login_page(request)

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await console.action_form(request, None)
        nonce = console.signer.login_nonce(request.cookies.get(LOGIN_COOKIE), console.clock())
        if nonce is None or not same_secret(form.get("nonce"), nonce):
            return login_page(request, 403, "The login form expired: please try again.")
        token = form.get("token", "").strip()
        principal = authenticate(console.tokens, f"Bearer {token}") if token else None
        if principal is None:
            # No detail on why: the same answer for an unknown, malformed or empty token.
            return login_page(request, 401, "This token is not valid.")
        digest = next(d for d, p in console.tokens.items() if p is principal)
        _, cookie = console.signer.new_session(digest, console.clock())
        await run_in_threadpool(ctx.audit, principal, AuditAction.LOGIN, "console", "ok",
                                None, "console")
        answer = RedirectResponse("/queue", 303)
        _set_cookie(request, answer, COOKIE, cookie, SESSION_TTL_S)
        answer.delete_cookie(LOGIN_COOKIE, path="/login")
        return answer

    @router.post("/logout")
    async def logout(request: Request, v: Who) -> Response:
        await console.action_form(request, v, writes=False)
        await run_in_threadpool(ctx.audit, v.principal, AuditAction.LOGOUT, "console", "ok",
                                None, "console")
        answer = RedirectResponse("/login", 303)
        answer.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return answer

    @router.post("/deliveries/{delivery_id}/send")
    async def send(request: Request, v: Who, delivery_id: str) -> Response:
        form = await console.action_form(request, v)
        scope = v.principal.scope
        found = None if not DELIVERY_ID.match(delivery_id) else await run_in_threadpool(
            delivery_detail, ctx.engine, delivery_id, scope)
        if found is None:
            return console.render(request, "not_found.html", 404, viewer=v,
                                  what=f"delivery {delivery_id}")
        if found["state"] == "delivered" and form.get("confirm") != "yes":
            return console.render(request, "confirm_send.html", viewer=v, d=found)
        record = await run_in_threadpool(ctx.force_send, delivery_id, v.principal.name)
        if record is None:
            return console.render(request, "not_found.html", 404, viewer=v,
                                  what=f"delivery {delivery_id} or its webhook")
        result = send_result(str(record.outcome), record.status_code, record.error)
        await run_in_threadpool(ctx.audit, v.principal, AuditAction.SEND_NOW, delivery_id,
                                result, found["instance"], "console")
        kind = "success" if str(record.outcome) == "delivered" else "failure"
        return console.flash(request, RedirectResponse(f"/deliveries/{delivery_id}", 303), v,
                             kind, f"Sent now: {result}.")

    @router.post("/dlq/redrive")
    async def redrive(request: Request, v: Who) -> Response:
        form = await console.action_form(request, v)
        webhook_id = form.get("webhook") or None
        since_ms, rate = since_and_rate(form, console.clock())
        instance = only_instance(v.principal.instances)
        if webhook_id is not None:
            found = ctx.webhook(webhook_id)
            if found is None or not v.principal.sees(found.instance):
                return console.render(request, "not_found.html", 404, viewer=v,
                                      what=f"webhook {webhook_id}")
            instance = found.instance
        instances = v.principal.instances  # a scoped token redrives within its instances
        if form.get("confirm") != "yes":
            count = await run_in_threadpool(ctx.count_redrive, webhook_id, since_ms, instances)
            return console.render(request, "confirm_redrive.html", viewer=v, count=count,
                                  webhook_id=webhook_id, since_ms=since_ms, rate=rate)
        done = await run_in_threadpool(ctx.redrive, webhook_id, since_ms, rate, instances)
        target = redrive_target(webhook_id, instances)
        await run_in_threadpool(ctx.audit, v.principal, AuditAction.REDRIVE, target,
                                f"redriven {done}", instance, "console")
        kind, text = ("success", f"Redriven: {done} dead-lettered deliveries sent again.") \
            if done else ("info", "Nothing to redrive: no dead-lettered delivery matched.")
        return console.flash(request, RedirectResponse("/queue", 303), v, kind, text)

    @router.post("/webhooks/{webhook_id}/rotate-secret")
    async def rotate_secret(request: Request, v: Who, webhook_id: str) -> Response:
        form = await console.action_form(request, v)
        found = ctx.webhook(webhook_id)
        if found is None or not v.principal.sees(found.instance):
            return console.render(request, "not_found.html", 404, viewer=v,
                                  what=f"webhook {webhook_id}")
        try:  # the messages name no secret: "is the current one", "grace '2x' is not ..."
            grace_s = parse_grace(form.get("grace") or "24h")
            done = await run_in_threadpool(ctx.rotate_secret, found, form.get("secret", ""),
                                           grace_s)
        except ValueError as e:
            raise Refused(422, f"Not rotated: {e}.") from None
        await run_in_threadpool(ctx.audit, v.principal, AuditAction.WEBHOOK_ROTATE_SECRET,
                                webhook_id, f"rotated, v{done.version}", done.instance,
                                "console")
        kept = (f"the previous secret also signs Standard Webhooks signatures for "
                f"{form.get('grace') or '24h'}" if done.previous_secret_encrypted
                else "the previous secret no longer signs")
        return console.flash(request, RedirectResponse(f"/webhooks/{webhook_id}", 303), v,
                             "success", f"Secret rotated (v{done.version}): {kept}.")

    return router


def since_and_rate(form: Mapping[str, str], now_s: float) -> tuple[int, float]:
    """A redrive's or a replay's start (`since_ms`, else `since_hours` back from now, 24 by
    default) and rate per second (0 = unlimited), or 422 with what is wrong."""
    try:
        hours = float(form.get("since_hours") or 24)
        rate = float(form.get("rate_per_s") or 0)
        since = form.get("since_ms")
        since_ms = int(since) if since else max(0, int((now_s - hours * 3600) * 1000))
    except ValueError:
        raise Refused(422, "Since and rate must be numbers.") from None
    if not (0 < hours <= 24 * 366 and 0 <= rate <= MAX_RATE_PER_S and since_ms >= 0):
        raise Refused(422, "Since must be within a year; the rate at most 100000/s.")
    return since_ms, rate


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age_s: int,
                path: str = "/") -> None:
    response.set_cookie(name, value, max_age=max_age_s, path=path, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
