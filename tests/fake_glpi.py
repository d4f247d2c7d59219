"""A fake GLPI 11 for tests: it sends native webhooks exactly as GLPI does.

From GLPI's src/Webhook.php and src/QueuedWebhook.php: the body and the two signature
headers are computed once, when the webhook is queued (`X-GLPI-timestamp` = time() then,
`X-GLPI-signature` = hex HMAC-SHA256(secret, body . timestamp)), stored with the queued
row, and resent unchanged on every attempt; GLPI sets no Content-Type; the method is the
webhook's (POST, GET, PUT, PATCH or UPDATE) and the body goes with it even for GET. The CRA
challenge is a bare GET with `?crc_token=T` replacing the URL's query. Each send builds
its own Guzzle client (Toolbox::getGuzzleClient in sendById), so each webhook goes on a
connection of its own: `FakeGlpiSender.session()` opens one per request.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from hookstream.policy import cra_expected_answer, cra_token, cra_url, glpi_headers


@dataclass
class QueuedWebhook:
    """One row of glpi_queuedwebhooks: what every attempt resends."""

    url: str
    method: str
    body: bytes
    headers: dict[str, str]
    sent_try: int = 0
    statuses: list[int] = field(default_factory=list)


class FakeGlpiSender:
    def __init__(self, secret: str):
        self.secret = secret

    def queue(self, url: str, body: bytes, timestamp_s: int, method: str = "POST") -> QueuedWebhook:
        """Webhook::raise + QueuedWebhook: sign once, at queue time."""
        headers = glpi_headers(self.secret, body, timestamp_s)
        return QueuedWebhook(url, method.upper(), body, headers)

    @staticmethod
    def session() -> aiohttp.ClientSession:
        """Requests as GLPI makes them: a new connection for each, closed after it."""
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))

    async def attempt(self, session: aiohttp.ClientSession, row: QueuedWebhook) -> int:
        """One cron attempt: the stored request, byte for byte; any status >= 400 is a retry."""
        row.sent_try += 1
        # skip_auto_headers: GLPI (Guzzle) sends no Content-Type.
        async with session.request(
            row.method, row.url, data=row.body, headers=row.headers,
            skip_auto_headers=["Content-Type"],
        ) as response:
            await response.read()
            row.statuses.append(response.status)
            return response.status

    async def challenge(self, session: aiohttp.ClientSession, url: str) -> bool:
        """Webhook::validateCRAChallenge: GET url?crc_token=T, expect hex HMAC(secret, T)."""
        token = cra_token(self.secret)
        async with session.get(cra_url(url, token)) as response:
            text = await response.text()
            return response.status == 200 and text == cra_expected_answer(self.secret, token)


# -- GLPI's REST API (apirest.php), the subset hookstream uses ---------------------------------
# Answer shapes and error codes as GLPI 10.0.19 gives them (held to the real one by
# tests/real_glpi/test_fake_agrees.py): errors are a JSON array [ERROR_CODE, message], most
# messages ending "; view documentation in your browser at <api>/#CODE"; lists honour
# `range=a-b` with `Content-Range: a-b/total` (none for an empty list) and 206 when partial;
# POST answers 201 {"id": n, "message": ...}; PUT answers 200 [{"<id>": true, "message": ""}].

API_USER_ID = 7  # the integration's user, as getFullSession names it
NO_RIGHT = "You don't have permission to perform this action."


class FakeGlpiApi:
    """State and handlers of a fake apirest.php; `app()` serves it under /apirest.php."""

    def __init__(self, app_token: str, user_token: str):
        self.app_token, self.user_token = app_token, user_token
        self.items: dict[str, dict[int, dict[str, Any]]] = {
            "Entity": {}, "Webhook": {}, "CronTask": {}, "CriteriaFilter": {}
        }
        self._next_id: dict[str, int] = {}  # auto-increment: a purged id is never reused
        self.sessions: set[str] = set()
        self.sessions_opened = self.sessions_killed = 0
        self.fail_next: list[int] = []  # statuses to answer before serving (5xx injection)
        self.read_only: set[str] = set()  # itemtypes the user may read but not write
        self.unreadable: set[str] = set()  # itemtypes the user may not even read
        self.calls: list[tuple[str, str]] = []
        self.api_url = ""  # set when served: GLPI names itself in its error messages

    def add(self, kind: str, /, **fields: Any) -> int:
        table = self.items.setdefault(kind, {})
        ident = int(fields.pop("id", max(self._next_id.get(kind, 1), max(table, default=0) + 1)))
        self._next_id[kind] = max(self._next_id.get(kind, 1), ident + 1)
        table[ident] = {"id": ident, **fields}
        return ident

    def prepare_add(self, itemtype: str, fields: dict[str, Any]) -> dict[str, Any] | web.Response:
        """The row an add stores (GLPI's `_` inputs are not columns), or GLPI's refusal."""
        return {k: v for k, v in fields.items() if k[0] != "_"}

    def changed_by_api(self, itemtype: str, ident: int, created: bool) -> None:
        """Called after the API user added or updated an item (FakeGlpiItems dates it)."""

    def deleted_by_api(self, itemtype: str, ident: int, purge: bool) -> None:
        """DELETE: purged here; FakeGlpiItems puts an item in the trash unless purged."""
        del self.items[itemtype][ident]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/apirest.php/{path:.*}", self.handle)
        return app

    def error(self, status: int, code: str, message: str | None, doc: bool = True
              ) -> web.Response:
        """API::returnError: `doc` appends where the documentation is, as GLPI does for
        every error but not-found, missing-right and refused writes."""
        if doc and message is not None:
            message += f"; view documentation in your browser at {self.api_url}/#{code}"
        return web.json_response([code, message], status=status)

    def refused(self, request: web.Request) -> web.Response | None:
        """The checks GLPI makes before any call but initSession: failures, tokens."""
        if self.fail_next:
            return self.error(self.fail_next.pop(0), "ERROR_SQL", "injected failure")
        if request.headers.get("App-Token") != self.app_token:
            return self.error(400, "ERROR_WRONG_APP_TOKEN_PARAMETER",
                              "parameter app_token seems wrong")
        token = request.headers.get("Session-Token")
        if not token:
            return self.error(400, "ERROR_SESSION_TOKEN_MISSING",
                              "parameter session_token is missing or empty")
        if token not in self.sessions:
            return self.error(401, "ERROR_SESSION_TOKEN_INVALID", "session_token seems invalid",
                              doc=False)
        return None

    async def handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"].strip("/")
        self.calls.append((request.method, path))
        if path == "initSession" and not self.fail_next:
            return self._init_session(request)
        refused = self.refused(request)
        if refused is not None:
            return refused
        token = request.headers["Session-Token"]
        if path == "killSession":
            self.sessions.discard(token)
            self.sessions_killed += 1
            return web.json_response(True)
        if path == "getFullSession":
            return web.json_response({"session": {"valid_id": token, "glpiID": API_USER_ID,
                                                  "glpiname": "hookstream"}})
        itemtype, _, ident = path.partition("/")
        if itemtype not in self.items:
            return self.error(400, "ERROR_RESOURCE_NOT_FOUND_NOR_COMMONDBTM",
                              "resource not found or not an instance of CommonDBTM")
        table = self.items[itemtype]
        if request.method == "GET" and itemtype in self.unreadable:
            return self.error(403, "ERROR_RIGHT_MISSING", NO_RIGHT, doc=False)
        if request.method == "GET" and not ident:
            return self._list(itemtype, _searched(table, request.query),
                              request.query.get("range", "0-50"))
        if request.method == "POST" and not ident:
            if itemtype in self.read_only:
                return self.error(400, "ERROR_GLPI_ADD", NO_RIGHT, doc=False)
            fields = (await request.json())["input"]
            prepared = self.prepare_add(itemtype, fields)
            if isinstance(prepared, web.Response):
                return prepared
            new = self.add(itemtype, **prepared)
            self.changed_by_api(itemtype, new, created=True)
            added = f"Item successfully added: {fields['name']} ({new})" if "name" in fields else ""
            return web.json_response({"id": new, "message": added}, status=201,
                                     headers={"Location": f"{request.url}/{new}"})
        if request.method == "DELETE" and ident:
            if not ident.isdigit() or int(ident) not in table:
                return self.error(400, "ERROR_GLPI_DELETE", "Item not found", doc=False)
            self.deleted_by_api(itemtype, int(ident), request.query.get("force_purge") in (
                "true", "1"))
            return web.json_response([{ident: True, "message": ""}])
        if request.method == "PUT":
            if not ident.isdigit() or int(ident) not in table:
                return self.error(400, "ERROR_GLPI_UPDATE", None, doc=False)
            if itemtype in self.read_only:
                return self.error(400, "ERROR_GLPI_UPDATE", NO_RIGHT, doc=False)
            table[int(ident)].update((await request.json())["input"])
            self.changed_by_api(itemtype, int(ident), created=False)
            return web.json_response([{ident: True, "message": ""}])
        if not ident.isdigit() or int(ident) not in table:
            return self.error(404, "ERROR_ITEM_NOT_FOUND", "Item not found", doc=False)
        if request.method == "GET":
            return web.json_response(_shown(table[int(ident)]))
        return self.error(405, "ERROR_METHOD_NOT_ALLOWED", "Method Not Allowed")

    def _init_session(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("user_token "):
            return self.error(400, "ERROR_LOGIN_PARAMETERS_MISSING",
                              "parameter(s) login, password or user_token are missing")
        if request.headers.get("App-Token") != self.app_token:
            return self.error(400, "ERROR_WRONG_APP_TOKEN_PARAMETER",
                              "parameter app_token seems wrong")
        if auth.removeprefix("user_token ") != self.user_token:
            return self.error(401, "ERROR_GLPI_LOGIN_USER_TOKEN",
                              "parameter user_token seems invalid", doc=False)
        self.sessions_opened += 1
        token = f"session-{self.sessions_opened:04d}"
        self.sessions.add(token)
        return web.json_response({"session_token": token})

    def _list(self, itemtype: str, table: dict[int, dict[str, Any]], span: str) -> web.Response:
        first, _, last = span.partition("-")
        start, end, rows = int(first), int(last), [table[k] for k in sorted(table)]
        if start >= len(rows) and start > 0:
            return self.error(400, "ERROR_RANGE_EXCEED_TOTAL",
                              f"Provided range exceed total count of data: {len(rows)}")
        page = [_shown(row) for row in rows[start:end + 1]]
        headers = {"Accept-Range": f"{itemtype} 1000"}
        if page:
            headers["Content-Range"] = f"{start}-{start + len(page) - 1}/{len(rows)}"
        status = 206 if start + len(page) < len(rows) else 200
        return web.json_response(page, status=status, headers=headers)


def _searched(table: dict[int, dict[str, Any]], query: Mapping[str, str]
              ) -> dict[int, dict[str, Any]]:
    """GLPI's `searchText[field]=value`: contains, ignoring case; `^value$` is exact."""
    for key, value in query.items():
        if key.startswith("searchText[") and key.endswith("]"):
            field, wanted = key[11:-1], value.lower()
            exact = wanted.startswith("^") and wanted.endswith("$")
            table = {k: row for k, row in table.items() if (
                str(row.get(field, "")).lower() == wanted[1:-1] if exact
                else wanted in str(row.get(field, "")).lower())}
    return table


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """GLPI keeps webhook secrets encrypted and never returns them."""
    return {k: v for k, v in row.items() if k not in ("secret", "clientsecret")}


class RunningGlpiApi:
    """A FakeGlpiApi served on loopback from a thread: `with RunningGlpiApi(api) as url:`."""

    def __init__(self, api: FakeGlpiApi):
        self.api = api
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(api.app())
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()

        async def start() -> int:
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

        port = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        self.api.api_url = f"http://127.0.0.1:{port}/apirest.php"
        return self.api.api_url

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
