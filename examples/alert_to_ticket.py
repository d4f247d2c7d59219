"""make run's last step: Alertmanager's notification (examples/alertmanager-firing.json)
posted to `hookstream run alerts` as Alertmanager posts it, firing then resolved, and the
ticket it gives read back from GLPI's REST API (apirest.php, as any API client does)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any


def call(url: str, method: str = "GET", body: Any = None, **headers: str) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json", **headers},
                                     method=method)
    with urllib.request.urlopen(request, timeout=5) as answer:
        text = answer.read()
    return json.loads(text) if text else None


def ready(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as answer:
        return bool(answer.status == 200)


def wait(what: str, check: Any, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = check()
        except OSError:
            found = None
        if found:
            return found
        time.sleep(0.3)
    sys.exit(f"timed out waiting for {what}; see the logs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", required=True, help="run alerts' base URL")
    parser.add_argument("--instance", required=True)
    parser.add_argument("--token", required=True, help="the route's bearer token")
    parser.add_argument("--glpi", required=True, help="GLPI's apirest.php URL")
    parser.add_argument("--app-token", required=True)
    parser.add_argument("--user-token", required=True)
    parser.add_argument("--file", type=Path, required=True)
    args = parser.parse_args()

    wait("run alerts to be ready", lambda: ready(f"{args.alerts}/readyz"))
    session = wait("GLPI", lambda: call(f"{args.glpi}/initSession", **{
        "App-Token": args.app_token, "Authorization": f"user_token {args.user_token}"}))
    session = session["session_token"]
    glpi = {"App-Token": args.app_token, "Session-Token": session}

    def tickets() -> list[dict[str, Any]]:
        return list(call(f"{args.glpi}/Ticket/?range=0-50", **glpi) or [])

    notification = json.loads(args.file.read_text())
    route = f"{args.alerts}/alerts/{args.instance}/alertmanager"
    auth = {"Authorization": f"Bearer {args.token}"}
    for _ in range(3):  # Alertmanager repeats a firing alert: one ticket all the same
        call(route, "POST", notification, **auth)
    print(f"   posted {notification['alerts'][0]['labels']['alertname']} firing, three times")
    [ticket] = wait("the ticket", tickets)
    time.sleep(2)  # the repeats are handled by now: still one ticket
    print(f"   GLPI ticket {ticket['id']}: {ticket['name']!r}, urgency {ticket['urgency']}, "
          f"status {ticket['status']}; tickets in GLPI: {len(tickets())}")
    for alert in notification["alerts"]:
        alert["status"], alert["endsAt"] = "resolved", "2026-12-07T09:30:00Z"
    notification["status"] = "resolved"
    call(route, "POST", notification, **auth)
    print("   posted it resolved")
    solved = wait("the solution", lambda: [t for t in tickets() if t["status"] == 5])
    print(f"   GLPI ticket {solved[0]['id']}: status {solved[0]['status']} (solved)")
    call(f"{args.glpi}/killSession", **glpi)


if __name__ == "__main__":
    main()
