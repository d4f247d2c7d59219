"""A client of GLPI's legacy REST API (apirest.php), as its apirest.md documents it.

- `initSession` with the `App-Token` header and `Authorization: user_token ...`, once;
  the session token is reused for every call and `killSession` ends it on close.
- An answer `401 ["ERROR_SESSION_TOKEN_INVALID", ...]` (the session expired on GLPI's
  side) re-initialises the session once and repeats the call.
- Timeouts on every call; retries with exponential backoff on 5xx answers and
  connection errors only. Other errors raise GlpiApiError carrying GLPI's own error
  code and message; bad credentials give one line naming the instance.
- Lists are read page by page with `range=a-b`, following `Content-Range: a-b/total`.

httpx serves here: a command line tool, where speed does not matter (docs/architecture.md).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx

from hookstream.errors import ConfigError, PermanentError, TransientError

log = logging.getLogger(__name__)

PAGE = 500
_CONTENT_RANGE = re.compile(r"^\s*(\d+)-(-?\d+)/(\d+)\s*$")
NOT_AN_ITEMTYPE = "ERROR_RESOURCE_NOT_FOUND_NOR_COMMONDBTM"  # an itemtype this GLPI lacks
_CREDENTIAL_ERRORS = frozenset({
    "ERROR_WRONG_APP_TOKEN_PARAMETER", "ERROR_APP_TOKEN_PARAMETERS_MISSING",
    "ERROR_GLPI_LOGIN_USER_TOKEN", "ERROR_GLPI_LOGIN", "ERROR_LOGIN_PARAMETERS_MISSING",
    "ERROR_NOT_ALLOWED_IP",
})


class GlpiApiError(PermanentError):
    """GLPI answered with an error: `code` is GLPI's (ERROR_...), the message GLPI's own."""

    def __init__(self, instance: str, status: int, code: str, message: str):
        self.instance, self.status, self.code, self.message = instance, status, code, message
        super().__init__(f"GLPI {instance}: HTTP {status} {code}: {message}")


class GlpiUnavailable(TransientError):
    """GLPI could not be reached or kept answering 5xx after the retries."""


def content_range(value: str | None) -> tuple[int, int, int] | None:
    """(first, last, total) of a `Content-Range: 0-49/200` header, or None."""
    match = _CONTENT_RANGE.match(value or "")
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


def _error_of(response: httpx.Response) -> tuple[str, str]:
    """GLPI's errors are a JSON array [code, message]; anything else is shown as text.
    GLPI appends "; view documentation in your browser at <url>" to most messages, and
    some have none (PUT on a missing item: ["ERROR_GLPI_UPDATE", null])."""
    try:
        data = response.json()
    except ValueError:
        return "HTTP_ERROR", response.text[:300]
    if isinstance(data, list) and data and isinstance(data[0], str):
        message = data[1] if len(data) > 1 and isinstance(data[1], str) else ""
        return data[0], message.split("; view documentation in your browser", 1)[0]
    return "HTTP_ERROR", str(data)[:300]


class GlpiClient:
    """One session on one GLPI instance; use as a context manager (killSession at exit)."""

    def __init__(
        self,
        instance: str,
        api_url: str,
        app_token: str,
        user_token: str,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ):
        self.instance = instance
        self._base = api_url.rstrip("/")
        self._app_token, self._user_token = app_token, user_token
        self._retries, self._backoff_s, self._sleep = retries, backoff_s, sleep
        self._http = httpx.Client(timeout=timeout_s, transport=transport)
        self._session: str | None = None
        self._user_id: int | None = None
        self.sessions_opened = 0  # tests check that one session serves every call

    def __enter__(self) -> GlpiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._session is not None:
            try:
                self._send("GET", "killSession", session=True)
            except (GlpiApiError, GlpiUnavailable) as e:
                log.warning("GLPI %s: killSession failed: %s", self.instance, e)
            self._session = None
        self._http.close()

    # -- the session ----------------------------------------------------------------------

    def _open_session(self) -> str:
        response = self._send(
            "GET", "initSession", session=False,
            headers={"Authorization": f"user_token {self._user_token}"},
        )
        token = response.json().get("session_token") if response.content else None
        if not isinstance(token, str) or not token:
            raise GlpiApiError(self.instance, response.status_code, "NO_SESSION_TOKEN",
                               "initSession answered without a session_token")
        self.sessions_opened += 1
        self._session = token
        return token

    def user_id(self) -> int:
        """The id of the GLPI user the session runs as (the integration's own user)."""
        if self._user_id is None:
            session = self.request("GET", "getFullSession").json().get("session", {})
            self._user_id = int(session.get("glpiID") or 0)
        return self._user_id

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A call within the session; an expired session is re-initialised once."""
        if self._session is None:
            self._open_session()
        try:
            return self._send(method, path, session=True, **kwargs)
        except GlpiApiError as e:
            if e.code != "ERROR_SESSION_TOKEN_INVALID":
                raise
            log.info("GLPI %s: session expired, opening a new one", self.instance)
            self._session = None
            self._open_session()
            return self._send(method, path, session=True, **kwargs)

    def _send(
        self, method: str, path: str, session: bool, headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        all_headers = {"App-Token": self._app_token, "Content-Type": "application/json",
                       **(headers or {})}
        if session and self._session:
            all_headers["Session-Token"] = self._session
        url = f"{self._base}/{path.lstrip('/')}"
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            try:
                response = self._http.request(method, url, headers=all_headers, **kwargs)
            except httpx.TransportError as e:  # connection refused, timeouts, resets
                if last:
                    raise GlpiUnavailable(f"GLPI {self.instance}: {type(e).__name__}: {e}") from e
            else:
                if response.status_code < 400:
                    return response
                if response.status_code < 500:
                    code, message = _error_of(response)
                    if code in _CREDENTIAL_ERRORS:
                        raise GlpiApiError(self.instance, response.status_code, code,
                                           f"{message} (check the API app token and user "
                                           f"token of instance {self.instance})")
                    raise GlpiApiError(self.instance, response.status_code, code, message)
                if last:
                    code, message = _error_of(response)
                    raise GlpiUnavailable(
                        f"GLPI {self.instance}: HTTP {response.status_code} {code}: {message}")
            self._sleep(self._backoff_s * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- items ------------------------------------------------------------------------------

    def list_items(
        self, itemtype: str, page: int = PAGE, **params: Any
    ) -> Iterator[dict[str, Any]]:
        """Every item of `itemtype`, page by page (`range`, `Content-Range`)."""
        first = 0
        while True:
            response = self.request(
                "GET", f"{itemtype}/",
                params={"range": f"{first}-{first + page - 1}", **params},
            )
            rows = response.json()
            if not isinstance(rows, list):
                raise GlpiApiError(self.instance, response.status_code, "BAD_ANSWER",
                                   f"{itemtype}: expected a list")
            yield from rows
            bounds = content_range(response.headers.get("Content-Range"))
            if bounds is None or bounds[1] + 1 >= bounds[2] or not rows:
                return
            first = bounds[1] + 1

    def webhooks(self) -> list[dict[str, Any]]:
        """GLPI's webhooks, or ConfigError on a GLPI without them (GLPI 10 and earlier)."""
        try:
            return list(self.list_items("Webhook"))
        except GlpiApiError as e:
            if e.code != NOT_AN_ITEMTYPE:
                raise
            raise ConfigError(f"GLPI {self.instance} has no webhooks (GLPI 11 or later): "
                              "nothing was changed; poll it with `hookstream run poller`") from e

    def get_item(self, itemtype: str, items_id: int) -> dict[str, Any]:
        data: dict[str, Any] = self.request("GET", f"{itemtype}/{items_id}").json()
        return data

    def add_item(self, itemtype: str, fields: dict[str, Any]) -> int:
        data = self.request("POST", f"{itemtype}/", json={"input": fields}).json()
        return int(data["id"])

    def update_item(self, itemtype: str, items_id: int, fields: dict[str, Any]) -> None:
        self.request("PUT", f"{itemtype}/{items_id}", json={"input": fields})

    def user_ids(self, logins: Sequence[str]) -> dict[str, int]:
        """The GLPI user id of each login GLPI knows (compared as GLPI does: ignoring case);
        `^login$` makes GLPI's searchText an exact match instead of "contains"."""
        found: dict[str, int] = {}
        for login in logins:
            rows = self.request("GET", "User/", params={"searchText[name]": f"^{login}$",
                                                       "range": "0-9"}).json()
            for row in rows if isinstance(rows, list) else []:
                if str(row.get("name", "")).lower() == login.lower():
                    found[login] = int(row["id"])
        return found
