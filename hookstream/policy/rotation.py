"""Secret rotation with a grace period: which secrets sign, and when the old one goes.

`rotate-secret` makes the new secret current and keeps the one it replaces (still
encrypted, the same ciphertext) as `previous_secret_encrypted` until
`previous_secret_until_ms`. Until then Standard Webhooks signatures carry both; GLPI's
signature and the CRA challenge use the current one only. Rotating again during a grace
period drops the older secret at once: a webhook holds at most two.

Pure functions: the time and the secret box are arguments.
"""

from __future__ import annotations

import re
from dataclasses import replace

from hookstream.policy.secrets import SecretBox
from hookstream.records import WebhookDefinition

MAX_GRACE_S = 30 * 24 * 3600
_GRACE = re.compile(r"([0-9]+)([smhd]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_grace(label: str) -> int:
    """Seconds in a grace period such as "24h", "90m", "7d" or "0" (no grace: the old
    secret stops signing at once); ValueError saying what is accepted otherwise."""
    match = _GRACE.fullmatch(label.strip())
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)] if match else -1
    if not 0 <= seconds <= MAX_GRACE_S:
        raise ValueError(f"grace {label!r} is not a period such as 24h, 90m, 7d or 0 "
                         f"(at most {MAX_GRACE_S // 86400}d)")
    return seconds


def previous_secret_live(webhook: WebhookDefinition, now_ms: int) -> bool:
    """Whether the previous secret still signs at `now_ms` (its grace period runs)."""
    return bool(webhook.previous_secret_encrypted) and now_ms < webhook.previous_secret_until_ms


def rotated(webhook: WebhookDefinition, new_secret: str, grace_s: int, now_ms: int,
            box: SecretBox) -> WebhookDefinition:
    """`webhook` with `new_secret` current and its current secret kept for `grace_s`
    (none kept when `grace_s` is 0); the version moves on. ValueError when the new secret
    is empty or the current one."""
    if not new_secret:
        raise ValueError("the new secret is empty")
    if new_secret == box.decrypt(webhook.secret_encrypted):
        raise ValueError("the new secret is the current one")
    keep = grace_s > 0
    return replace(
        webhook,
        version=webhook.version + 1,
        secret_encrypted=box.encrypt(new_secret),
        previous_secret_encrypted=webhook.secret_encrypted if keep else "",
        previous_secret_until_ms=now_ms + grace_s * 1000 if keep else 0,
    )


def without_expired_secret(webhook: WebhookDefinition, now_ms: int) -> WebhookDefinition:
    """`webhook` without its previous secret once the grace period is over (version moved
    on, to be republished); `webhook` itself when there is nothing to drop."""
    if not webhook.previous_secret_encrypted or previous_secret_live(webhook, now_ms):
        return webhook
    return replace(webhook, version=webhook.version + 1, previous_secret_encrypted="",
                   previous_secret_until_ms=0)
