"""An OIDC token endpoint on loopback for Kafka's OAUTHBEARER: client credentials in, an RS256
JWT out (`sub` = the client id, the principal Kafka sees), its public key at `/jwks`, where
the broker's OAuthBearerValidatorCallbackHandler reads it."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

KEY_ID = "hookstream-test"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(n: int) -> str:
    return _b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class OidcServer:
    def __init__(self, clients: Mapping[str, str], audience: str = "kafka"):
        self.clients, self.audience = dict(clients), audience
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.tokens_issued = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/jwks":
                    self._answer(200, owner.jwks())
                else:
                    self._answer(404, {})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                form = dict(parse_qsl(body.decode()))
                client, secret = form.get("client_id", ""), form.get("client_secret", "")
                basic = self.headers.get("Authorization", "")
                if basic.startswith("Basic "):
                    client, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
                if form.get("grant_type") != "client_credentials":
                    self._answer(400, {"error": "unsupported_grant_type"})
                elif owner.clients.get(client) != secret or not secret:
                    self._answer(401, {"error": "invalid_client"})
                else:
                    owner.tokens_issued += 1
                    self._answer(200, {"access_token": owner.token(client),
                                       "token_type": "Bearer", "expires_in": 3600})

            def _answer(self, status: int, data: Any) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def token(self, subject: str) -> str:
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": KEY_ID}
        claims = {"sub": subject, "aud": self.audience, "iat": now, "exp": now + 3600,
                  "iss": self.url, "scope": "kafka"}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def jwks(self) -> dict[str, Any]:
        public = self._key.public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": KEY_ID,
                          "n": _uint(public.n), "e": _uint(public.e)}]}

    def __enter__(self) -> OidcServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
