"""Chaos suite for delivery (issue 8 §3): faults under a steady stream, figures per scenario.

Run by hand, never by the tests (loopback only, bounded in time):

    .venv/bin/python bench/chaos/delivery.py [--events 3000] [--rate 200] [--pause-s 60]
        [--only kill,restart,pause,slow] [--code /path/to/another/checkout]

Each scenario starts its own Kafka broker (LocalBroker on free ports in a temporary
directory), two `hookstream run delivery` processes, and a receiver that counts unique
delivery ids (its capacity is fixed per scenario). DeliveryRequests are published at
--rate straight to hookstream.deliveries (ingest and processor have their own suites),
each carrying its produce time in its body, while the fault is applied:

    kill     SIGKILL one delivery process three times, at 15, 30 and 45 % of the stream
             (restarted under the same name at once after each kill)
    restart  the broker stopped and started again 12 s later
    pause    the broker SIGSTOPped for --pause-s, then SIGCONTed
    slow     the receiver at 300 requests/s (3 workers x 10 ms), events at 5 x --rate

Printed per scenario: events, delivered (unique ids), lost, duplicate requests, p99 and
maximum produce -> first receipt, the time the stream needed against what the receiver's
capacity allows, and whether the delivery processes were alive at the end. For `kill`,
also the time from each restarted process's start to its first delivery (its
`hookstream_delivery_attempts_total{outcome="delivered"}` above 0, polled every 50 ms;
"killed" if the next kill came first). The two processes run under the names
delivery-0 and delivery-1 (`group_instance_id`: static membership; code that predates the
setting ignores it). --code runs the delivery processes (and topic/webhook set-up) from
another checkout, e.g. the code before a change, for before/after tables.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from hookstream.config import Settings  # noqa: E402
from hookstream.devbroker import LocalBroker, free_port_pair  # noqa: E402
from hookstream.io import flush, producer  # noqa: E402
from hookstream.records import DELIVERIES, Codec, DeliveryRequest, delivery_id_for  # noqa: E402

DRAIN_S = 180  # after the last event, how long delivery may take before the rest is lost


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class QuietHandler(BaseHTTPRequestHandler):
    """A receiver's request handler: keep-alive, no access log, empty answers."""

    protocol_version = "HTTP/1.1"

    def answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def body(self) -> Any:
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    """`handler` served on a loopback port by a thread; the server and its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.request_queue_size = 1024
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/in"


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process still running, then wait; one that does not stop is killed."""
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in processes:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


class Receiver:
    """Counts requests per delivery id and the first receipt time of each."""

    def __init__(self, workers: int, service_s: float) -> None:
        self.first: dict[str, float] = {}
        self.produced: dict[str, float] = {}
        self.counts: Counter[str] = Counter()
        self.service_s = service_s  # may change while it runs (pipeline.py's slow phase)
        gate, lock, me = threading.Semaphore(workers), threading.Lock(), self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                data = self.body()
                with gate:
                    if me.service_s:
                        time.sleep(me.service_s)
                now = time.time()
                with lock:
                    ident = str(data["id"])
                    me.counts[ident] += 1
                    me.first.setdefault(ident, now)
                    me.produced.setdefault(ident, data.get("produced", now))
                self.answer(200)

        self.server, self.url = serve(Handler)


def env_for(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSTREAM_")}
    env.update(HOOKSTREAM_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
               HOOKSTREAM_TOPIC_PREFIX=settings.topic_prefix,
               HOOKSTREAM_STATE_DIR=settings.state_dir, HOOKSTREAM_PARTITIONS="6",
               HOOKSTREAM_RETRY_TIERS="10s,1m,10m", HOOKSTREAM_LOG_LEVEL="WARNING")
    return env


def cli(code: Path, settings: Settings, *args: str, log_to: Path | None = None,
        wait: bool = True, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    out = open(log_to, "ab") if log_to else subprocess.DEVNULL  # noqa: SIM115
    python = code / ".venv/bin/python"
    proc = subprocess.Popen([str(python if python.exists() else sys.executable), "-m",
                             "hookstream.cli", *args], cwd=code,
                            env={**env_for(settings), **(env or {})},
                            stdout=out, stderr=subprocess.STDOUT)
    if wait and proc.wait(120) != 0:
        raise RuntimeError(f"hookstream {' '.join(args)} failed")
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Delivery:
    """One `hookstream run delivery` under a name of its own, with its metrics port."""

    def __init__(self, code: Path, settings: Settings, logs: Path, slot: int) -> None:
        self.port = free_port()
        self.started = time.monotonic()
        self.first_delivery_s: float | None = None  # after the start
        self.process = cli(code, settings, "run", "delivery", log_to=logs, wait=False, env={
            "HOOKSTREAM_GROUP_INSTANCE_ID": f"delivery-{slot}",
            "HOOKSTREAM_METRICS_PORT": str(self.port),
            "HOOKSTREAM_METRICS_HOST": "127.0.0.1"})

    def watch(self) -> None:
        """Until its first delivery, or its end."""
        def poll() -> None:
            while self.process.poll() is None and time.monotonic() - self.started < 120:
                if self.delivered() > 0:
                    self.first_delivery_s = time.monotonic() - self.started
                    return
                time.sleep(0.05)
        threading.Thread(target=poll, daemon=True).start()

    def delivered(self) -> float:
        try:
            with urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=1) as answer:
                text = answer.read().decode()
        except OSError:
            return 0.0  # not serving yet
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("hookstream_delivery_attempts_total{")
                   and 'outcome="delivered"' in line)


