"""Console benchmark: server-side time of the web console's pages over a large log store.

Run by hand, never by the tests:

    .venv/bin/python bench/console.py [--deliveries 1000000] [--only sqlite|postgresql]

The log store is loaded as bench/logstore.py loads it (200 webhooks, 10 instances, 5 % not
delivered, every row within the last 24 hours: the worst case of the webhooks page's
counts), then each page is requested through the admin app in-process (FastAPI's
TestClient, logged in with a session cookie): routing, the session check, the queries,
the Jinja2 rendering, timed by a middleware of the app (no client, no network): p50 /
p95 ms of 50 requests each. The admin context is a stand-in without Kafka (the pages
read the log store; the webhooks come from memory).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient

from bench.logstore import T0, load, request
from connectors.admin import create_app, new_token, parse_tokens
from connectors.logstore import open_engine
from hookstream.config import load_settings
from hookstream.records import WebhookDefinition


class BenchContext:
    """What the console reads of AdminContext, without the Kafka follower."""

    def __init__(self, engine: Any, now_s: float):
        self.engine, self.now_s = engine, now_s
        self.hooks = {f"hook-{n}": WebhookDefinition(
            id=f"hook-{n}", version=1, instance=f"glpi-{n % 10}", name=f"hook {n}",
            itemtype="Ticket", event="update", url="https://target.test/in",
            secret_encrypted="", is_active=True) for n in range(200)}

    def clock(self) -> float:
        return self.now_s

    def webhooks(self) -> dict[str, WebhookDefinition]:
        return dict(self.hooks)

    def webhook(self, webhook_id: str) -> WebhookDefinition | None:
        return self.hooks.get(webhook_id)

    def preview(self, webhook: WebhookDefinition, event: dict[str, Any]) -> dict[str, Any]:
        return {"matches": False, "reason": "not rendered in this benchmark"}

    def ready(self) -> bool:
        return True


SERVER_MS: list[float] = []  # filled by the app's own middleware: server-side time only


def timed(client: TestClient, path: str, runs: int = 50) -> tuple[float, float]:
    SERVER_MS.clear()
    for _ in range(runs):
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.status_code)
    samples = list(SERVER_MS)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * len(samples)) - 1]


def pages(url: str, count: int, state: str) -> None:
    settings = load_settings(env={}, check_dns=False, state_dir=state, logstore_url=url)
    engine = open_engine(settings)
    print(f"    loaded {count:,} deliveries in {load(engine, count):.0f}s", flush=True)
    now_s = (T0 + count * 10) / 1000 + 3600  # every row within the last 24 hours
    token, line = new_token("bench", "*", "ro")
    app = create_app(BenchContext(engine, now_s), parse_tokens([line]))  # type: ignore[arg-type]

    @app.middleware("http")
    async def clocked(req: Any, call_next: Any) -> Any:
        started = time.perf_counter()
        answer = await call_next(req)
        SERVER_MS.append((time.perf_counter() - started) * 1000)
        return answer

    client = TestClient(app, follow_redirects=False)
    nonce = re.search(r'name="nonce" value="([^"]+)"', client.get("/login").text)
    assert nonce is not None
    assert client.post("/login", data={"nonce": nonce.group(1), "token": token}
                       ).status_code == 303
    one = request(count // 2)
    for path in ("/queue", "/queue/live", "/queue?state=dead_lettered",
                 "/queue?webhook=hook-7", "/webhooks", "/webhooks/hook-7",
                 f"/deliveries/{one.delivery_id}", "/items/glpi-3/Ticket/123"):
        p50, p95 = timed(client, path)
        print(f"  {path}: p50 {p50:.1f} ms, p95 {p95:.1f} ms", flush=True)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    from tests.pg import start_postgres

    server, made = None, []
    try:
        for kind in ("sqlite", "postgresql"):
            if args.only and kind != args.only:
                continue
            if kind == "postgresql":
                server = start_postgres()
            state = tempfile.mkdtemp(prefix="hookstream-bench-")
            made.append(state)
            print(f"{kind}:", flush=True)
            pages("" if server is None else server.database_url(), args.deliveries, state)
    finally:
        if server is not None:
            server.stop()
        for state in made:
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
