"""The admin HTTP API: webhooks, the queries log, the queue view, force send and redrive."""

from __future__ import annotations

import logging
from typing import Any

from connectors.admin.app import create_app
from connectors.admin.auth import Principal, new_token, parse_tokens, token_hash
from connectors.admin.context import AdminContext
from hookstream.config import Settings
from hookstream.errors import ConfigError

log = logging.getLogger(__name__)


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for the admin process. X-Forwarded-Proto and X-Forwarded-For count
    only from `trusted_proxies`: behind a TLS-terminating Ingress the request's scheme is
    then https, so the console's same-origin check passes and its cookies are Secure."""
    return {"host": settings.admin_host, "port": settings.admin_port,
            "log_level": settings.log_level.lower(), "proxy_headers": True,
            "forwarded_allow_ips": list(settings.trusted_proxies)}


def run_admin(settings: Settings) -> int:
    """`hookstream run admin`: serve the API until SIGTERM (uvicorn handles the signal)."""
    import uvicorn

    from connectors.logstore import open_engine

    tokens = parse_tokens(settings.admin_tokens)
    if not tokens:
        raise ConfigError("admin_tokens is empty: the admin API would refuse every request; "
                          "`hookstream admin token --name NAME` makes one")
    engine = open_engine(settings)
    ctx = AdminContext(settings, engine)
    try:
        uvicorn.run(create_app(ctx, tokens), **server_options(settings))
    finally:
        ctx.close()
        engine.dispose()
    return 0


__all__ = [
    "AdminContext",
    "Principal",
    "create_app",
    "new_token",
    "parse_tokens",
    "run_admin",
    "server_options",
    "token_hash",
]
