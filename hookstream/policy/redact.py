"""Request headers as they may be stored and shown: credentials redacted, signatures kept.

A credential is replaced by a mask that keeps its format and length, so an admin sees that
it was sent and in which shape (`Bearer ••••(43 chars)`) without the value. The GLPI
signature and timestamp and the Standard Webhooks headers are not secrets (a signature
proves the body, it does not open anything) and are kept, so a receiver's signature
failure can be checked against what was sent. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

MASK = "••••"

# Signature headers: never redacted, whatever words their names contain.
SIGNATURE_HEADERS = frozenset({
    "x-glpi-signature", "x-glpi-timestamp", "webhook-id", "webhook-timestamp",
    "webhook-signature",
})
# Words that make a header name a credential (custom headers included).
_CREDENTIAL_WORDS = ("authorization", "token", "secret", "api-key", "apikey", "api_key",
                     "cookie", "password", "passwd", "signature", "credential", "session")
# Authorization schemes kept in front of the mask.
_SCHEMES = ("bearer", "basic", "digest", "token", "apikey", "hmac")


def masked(value: str) -> str:
    """`••••(N chars)`: present, its length, not its value."""
    return f"{MASK}({len(value)} chars)"


@lru_cache(maxsize=4096)  # a handful of header names, asked about on every attempt
def is_credential(name: str) -> bool:
    lower = name.lower()
    if lower in SIGNATURE_HEADERS:
        return False
    return any(word in lower for word in _CREDENTIAL_WORDS)


def redact_value(name: str, value: str) -> str:
    """One header's value as shown: unchanged, or masked keeping its format. Idempotent:
    a value already masked is left as it is."""
    if not is_credential(name) or MASK in value:
        return value
    lower = name.lower()
    if lower in ("cookie", "set-cookie"):
        # Cookie names are not secret and say which session was sent.
        parts = []
        for part in value.split(";"):
            key, eq, val = part.strip().partition("=")
            parts.append(f"{key}={masked(val)}" if eq else masked(key))
        return "; ".join(parts)
    scheme, space, rest = value.partition(" ")
    if space and scheme.lower() in _SCHEMES:
        return f"{scheme} {masked(rest.strip())}"
    return masked(value)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Every header, credentials masked (see module docstring)."""
    return {name: redact_value(name, value) for name, value in headers.items()}
