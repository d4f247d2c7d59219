"""Chaos scenario for several ingest replicas (issue 23 §5): GLPI's retries reach another
replica each time, replicas are SIGKILLed, and the receiver still gets each delivery once.

Run by hand, never by the tests' default run (loopback only, bounded in time):

    .venv/bin/python bench/chaos/replicas.py [--events 1000] [--rate 25] [--lose 0.3]
        [--retry-s 2] [--kills 6] [--processor-kills 1] [--delivery-restarts 2]
        [--bootstrap HOST:PORT]
        [--code /path/to/another/checkout] [--keep DIR]

A LocalBroker of its own (or --bootstrap's, with topics of a prefix of their own), three
`hookstream run ingest` replicas on loopback ports behind a round-robin HTTP proxy (the
Kubernetes Service), two `hookstream run processor` and one `hookstream run delivery`, one
GLPI instance and one webhook matching every new Ticket, signed with Standard Webhooks so
each request carries its delivery id (`webhook-id`), and a receiver that records them.

GLPI's webhook queue (bench/chaos/pipeline.py's Glpi) makes a row per event at --rate and
POSTs it until a 2xx, every --retry-s (GLPI: a minute), unchanged: same body, same
X-GLPI-timestamp, same signature. The
proxy sends each request to the next replica in turn, and a row it has seen before to
the replica after the one that had it last, so each retry lands on a replica other than
the last; a replica refusing connections (killed, restarting) is skipped, as a Service
drops an endpoint that is not ready. With probability --lose it drops the replica's
answer and gives GLPI a 502 (the connection cut after the event was produced: GLPI
resends, and the event is on Kafka twice). Meanwhile the replicas are SIGKILLed --kills
times in turn, and a processor --processor-kills times, from 10 % to 80 % of the stream
(each restarted at once, as Kubernetes does, and ready before the next kill); delivery is
restarted --delivery-restarts times with SIGTERM (a rolling update: nothing in flight is
lost or repeated, but the new process's stale-copy filter starts without the ids the old
one delivered, so a copy that reaches it is sent again unless the processor skipped it).

Printed: events, POSTs through the proxy, answers it dropped, kills, copies on
glpi.item-changes (records beyond the first per event id), answers `"duplicate": true`
(a replica's own memory), requests on hookstream.deliveries and duplicates among them,
delivered (items received), lost, duplicate delivery ids at the receiver, p99 and maximum
from GLPI's first 2xx to the receipt, and whether every process was alive at the end. One
JSON line, then the table. --code runs the components from another checkout (before and
after tables).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import random
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pipeline
from aiohttp import web
from delivery import DRAIN_S, REPO, QuietHandler, log, serve
from pipeline import Component, Glpi

from hookstream.config import Settings
from hookstream.devbroker import LocalBroker, free_port_pair
from hookstream.io import read_all
from hookstream.records import DELIVERIES, ITEM_CHANGES, Codec, DeliveryRequest, ItemChangeEvent

REPLICAS = 3
PROCESSORS = 2


class Receiver:
    """Records each request's delivery id (`webhook-id`) and the item id of its body."""

    def __init__(self) -> None:
        self.by_delivery: Counter[str] = Counter()
        self.first: dict[str, float] = {}  # item id -> first receipt
        lock, me = threading.Lock(), self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                now, item = time.time(), str(self.body()["id"])
                with lock:
                    me.by_delivery[self.headers.get("webhook-id", "")] += 1
                    me.first.setdefault(item, now)
                self.answer(200)

        self.server, self.url = serve(Handler)

    def forget(self) -> None:
        self.by_delivery.clear()
        self.first.clear()


