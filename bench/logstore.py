"""Log store benchmark: write rate and query latency, on SQLite and on PostgreSQL.

Run by hand or by `make bench`, never by the tests:

    .venv/bin/python bench/logstore.py [--quick] [--attempts 60000] [--deliveries 1000000]

PostgreSQL is Debian's, started by tests/pg.py in a temporary directory on a loopback
port (as the `postgres` user when run as root); SQLite is a file in a temporary
directory (WAL, synchronous=FULL: the settings the log store runs with).

1. Write rate (`write`, both databases): `--attempts` AttemptRecords and as many
   DeliveryRequests (a delivery and its attempt), Avro-encoded as on the topics, decoded
   and written by the log store's own code (codec, rows, LogStore.write) in batches of
   logstore_batch_size: attempts/s (what one log store process can absorb, Kafka fetch
   excluded), and this process's CPU µs per attempt part by part (decode, rows, write;
   with SQLite the database work is in this process, with PostgreSQL it is not). Each
   batch folds its attempts into the webhooks' target health, as the log store does for
   auto-disable; `--without-health` leaves that out, to measure its cost. The ceiling:
   the same rows, already made, into empty tables with nothing else (PostgreSQL: COPY,
   SQLite: executemany), one transaction per batch.
2. Queue view (`queue`, PostgreSQL): `--deliveries` rows loaded with COPY (200 webhooks,
   10 instances, 5 % of them not delivered), both tables analyzed, then the queue view
   100 times: p50 / p95 / p99 ms, and its query before migration 11 (on `deliveries`)
   the same way, with EXPLAIN (ANALYZE, BUFFERS) of both.
3. Queries (`--part queries`): the queries log of one webhook (first page and the page
   after), an item's view, one delivery's detail, p50 / p95 ms, on both databases.
4. Filtered pages (`--part filters`): the console's and the API's filters alone and
   combined (state, outcome, status code, time range, instance, webhook, delivery id
   prefix), 300 pages of 50 each, a third of them the first page and the rest at a random
   depth of the log (a cursor at a random time, as "older" links reach), plus "newer"
   pages: p50 / p95 ms per page.

`--quick` (about 20 s): 20,000 attempts and 100,000 deliveries (not 1,000,000: the queue
view's figure is then at a tenth of its target's size). The run ends with one
`report.write("logstore", ...)`.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Connection, Engine, select, text

from bench import report
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
from connectors.logstore.rows import Source, from_attempt, from_request, merge_all
from connectors.logstore.schema import QUEUED_STATES, deliveries, queued
from connectors.logstore.store import (
    ATTEMPT_FIELDS,
    DELIVERY_FIELDS,
    SUMMARY_FIELDS,
    attempt_values,
    delivery_values,
)
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


@dataclass(frozen=True)
class WriteRate:
    attempts_per_s: float
    cpu_us: dict[str, float]  # this process's CPU µs per attempt, by part


def encoded_pairs(codec: Codec, count: int) -> list[tuple[Any, Any]]:
    """Each delivery's request and attempt, as the topics hold them."""
    pairs = []
    for n in range(count):
        r = request(n)
        a = r.attempt_record(1, r.created_at + 5, r.created_at + 25, "delivered",
                             status_code=200, response_body=b'{"ok": true}')
        pairs.append((codec.encode(r, "hookstream.deliveries"),
                      codec.encode(a, "hookstream.attempts")))
    return pairs


def write_rate(settings: Settings, count: int, health: bool = True) -> WriteRate:
    codec, limit = Codec(), settings.logstore_body_max_bytes
    encoded = encoded_pairs(codec, count)
    engine = open_engine(settings)
    store = LogStore(engine)
    batch = settings.logstore_batch_size // 2  # two records a delivery
    cpu = dict.fromkeys(("decode", "rows", "write"), 0.0)
    started = time.perf_counter()
    for start in range(0, count, batch):
        at = time.process_time()
        decoded = [(codec.decode(rv, rh, DeliveryRequest), codec.decode(av, ah, AttemptRecord))
                   for (rv, rh), (av, ah) in encoded[start:start + batch]]
        cpu["decode"] += time.process_time() - at
        at = time.process_time()
        fragments, attempt_rows, samples = [], [], []
        for offset, (req, attempt) in enumerate(decoded, start):
            fragments.append(from_request(req, Source.DELIVERIES, None, limit))
            fragment, row = from_attempt(attempt, 0, offset, limit)
            fragments.append(fragment)
            attempt_rows.append(row)
            if health and (sample := health_sample(attempt)) is not None:
                samples.append(sample)
        cpu["rows"] += time.process_time() - at
        at = time.process_time()
        store.write(fragments, attempt_rows, health=samples)
        cpu["write"] += time.process_time() - at
    elapsed = time.perf_counter() - started
    engine.dispose()
    return WriteRate(count / elapsed, {k: 1e6 * v / count for k, v in cpu.items()})


