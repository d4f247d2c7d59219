"""Chaos for ordered delivery per item (issue 23 §1): SIGKILLs under a failing receiver.

Run by hand (loopback only, bounded in time; the slow test runs it small):

    .venv/bin/python bench/chaos/ordering.py [--events 3000] [--items 200] [--rate 200]
        [--kills 3] [--fail 0.3] [--origins 4] [--tiers 1s,5s,10s] [--drain-s 120]
        [--ordering per_item|none] [--bootstrap HOST:PORT] [--keep DIR] [--code CHECKOUT]

A Kafka broker of its own (LocalBroker on free ports in a temporary directory) unless
--bootstrap names one; a topic prefix of its own. One webhook with `ordering: per_item`
(or --ordering none, for the figures without it) and `sent_try: 20`; two `hookstream run
delivery` processes; a receiver that answers 503 to a share --fail of requests (a seeded
generator) and records, per item, the order of the first successful receipt of each
event, on --origins ports (the items spread over them: each origin's adaptive in-flight
limit settles near 3 under 30 % of 5xx, see hookstream/policy/concurrency.py).
DeliveryRequests are published at --rate, the events of --items items interleaved (event
n is item n % items, its rank n // items), each carrying its produce time; one delivery
process is SIGKILLed --kills times, evenly through the stream, and restarted after each.

Printed: events, items, requests the receiver failed, kills, lost (not received within
--drain-s after the last event), order violations (an event first received after a later
event of its item), repeats (successful requests beyond the first per event), and the p99
and maximum produce -> first successful receipt. The retry tiers are --tiers (a failed
delivery holds the later ones of its item for its retry delay); the circuit breaker's
threshold is 20 failures in a row, so 30 % random failures do not open it (an open
circuit only makes everyone wait: not what is measured here).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from delivery import REPO, QuietHandler, cli, log, serve, stop_all

from hookstream.config import Settings
from hookstream.devbroker import LocalBroker, free_port_pair
from hookstream.io import flush, producer
from hookstream.records import DELIVERIES, Codec, DeliveryRequest, delivery_id_for


class OrderReceiver:
    """Fails a share of requests; keeps, per item, the ranks in order of first success."""

    def __init__(self, fail: float, origins: int, seed: int = 23) -> None:
        self.order: dict[int, list[int]] = {}
        self.first: dict[str, float] = {}
        self.produced: dict[str, float] = {}
        self.requests = self.failed = self.repeats = 0
        lock, rand, me = threading.Lock(), random.Random(seed), self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                data = self.body()
                with lock:
                    ok = rand.random() >= fail
                    me.requests += 1
                    me.failed += not ok
                    ident = str(data["id"])
                    if ok and ident in me.first:
                        me.repeats += 1
                    elif ok:
                        me.first[ident] = time.time()
                        me.produced[ident] = float(data["produced"])
                        me.order.setdefault(int(data["item"]), []).append(int(data["seq"]))
                self.answer(200 if ok else 503)

        served = [serve(Handler) for _ in range(origins)]
        self.servers = [server for server, _ in served]
        self.urls = [url for _, url in served]

    def violations(self) -> int:
        count = 0
        for ranks in self.order.values():
            highest = -1
            for rank in ranks:
                count += rank < highest
                highest = max(highest, rank)
        return count

    def forget(self) -> None:
        self.order.clear()
        self.first.clear()
        self.produced.clear()
        self.requests = self.failed = self.repeats = 0


def publish(settings: Settings, urls: list[str], events: int, items: int, rate: float,
            sent: list[int], prefix: str = "e") -> None:
    """Event n is rank n // items of item n % items, sent to the origin of its item."""
    codec, prod, topic = Codec(), producer(settings), settings.topic(DELIVERIES)
    started = time.monotonic()
    for n in range(events):
        ahead = n / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
        item, rank = (n % items, n // items) if prefix == "e" else (-1, n)
        event_id = f"{prefix}{n}"
        ident = delivery_id_for(event_id, "ordered")
        request = DeliveryRequest(
            delivery_id=ident, webhook_id="ordered", instance="glpi", event_id=event_id,
            itemtype="Ticket", items_id=item, event="new" if rank == 0 else "update",
            method="POST", url=urls[item % len(urls)], created_at=int(time.time() * 1000),
            body=json.dumps({"id": ident, "item": item, "seq": rank,
                             "produced": time.time()}).encode(),
            headers={"Content-Type": "application/json"})
        value, headers = codec.encode(request, topic)
        while True:
            try:
                prod.produce(topic, value, request.key().encode(), headers=headers)
                break
            except BufferError:
                prod.poll(0.1)
        prod.poll(0)
        sent[0] = n + 1
    flush(prod, timeout_s=120)


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    broker = None
    if args.bootstrap:
        bootstrap = args.bootstrap
    else:
        broker = LocalBroker(work / "kafka", Settings().cache_path, port=free_port_pair())
        broker.start()
        bootstrap = broker.bootstrap
    settings = Settings(bootstrap_servers=bootstrap, topic_prefix=f"ordering{time.time_ns()}.",
                        state_dir=str(work / "hs"))
    receiver = OrderReceiver(args.fail, args.origins)
    code, logs = Path(args.code), work / "delivery.log"
    env = {"HOOKSTREAM_RETRY_TIERS": args.tiers, "HOOKSTREAM_CIRCUIT_FAILURE_THRESHOLD": "20"}
    processes: list[subprocess.Popen[bytes]] = []
    kills = 0
    try:
        cli(code, settings, "topics", "create", env=env)
        hooks = work / "hooks.yaml"
        hooks.write_text(yaml.safe_dump({"webhooks": [
            {"instance": "glpi", "name": "ordered", "id": "ordered", "itemtype": "Ticket",
             "event": "new", "is_active": True, "url": receiver.urls[0], "timeout_s": 2,
             "sent_try": 20, "allowed_networks": ["127.0.0.0/8"],
             # omitted when none: --code may run a checkout from before the option
             **({"ordering": args.ordering} if args.ordering != "none" else {})}]}))
        cli(code, settings, "webhooks", "apply", "-f", str(hooks), env=env)
        for _ in range(2):
            processes.append(cli(code, settings, "run", "delivery", log_to=logs, wait=False,
                                 env=env))
        publish(settings, receiver.urls, 1, 1, 1.0, [0], prefix="warm-up")
        deadline = time.monotonic() + 60
        while not receiver.first and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(5)  # the second member's rebalance settles
        receiver.forget()
        log("warmed up: both delivery processes in the group")
        sent = [0]
        feed = threading.Thread(target=publish, args=(settings, receiver.urls, args.events,
                                                      args.items, args.rate, sent),
                                daemon=True)  # an interrupted run does not wait for it
        feed.start()
        for k in range(args.kills):
            while sent[0] < (k + 1) / (args.kills + 1) * args.events and feed.is_alive():
                time.sleep(0.05)
            log(f"SIGKILL pid {processes[0].pid} at {sent[0]} events")
            processes[0].kill()
            processes[0].wait()
            kills += 1
            processes[0] = cli(code, settings, "run", "delivery", log_to=logs, wait=False,
                               env=env)
        feed.join()
        log(f"stream published; {len(receiver.first)} received")
        deadline = time.monotonic() + args.drain_s
        while len(receiver.first) < args.events and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1)  # repeats in flight are counted
        alive = all(p.poll() is None for p in processes)
        missing = sorted((n % args.items, n // args.items) for n in range(args.events)
                         if delivery_id_for(f"e{n}", "ordered") not in receiver.first)
        if missing:
            log(f"not received (item, rank): {missing[:20]}; delivery log: {logs}")
    finally:
        stop_all(processes)
        for server in receiver.servers:
            server.shutdown()
        if broker is not None:
            broker.stop()
    delays = sorted(receiver.first[i] - receiver.produced[i] for i in receiver.first)
    return {
        "events": args.events, "items": args.items, "requests": receiver.requests,
        "receiver_failures": receiver.failed, "kills": kills,
        "lost": args.events - len(receiver.first),
        "order_violations": receiver.violations(), "repeats": receiver.repeats,
        "p99_s": round(delays[int(0.99 * (len(delays) - 1))], 2) if delays else None,
        "max_s": round(delays[-1], 2) if delays else None, "alive": alive,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--fail", type=float, default=0.3)
    parser.add_argument("--origins", type=int, default=4)
    parser.add_argument("--tiers", default="1s,5s,10s", help="the retry schedule")
    parser.add_argument("--ordering", default="per_item", choices=("per_item", "none"),
                        help="the webhook's option (none: the figures without it)")
    parser.add_argument("--drain-s", type=float, default=120.0)
    parser.add_argument("--bootstrap", default="", help="a running broker instead of one's own")
    parser.add_argument("--keep", default="", help="a directory to keep logs and state in")
    parser.add_argument("--code", default=str(REPO), help="checkout whose delivery runs")
    args = parser.parse_args()
    log(f"ordering {args.ordering}: {args.events} events of {args.items} items at "
        f"{args.rate:.0f}/s, {args.fail:.0%} failed, {args.kills} kills")
    if args.keep:
        row = run(args, Path(args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="hookstream-chaos-ordering-") as tmp:
            row = run(args, Path(tmp))
    log(json.dumps(row))
    print(f"\n{'events':>6} {'items':>5} {'requests':>8} {'failed':>6} {'kills':>5} "
          f"{'lost':>4} {'order viol.':>11} {'repeats':>7} {'p99 s':>6} {'max s':>6} alive")
    print(f"{row['events']:>6} {row['items']:>5} {row['requests']:>8} "
          f"{row['receiver_failures']:>6} {row['kills']:>5} {row['lost']:>4} "
          f"{row['order_violations']:>11} {row['repeats']:>7} {row['p99_s']!s:>6} "
          f"{row['max_s']!s:>6} {row['alive']}")


if __name__ == "__main__":
    main()
