"""Secret rotation on the real broker: `hookstream webhooks rotate-secret`, a receiver on
loopback that verifies deliveries during the grace period with the old secret and with the
new one, and after it with the new one only; the admin service's sweep then removes the old
secret from the definitions topic.

The delivery service and the admin context get a clock the test moves past the end of the
grace period (time as an argument), so no step races a short real grace period."""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine
from standardwebhooks.webhooks import Webhook

from connectors.admin import AdminContext
from hookstream.config import Settings
from hookstream.control import admin, current_webhooks
from hookstream.io import read_all
from hookstream.policy import secret_box
from hookstream.records import WEBHOOKS, Codec, WebhookDefinition
from tests.integration.harness import (
    RunningDelivery,
    apply_webhooks,
    cli_env,
    publish,
    request_for,
    wait_until,
)
from tests.receiver import Received, Receiver

OLD = "oldSecretOldSecretOldSecretOldSecret0123"  # as GLPI generates: 40 of [0-9a-zA-Z]
NEW = "whsec_" + base64.b64encode(b"rotated-key-rotated-key!").decode()
HOUR_S = 3600


def cli(settings: Settings, *args: str, stdin: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hookstream.cli", *args], input=stdin,
                          env=cli_env(settings), text=True, capture_output=True, timeout=120,
                          check=False)


def standard(got: Received) -> dict[str, str]:
    return {k: v for k, v in got.headers.items() if k.startswith("webhook-")}


