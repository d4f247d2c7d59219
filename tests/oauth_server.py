"""A real OAuth2 token endpoint (client credentials) on loopback, built on Authlib.

Authlib's framework-neutral `AuthorizationServer` with its `ClientCredentialsGrant` and
`BearerTokenGenerator` sits behind a small `http.server` adapter: `POST /token` issues
bearer tokens with a configurable `expires_in`. Client authentication follows RFC 6749
section 2.3.1 (HTTP Basic or `client_secret_post`); a wrong secret is answered 401.

The resource side uses Authlib's `ResourceProtector` with a `BearerTokenValidator`:
`authorized(headers)` is true only for a token this server issued that has neither
expired nor been revoked. Plug it into the webhook receiver with
`receiver.on(path, authorize=oauth.authorized)`.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from authlib.oauth2 import AuthorizationServer, OAuth2Error, ResourceProtector
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Payload, OAuth2Request, TokenMixin, grants
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return ""

    def get_allowed_scope(self, scope: str | None) -> str:
        return ""  # no scopes: GLPI sends `scope=` (empty)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


@dataclass
class Token(TokenMixin):
    access_token: str
    client_id: str
    issued_at: float
    expires_in: int
    revoked: bool = False

    def check_client(self, client: ClientMixin) -> bool:
        return bool(client.get_client_id() == self.client_id)

    def get_scope(self) -> str:
        return ""

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked


class _Payload(OAuth2Payload):
    def __init__(self, form: dict[str, str]):
        self._form = form

    @property
    def data(self) -> dict[str, str]:
        return self._form

    @property
    def datalist(self) -> Any:
        return {k: [v] for k, v in self._form.items()}


class _Request(OAuth2Request):
    """An Authlib request from what `http.server` parsed."""

    def __init__(self, method: str, uri: str, headers: Mapping[str, str], body: bytes):
        super().__init__(method, uri, headers=dict(headers))
        self._form = dict(parse_qsl(body.decode(), keep_blank_values=True))
        self.payload = _Payload(self._form)

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self._form


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post"]


class _Server(AuthorizationServer):
    def __init__(self, owner: OAuthServer):
        super().__init__()
        self.owner = owner
        self.register_grant(ClientCredentialsGrant)
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                lambda **_: secrets.token_urlsafe(24),
                expires_generator=lambda client, grant_type: owner.expires_in,
            ),
        )

    def query_client(self, client_id: str) -> Client | None:
        return self.owner.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        self.owner._issued(token, request.client.get_client_id())

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        return status, json.dumps(body).encode(), headers


class _Validator(BearerTokenValidator):
    def __init__(self, owner: OAuthServer):
        super().__init__()
        self.owner = owner

    def authenticate_token(self, token_string: str) -> Token | None:
        with self.owner._lock:
            return self.owner.tokens.get(token_string)


@dataclass
class _Headers:
    headers: dict[str, str]


class OAuthServer:
    """Token endpoint at `url`; counts token requests (`token_requests`), good or bad."""

    def __init__(self, clients: Mapping[str, str], expires_in: int = 3600):
        self.clients = {cid: Client(cid, secret) for cid, secret in clients.items()}
        self.expires_in = expires_in
        self.tokens: dict[str, Token] = {}  # every token issued, in order
        self.token_requests = 0
        self._lock = threading.Lock()
        self._authorization = _Server(self)
        self._resources = ResourceProtector()
        self._resources.register_token_validator(_Validator(self))
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.path != "/token":
                    self._answer(404, b"{}", [])
                    return
                with owner._lock:
                    owner.token_requests += 1
                request = _Request("POST", owner.url, self.headers, body)
                self._answer(*owner._authorization.create_token_response(request))

            def _answer(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/token"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _issued(self, token: dict[str, Any], client_id: str) -> None:
        with self._lock:
            self.tokens[token["access_token"]] = Token(
                token["access_token"], client_id, time.time(), int(token["expires_in"])
            )

    def issued(self) -> list[str]:
        with self._lock:
            return list(self.tokens)

    def revoke_all(self) -> None:
        with self._lock:
            for token in self.tokens.values():
                token.revoked = True

    def valid(self, token_string: str) -> bool:
        return self.authorized({"authorization": f"Bearer {token_string}"})

    def authorized(self, headers: Mapping[str, str]) -> bool:
        """Whether the request headers (any case) carry a currently valid bearer token."""
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        try:
            self._resources.validate_request(None, _Headers({"Authorization": auth}))
        except OAuth2Error:
            return False
        return True

    def __enter__(self) -> OAuthServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
