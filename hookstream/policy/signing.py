"""Webhook signatures and the CRA challenge, byte for byte as receivers check them.

Two schemes are supported, alone or together:

* GLPI's own: `X-GLPI-signature` is the lowercase hex HMAC-SHA256 of the body
  bytes immediately followed by the timestamp digits, keyed with the secret.
* Standard Webhooks (Svix and others): `webhook-signature: v1,<base64>` over
  "<id>.<timestamp>.<body>", several space-separated signatures during a key
  rotation.

Pure functions: secrets, timestamps and randomness are arguments.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
from collections.abc import Sequence
from typing import Protocol
from urllib.parse import urlencode, urlsplit, urlunsplit

SCHEMES = ("glpi", "standard", "both")

# GLPI derives its CRA token from this fixed message (Webhook::showForm).
_CRA_MESSAGE = b"validate_cra_challenge"
_STANDARD_PREFIX = "whsec_"
_SECRET_ALPHABET = string.digits + string.ascii_letters
_SECRET_LENGTH = 40


class RandomSource(Protocol):
    """The part of random.Random / secrets.SystemRandom that generate_secret uses."""

    def choice(self, seq: Sequence[str], /) -> str: ...


def _hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def glpi_signature(secret: str, body: bytes, timestamp_s: int) -> str:
    """GLPI's signature: hex HMAC-SHA256(secret, body + str(timestamp_s)), lowercase."""
    return _hmac_sha256(secret.encode(), body + str(timestamp_s).encode()).hex()


def glpi_headers(secret: str, body: bytes, timestamp_s: int) -> dict[str, str]:
    """The two headers GLPI sends with every webhook, spelled as GLPI spells them."""
    return {
        "X-GLPI-signature": glpi_signature(secret, body, timestamp_s),
        "X-GLPI-timestamp": str(timestamp_s),
    }


def standard_key(secret: str) -> bytes:
    """The HMAC key a Standard Webhooks signature uses for `secret`.

    A "whsec_<base64>" secret (the Standard Webhooks format) is its decoded bytes,
    so receivers use it as given: `Webhook("whsec_...")`. Any other secret, such
    as a 40-character GLPI secret, is used as its UTF-8 bytes, the same key GLPI's
    own signature uses. Receivers then verify with
    `Webhook("whsec_" + base64(secret))` or `Webhook(secret.encode())`; passing
    the plain secret as `Webhook(secret)` would base64-decode it into another key.

    Raises ValueError when a whsec_ secret is not valid base64.
    """
    if not secret.startswith(_STANDARD_PREFIX):
        return secret.encode()
    encoded = secret[len(_STANDARD_PREFIX) :]
    # Padding is often dropped from published secrets; restore it before decoding.
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(padded, validate=True)
    except binascii.Error as e:
        raise ValueError("whsec_ secret is not valid base64") from e
    if not key:
        raise ValueError("whsec_ secret is empty")
    return key


def standard_signature(keys: Sequence[str], msg_id: str, body: bytes, timestamp_s: int) -> str:
    """The `webhook-signature` value: one "v1,<base64>" per secret, space-separated.

    Signing with the old and the new secret during a rotation lets receivers
    switch keys at their own pace: any one valid signature passes.
    """
    if not keys:
        raise ValueError("at least one secret is needed to sign")
    message = f"{msg_id}.{timestamp_s}.".encode() + body
    signatures = (
        "v1," + base64.b64encode(_hmac_sha256(standard_key(key), message)).decode() for key in keys
    )
    return " ".join(signatures)


def standard_headers(
    secret: str | Sequence[str], msg_id: str, body: bytes, timestamp_s: int
) -> dict[str, str]:
    """Standard Webhooks headers; `secret` may list several secrets during a rotation."""
    keys = [secret] if isinstance(secret, str) else list(secret)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": standard_signature(keys, msg_id, body, timestamp_s),
    }


def signature_headers(
    scheme: str,
    secret: str,
    delivery_id: str,
    body: bytes,
    timestamp_s: int,
    previous: Sequence[str] = (),
) -> dict[str, str]:
    """Signature headers for `scheme`: "glpi", "standard" or "both".

    The delivery id is the Standard Webhooks message id: it is stable across
    attempts, which is what lets receivers deduplicate retries. `previous` lists
    secrets still in their rotation grace period: the Standard Webhooks header
    carries their signatures after the current one's; GLPI's single header has
    room for one signature, the current secret's.
    """
    if scheme == "glpi":
        return glpi_headers(secret, body, timestamp_s)
    standard = standard_headers([secret, *previous], delivery_id, body, timestamp_s)
    if scheme == "standard":
        return standard
    if scheme == "both":
        return glpi_headers(secret, body, timestamp_s) | standard
    raise ValueError(f"unknown signature scheme {scheme!r}, expected one of {SCHEMES}")


def cra_token(secret: str) -> str:
    """The CRA challenge token GLPI sends: hex HMAC-SHA256(secret, "validate_cra_challenge").

    It depends on the secret alone, so it is the same for every challenge.
    """
    return _hmac_sha256(secret.encode(), _CRA_MESSAGE).hex()


def cra_expected_answer(secret: str, token: str) -> str:
    """The body a target must answer the challenge with: hex HMAC-SHA256(secret, token)."""
    return _hmac_sha256(secret.encode(), token.encode()).hex()


def cra_url(url: str, token: str) -> str:
    """The URL of the CRA challenge request, built as GLPI builds it.

    GLPI (Webhook::validateCRAChallenge) gives Guzzle the webhook URL as
    `base_uri` and requests "" with the option `query => ['crc_token' => T]`;
    Guzzle's `query` option replaces the URI's query string. So any query the
    webhook URL has is dropped, not extended: "https://h/hook?a=1" is challenged at
    "https://h/hook?crc_token=T". The fragment is dropped too: it is never sent.
    """
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode({"crc_token": token}), ""))


def generate_secret(rand: RandomSource | None = None) -> str:
    """A new 40-character secret of [0-9a-zA-Z], like GLPI's generateRandomSecret.

    `rand` defaults to the operating system's CSPRNG; tests pass a seeded
    random.Random to get a fixed value.
    """
    chooser: RandomSource = rand if rand is not None else secrets.SystemRandom()
    return "".join(chooser.choice(_SECRET_ALPHABET) for _ in range(_SECRET_LENGTH))