def spec_signature(key: bytes, got: Received) -> str:
    message = f"{got.headers['webhook-id']}.{got.headers['webhook-timestamp']}.".encode()
    digest = hmac.new(key, message + got.body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def glpi_signature(secret: str, got: Received) -> str:
    message = got.body + got.headers["x-glpi-timestamp"].encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def latest_definition(settings: Settings, webhook_id: str) -> WebhookDefinition:
    codec, latest = Codec(), None
    for msg in read_all(settings, settings.topic(WEBHOOKS)):
        if (msg.key() or b"").decode() == webhook_id:
            latest = codec.decode(msg.value(), msg.headers(), WebhookDefinition)
    assert latest is not None
    return latest


def test_both_secrets_sign_during_the_grace_period_then_the_old_one_is_gone(
        settings: Settings, tmp_path: Path) -> None:
    shift_s = [0.0]  # how far past the real time the services' clock runs

    def clock() -> float:
        return time.time() + shift_s[0]

    with Receiver() as receiver:
        url = receiver.url("/in")
        apply_webhooks(settings, tmp_path, {"id": "rotating", "url": url, "secret": OLD,
                                            "signature_scheme": "both",
                                            "allowed_networks": ["127.0.0.0/8"]})
        with RunningDelivery(settings, clock=clock) as running:
            rotation = cli(settings, "webhooks", "rotate-secret", "rotating", "--grace", "1h",
                           "--secret", NEW)
            assert rotation.returncode == 0, rotation.stderr
            assert rotation.stdout.startswith("rotating v2: secret rotated; the previous "
                                              "secret also signs until ")
            assert OLD not in rotation.stdout + rotation.stderr
            assert NEW not in rotation.stdout  # given by the operator: not repeated
            assert wait_until(lambda: running.service is not None and
                              running.service.webhooks["rotating"].version == 2)
            publish(settings, [request_for("rotating", url, 1)])
            [during] = receiver.wait_for(1, "/in")
            shift_s[0] = HOUR_S + 1  # the grace period is over
            publish(settings, [request_for("rotating", url, 2)])
            after = receiver.wait_for(2, "/in")[-1]

    # During the grace period: either secret verifies, with the reference verifier.
    Webhook(NEW).verify(during.body, standard(during))
    Webhook(OLD.encode()).verify(during.body, standard(during))
    new_key, old_key = base64.b64decode(NEW.removeprefix("whsec_")), OLD.encode()
    assert during.headers["webhook-signature"] == (
        f"{spec_signature(new_key, during)} {spec_signature(old_key, during)}")
    assert during.headers["x-glpi-signature"] == glpi_signature(NEW, during)  # one header: new
    # After it: the new secret alone (the timestamp is an hour ahead, past the reference
    # verifier's tolerance, so the spec's HMAC is computed here).
    assert after.headers["webhook-signature"] == spec_signature(new_key, after)
    assert after.headers["x-glpi-signature"] == glpi_signature(NEW, after)

    # The topic still holds the old secret (encrypted) until something sweeps.
    rotated = latest_definition(settings, "rotating")
    assert secret_box(settings).decrypt(rotated.previous_secret_encrypted) == OLD
    listed = cli(settings, "webhooks", "list", "--json")
    assert '"previous_secret": "<redacted>"' in listed.stdout and OLD not in listed.stdout

    # The admin service sweeps: the latest record for the webhook has no previous secret.
    ctx = AdminContext(settings, create_engine("sqlite://"), clock=clock, sweep_every_s=0.5)
    try:
        assert wait_until(lambda: latest_definition(settings, "rotating").version == 3, 60)
    finally:
        ctx.close()
    swept = latest_definition(settings, "rotating")
    assert (swept.previous_secret_encrypted, swept.previous_secret_until_ms) == ("", 0)
    assert secret_box(settings).decrypt(swept.secret_encrypted) == NEW
    raw = b"".join(m.value() or b"" for m in read_all(settings, settings.topic(WEBHOOKS)))
    assert OLD.encode() not in raw and NEW.encode() not in raw  # encrypted on the topic


def test_rotate_secret_generates_a_secret_and_refuses_an_unknown_id(
        settings: Settings, tmp_path: Path) -> None:
    apply_webhooks(settings, tmp_path, {"id": "plain", "url": "https://example.test/h",
                                        "secret": OLD})
    generated = cli(settings, "webhooks", "rotate-secret", "plain", "--grace", "0")
    assert generated.returncode == 0, generated.stderr
    first, second = generated.stdout.splitlines()
    assert first == "plain v2: secret rotated; the previous secret no longer signs"
    secret = second.removeprefix("new secret: ")
    assert len(secret) == 40 and secret.isalnum()  # shown this once
    definition = current_webhooks(settings)["plain"]
    assert secret_box(settings).decrypt(definition.secret_encrypted) == secret
    assert definition.previous_secret_encrypted == ""

    unknown = cli(settings, "webhooks", "rotate-secret", "nope")
    assert (unknown.returncode, unknown.stderr) == (2, "hookstream: no webhook 'nope'\n")
    same = cli(settings, "webhooks", "rotate-secret", "plain", "--secret", "-",
               stdin=secret + "\n")  # read from stdin: kept out of the process list
    assert (same.returncode, same.stderr) == (
        2, "hookstream: plain: the new secret is the current one\n")
    assert secret not in same.stderr + same.stdout
    assert current_webhooks(settings)["plain"].version == 2  # nothing published


def test_apply_and_rotate_drop_the_expired_secrets_of_every_webhook(
        settings: Settings, tmp_path: Path) -> None:
    """With no admin service running, the next `webhooks apply` (or rotate-secret) removes
    expired secrets from the topic, also of webhooks it was not given."""
    apply_webhooks(settings, tmp_path, {"id": "one", "url": "https://example.test/1"},
                   {"id": "two", "url": "https://example.test/2"})
    start_ms = int(time.time() * 1000)
    admin.rotate_secret(settings, "one", HOUR_S, NEW, now_ms=start_ms)
    admin.rotate_secret(settings, "two", 2 * HOUR_S, NEW, now_ms=start_ms)
    path = tmp_path / "two.yaml"
    path.write_text("id: two\ninstance: glpi-a\nname: two\nitemtype: Ticket\nevent: new\n"
                    "url: https://example.test/2\nis_active: true\n")
    # an hour later: one's grace period is over, two's runs
    [(two, state)] = admin.apply_webhooks(settings, path, now_ms=start_ms + HOUR_S * 1000)
    assert (two.version, state, two.previous_secret_until_ms) == (
        2, "unchanged", start_ms + 2 * HOUR_S * 1000)
    one = latest_definition(settings, "one")
    assert (one.version, one.previous_secret_encrypted, one.previous_secret_until_ms) == (3, "", 0)
    # two hours later, a rotation of one also sweeps two
    admin.rotate_secret(settings, "one", 0, "third-secret", now_ms=start_ms + 2 * HOUR_S * 1000)
    two = latest_definition(settings, "two")
    assert (two.version, two.previous_secret_encrypted) == (3, "")
