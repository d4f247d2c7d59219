"""Signatures and the CRA challenge: fixed vectors, and the reference verifier.

Expected values are computed here with hmac/hashlib, independently of
hookstream.policy.signing; the literal vectors were produced with `openssl dgst -hmac`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import secrets
import string
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hookstream.policy import (
    cra_expected_answer,
    cra_token,
    cra_url,
    generate_secret,
    glpi_headers,
    glpi_signature,
    signature_headers,
    standard_headers,
    standard_key,
    standard_signature,
)
from tests.conftest import FIXTURES

SECRET = "Sup3rS3cretGLPIwebhookK3y0123456789abcde"  # 40 chars, like a GLPI secret
BODY = b'{"a":1}'
TS = 1_700_000_000


def hex_hmac(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


# --- GLPI signature -------------------------------------------------------------------


def test_glpi_signature_fixed_vector() -> None:
    # openssl: printf '{"a":1}1700000000' | openssl dgst -sha256 -hmac "$SECRET"
    expected = "a34d4c8b052a9ace901225b36b8f13d2854fe91f613c716f62b046d20bbd6f54"
    assert glpi_signature(SECRET, BODY, TS) == expected


@pytest.mark.parametrize(
    ("secret", "body", "ts"),
    [
        (SECRET, b"", 0),
        ("s", b"\xff\x00binary", 1),
        ("clé-été", '{"name":"été"}'.encode(), 2_000_000_000),
    ],
)
def test_glpi_signature_is_hmac_of_body_then_timestamp_digits(
    secret: str, body: bytes, ts: int
) -> None:
    assert glpi_signature(secret, body, ts) == hex_hmac(secret.encode(), body + str(ts).encode())


def test_glpi_signature_over_the_default_ticket_payload() -> None:
    body = (FIXTURES / "webhook_default_payloads" / "Ticket_new.json").read_bytes()
    expected = hex_hmac(SECRET.encode(), body + b"1700000000")
    assert glpi_signature(SECRET, body, TS) == expected
    # openssl over the file bytes followed by the timestamp digits:
    assert expected == "193398697d38dbcdf6bad9baca90474fae403cbfdfc76e54ccdce20a3a8f7b1a"


def test_glpi_headers() -> None:
    headers = glpi_headers(SECRET, BODY, TS)
    assert headers == {
        "X-GLPI-signature": glpi_signature(SECRET, BODY, TS),
        "X-GLPI-timestamp": "1700000000",
    }
    assert headers["X-GLPI-signature"] == headers["X-GLPI-signature"].lower()


# --- Standard Webhooks ----------------------------------------------------------------


def test_standard_signature_fixed_vector() -> None:
    # openssl: printf 'msg_1.1700000000.{"a":1}' | openssl dgst -sha256 -hmac ... -binary | base64
    expected = "v1,yoG06CAdSAu5uyi3fQgMlCwAw07N8EYEzejUi/ExSH4="
    assert standard_signature([SECRET], "msg_1", BODY, TS) == expected
    assert standard_headers(SECRET, "msg_1", BODY, TS) == {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": expected,
    }


def test_standard_key() -> None:
    raw = bytes(range(32))
    whsec = "whsec_" + base64.b64encode(raw).decode()
    assert standard_key(whsec) == raw
    assert standard_key(whsec.rstrip("=")) == raw  # unpadded, as often published
    assert standard_key(SECRET) == SECRET.encode()
    with pytest.raises(ValueError, match="base64"):
        standard_key("whsec_not*base64")
    with pytest.raises(ValueError, match="empty"):
        standard_key("whsec_")


def test_standard_headers_verify_with_a_whsec_secret() -> None:
    whsec = "whsec_" + base64.b64encode(b"\x01" * 24).decode()
    now = int(time.time())
    headers = standard_headers(whsec, "delivery-1", BODY, now)
    Webhook(whsec).verify(BODY, headers)


def test_standard_headers_verify_with_a_plain_glpi_secret() -> None:
    now = int(time.time())
    headers = standard_headers(SECRET, "delivery-1", BODY, now)
    # The documented receiver setup: the secret's UTF-8 bytes, base64'd behind whsec_...
    Webhook("whsec_" + base64.b64encode(SECRET.encode()).decode()).verify(BODY, headers)
    # ...or the raw bytes.
    Webhook(SECRET.encode()).verify(BODY, headers)
    # The trap: a bare str is base64-decoded by the library into another key.
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY, headers)


def test_standard_headers_sign_with_every_secret_during_a_rotation() -> None:
    old, new = "old-secret-0123456789", "whsec_" + base64.b64encode(b"new-key-bytes").decode()
    now = int(time.time())
    headers = standard_headers([old, new], "delivery-2", BODY, now)
    signatures = headers["webhook-signature"].split(" ")
    assert signatures == [
        standard_signature([old], "delivery-2", BODY, now),
        standard_signature([new], "delivery-2", BODY, now),
    ]
    Webhook(old.encode()).verify(BODY, headers)
    Webhook(new).verify(BODY, headers)


def test_standard_signature_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one"):
        standard_signature([], "id", BODY, TS)


def test_standard_headers_tampered_body_fails() -> None:
    now = int(time.time())
    headers = standard_headers(SECRET, "delivery-3", BODY, now)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET.encode()).verify(b'{"a":2}', headers)


# --- scheme selection -----------------------------------------------------------------


def test_signature_headers_by_scheme() -> None:
    glpi = glpi_headers(SECRET, BODY, TS)
    standard = standard_headers(SECRET, "d-1", BODY, TS)
    assert signature_headers("glpi", SECRET, "d-1", BODY, TS) == glpi
    assert signature_headers("standard", SECRET, "d-1", BODY, TS) == standard
    assert signature_headers("both", SECRET, "d-1", BODY, TS) == glpi | standard
    with pytest.raises(ValueError, match="unknown signature scheme"):
        signature_headers("hmac", SECRET, "d-1", BODY, TS)


# --- CRA challenge --------------------------------------------------------------------


def test_cra_fixed_vectors() -> None:
    token = "63c5e1d64831cc4ecef961afa30e12d3994a63593ee4a91a15de295a22170d1b"
    assert cra_token(SECRET) == token
    assert cra_token(SECRET) == hex_hmac(SECRET.encode(), b"validate_cra_challenge")
    answer = "01e4ab179d399f1bb2fd89bea11bfae9a4a56c9cff54a050a2723e2602dc9daa"
    assert cra_expected_answer(SECRET, token) == answer


def test_cra_round_trip() -> None:
    """A receiver that knows the secret answers what hookstream expects."""

    def receiver(secret: str, crc_token: str) -> str:
        return hex_hmac(secret.encode(), crc_token.encode())

    token = cra_token(SECRET)
    assert receiver(SECRET, token) == cra_expected_answer(SECRET, token)
    assert receiver("wrong secret", token) != cra_expected_answer(SECRET, token)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://hooks.example/glpi", "https://hooks.example/glpi?crc_token=T0"),
        ("https://hooks.example/glpi/", "https://hooks.example/glpi/?crc_token=T0"),
        ("http://hooks.example:8080", "http://hooks.example:8080?crc_token=T0"),
        # Guzzle's `query` option replaces the query string; the fragment is never sent.
        ("https://hooks.example/h?key=abc&x=1", "https://hooks.example/h?crc_token=T0"),
        ("https://hooks.example/h#frag", "https://hooks.example/h?crc_token=T0"),
        ("https://u:p@hooks.example/h?", "https://u:p@hooks.example/h?crc_token=T0"),
    ],
)
def test_cra_url(url: str, expected: str) -> None:
    assert cra_url(url, "T0") == expected


# --- secret generation ----------------------------------------------------------------


def test_generate_secret_alphabet_and_length() -> None:
    alphabet = set(string.ascii_letters + string.digits)
    for secret in (generate_secret(), generate_secret(secrets.SystemRandom())):
        assert len(secret) == 40
        assert set(secret) <= alphabet


def test_generate_secret_is_deterministic_given_the_randomness() -> None:
    first = generate_secret(random.Random(42))
    assert first == generate_secret(random.Random(42))
    assert first != generate_secret(random.Random(43))
    assert len(first) == 40 and first.isalnum() and first.isascii()