class RoundRobinProxy(threading.Thread):
    """The replicas' Service: round robin, a resent row to another replica than the last,
    refusing replicas skipped, and a share of answers lost (see the module)."""

    def __init__(self, upstreams: list[str], lose: float, seed: int = 23) -> None:
        super().__init__(daemon=True)
        self.upstreams, self.lose, self.rng = upstreams, lose, random.Random(seed)
        self.port = free_port_pair()
        self.url = f"http://127.0.0.1:{self.port}"
        self.posts = self.lost_answers = self.duplicate_answers = 0
        self._turn = itertools.count()
        self._last: dict[bytes, int] = {}  # row (timestamp and body) -> replica it last went to
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        timeout = aiohttp.ClientTimeout(total=10)
        connector = aiohttp.TCPConnector(force_close=True)  # GLPI: a connection per webhook
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as self._session:
            runner = web.ServerRunner(web.Server(self._forward), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self._ready.set()
            await self._stopping.wait()
            await runner.cleanup()

    def start_serving(self) -> RoundRobinProxy:
        self.start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self.join(10)

    async def _forward(self, request: web.BaseRequest) -> web.Response:
        body = await request.read()
        row = hashlib.sha256(request.headers.get("X-GLPI-timestamp", "").encode() + body).digest()
        self.posts += 1
        last = self._last.get(row)
        first = next(self._turn) if last is None else last + 1
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("host", "content-length", "connection")}
        for n in range(len(self.upstreams)):
            replica = (first + n) % len(self.upstreams)
            try:
                async with self._session.request(
                    request.method, self.upstreams[replica] + request.path_qs, data=body,
                    headers=headers,
                ) as answer:
                    text = await answer.read()
                    status = answer.status
            except aiohttp.ClientConnectorError:
                continue  # not listening (killed, restarting): the next endpoint
            except (aiohttp.ClientError, TimeoutError):
                self._last[row] = replica
                return web.Response(status=502, text="replica went away")
            self._last[row] = replica
            if b'"duplicate": true' in text:
                self.duplicate_answers += 1
            if 200 <= status < 300 and self.rng.random() < self.lose:
                self.lost_answers += 1
                return web.Response(status=502, text="answer lost")
            return web.Response(status=status, body=text,
                                content_type=answer.content_type or "application/json")
        return web.Response(status=503, text="no replica ready")


def scenario(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    broker = None
    if args.bootstrap:
        bootstrap = args.bootstrap
    else:
        broker = LocalBroker(folder / "kafka", Settings().cache_path, port=free_port_pair())
        broker.start()
        bootstrap = broker.bootstrap
    settings = Settings(bootstrap_servers=bootstrap, state_dir=str(folder / "hs"),
                        topic_prefix=f"replicas-{uuid.uuid4().hex[:8]}.")
    code, receiver = Path(args.code), Receiver()
    ingests = [Component("ingest", code, settings, folder) for _ in range(REPLICAS)]
    processors = [Component("processor", code, settings, folder) for _ in range(PROCESSORS)]
    delivery = Component("delivery", code, settings, folder)
    for n, part in enumerate([*ingests, *processors]):
        part.log = folder / f"{part.kind}-{n}.log"
    parts = [*ingests, *processors, delivery]
    proxy = RoundRobinProxy([i.url for i in ingests], args.lose).start_serving()
    glpi = Glpi(proxy.url, range(1, args.events + 1), args.rate)
    kills = Counter[str]()
    try:
        pipeline.set_up(code, settings, folder, receiver.url, signature_scheme="standard",
                        secret="whsecChaosReplicasChaosReplicas01")
        for part in parts:
            part.start()
        for part in parts:
            part.wait_ready()
        Glpi(proxy.url, range(10**9, 10**9 + 1), 1.0).run()  # warm-up, not counted
        deadline = time.monotonic() + 60
        while not receiver.first and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)
        receiver.forget()
        proxy.posts = proxy.lost_answers = proxy.duplicate_answers = 0
        glpi.start()
        faults(args, glpi, ingests, processors, delivery, kills)
        deadline = time.monotonic() + args.events / args.rate + DRAIN_S
        while len(receiver.first) < args.events and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # repeats still in flight are counted
        alive = all(part.alive() for part in parts)
    finally:
        glpi.stop.set()
        proxy.stop()
        for part in parts:
            part.stop()
        receiver.server.shutdown()
    glpi.join(10)
    on_kafka = topic_counts(settings, args.events)
    if broker is not None:
        broker.stop()
    ids = {str(i) for i in glpi.ids}
    got = {i: t for i, t in receiver.first.items() if i in ids}
    lags = sorted(got[i] - glpi.accepted[i] for i in got if i in glpi.accepted)
    return {
        "events": args.events, "posts": proxy.posts, "lost_answers": proxy.lost_answers,
        "ingest_kills": kills["ingest"], "processor_kills": kills["processor"],
        "delivery_restarts": kills["delivery"],
        **on_kafka, "duplicate_answers": proxy.duplicate_answers,
        "delivered": len(got), "lost": args.events - len(got),
        "duplicate_ids": sum(n - 1 for n in receiver.by_delivery.values()),
        "p99_s": round(lags[int(0.99 * (len(lags) - 1))], 2) if lags else None,
        "max_s": round(lags[-1], 2) if lags else None, "alive": alive,
    }


