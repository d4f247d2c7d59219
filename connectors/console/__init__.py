"""The web console for GLPI admins, served by the admin API process at `/`.

`mount_console(app, ctx, tokens)` adds its pages, actions and static files to the admin
API's FastAPI app (none of them in the OpenAPI schema). It signs sessions with `key`: give
the same key to every replica behind one address; without one, a random key per process
means a restart asks everyone to log in again.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from connectors.admin.auth import Principal
from connectors.admin.context import AdminContext
from connectors.console.actions import action_routes
from connectors.console.alerts import alert_routes
from connectors.console.operations import operation_routes
from connectors.console.pages import page_routes
from connectors.console.replays import replay_routes
from connectors.console.session import Signer
from connectors.console.web import Console, LoginRequired, Refused, login_redirect

STATIC = Path(__file__).resolve().parent / "static"


def mount_console(app: FastAPI, ctx: AdminContext, tokens: dict[str, Principal],
                  key: bytes | None = None, clock: Callable[[], float] = time.time) -> Console:
    console = Console(ctx, tokens, Signer(key or secrets.token_bytes(32)), clock)

    async def login_required(request: Request, e: Exception) -> Response:
        return login_redirect(request)

    async def refused(request: Request, e: Exception) -> Response:
        assert isinstance(e, Refused)
        return console.render(request, "refused.html", e.status, message=e.message)

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(Refused, refused)
    app.include_router(action_routes(console))
    app.include_router(replay_routes(console))
    app.include_router(operation_routes(console))
    app.include_router(alert_routes(console))
    app.include_router(page_routes(console))
    app.mount("/static", StaticFiles(directory=STATIC), name="console-static")
    return console


__all__ = ["Console", "mount_console"]