def bare_rate(settings: Settings, count: int) -> float:
    """The ceiling: the same rows, already made, into the empty tables and nothing else
    (no decode, no merge, no conflict handling, no summaries), a transaction per batch."""
    limit, batch = settings.logstore_body_max_bytes, settings.logstore_batch_size // 2
    made = []
    for n in range(count):
        r = request(n)
        a = r.attempt_record(1, r.created_at + 5, r.created_at + 25, "delivered",
                             status_code=200, response_body=b'{"ok": true}')
        fragment, row = from_attempt(a, 0, n, limit)
        [merged] = merge_all([from_request(r, Source.DELIVERIES, None, limit), fragment])
        summaries = (1, 200, "delivered", a.finished_at)  # what the upsert computes
        made.append(((*delivery_values(merged), *summaries), attempt_values(row)))
    engine = open_engine(settings)
    started = time.perf_counter()
    for start in range(0, count, batch):
        rows = made[start:start + batch]
        with engine.begin() as conn:
            put(conn, "deliveries", (*DELIVERY_FIELDS, *SUMMARY_FIELDS), [d for d, _ in rows])
            put(conn, "attempts", ATTEMPT_FIELDS, [a for _, a in rows])
    elapsed = time.perf_counter() - started
    engine.dispose()
    return count / elapsed


def put(conn: Connection, table: str, fields: Sequence[str], rows: list[tuple[Any, ...]]
        ) -> None:
    """Plain rows into a table: COPY on PostgreSQL, executemany on SQLite."""
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(  # type: ignore[union-attr]
                f"COPY {table} ({', '.join(fields)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(fields)}) VALUES "
                             f"({', '.join('?' * len(fields))})", rows)


LOADED_FIELDS = (*DELIVERY_FIELDS, "attempts", "last_status", "last_outcome")


def load(engine: Engine, count: int) -> float:
    """`count` delivery rows straight into the tables, and their queue (the write path is
    measured above); then both analyzed, as autovacuum would after such a load."""
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
            rows.append(tuple(row[f] for f in LOADED_FIELDS))
        with engine.begin() as conn:
            put(conn, "deliveries", LOADED_FIELDS, rows)
    d, q = deliveries.c, queued.c
    columns = [c.name for c in q]
    with engine.begin() as conn:
        conn.execute(queued.insert().from_select(columns, select(*(d[n] for n in columns))
                                                 .where(d.state.in_(QUEUED_STATES))))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    return time.perf_counter() - started


# The queue view's query before migration 11: the same groups, from the log itself (it
# read the covering index of migration 3, and a heap page per row to check visibility).
QUEUE_BEFORE = ("SELECT instance, webhook_id, state, tier, count(*), min(created_at) "
                "FROM deliveries WHERE state IN ({}) GROUP BY instance, webhook_id, state, "
                "tier ORDER BY instance, webhook_id, state, tier").format(
                    ", ".join(f"'{s}'" for s in QUEUED_STATES))
QUEUE_NOW = ("SELECT instance, webhook_id, state, tier, count(*), min(created_at) "
             "FROM queued GROUP BY instance, webhook_id, state, tier "
             "ORDER BY instance, webhook_id, state, tier")


def percentiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {f"p{q}": round(samples[max(0, int(q / 100 * len(samples)) - 1)], 2)
            for q in (50, 95, 99)}