def faults(args: argparse.Namespace, glpi: Glpi, ingests: list[Component],
           processors: list[Component], delivery: Component, kills: Counter[str]) -> None:
    victims = [ingests[n % REPLICAS] for n in range(args.kills)]
    for extra in ([processors[n % PROCESSORS] for n in range(args.processor_kills)],
                  [delivery] * args.delivery_restarts):
        for n, part in enumerate(extra):  # spread among the replica kills
            victims.insert((n + 1) * len(victims) // (len(extra) + 1), part)
    for n, part in enumerate(victims):
        fraction = 0.1 + 0.7 * n / max(1, len(victims) - 1)
        while glpi.queued < fraction * args.events and glpi.is_alive():
            time.sleep(0.05)
        if part is delivery:
            log(f"SIGTERM delivery at {glpi.queued} rows queued")
            part.stop()
        else:
            log(f"SIGKILL {part.kind} on port {part.port} at {glpi.queued} rows queued")
            part.kill()
        kills[part.kind] += 1
        part.start()
        part.wait_ready()


def topic_counts(settings: Settings, events: int) -> dict[str, int]:
    """Copies of the stream's events on the input, and requests on hookstream.deliveries."""
    codec = Codec()
    event_ids: Counter[str] = Counter()
    for msg in read_all(settings, settings.topic(ITEM_CHANGES)):
        event = codec.decode(msg.value(), msg.headers(), ItemChangeEvent)
        if event.items_id <= events:
            event_ids[event.event_id] += 1
    delivery_ids: Counter[str] = Counter()
    for msg in read_all(settings, settings.topic(DELIVERIES)):
        request = codec.decode(msg.value(), msg.headers(), DeliveryRequest)
        if request.items_id <= events:
            delivery_ids[request.delivery_id] += 1
    return {"copies_on_kafka": sum(event_ids.values()) - len(event_ids),
            "requests": sum(delivery_ids.values()),
            "duplicate_requests": sum(delivery_ids.values()) - len(delivery_ids)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=25.0, help="rows per second")
    parser.add_argument("--lose", type=float, default=0.3, help="share of answers dropped")
    parser.add_argument("--kills", type=int, default=6, help="ingest replica SIGKILLs")
    parser.add_argument("--retry-s", type=float, default=2.0, help="GLPI's resend delay")
    parser.add_argument("--processor-kills", type=int, default=1)
    parser.add_argument("--delivery-restarts", type=int, default=2)
    parser.add_argument("--bootstrap", help="a running broker instead of one of its own")
    parser.add_argument("--code", default=str(REPO), help="checkout whose components run")
    parser.add_argument("--keep", help="a folder for the broker and component logs, kept")
    args = parser.parse_args()
    pipeline.RETRY_S = args.retry_s  # read by Glpi at each resend
    log(f"replicas: {args.events} events at {args.rate:.0f}/s, {REPLICAS} ingest replicas, "
        f"{args.lose:.0%} of answers lost, {args.kills} + {args.processor_kills} SIGKILLs")
    with tempfile.TemporaryDirectory(prefix="hookstream-chaos-replicas-") as tmp:
        folder = Path(args.keep or tmp) / "replicas"
        folder.mkdir(parents=True, exist_ok=True)
        row = scenario(args, folder)
    log(json.dumps({"scenario": "replicas", **row}))
    heads = ("events", "posts", "lost_answers", "ingest_kills", "processor_kills",
             "delivery_restarts",
             "copies_on_kafka", "duplicate_answers", "requests", "duplicate_requests",
             "delivered", "lost", "duplicate_ids", "p99_s", "max_s", "alive")
    print("\n| " + " | ".join(heads) + " |")
    print("|" + "---|" * len(heads))
    print("| " + " | ".join("-" if row[h] is None else str(row[h]) for h in heads) + " |")


if __name__ == "__main__":
    main()