def publisher(settings: Settings, url: str, events: int, rate: float, sent: list[int],
              prefix: str = "e") -> None:
    codec, prod, topic = Codec(), producer(settings), settings.topic(DELIVERIES)
    started = time.monotonic()
    for n in range(events):
        ahead = n / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
        produced = time.time()
        hook = f"w{n % 6}"
        ident = delivery_id_for(f"{prefix}{n}", hook)
        request = DeliveryRequest(
            delivery_id=ident, webhook_id=hook, instance="glpi", event_id=f"{prefix}{n}",
            itemtype="Ticket", items_id=n if prefix == "e" else -1, event="new",
            method="POST", url=url,
            body=json.dumps({"id": ident, "produced": produced}).encode(),
            created_at=int(produced * 1000), headers={"Content-Type": "application/json"})
        while True:
            try:
                value, headers = codec.encode(request, topic)
                prod.produce(topic, value, request.key().encode(), headers=headers)
                break
            except BufferError:
                prod.poll(0.1)
        prod.poll(0)
        sent[0] = n + 1
    flush(prod, timeout_s=600)


def warm_up(settings: Settings, receiver: Receiver) -> None:
    """Both processes started and in the group before the stream starts: one delivery
    goes through, then the second member's rebalance settles (excluded from figures)."""
    done = [0]
    publisher(settings, receiver.url, 1, 1.0, done, prefix="warm-up")
    settle(receiver)


def settle(receiver: Receiver) -> None:
    """Wait for the warm-up delivery and the rebalances after it; then forget it."""
    deadline = time.monotonic() + 60
    while not receiver.first and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(5)
    receiver.first.clear()
    receiver.produced.clear()
    receiver.counts.clear()


