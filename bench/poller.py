"""Benchmark: the GLPI API poller against the fake GLPI holding many tickets.

    .venv/bin/python bench/poller.py [--tickets 100000] [--seconds 120] [--interval 30]
                                     [--change-rate 0.01] [--page 50] [--team]

Starts a local broker (unless KAFKA_BOOTSTRAP_SERVERS is set), serves the fake GLPI
(tests/fake_glpi_items.py) from this process with `--tickets` tickets, publishes the
instance, and runs `hookstream run poller` in its own process. Two phases:

1. catch-up: the poller starts without a cursor and produces every ticket once: changes
   per second through one poller;
2. steady state: `--change-rate` of the tickets change per minute (default 1%), spread
   evenly; for each change, the time from the change in GLPI to its event on Kafka
   (p50, p99, max; the target is under the poll interval plus 1 s at p99), and the API
   requests per minute the poller made.

Figures go to stdout; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hookstream.config import Settings, load_settings  # noqa: E402
from hookstream.control import instances  # noqa: E402
from hookstream.io import codec_for, consumer, create_topics  # noqa: E402
from hookstream.records import ITEM_CHANGES, ItemChangeEvent  # noqa: E402
from tests.fake_glpi import RunningGlpiApi  # noqa: E402
from tests.fake_glpi_items import FakeGlpiItems  # noqa: E402
from tests.integration.harness import cli_env  # noqa: E402

APP, USER = "bench-app-token", "bench-user-token"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--change-rate", type=float, default=0.01, help="share per minute")
    parser.add_argument("--page", type=int, default=50)
    parser.add_argument("--team", action="store_true", help="read ITIL actors (item.team)")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the broker and the poller are stopped
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    from contextlib import ExitStack

    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            from tests.conftest import started_broker

            bootstrap = stack.enter_context(started_broker(Path(tmp) / "kafka")).bootstrap
        settings = load_settings(env={}, bootstrap_servers=bootstrap,
                                 topic_prefix=f"bench{int(time.time())}.", state_dir=tmp,
                                 poller_itemtypes="Ticket", poller_page_size=args.page,
                                 poller_interval_s=args.interval, poller_team=args.team)
        api = FakeGlpiItems(APP, USER, seed=None)
        api.add("Entity", id=0, name="Root entity", entities_id=None, completename="Root entity")
        start = datetime.now().replace(microsecond=0) - timedelta(seconds=args.tickets)
        for n in range(args.tickets):
            api.now = start + timedelta(seconds=n)  # one ticket a second, up to now
            stamp = api.stamp()  # straight into the table: the fake's next id is O(n)
            api.items.setdefault("Ticket", {})[n + 1] = {
                "id": n + 1, "name": f"ticket {n}", "entities_id": 0, "status": 1, "urgency": 3,
                "content": "", "itilcategories_id": 0, "locations_id": 0, "is_deleted": 0,
                "date_creation": stamp, "date_mod": stamp}
        url = stack.enter_context(RunningGlpiApi(api))
        create_topics(settings)
        path = Path(tmp) / "instances.yaml"
        path.write_text(yaml.safe_dump({"name": "glpi-a", "api_url": url,
                                        "app_token": APP, "user_token": USER}))
        instances.apply_instances(settings, path)
        run(settings, api, args)


def run(settings: Settings, api: FakeGlpiItems, args: argparse.Namespace) -> None:
    seen: dict[tuple[int, str], float] = {}  # (id, item date_mod) -> when on Kafka
    seen_ids: set[int] = set()  # written by the follower only; len() is safe to read
    stop = threading.Event()

    def follow() -> None:
        codec, cons = codec_for(settings), consumer(settings, "bench-poller")
        cons.subscribe([settings.topic(ITEM_CHANGES)])
        while not stop.is_set():
            for msg in cons.consume(1000, 0.2):
                if msg.error() is None:
                    event = codec.decode(msg.value(), msg.headers(), ItemChangeEvent)
                    import json

                    seen.setdefault((event.items_id, json.loads(event.item)["date_mod"]),
                                    time.time())
                    seen_ids.add(event.items_id)
        cons.close()

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    command = [sys.executable, "-m", "hookstream.cli", "run", "poller", "--instance", "glpi-a"]
    poller = subprocess.Popen(command, env=cli_env(settings), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        started = time.time()
        while len(seen_ids) < args.tickets:
            time.sleep(0.5)
            if poller.poll() is not None:
                raise SystemExit(f"poller exited: {poller.stderr.read().decode()[-2000:]}")
        took = time.time() - started
        print(f"catch-up: {args.tickets} tickets in {took:.1f}s = "
              f"{args.tickets / took:.0f} changes/s through one poller "
              f"({len(api.calls)} API calls)")

        changes: dict[tuple[int, str], float] = {}
        per_s = args.tickets * args.change_rate / 60.0
        calls_before, steady_from = len(api.calls), time.time()
        ids, n = sorted(api.items["Ticket"]), 0
        while time.time() - steady_from < args.seconds:
            api.now = datetime.now().replace(microsecond=0)
            ident = ids[(n * 7919) % len(ids)]
            api.update("Ticket", ident, urgency=1 + n % 5)
            stamp = api.now.replace(tzinfo=UTC).isoformat()  # poller_timezone UTC
            changes[(ident, stamp)] = time.time()
            n += 1
            time.sleep(max(0.0, steady_from + n / per_s - time.time()))
        elapsed = time.time() - steady_from
        calls = len(api.calls) - calls_before
        time.sleep(args.interval + 5)  # the last changes' poll
        lags = [seen[k] - t for k, t in changes.items() if k in seen]
        print(f"steady: {len(changes)} changes in {elapsed:.0f}s ({per_s * 60:.0f}/min), "
              f"{len(lags)} seen on Kafka; API requests/min: {calls / elapsed * 60:.0f}")
        print(f"change -> event on Kafka: p50 {percentile(lags, 0.5):.2f}s, "
              f"p99 {percentile(lags, 0.99):.2f}s, max {max(lags, default=float('nan')):.2f}s "
              f"(interval {args.interval:.0f}s; target p99 < {args.interval + 1:.0f}s)")
    finally:
        poller.send_signal(signal.SIGTERM)
        poller.wait(30)
        stop.set()
        follower.join(10)


if __name__ == "__main__":
    main()
