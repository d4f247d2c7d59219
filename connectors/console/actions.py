"""Logging in and out, and the console's two actions: force send and redrive.

Login checks the token with the admin API's `authenticate` and keeps only a signed session
in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS). The login form has a nonce of
its own (a cookie and a field), so another site cannot log a browser in under its token.
Actions go through `Console.action_form` (same origin, the session's CSRF token, a
writable token) and then the admin context's own calls, the same as the API's routes.
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations at run
# time, and those naming local aliases (Who, Text) must be objects, not strings.

from typing import Annotated
from urllib.parse import urlencode

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
        answer = RedirectResponse("/queue", 303)
        _set_cookie(request, answer, COOKIE, cookie, SESSION_TTL_S)
        answer.delete_cookie(LOGIN_COOKIE, path="/login")
        return answer

    @router.post("/logout")
    async def logout(request: Request, v: Who) -> Response:
        await console.action_form(request, v, writes=False)
        answer = RedirectResponse("/login", 303)
        answer.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return answer

    @router.post("/deliveries/{delivery_id}/send")
    async def send(request: Request, v: Who, delivery_id: str) -> Response:
        await console.action_form(request, v)
        scope = v.principal.scope
        if not DELIVERY_ID.match(delivery_id) or await run_in_threadpool(
                delivery_detail, ctx.engine, delivery_id, scope) is None:
            return console.render(request, "not_found.html", 404, viewer=v,
                                  what=f"delivery {delivery_id}")
        record = await run_in_threadpool(ctx.force_send, delivery_id, v.principal.name)
        if record is None:
            return console.render(request, "not_found.html", 404, viewer=v,
                                  what=f"delivery {delivery_id} or its webhook")
        query = {"sent": str(record.outcome)}
        if record.status_code is not None:
            query["status"] = str(record.status_code)
        return RedirectResponse(f"/deliveries/{delivery_id}?{urlencode(query)}", 303)

    @router.post("/dlq/redrive")
    async def redrive(request: Request, v: Who) -> Response:
        form = await console.action_form(request, v)
        webhook_id = form.get("webhook") or None
        try:
            hours = float(form.get("since_hours") or 24)
            rate = float(form.get("rate_per_s") or 0)
        except ValueError:
            raise Refused(422, "Since and rate must be numbers.") from None
        if not (0 < hours <= 24 * 366 and 0 <= rate <= MAX_RATE_PER_S):
            raise Refused(422, "Since must be within a year; the rate at most 100000/s.")
        if webhook_id is None and v.principal.instances is not None:
            raise Refused(422, "Choose a webhook: this token is scoped to instances.")
        if webhook_id is not None:
            found = ctx.webhook(webhook_id)
            if found is None or not v.principal.sees(found.instance):
                return console.render(request, "not_found.html", 404, viewer=v,
                                      what=f"webhook {webhook_id}")
        since_ms = max(0, int((console.clock() - hours * 3600) * 1000))
        count = await run_in_threadpool(ctx.redrive, webhook_id, since_ms, rate)
        return RedirectResponse(f"/queue?{urlencode({'redriven': count})}", 303)

    return router


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age_s: int,
                path: str = "/") -> None:
    response.set_cookie(name, value, max_age=max_age_s, path=path, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
