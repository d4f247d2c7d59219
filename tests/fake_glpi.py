"""A fake GLPI 11 for tests: it sends native webhooks exactly as GLPI does.

From GLPI's src/Webhook.php and src/QueuedWebhook.php: the body and the two signature
headers are computed once, when the webhook is queued (`X-GLPI-timestamp` = time() then,
`X-GLPI-signature` = hex HMAC-SHA256(secret, body . timestamp)), stored with the queued
row, and resent unchanged on every attempt; GLPI sets no Content-Type; the method is the
webhook's (POST, GET, PUT, PATCH or UPDATE) and the body goes with it even for GET. The CRA
challenge is a bare GET with `?crc_token=T` replacing the URL's query.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp

from hookstream.policy import cra_expected_answer, cra_token, cra_url, glpi_headers


@dataclass
class QueuedWebhook:
    """One row of glpi_queuedwebhooks: what every attempt resends."""

    url: str
    method: str
    body: bytes
    headers: dict[str, str]
    sent_try: int = 0
    statuses: list[int] = field(default_factory=list)


class FakeGlpiSender:
    def __init__(self, secret: str):
        self.secret = secret

    def queue(self, url: str, body: bytes, timestamp_s: int, method: str = "POST") -> QueuedWebhook:
        """Webhook::raise + QueuedWebhook: sign once, at queue time."""
        headers = glpi_headers(self.secret, body, timestamp_s)
        return QueuedWebhook(url, method.upper(), body, headers)

    async def attempt(self, session: aiohttp.ClientSession, row: QueuedWebhook) -> int:
        """One cron attempt: the stored request, byte for byte; any status >= 400 is a retry."""
        row.sent_try += 1
        # skip_auto_headers: GLPI (Guzzle) sends no Content-Type.
        async with session.request(
            row.method, row.url, data=row.body, headers=row.headers,
            skip_auto_headers=["Content-Type"],
        ) as response:
            await response.read()
            row.statuses.append(response.status)
            return response.status

    async def challenge(self, session: aiohttp.ClientSession, url: str) -> bool:
        """Webhook::validateCRAChallenge: GET url?crc_token=T, expect hex HMAC(secret, T)."""
        token = cra_token(self.secret)
        async with session.get(cra_url(url, token)) as response:
            text = await response.text()
            return response.status == 200 and text == cra_expected_answer(self.secret, token)
