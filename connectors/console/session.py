"""The console's session cookie and CSRF tokens: pure, signed with a key of this process.

The cookie holds no token, not even its hash: it holds a session id derived from the
token's hash with the process's key (HMAC), a CSRF token, and an expiry, all signed. A
request finds its principal by deriving the id again for each configured token, so a
token removed from `admin_tokens` ends its sessions, and a cookie is worthless to another
process (its key is random unless one is given). Time is an argument, for the tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from connectors.admin.auth import Principal

COOKIE = "hookstream_session"
LOGIN_COOKIE = "hookstream_login"  # the login form's own CSRF nonce (login CSRF)
FLASH_COOKIE = "hookstream_flash"  # an action's result, shown once by the next page
SESSION_TTL_S = 8 * 3600
LOGIN_TTL_S = 15 * 60
FLASH_TTL_S = 5 * 60
FLASH_KINDS = ("success", "failure", "info")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Flash:
    """An action's result for the next page: its kind (success, failure, info) styles it."""

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    csrf: str
    expires_s: int


class Signer:
    """Signs and checks small JSON payloads with HMAC-SHA256 under one key."""

    def __init__(self, key: bytes):
        if len(key) < 32:
            raise ValueError("the console's session key needs at least 32 bytes")
        self._key = key

    def _mac(self, purpose: str, data: bytes) -> bytes:
        return hmac.new(self._key, purpose.encode() + b"\0" + data, hashlib.sha256).digest()

    def sign(self, purpose: str, payload: dict[str, object]) -> str:
        data = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(data)}.{_b64(self._mac(purpose, data))}"

    def check(self, purpose: str, value: str | None, now_s: float) -> dict[str, object] | None:
        """The payload of a value this signer signed for `purpose` and not expired; None
        for anything else (tampered, foreign, expired, malformed)."""
        if not value or len(value) > 1024 or value.count(".") != 1:
            return None
        data_b64, mac_b64 = value.split(".")
        try:
            data, mac = _unb64(data_b64), _unb64(mac_b64)
            if not hmac.compare_digest(mac, self._mac(purpose, data)):
                return None
            payload = json.loads(data)
        except ValueError:
            return None
        if not isinstance(payload, dict):
            return None
        expires = payload.get("e")
        if not isinstance(expires, int) or expires <= now_s:
            return None
        return {str(k): v for k, v in payload.items()}

    def session_id(self, digest: str) -> str:
        """The id of a token's sessions: its hash keyed by this process (not reversible,
        not usable as a bearer token, not the configured hash)."""
        return _b64(self._mac("sid", digest.encode()))

    # -- sessions ----------------------------------------------------------------------

    def new_session(self, digest: str, now_s: float) -> tuple[Session, str]:
        session = Session(self.session_id(digest), secrets.token_urlsafe(24),
                          int(now_s) + SESSION_TTL_S)
        return session, self.sign("session", {"s": session.sid, "c": session.csrf,
                                              "e": session.expires_s})

    def session(self, value: str | None, now_s: float) -> Session | None:
        payload = self.check("session", value, now_s)
        if payload is None:
            return None
        sid, csrf, expires = payload.get("s"), payload.get("c"), payload.get("e")
        if not isinstance(sid, str) or not isinstance(csrf, str) or not isinstance(expires, int):
            return None
        return Session(sid, csrf, expires)

    def principal(self, tokens: dict[str, Principal], session: Session) -> Principal | None:
        """The principal of a session, if its token is still configured."""
        found = None
        for digest, principal in tokens.items():  # every comparison made: constant time
            if hmac.compare_digest(self.session_id(digest), session.sid):
                found = principal
        return found

    # -- flash messages: the result of an action, set by the server, shown once ---------

    def new_flash(self, flash: Flash, sid: str, now_s: float) -> str:
        """A cookie value holding `flash` for the session `sid` only."""
        return self.sign("flash", {"k": flash.kind, "t": flash.text[:500], "s": sid,
                                   "e": int(now_s) + FLASH_TTL_S})

    def flash(self, value: str | None, sid: str, now_s: float) -> Flash | None:
        """The flash in a cookie value, if signed here for this session and not expired."""
        payload = self.check("flash", value, now_s)
        if payload is None or not isinstance(payload.get("s"), str) or not hmac.compare_digest(
                str(payload["s"]), sid):
            return None
        kind, text = payload.get("k"), payload.get("t")
        if kind not in FLASH_KINDS or not isinstance(text, str):
            return None
        return Flash(str(kind), text)

    # -- the login form's nonce --------------------------------------------------------

    def new_login_nonce(self, now_s: float) -> tuple[str, str]:
        nonce = secrets.token_urlsafe(24)
        return nonce, self.sign("login", {"n": nonce, "e": int(now_s) + LOGIN_TTL_S})

    def login_nonce(self, value: str | None, now_s: float) -> str | None:
        payload = self.check("login", value, now_s)
        nonce = None if payload is None else payload.get("n")
        return nonce if isinstance(nonce, str) else None


def same_secret(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
