"""Who may post alerts: each instance's routes, a bearer token or an HMAC key per source.

    bearer  `Authorization: Bearer <token>`: Alertmanager's http_config.authorization,
            Grafana's "Authentication Header Credentials"
    hmac    hex HMAC-SHA256 of the body, keyed with the secret, in the source's signature
            header; with a timestamp header, of `<timestamp>:<body>` and the timestamp
            within TIMESTAMP_TOLERANCE_S of now (Grafana 11's "HMAC Signature" settings)

Both compared in constant time (hmac.compare_digest). A refusal names what was wrong
(missing, malformed, mismatched, stale), never the secret nor what was sent.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from hookstream.records.alerts import AlertSource


class AlertAuth(StrEnum):
    BEARER = "bearer"
    HMAC = "hmac"


# (signature header, timestamp header) per source: Grafana's defaults, hookstream's for
# the Zabbix script (README) and anything else signing its body
SIGNATURE_HEADERS = {
    AlertSource.GRAFANA: ("X-Grafana-Alerting-Signature", "X-Grafana-Alerting-Timestamp"),
    AlertSource.ZABBIX: ("X-Hookstream-Signature", "X-Hookstream-Timestamp"),
    AlertSource.ALERTMANAGER: ("X-Hookstream-Signature", "X-Hookstream-Timestamp"),
}
TIMESTAMP_TOLERANCE_S = 300


@dataclass(frozen=True, slots=True)
class AlertRoute:
    scheme: str  # an AlertAuth
    secret: str = field(repr=False)  # "" when none is configured: every request is refused


@dataclass(frozen=True, slots=True)
class AlertInstance:
    """What `run alerts` knows of a GLPI instance: its routes by source."""

    name: str
    routes: Mapping[str, AlertRoute] = field(default_factory=dict)


def refusal(
    route: AlertRoute | None, source: str, headers: Mapping[str, str], body: bytes, now_s: float
) -> str | None:
    """None when the request carries the route's credentials, else why it is refused."""
    if route is None:
        return f"no {source} route on this instance"
    if not route.secret:
        return f"the {source} route has no secret configured"
    if route.scheme == AlertAuth.BEARER:
        return _bearer(route.secret, headers.get("Authorization", ""))
    signature, stamp = SIGNATURE_HEADERS[AlertSource(source)]
    return _hmac(route.secret, headers.get(signature), headers.get(stamp), body, now_s, signature)


def sign(secret: str, body: bytes, timestamp: str | None = None) -> str:
    """The hex signature a source sends (tests, bench, README's Zabbix script does the same)."""
    message = body if timestamp is None else timestamp.encode() + b":" + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _bearer(secret: str, authorization: str) -> str | None:
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "missing Authorization: Bearer header"
    if not hmac.compare_digest(token.strip().encode(), secret.encode()):
        return "bearer token does not match"
    return None


def _hmac(
    secret: str, given: str | None, timestamp: str | None, body: bytes, now_s: float, header: str
) -> str | None:
    if not given:
        return f"missing {header} header"
    if timestamp is not None:
        if not timestamp.isdigit():
            return "timestamp header is not Unix seconds"
        if abs(now_s - int(timestamp)) > TIMESTAMP_TOLERANCE_S:
            return f"timestamp more than {TIMESTAMP_TOLERANCE_S}s from now"
    expected = sign(secret, body, timestamp).encode()
    if not hmac.compare_digest(expected, given.strip().lower().encode()):
        return "signature does not match"
    return None
