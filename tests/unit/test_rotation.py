"""Secret rotation: signing with both secrets during the grace period, expiry with the time
as an argument, and what `webhooks apply` keeps or drops.

Signatures are checked with the Standard Webhooks reference verifier and with HMACs
computed here from the spec ("v1," + base64 HMAC-SHA256 of "<id>.<timestamp>.<body>"),
independently of hookstream.policy.signing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from connectors.delivery.http import Target
from hookstream.control import load_definitions, redacted
from hookstream.policy import (
    SecretBox,
    parse_grace,
    previous_secret_live,
    rotated,
    signature_headers,
    without_expired_secret,
)
from hookstream.records import WebhookDefinition

BOX = SecretBox(Fernet.generate_key().decode())
OLD = "oldSecretOldSecretOldSecretOldSecret0123"  # a GLPI secret: used as its UTF-8 bytes
NEW = "whsec_" + base64.b64encode(b"the new key, 24 bytes!!!").decode()
BODY = b'{"item": 1}'
NOW_MS = 1_800_000_000_000
HOUR_MS = 3_600_000


def webhook(secret: str = OLD) -> WebhookDefinition:
    return WebhookDefinition("w1", 4, "glpi", "n", "Ticket", "new", "https://example.com/h",
                             BOX.encrypt(secret), signature_scheme="both")


def spec_signature(key: bytes, msg_id: str, timestamp_s: int, body: bytes) -> str:
    digest = hmac.new(key, f"{msg_id}.{timestamp_s}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def whsec_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


# --- the grace period -------------------------------------------------------------------


@pytest.mark.parametrize(("label", "seconds"), [
    ("24h", 86_400), ("90m", 5_400), ("7d", 604_800), ("45s", 45), ("0", 0), ("30d", 2_592_000),
    (" 2h ", 7_200), ("120", 120),
])
def test_grace_labels(label: str, seconds: int) -> None:
    assert parse_grace(label) == seconds


@pytest.mark.parametrize("label", ["", "2x", "-1h", "1.5h", "31d", "h", "24 h"])
def test_bad_grace_labels_say_what_is_accepted(label: str) -> None:
    with pytest.raises(ValueError, match=r"is not a period such as 24h, 90m, 7d or 0"):
        parse_grace(label)


def test_rotation_keeps_the_current_secret_for_the_grace_period() -> None:
    before = webhook()
    after = rotated(before, NEW, 3600, NOW_MS, BOX)
    assert BOX.decrypt(after.secret_encrypted) == NEW
    assert after.previous_secret_encrypted == before.secret_encrypted  # same ciphertext
    assert after.previous_secret_until_ms == NOW_MS + HOUR_MS
    assert after.version == before.version + 1
    assert replace(after, version=4, secret_encrypted=before.secret_encrypted,
                   previous_secret_encrypted="", previous_secret_until_ms=0) == before


def test_no_grace_replaces_the_secret_at_once() -> None:
    after = rotated(webhook(), NEW, 0, NOW_MS, BOX)
    assert (after.previous_secret_encrypted, after.previous_secret_until_ms) == ("", 0)
    assert not previous_secret_live(after, NOW_MS)


def test_rotating_again_during_the_grace_period_drops_the_older_secret() -> None:
    third = "third-secret-third-secret-third-secret-3"
    once = rotated(webhook(), NEW, 3600, NOW_MS, BOX)
    twice = rotated(once, third, 600, NOW_MS + 1000, BOX)
    assert BOX.decrypt(twice.secret_encrypted) == third
    assert BOX.decrypt(twice.previous_secret_encrypted) == NEW  # OLD is gone
    assert twice.previous_secret_until_ms == NOW_MS + 1000 + 600_000


@pytest.mark.parametrize(("secret", "message"), [
    (OLD, "the new secret is the current one"), ("", "the new secret is empty")])
def test_a_rotation_needs_a_new_secret(secret: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        rotated(webhook(), secret, 3600, NOW_MS, BOX)
    assert OLD not in str(caught.value)


def test_the_previous_secret_expires_at_the_end_of_the_grace_period() -> None:
    after = rotated(webhook(), NEW, 3600, NOW_MS, BOX)
    end = NOW_MS + HOUR_MS
    assert previous_secret_live(after, end - 1)
    assert not previous_secret_live(after, end)
    assert without_expired_secret(after, end - 1) is after  # nothing to republish yet
    swept = without_expired_secret(after, end)
    assert (swept.previous_secret_encrypted, swept.previous_secret_until_ms) == ("", 0)
    assert swept.version == after.version + 1 and swept.secret_encrypted == after.secret_encrypted
    assert without_expired_secret(swept, end + HOUR_MS) is swept


# --- signing ----------------------------------------------------------------------------


def test_standard_webhooks_signature_carries_the_new_then_the_old_secret() -> None:
    now = int(time.time())
    headers = signature_headers("standard", NEW, "d-1", BODY, now, previous=[OLD])
    assert headers["webhook-signature"] == " ".join([
        spec_signature(whsec_key(NEW), "d-1", now, BODY),
        spec_signature(OLD.encode(), "d-1", now, BODY)])
    Webhook(NEW).verify(BODY, headers)  # a receiver already on the new secret
    Webhook(OLD.encode()).verify(BODY, headers)  # one still on the old secret
    with pytest.raises(WebhookVerificationError):
        Webhook(b"some other key").verify(BODY, headers)


def test_glpi_signature_uses_the_new_secret_only() -> None:
    headers = signature_headers("both", NEW, "d-1", BODY, 1_700_000_000, previous=[OLD])
    assert headers["X-GLPI-signature"] == hmac.new(
        NEW.encode(), BODY + b"1700000000", hashlib.sha256).hexdigest()
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert signature_headers("glpi", NEW, "d-1", BODY, 1_700_000_000, previous=[OLD]) == (
        signature_headers("glpi", NEW, "d-1", BODY, 1_700_000_000))


def test_the_sender_target_signs_with_the_old_secret_until_it_expires() -> None:
    target = Target.of(rotated(webhook(), NEW, 3600, NOW_MS, BOX), BOX)
    assert target.secret == NEW
    assert target.previous_secrets(NOW_MS / 1000) == (OLD,)
    assert target.previous_secrets(NOW_MS / 1000 + 3599.9) == (OLD,)
    assert target.previous_secrets(NOW_MS / 1000 + 3600) == ()
    assert OLD not in repr(target) and NEW not in repr(target)
    assert Target.of(webhook(), BOX).previous_secrets(0) == ()


# --- `webhooks apply` after a rotation --------------------------------------------------


def apply_yaml(tmp_path: Path, current: WebhookDefinition, now_ms: int,
               extra: str = "") -> WebhookDefinition:
    path = tmp_path / "hooks.yaml"
    path.write_text("id: w1\ninstance: glpi\nname: n\nitemtype: Ticket\nevent: new\n"
                    f"url: https://example.com/h\nsignature_scheme: both\n{extra}")
    [applied] = load_definitions(path, BOX, {"w1": current}, [10], now_ms=now_ms)
    return applied


def test_apply_keeps_a_rotation_in_its_grace_period_and_drops_it_after(tmp_path: Path) -> None:
    current = rotated(webhook(), NEW, 3600, NOW_MS, BOX)
    assert apply_yaml(tmp_path, current, NOW_MS + 1) is current  # unchanged
    changed = apply_yaml(tmp_path, current, NOW_MS + 1, "comment: c\n")
    assert changed.previous_secret_encrypted == current.previous_secret_encrypted
    assert changed.previous_secret_until_ms == current.previous_secret_until_ms
    expired = apply_yaml(tmp_path, current, NOW_MS + HOUR_MS)
    assert (expired.previous_secret_encrypted, expired.previous_secret_until_ms) == ("", 0)
    assert expired.version == current.version + 1
    assert BOX.decrypt(expired.secret_encrypted) == NEW


def test_apply_with_another_secret_replaces_it_and_ends_the_rotation(tmp_path: Path) -> None:
    current = rotated(webhook(), NEW, 3600, NOW_MS, BOX)
    replaced = apply_yaml(tmp_path, current, NOW_MS + 1, "secret: yet-another-secret\n")
    assert BOX.decrypt(replaced.secret_encrypted) == "yet-another-secret"
    assert (replaced.previous_secret_encrypted, replaced.previous_secret_until_ms) == ("", 0)


def test_rotation_fields_cannot_be_set_from_yaml(tmp_path: Path) -> None:
    from hookstream.errors import InvalidDefinition

    with pytest.raises(InvalidDefinition, match="unknown field 'previous_secret_until_ms'"):
        apply_yaml(tmp_path, webhook(), NOW_MS, "previous_secret_until_ms: 1\n")


def test_shown_definition_says_only_that_a_previous_secret_exists_and_until_when() -> None:
    shown = redacted(rotated(webhook(), NEW, 3600, NOW_MS, BOX))
    assert shown["previous_secret"] == "<redacted>"
    assert shown["previous_secret_until_ms"] == NOW_MS + HOUR_MS
    assert "previous_secret_encrypted" not in shown
    assert redacted(webhook())["previous_secret"] == ""