def queue(settings: Settings, count: int, runs: int = 100
          ) -> tuple[dict[str, float], dict[str, float], dict[str, list[str]]]:
    """The queue view's latency now and its query before migration 11, and both plans."""
    engine = open_engine(settings)
    print(f"    loaded {count:,} deliveries in {load(engine, count):.0f}s", flush=True)

    def sample(fn: Callable[[], object]) -> dict[str, float]:
        fn()  # one to warm the cache, as a console open all day has it
        taken = []
        for _ in range(runs):
            started = time.perf_counter()
            fn()
            taken.append((time.perf_counter() - started) * 1000)
        return percentiles(taken)

    def before() -> None:
        with engine.connect() as conn:
            conn.execute(text(QUEUE_BEFORE)).all()

    now = sample(lambda: queue_view(engine))
    old = sample(before)
    plans = {}
    with engine.connect() as conn:
        for name, sql in (("before (deliveries)", QUEUE_BEFORE), ("now (queued)", QUEUE_NOW)):
            plans[name] = [r[0] for r in conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"))]
    engine.dispose()
    return now, old, plans


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
    parser.add_argument("--quick", action="store_true",
                        help="about 20 s: 20,000 attempts, 100,000 deliveries")
    parser.add_argument("--attempts", type=int)
    parser.add_argument("--deliveries", type=int, help="0: no queue view")
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--part", choices=["write", "queue", "queries", "filters"],
                        help="only this part (default: write and queue)")
    parser.add_argument("--without-health", action="store_true",
                        help="write without folding auto-disable's target health (its cost)")
    args = parser.parse_args()
    count = args.attempts or (20_000 if args.quick else 60_000)
    size = args.deliveries if args.deliveries is not None else (
        100_000 if args.quick else 1_000_000)
    parts = (args.part,) if args.part else ("write", "queue") if size else ("write",)
    # SIGTERM runs the finally below too: no PostgreSQL server or store left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from tests.pg import start_postgres

    server, made = None, []
    rates: dict[str, WriteRate] = {}
    bare: dict[str, float] = {}
    latency: dict[str, float] = {}
    figures: dict[str, Any] = {"attempts": count, "deliveries": size}

    def fresh(kind: str) -> Settings:
        url = "" if kind == "sqlite" else server.database_url()  # type: ignore[union-attr]
        state = tempfile.mkdtemp(prefix="hookstream-bench-")
        made.append(state)
        return load_settings(env={}, check_dns=False, state_dir=state, logstore_url=url)

    try:
        for kind in ("sqlite", "postgresql"):
            if args.only and kind != args.only:
                continue
            if kind == "postgresql":
                server = server or start_postgres()
            for part in parts:
                if part == "write":
                    settings = fresh(kind)
                    rate = rates[kind] = write_rate(settings, count, not args.without_health)
                    bare[kind] = bare_rate(fresh(kind), count)
                    parts_us = ", ".join(f"{k} {v:.0f}" for k, v in rate.cpu_us.items())
                    print(f"{kind}: write {rate.attempts_per_s:,.0f} attempts/s (+ their "
                          f"delivery requests), batches of {settings.logstore_batch_size}; "
                          f"CPU µs per attempt of this process: {parts_us}; bare "
                          f"{'COPY' if kind == 'postgresql' else 'executemany'} of the same "
                          f"rows {bare[kind]:,.0f}/s", flush=True)
                elif part == "queue":
                    if kind != "postgresql":
                        continue
                    latency, old, plans = queue(fresh(kind), size)
                    figures["queue view before migration 11 (from deliveries), ms"] = old
                    print(f"{kind}: queue view at {size:,} deliveries: {latency} ms; its query "
                          f"before migration 11: {old} ms", flush=True)
                    for name, lines in plans.items():
                        print(f"    EXPLAIN (ANALYZE, BUFFERS), {name}:")
                        print("\n".join(f"      {line}" for line in lines), flush=True)
                else:
                    measure = queries if part == "queries" else filtered
                    for name, (p50, p95) in measure(fresh(kind), size).items():
                        print(f"{kind}: {name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms", flush=True)
    finally:
        if server is not None:
            server.stop()
        for state in made:
            shutil.rmtree(state, ignore_errors=True)
    figures["cpu_us_per_attempt"] = {k: r.cpu_us for k, r in rates.items()}
    figures["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    targets = [report.Target(f"log store writes, {label}", round(rates[kind].attempts_per_s),
                             "attempts/s", ">=", 3000)
               for kind, label in (("postgresql", "PostgreSQL"), ("sqlite", "SQLite"))
               if kind in rates]
    if latency:
        label = "1M" if size == 1_000_000 else f"{size:,}"
        targets.append(report.Target(f"queue view p95 at {label} deliveries, PostgreSQL",
                                     latency["p95"], "ms", "<", 200))
    throughput = {f"logstore {k}": round(r.attempts_per_s) for k, r in rates.items()}
    throughput |= {f"bare {'COPY' if k == 'postgresql' else 'executemany'} {k}": round(v)
                   for k, v in bare.items()}
    report.write("logstore", targets=targets, figures=figures, throughput=throughput,
                 latency_ms=latency, throughput_unit="attempts/s")


if __name__ == "__main__":
    main()