def scenario(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    state = work / name
    broker = LocalBroker(state / "kafka", Settings().cache_path, port=free_port_pair())
    broker.start()
    settings = Settings(bootstrap_servers=broker.bootstrap, topic_prefix=f"{name}.",
                        state_dir=str(state / "hs"))
    workers, service_s = (3, 0.01) if name == "slow" else (32, 0.0)
    receiver = Receiver(workers, service_s)
    code = Path(args.code)
    logs = state / "delivery.log"
    deliveries: list[Delivery] = []
    restarted: list[Delivery] = []
    try:
        cli(code, settings, "topics", "create")
        hooks = state / "hooks.yaml"
        hooks.write_text(yaml.safe_dump({"webhooks": [
            {"instance": "glpi", "name": f"w{i}", "id": f"w{i}", "itemtype": "Ticket",
             "event": "new", "is_active": True, "url": receiver.url, "timeout_s": 2,
             "sent_try": 10, "allowed_networks": ["127.0.0.0/8"]} for i in range(6)]}))
        cli(code, settings, "webhooks", "apply", "-f", str(hooks))
        for slot in range(2):
            deliveries.append(Delivery(code, settings, logs, slot))
        warm_up(settings, receiver)
        sent = [0]
        rate = 5 * args.rate if name == "slow" else args.rate  # faster than the receiver
        feed = threading.Thread(target=publisher,
                                args=(settings, receiver.url, args.events, rate, sent))
        started = time.monotonic()
        feed.start()
        fault(name, args, broker, deliveries, restarted, sent, code, settings, logs)
        feed.join()
        stream_s = args.events / rate
        deadline = time.monotonic() + DRAIN_S
        while len(receiver.first) < args.events and time.monotonic() < deadline:
            time.sleep(0.5)
        finished_s = time.monotonic() - started
        time.sleep(2)  # repeats still in flight are counted
        alive = all(d.process.poll() is None for d in deliveries)
    finally:
        stop_all([d.process for d in deliveries])
        broker.stop()
        receiver.server.shutdown()
    lags = sorted(receiver.first[i] - receiver.produced[i] for i in receiver.first)
    allowed_s = args.events / 300 if name == "slow" else stream_s
    return {
        "scenario": name, "events": args.events, "delivered": len(receiver.first),
        "lost": args.events - len(receiver.first),
        "duplicates": sum(n - 1 for n in receiver.counts.values()),
        "p99_s": lags[int(0.99 * (len(lags) - 1))] if lags else None,
        "max_s": lags[-1] if lags else None, "finished_s": round(finished_s, 1),
        "stream_s": round(max(stream_s, allowed_s), 1), "alive": alive,
        # per restart: seconds from its start to its first delivery, None if killed first
        "first_after_restart_s": [d.first_delivery_s for d in restarted],
    }


def restart_broker(broker: LocalBroker, down_s: float) -> float:
    """Stop the broker, start it again `down_s` later; returns when it is back (time.time())."""
    broker.stop()
    time.sleep(down_s)
    broker.start()
    return time.time()


def pause_broker(broker: LocalBroker, pause_s: float) -> float:
    """SIGSTOP the broker for `pause_s`, then SIGCONT; returns when it runs again."""
    pid = broker.status().pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    time.sleep(pause_s)
    os.kill(pid, signal.SIGCONT)
    return time.time()


def fault(name: str, args: argparse.Namespace, broker: LocalBroker,
          deliveries: list[Delivery], restarted: list[Delivery], sent: list[int], code: Path,
          settings: Settings, logs: Path) -> None:
    def at(fraction: float) -> None:
        while sent[0] < fraction * args.events:
            time.sleep(0.05)

    if name == "kill":
        # Early, so that the stream goes on well after the last restart (--events 6000:
        # kills 4.5 s apart, then 16 s of stream) and every restarted process has work.
        for fraction in (0.15, 0.3, 0.45):
            at(fraction)
            log(f"kill: SIGKILL pid {deliveries[0].process.pid} at {sent[0]} events")
            deliveries[0].process.kill()
            deliveries[0].process.wait()
            deliveries[0] = Delivery(code, settings, logs, 0)  # the same name again
            deliveries[0].watch()
            restarted.append(deliveries[0])
    elif name == "restart":
        at(0.3)
        log(f"restart: broker stopped at {sent[0]} events")
        restart_broker(broker, 12)
        log("restart: broker back")
    elif name == "pause":
        at(0.3)
        log(f"pause: SIGSTOP broker for {args.pause_s:.0f}s at {sent[0]} events")
        pause_broker(broker, args.pause_s)
        log("pause: broker continued")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--pause-s", type=float, default=60.0)
    parser.add_argument("--only", default="kill,restart,pause,slow")
    parser.add_argument("--code", default=str(REPO), help="checkout whose delivery runs")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hookstream-chaos-") as tmp:
        for name in args.only.split(","):
            log(f"scenario {name}: {args.events} events at {args.rate:.0f}/s")
            row = scenario(name, args, Path(tmp))
            log(json.dumps(row))
            rows.append(row)
    print(f"\n{'scenario':<9} {'events':>6} {'deliv.':>6} {'lost':>5} {'dupl.':>5} "
          f"{'p99 s':>7} {'max s':>7} {'took s':>7} {'needs s':>7} alive  first after restart s")
    for r in rows:
        p99 = f"{r['p99_s']:.2f}" if r["p99_s"] is not None else "-"
        mx = f"{r['max_s']:.2f}" if r["max_s"] is not None else "-"
        print(f"{r['scenario']:<9} {r['events']:>6} {r['delivered']:>6} {r['lost']:>5} "
              f"{r['duplicates']:>5} {p99:>7} {mx:>7} {r['finished_s']:>7} "
              f"{r['stream_s']:>7} {r['alive']!s:<5}  {firsts(r['first_after_restart_s'])}")


def firsts(seconds: list[float | None]) -> str:
    return " ".join("killed" if s is None else f"{s:.1f}" for s in seconds) or "-"


if __name__ == "__main__":
    main()
