"""Log store benchmark: write rate and query latency, on SQLite and on PostgreSQL.

Run by hand, never by the tests:

    .venv/bin/python bench/logstore.py [--attempts 60000] [--deliveries 1000000]

PostgreSQL is Debian's, started by tests/pg.py in a temporary directory on a loopback
port (as the `postgres` user when run as root); SQLite is a file in a temporary
directory (WAL, synchronous=FULL: the settings the log store runs with).

1. Write rate: `--attempts` AttemptRecords and as many DeliveryRequests (a delivery and
   its attempt), Avro-encoded as on the topics, decoded and written by the log store's
   own code (codec, rows, LogStore.write) in batches of logstore_batch_size: records/s and
   attempts/s (what one log store process can absorb, Kafka fetch excluded), and attempts
   per CPU second of this process (on a shared machine, wall time depends on the load;
   with SQLite the database work is in this process, with PostgreSQL it is not). Each
   batch folds its attempts into the webhooks' target health, as the log store does for
   auto-disable; `--without-health` leaves that out, to measure its cost.
2. Queries: `--deliveries` rows loaded (200 webhooks, 10 instances, 50,000 items, 5 % of
   them not delivered), then 300 of each: the queries log of one webhook (first page and
   the page after), an item's view, one delivery's detail, the queue view: p50 / p95 ms.
3. Filtered pages (`--part filters` runs only this and the load): the console's and the
   API's filters alone and combined (state, outcome, status code, time range, instance,
   webhook, delivery id prefix), 300 pages of 50 each, a third of them the first page and
   the rest at a random depth of the log (a cursor at a random time, as "older" links
   reach), plus "newer" pages: p50 / p95 ms per page.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine

from connectors.logstore import (
    Cursor,
    DeliveryFilter,
    LogStore,
    delivery_detail,
    list_deliveries,
    open_engine,
    queue_view,
)
from connectors.logstore.health import health_sample
from connectors.logstore.rows import Source, from_attempt, from_request
from connectors.logstore.schema import deliveries
from connectors.logstore.store import DELIVERY_FIELDS, delivery_values
from hookstream.config import Settings, load_settings
from hookstream.records import AttemptRecord, Codec, DeliveryRequest, delivery_id_for

T0 = 1_760_000_000_000
OUTCOME_OF = {"delivered": "delivered", "pending": "retry_scheduled",
              "waiting": "retry_scheduled", "dead_lettered": "dead_lettered"}
BODY = b'{"event":"update","item":{"id":1,"name":"' + b"x" * 900 + b'"}}'  # ~1 KiB


def request(n: int) -> DeliveryRequest:
    webhook = f"hook-{n % 200}"
    return DeliveryRequest(
        delivery_id=delivery_id_for(f"event-{n}", webhook), webhook_id=webhook,
        instance=f"glpi-{n % 10}", event_id=f"event-{n}", itemtype="Ticket",
        items_id=n % 50_000, event="update", method="POST", url="https://target.test/in",
        body=BODY, created_at=T0 + n * 10, headers={"Content-Type": "application/json"},
    )


def write_rate(settings: Settings, count: int, health: bool = True
               ) -> tuple[float, float, float]:
    codec, limit = Codec(), settings.logstore_body_max_bytes
    encoded = []
    for n in range(count):
        r = request(n)
        a = r.attempt_record(1, r.created_at + 5, r.created_at + 25, "delivered",
                             status_code=200, response_body=b'{"ok": true}')
        encoded.append((codec.encode(r, "hookstream.deliveries"),
                        codec.encode(a, "hookstream.attempts")))
    engine = open_engine(settings)
    store = LogStore(engine)
    batch = settings.logstore_batch_size // 2  # two records a delivery
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, count, batch):
        fragments, attempt_rows, samples = [], [], []
        for offset, ((rv, rh), (av, ah)) in enumerate(encoded[start:start + batch], start):
            req = codec.decode(rv, rh, DeliveryRequest)
            fragments.append(from_request(req, Source.DELIVERIES, None, limit))
            attempt = codec.decode(av, ah, AttemptRecord)
            fragment, row = from_attempt(attempt, 0, offset, limit)
            fragments.append(fragment)
            attempt_rows.append(row)
            if health and (sample := health_sample(attempt)) is not None:
                samples.append(sample)
        store.write(fragments, attempt_rows, health=samples)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    engine.dispose()
    return 2 * count / elapsed, count / elapsed, count / cpu


def load(engine: Engine, count: int) -> float:
    """Plain inserts of `count` delivery rows (the write path is measured above)."""
    started = time.perf_counter()
    rng = random.Random(7)
    for start in range(0, count, 20_000):
        rows = []
        for n in range(start, min(count, start + 20_000)):
            row = dict(zip(DELIVERY_FIELDS, delivery_values(
                from_request(request(n), Source.DELIVERIES, None, 4096)), strict=True))
            state = rng.choice(["pending", "waiting", "dead_lettered"]) \
                if rng.random() < 0.05 else "delivered"
            # failures: mostly 503 and 500, some 401, some with no answer at all
            status = 200 if state == "delivered" else rng.choice([503, 503, 500, 401, None])
            row |= {"state": state, "attempts": 1, "last_status": status,
                    "last_outcome": OUTCOME_OF[state]}
            rows.append(row)
        with engine.begin() as conn:
            conn.execute(deliveries.insert(), rows)
    return time.perf_counter() - started


def timed(fn: Callable[[int], object], runs: int = 300) -> tuple[float, float]:
    samples = []
    for i in range(runs):
        started = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * len(samples)) - 1]


def queries(settings: Settings, count: int) -> dict[str, tuple[float, float]]:
    engine = open_engine(settings)
    print(f"    loaded {count:,} deliveries in {load(engine, count):.0f}s", flush=True)
    rng = random.Random(11)

    def webhook_page(i: int) -> None:
        page = list_deliveries(engine, DeliveryFilter(webhook_id=f"hook-{rng.randrange(200)}"))
        assert page.next_cursor is not None
        list_deliveries(engine, DeliveryFilter(webhook_id=f"hook-{i % 200}"),
                        cursor=Cursor.decode(page.next_cursor))

    def item(i: int) -> None:
        n = rng.randrange(count)
        found = list_deliveries(engine, DeliveryFilter(
            instance=f"glpi-{n % 10}", itemtype="Ticket", items_id=n % 50_000)).items
        assert found

    def detail(i: int) -> None:
        n = rng.randrange(count)
        assert delivery_detail(engine, request(n).delivery_id) is not None

    results = {
        "webhook log, 2 pages of 50": timed(webhook_page),
        "item view": timed(item),
        "one delivery": timed(detail),
        "queue view": timed(lambda i: queue_view(engine), runs=30),
        # a webhook of glpi-3 (hook n is glpi-(n % 10)'s), read with a glpi-3 token
        "webhook log, one instance's token": timed(lambda i: list_deliveries(
            engine, DeliveryFilter(webhook_id=f"hook-{(i % 20) * 10 + 3}"),
            instances=["glpi-3"])),
    }
    engine.dispose()
    return results


def filtered(settings: Settings, count: int) -> dict[str, tuple[float, float]]:
    engine = open_engine(settings)
    print(f"    loaded {count:,} deliveries in {load(engine, count):.0f}s", flush=True)
    rng = random.Random(13)
    end = T0 + count * 10
    hour = 3_600_000

    def somewhere(i: int) -> Cursor | None:
        """The first page a third of the time, else a page at a random depth."""
        return None if i % 3 == 0 else Cursor(rng.randrange(T0, end), "f" * 64)

    def pages(make: Callable[[int], DeliveryFilter], newer: bool = False
              ) -> Callable[[int], object]:
        def one(i: int) -> object:
            at = Cursor(rng.randrange(T0, end), "0") if newer else somewhere(i)
            return list_deliveries(engine, make(i), cursor=at, newer=newer)
        return one

    def window(i: int) -> tuple[int, int]:
        span = min(hour, (end - T0) // 2)
        since = rng.randrange(T0, end - span)
        return since, since + span

    def hook(i: int) -> str:
        return f"hook-{rng.randrange(200)}"

    combos: dict[str, Callable[[int], DeliveryFilter]] = {
        "no filter": lambda i: DeliveryFilter(),
        "state=dead_lettered": lambda i: DeliveryFilter(state="dead_lettered"),
        "status_code=401": lambda i: DeliveryFilter(status_code=401),
        "outcome=retry_scheduled": lambda i: DeliveryFilter(outcome="retry_scheduled"),
        "instance": lambda i: DeliveryFilter(instance=f"glpi-{i % 10}"),
        "webhook": lambda i: DeliveryFilter(webhook_id=hook(i)),
        "webhook + state=dead_lettered": lambda i: DeliveryFilter(
            webhook_id=hook(i), state="dead_lettered"),
        "time range (1 h)": lambda i: DeliveryFilter(
            since_ms=(w := window(i))[0], until_ms=w[1]),
        "state=waiting + time range (1 h)": lambda i: DeliveryFilter(
            state="waiting", since_ms=(w := window(i))[0], until_ms=w[1]),
        "instance + status_code=503 + outcome": lambda i: DeliveryFilter(
            instance=f"glpi-{i % 10}", status_code=503, outcome="retry_scheduled"),
        "webhook + status_code=500 + time range (1 h)": lambda i: DeliveryFilter(
            webhook_id=hook(i), status_code=500, since_ms=(w := window(i))[0],
            until_ms=w[1]),
        "delivery id prefix (4 hex digits)": lambda i: DeliveryFilter(
            id_prefix=f"{rng.randrange(16 ** 4):04x}"),
        "state=delivered + status_code=503 (none)": lambda i: DeliveryFilter(
            state="delivered", status_code=503),
    }
    results = {name: timed(pages(make)) for name, make in combos.items()}
    results["newer page, state=dead_lettered"] = timed(
        pages(lambda i: DeliveryFilter(state="dead_lettered"), newer=True))
    results["newer page, one instance's token, no filter"] = timed(lambda i: list_deliveries(
        engine, DeliveryFilter(), instances=[f"glpi-{i % 10}"],
        cursor=Cursor(rng.randrange(T0, end), "0"), newer=True))
    engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=60_000)
    parser.add_argument("--deliveries", type=int, default=1_000_000, help="0: no queries")
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--part", choices=["write", "queries", "filters"],
                        help="only this part (default: write and queries)")
    parser.add_argument("--without-health", action="store_true",
                        help="write without folding auto-disable's target health (its cost)")
    args = parser.parse_args()
    parts = (args.part,) if args.part else ("write", "queries") if args.deliveries else (
        "write",)
    # SIGTERM runs the finally below too: no PostgreSQL server or store left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from tests.pg import start_postgres

    server, made = None, []
    try:
        for kind in ("sqlite", "postgresql"):
            if args.only and kind != args.only:
                continue
            if kind == "postgresql":
                server = server or start_postgres()
            for part in parts:
                url = "" if kind == "sqlite" else server.database_url()  # type: ignore[union-attr]
                state = tempfile.mkdtemp(prefix="hookstream-bench-")
                made.append(state)
                settings = load_settings(env={}, check_dns=False, state_dir=state,
                                         logstore_url=url)
                if part == "write":
                    records, attempts, per_cpu = write_rate(settings, args.attempts,
                                                            not args.without_health)
                    print(f"{kind}: write {records:,.0f} records/s = {attempts:,.0f} attempts/s"
                          f" (+ their delivery requests), batches of "
                          f"{settings.logstore_batch_size}; {per_cpu:,.0f} attempts per CPU "
                          f"second of the log store process", flush=True)
                else:
                    measure = queries if part == "queries" else filtered
                    for name, (p50, p95) in measure(settings, args.deliveries).items():
                        print(f"{kind}: {name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms", flush=True)
    finally:
        if server is not None:
            server.stop()
        for state in made:
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
