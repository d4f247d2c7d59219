"""Acting as GLPI 11 for the demo: sends native webhooks to hookstream's ingest endpoint.

    python examples/glpi_webhooks.py --url http://127.0.0.1:8480 --instance glpi-demo \\
        --secret SECRET --file examples/events.jsonl

For each change in the file (the JSON lines of `hookstream produce`) it does what GLPI's
Webhook and QueuedWebhook classes do: the default body is `json_encode({item, event,
parent_item}, JSON_PRETTY_PRINT)`, `X-GLPI-timestamp` is taken once when the row is
queued and `X-GLPI-signature` = hex HMAC-SHA256(secret, body . timestamp); the row is
POSTed to `{url}/glpi/{instance}/{itemtype}` with no Content-Type, and resent unchanged
while the answer is >= 400 (GLPI's cron retries once a minute; here every 2 s, 10 times).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

from hookstream.policy import glpi_headers
from hookstream.render import default_payload


def send(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # GLPI's 5 s
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return 0, str(e)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the ingest endpoint's base URL")
    parser.add_argument("--instance", required=True)
    parser.add_argument("--secret", required=True, help="the instance's webhook secret")
    parser.add_argument("--file", required=True, help="changes, one JSON object a line")
    args = parser.parse_args()
    failed = 0
    with open(args.file, encoding="utf-8") as lines:
        changes = [json.loads(line) for line in lines if line.strip()]
    for change in changes:
        body = default_payload(change["item"], change["event"], change.get("parent_item"))
        row = glpi_headers(args.secret, body, int(time.time()))  # queued: signed once
        target = f"{args.url.rstrip('/')}/glpi/{args.instance}/{change['itemtype']}"
        attempts = 0
        while True:
            attempts += 1
            status, answer = send(target, body, row)
            if 200 <= status < 400 or attempts == 10:
                break
            time.sleep(2)
        failed += not 200 <= status < 400
        print(f"{change['itemtype']:<13} #{change['items_id']:<5} {change['event']:<6} "
              f"{len(body):>5} bytes -> {status} after {attempts} attempt(s) {answer[:60]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
