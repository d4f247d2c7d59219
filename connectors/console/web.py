"""The console's plumbing: templates, who is logged in, and the checks on every action.

Pages are rendered on the server with Jinja2 (autoescaped). A page request without a valid
session is sent to /login; an action (a POST) must carry the session's CSRF token in its
form and, when the browser says where it comes from, come from this origin.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from connectors.admin.auth import Principal
from connectors.admin.context import AdminContext
from connectors.console.session import (
    COOKIE,
    FLASH_COOKIE,
    FLASH_TTL_S,
    Flash,
    Session,
    Signer,
    same_secret,
)

FORM_MAX_BYTES = 64 * 1024
LONG_TEXT = 400  # longer bodies are collapsed in <details>
HEADERS = {
    # Scripts and styles from this origin only; no framing (a force send button in a frame
    # could be clicked through); no referrer carrying delivery ids elsewhere.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class LoginRequired(Exception):
    """No valid session: pages redirect to /login."""


class Refused(Exception):
    """An action refused before it ran: a missing or wrong CSRF token, a foreign origin,
    a read-only token, an unreadable form."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True, slots=True)
class Viewer:
    principal: Principal
    session: Session


def time_tag(ms: int | None) -> Markup:
    """A timestamp (Unix ms) as <time>: UTC in the page, local time once the script ran."""
    if ms is None:
        return Markup("–")
    at = datetime.fromtimestamp(ms / 1000, UTC)
    iso = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return Markup('<time datetime="{}">{}</time>').format(iso, at.strftime("%Y-%m-%d %H:%M:%S UTC"))


def pretty(text: str | None) -> str:
    """JSON bodies indented, anything else as it is."""
    if text is None:
        return ""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


class Console:
    def __init__(self, ctx: AdminContext, tokens: dict[str, Principal], signer: Signer,
                 clock: Callable[[], float] = time.time):
        self.ctx, self.tokens, self.signer, self.clock = ctx, tokens, signer, clock
        self.env = Environment(loader=PackageLoader("connectors.console", "templates"),
                               autoescape=select_autoescape(default=True), trim_blocks=True,
                               lstrip_blocks=True)
        self.env.filters["time"] = time_tag
        self.env.filters["pretty"] = pretty
        self.env.globals["LONG_TEXT"] = LONG_TEXT

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def render(self, request: Request, name: str, status: int = 200, **values: Any
               ) -> HTMLResponse:
        """A page; a full page (not an htmx fragment) of a session shows its pending
        flash message, and deletes it: shown once, gone on reload."""
        viewer = values.get("viewer")
        flash = None
        pending = request.cookies.get(FLASH_COOKIE)
        if pending and isinstance(viewer, Viewer) and not request.headers.get("hx-request"):
            flash = self.signer.flash(pending, viewer.session.sid, self.clock())
        html = self.env.get_template(name).render(request=request, flash=flash, **values)
        page = HTMLResponse(html, status, headers=HEADERS)
        if pending and flash is not None:
            page.delete_cookie(FLASH_COOKIE, path="/", httponly=True, samesite="strict")
        return page

    def flash(self, request: Request, response: Response, viewer: Viewer, kind: str,
              text: str) -> Response:
        """`response` (a redirect) carrying a result for the next page of this session."""
        value = self.signer.new_flash(Flash(kind, text), viewer.session.sid, self.clock())
        response.set_cookie(FLASH_COOKIE, value, max_age=FLASH_TTL_S, path="/", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    def viewer(self, request: Request) -> Viewer:
        """The FastAPI dependency of every page: the session's principal, or LoginRequired."""
        session = self.signer.session(request.cookies.get(COOKIE), self.clock())
        principal = None if session is None else self.signer.principal(self.tokens, session)
        if session is None or principal is None:
            raise LoginRequired()
        return Viewer(principal, session)

    async def action_form(self, request: Request, viewer: Viewer | None, writes: bool = True
                          ) -> dict[str, str]:
        """The form of a POST, after its checks: same origin, CSRF token of the session
        (or, for the login form, of the login nonce checked by the caller)."""
        origin = request.headers.get("origin")
        if origin is not None and origin != _origin_of(request):
            raise Refused(403, "This request came from another site and was refused.")
        body = await request.body()
        if body and not request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            raise Refused(415, "Expected a form.")
        if len(body) > FORM_MAX_BYTES:
            raise Refused(413, "The form is too large.")
        try:
            form = dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=20))
        except ValueError:
            raise Refused(400, "The form could not be read.") from None
        if viewer is not None:
            if not same_secret(form.get("csrf"), viewer.session.csrf):
                raise Refused(403, "The form's security token is missing or stale: "
                                   "reload the page and try again.")
            if writes and not viewer.principal.writable:
                raise Refused(403, f"Token {viewer.principal.name} is read-only.")
        return form


def _origin_of(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def login_redirect(request: Request) -> Response:
    if request.headers.get("hx-request"):  # a poll after the session ended: leave the page
        return Response(status_code=401, headers={"HX-Redirect": "/login"})
    return RedirectResponse("/login", 303)
