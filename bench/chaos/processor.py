"""Chaos suite for the processor (issue 8 §3 b, c): broker faults mid-stream, figures.

Run by hand, never by the tests (loopback only, bounded in time):

    .venv/bin/python bench/chaos/processor.py [--events 3000] [--rate 100] [--down-s 12]
        [--pause-s 60] [--only restart,pause] [--code /path/to/another/checkout] [--keep DIR]

Each scenario starts its own Kafka broker (LocalBroker on free ports in a temporary
directory), one webhook that matches every event, and a `hookstream run processor`
process. GLPI item-change events are published at --rate while the fault is applied
in the middle of the stream. Lost and duplicate requests (one expected per event) are
counted at the end on hookstream.deliveries itself, read_committed from the start of
every partition; a live reader, assigned rather than a group member, times them:

    restart  the broker stopped, and started again --down-s later
    pause    the broker SIGSTOPped for --pause-s, then SIGCONTed

Printed per scenario: events, requests (unique delivery ids), lost, duplicates, the p99
and maximum time from publish to the request being committed, the time from the broker
back to the last request, and whether the processor was alive at the end. --code runs
the processor from another checkout, e.g. the code before a change, for before/after.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from delivery import pause_broker, restart_broker  # noqa: E402  (this folder, run as a script)

from hookstream.config import Settings, load_settings  # noqa: E402
from hookstream.control import admin  # noqa: E402
from hookstream.devbroker import LocalBroker, free_port_pair  # noqa: E402
from hookstream.io import consumer, create_topics, flush, producer, read_all  # noqa: E402
from hookstream.records import (  # noqa: E402
    DELIVERIES,
    ITEM_CHANGES,
    Codec,
    DeliveryRequest,
    make_event,
)

DRAIN_S = 180  # after the broker is back, how long the rest may take before it is lost
WEBHOOK = "chaos-every-ticket"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Counter(threading.Thread):
    """Delivery requests on hookstream.deliveries: how many per delivery id, first seen."""

    def __init__(self, settings: Settings):
        super().__init__(daemon=True)
        self.settings, self.stop = settings, threading.Event()
        self.seen: dict[str, int] = {}
        self.first_s: dict[str, float] = {}  # event id -> when its request was first read

    def run(self) -> None:
        codec = Codec()
        # Assigned, not subscribed: a group member that never commits would read the topic
        # again from the start after a rebalance (a 60 s pause expires every session),
        # and count each request twice.
        topic = self.settings.topic(DELIVERIES)
        cons = consumer(self.settings, f"chaos-count-{uuid.uuid4().hex[:6]}")
        partitions = cons.list_topics(topic, timeout=30).topics[topic].partitions
        cons.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        while not self.stop.is_set():
            for msg in cons.consume(500, 0.2):
                if msg.error() is not None:
                    continue
                request = codec.decode(msg.value(), msg.headers(), DeliveryRequest)
                self.seen[request.delivery_id] = self.seen.get(request.delivery_id, 0) + 1
                self.first_s.setdefault(request.event_id, time.time())
        cons.close()


def committed_requests(settings: Settings) -> dict[str, int]:
    """How many committed delivery requests hookstream.deliveries holds per delivery id."""
    codec, seen = Codec(), dict[str, int]()
    for msg in read_all(settings, settings.topic(DELIVERIES), timeout_s=60):
        delivery_id = codec.decode(msg.value(), msg.headers(), DeliveryRequest).delivery_id
        seen[delivery_id] = seen.get(delivery_id, 0) + 1
    return seen


def ticket(n: int) -> dict[str, Any]:
    entity = {"id": 0, "name": "Root entity", "completename": "Root entity"}
    return {"id": n, "name": f"chaos {n}", "status": {"id": 1, "name": "New"}, "entity": entity}


def publisher(settings: Settings, events: int, rate: float, sent: dict[str, float]) -> None:
    codec, prod, topic = Codec(), producer(settings), settings.topic(ITEM_CHANGES)
    started = time.monotonic()
    for n in range(events):
        event = make_event("glpi-chaos", "Ticket", n + 1, "new", ticket(n + 1), occurred_at=n)
        value, headers = codec.encode(event, topic)
        while True:
            try:
                prod.produce(topic, value, event.key().encode(), headers=headers)
                break
            except BufferError:  # the broker is away: the queue waits for it
                prod.poll(0.1)
        sent[event.event_id] = time.time()
        prod.poll(0)
        ahead_s = (n + 1) / rate - (time.monotonic() - started)
        if ahead_s > 0:
            time.sleep(ahead_s)
    flush(prod, 300)


def env_for(settings: Settings, metrics_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSTREAM_")}
    env.update(HOOKSTREAM_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
               HOOKSTREAM_TOPIC_PREFIX=settings.topic_prefix,
               HOOKSTREAM_STATE_DIR=settings.state_dir, HOOKSTREAM_PARTITIONS="6",
               HOOKSTREAM_METRICS_PORT=str(metrics_port), HOOKSTREAM_LOG_LEVEL="WARNING")
    return env


def spawn(code: Path, settings: Settings, port: int, log_to: Path) -> subprocess.Popen[bytes]:
    python = code / ".venv/bin/python"
    return subprocess.Popen(
        [str(python if python.exists() else sys.executable), "-m", "hookstream.cli", "run",
         "processor"], cwd=code, env=env_for(settings, port),
        stdout=open(log_to, "ab"), stderr=subprocess.STDOUT)


def ready_processor(
    code: Path, settings: Settings, port: int, log_to: Path
) -> subprocess.Popen[bytes]:
    """A processor answering /readyz 200, started again (as Kubernetes would) if it exits
    before: older code could exit at start on a topic just created."""
    processor = spawn(code, settings, port, log_to)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if processor.poll() is not None:
            log(f"the processor exited at start ({processor.returncode}); starting it again")
            processor = spawn(code, settings, port, log_to)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return processor
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the processor was not ready within 180 s")


def scenario(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    folder = work / name
    broker = LocalBroker(folder / "kafka", Settings().cache_path, port=free_port_pair())
    broker.start()
    settings = load_settings(env={}, bootstrap_servers=broker.bootstrap, partitions=6,
                             topic_prefix=f"chaos{uuid.uuid4().hex[:6]}.",
                             state_dir=str(folder / "state"))
    create_topics(settings)
    hook = folder / "hooks.yaml"
    hook.write_text(json.dumps({"webhooks": [{
        "id": WEBHOOK, "instance": "glpi-chaos", "name": WEBHOOK, "itemtype": "Ticket",
        "event": "new", "is_active": True, "url": "https://hooks.example.com/chaos"}]}))
    admin.apply_webhooks(settings, hook)
    code, port = Path(args.code), free_port_pair()
    processor = ready_processor(code, settings, port, folder / "processor.log")
    counter = Counter(settings)
    counter.start()
    sent: dict[str, float] = {}
    stream = threading.Thread(target=publisher, args=(settings, args.events, args.rate, sent))
    stream.start()
    time.sleep(args.events / args.rate / 3)  # a third of the stream in
    back = fault(name, args, broker)
    log(f"{name}: broker back; waiting for the rest (at most {DRAIN_S} s)")
    stream.join(DRAIN_S)
    deadline = time.monotonic() + DRAIN_S
    while len(counter.seen) < args.events and time.monotonic() < deadline:
        if processor.poll() is not None:
            break
        time.sleep(0.5)
    time.sleep(3)  # duplicates, if any, would show by now
    alive = processor.poll() is None
    if alive:
        processor.send_signal(signal.SIGTERM)
        try:
            processor.wait(30)
        except subprocess.TimeoutExpired:
            processor.kill()
    counter.stop.set()
    counter.join(10)
    committed = committed_requests(settings)  # the topic itself, not what a reader saw
    broker.stop()
    lags = sorted(counter.first_s[e] - sent[e] for e in counter.first_s if e in sent)
    last = max(counter.first_s.values(), default=back)
    return {
        "scenario": name,
        "events": args.events,
        "requests": len(committed),
        "lost": args.events - len(committed),
        "duplicates": sum(n - 1 for n in committed.values()),
        "read_twice": sum(n - 1 for n in counter.seen.values()),  # should equal duplicates
        "p99_s": round(lags[int(len(lags) * 0.99) - 1], 2) if lags else None,
        "max_s": round(lags[-1], 2) if lags else None,
        "back_to_last_s": round(last - back, 1),
        "alive": alive,
    }


def fault(name: str, args: argparse.Namespace, broker: LocalBroker) -> float:
    """Apply the fault; returns when the broker was answering again (time.time())."""
    if name == "restart":
        log("restart: stopping the broker")
        return restart_broker(broker, args.down_s)
    log(f"pause: SIGSTOP to the broker for {args.pause_s:.0f} s")
    return pause_broker(broker, args.pause_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--down-s", type=float, default=12.0)
    parser.add_argument("--pause-s", type=float, default=60.0)
    parser.add_argument("--only", default="restart,pause")
    parser.add_argument("--code", default=str(REPO), help="checkout whose processor runs")
    parser.add_argument("--keep", help="a folder for the brokers and processor logs, kept")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hookstream-chaos-processor-") as tmp:
        for name in args.only.split(","):
            work = Path(args.keep or tmp)
            log(f"scenario {name}: {args.events} events at {args.rate:.0f}/s")
            row = scenario(name, args, work)
            log(json.dumps(row))
            rows.append(row)
    print(f"\n{'scenario':<9} {'events':>6} {'reqs':>6} {'lost':>5} {'dupl.':>5} "
          f"{'p99 s':>7} {'max s':>7} {'back->last s':>12} alive")
    for r in rows:
        p99 = f"{r['p99_s']:.2f}" if r["p99_s"] is not None else "-"
        mx = f"{r['max_s']:.2f}" if r["max_s"] is not None else "-"
        print(f"{r['scenario']:<9} {r['events']:>6} {r['requests']:>6} {r['lost']:>5} "
              f"{r['duplicates']:>5} {p99:>7} {mx:>7} {r['back_to_last_s']:>12} {r['alive']}")


if __name__ == "__main__":
    main()
