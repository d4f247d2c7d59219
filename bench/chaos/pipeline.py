"""Chaos suite for the whole pipeline (issue 8 §3): GLPI -> ingest -> processor -> delivery.

Run by hand, never by the tests (loopback only, bounded in time):

    .venv/bin/python bench/chaos/pipeline.py [--events 3000] [--rate 50] [--down-s 12]
        [--pause-s 60] [--only kill,restart,pause,slow,leader-kill,rolling]
        [--code /path/to/another/checkout]
        [--keep DIR]

Each scenario starts its own Kafka broker (LocalBroker on free ports in a temporary
directory), one `hookstream run` ingest, processor and delivery (each on its own port,
restarted after a SIGKILL as Kubernetes would, and started again when one exits by
itself, counted as restarts), one GLPI instance, one webhook matching
every Ticket `new` event whose body is `{"id": <item id>}`, and delivery.py's receiver
counting receipts per item id. A thread acts as GLPI's webhook queue: each event is a
row (the Ticket fixture with its own id, GLPI's default body, X-GLPI-timestamp taken once,
signed), POSTed to ingest and resent unchanged every 0.5 s until a 2xx, so rows refused
while ingest or Kafka is away get in later. Rows are queued at --rate while the fault is
applied:

    kill     SIGKILL ingest, processor and delivery three times each, in turn, from 8 % to
             80 % of the stream (each restarted, and ready, before the next kill)
    restart  the broker stopped at 30 % of the stream, and started again --down-s later
    pause    the broker SIGSTOPped at 30 % for --pause-s, then SIGCONTed
    slow     rows at 8 x --rate; the receiver at 300 requests/s (3 workers x 10 ms) from 30 %
             to 70 % of the stream, fast before and after
    leader-kill  on a three-broker cluster (LocalCluster, topics with 3 replicas, 2 in
             sync): the broker leading glpi.item-changes[0] SIGKILLed at 30 %, started
             again --down-s later
    rolling  on a three-broker cluster: each broker in turn stopped (SIGTERM) and started
             again from 20 % of the stream, the next once every partition is in sync again

Printed per scenario: events, delivered (unique item ids), lost, duplicate receipts, the
p99 and maximum time from GLPI's POST accepted (its first 2xx) to the first receipt, for
`slow` a bound: twice the pipeline's own p99 before the slow phase plus the longest wait
the receiver's capacity imposes (a fluid 300/s queue over the actual accept times), for
restart/pause the time from the broker back to the first delivery received after it, and
the processes that exited by themselves and were started again (restarts), and whether
ingest, processor and delivery were all alive at the end; on the cluster, the
longest stall (the longest time without a receipt from the first broker loss until the
stream ends). One JSON line per
scenario, then the table. --code runs the components (and the set-up commands) from
another checkout, for before/after tables; --keep keeps brokers' data and logs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from delivery import DRAIN_S, REPO, Receiver, cli, log, pause_broker, restart_broker, settle

from hookstream.config import Settings
from hookstream.devbroker import LocalBroker, LocalCluster, free_port_pair
from hookstream.policy import glpi_headers
from hookstream.render import default_payload

INSTANCE = "glpi-chaos"
SECRET = "chaosSecretChaosSecretChaosSecretChaos01"
TICKET = json.loads((REPO / "tests/fixtures/Ticket.json").read_text())
RETRY_S = 0.5  # GLPI resends a refused row once a minute; a bench cannot wait that long
SLOW = (3, 0.01)  # the slow receiver: workers x service time = 300 requests/s
KINDS = ("ingest", "processor", "delivery")


class Glpi(threading.Thread):
    """GLPI's webhook queue: rows made at `rate`, each POSTed until a 2xx (unchanged)."""

    def __init__(self, url: str, ids: range, rate: float) -> None:
        super().__init__(daemon=True)
        self.url, self.ids, self.rate = f"{url}/glpi/{INSTANCE}/Ticket", ids, rate
        self.queued = 0  # rows made so far: the faults are placed by it
        self.accepted: dict[str, float] = {}  # item id -> when GLPI's POST got its 2xx
        self.refused = 0  # answers >= 300 and failed connections, all retried
        self.stop = threading.Event()

    def run(self) -> None:
        asyncio.run(self._queue())

    async def _queue(self) -> None:
        timeout = aiohttp.ClientTimeout(total=5)  # GLPI's 5 s
        connector = aiohttp.TCPConnector(limit=100)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            started, rows = time.monotonic(), []
            for n, ident in enumerate(self.ids):
                ahead_s = n / self.rate - (time.monotonic() - started)
                if ahead_s > 0:
                    await asyncio.sleep(ahead_s)
                if self.stop.is_set():
                    break
                rows.append(asyncio.create_task(self._row(session, ident)))
                self.queued = n + 1
            await asyncio.gather(*rows)

    async def _row(self, session: aiohttp.ClientSession, ident: int) -> None:
        body = default_payload({**TICKET, "id": ident}, "new", None)
        headers = glpi_headers(SECRET, body, int(time.time()))  # queued: signed once
        while not self.stop.is_set():
            try:
                async with session.post(self.url, data=body, headers=headers) as answer:
                    await answer.read()
                    status = answer.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            if 200 <= status < 300:
                self.accepted[str(ident)] = time.time()
                return
            self.refused += 1
            await asyncio.sleep(RETRY_S)


class Component:
    """One `hookstream run KIND` process on its own port, restartable."""

    def __init__(self, kind: str, code: Path, settings: Settings, folder: Path) -> None:
        self.kind, self.code, self.settings = kind, code, settings
        self.port, self.log = free_port_pair(), folder / f"{kind}.log"
        if kind == "ingest":
            # one process, which SIGKILL stops as the scenarios mean (several workers:
            # tests/integration/test_ingest_workers.py); code before --workers ignores it
            self.env = {"HOOKSTREAM_INGEST_HOST": "127.0.0.1",
                        "HOOKSTREAM_INGEST_PORT": str(self.port),
                        "HOOKSTREAM_INGEST_WORKERS": "1"}
        else:
            self.env = {"HOOKSTREAM_METRICS_HOST": "127.0.0.1",
                        "HOOKSTREAM_METRICS_PORT": str(self.port)}
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0  # exits the supervisor started again
        self._lock = threading.Lock()  # the supervisor's restart against the scenario's kill

    def start(self) -> None:
        self.proc = cli(self.code, self.settings, "run", self.kind, log_to=self.log,
                        wait=False, env=self.env)

    def kill_and_start(self) -> None:
        with self._lock:
            self.kill()
            self.start()

    def start_if_exited(self) -> None:
        """What a supervisor (Kubernetes' restartPolicy: Always) does for a process that
        exited by itself: start it again."""
        with self._lock:
            if self.proc is not None and self.proc.poll() is not None:
                log(f"{self.kind} exited with {self.proc.returncode}: started again")
                self.restarts += 1
                self.start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.kind} exited before ready; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.kind} not ready within {timeout_s:.0f} s")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def set_up(code: Path, settings: Settings, folder: Path, url: str, **webhook: Any) -> None:
    """Topics, the instance and one webhook on every new ticket, posting to `url` (with
    `webhook`'s fields on top)."""
    cli(code, settings, "topics", "create")
    instances, hooks = folder / "instances.yaml", folder / "webhooks.yaml"
    instances.write_text(yaml.safe_dump({"instances": [{
        "name": INSTANCE, "secret": SECRET, "allowed_networks": ["127.0.0.0/8"],
        "timestamp_tolerance_s": 3600}]}))
    hooks.write_text(yaml.safe_dump({"webhooks": [{
        "id": "every-ticket", "instance": INSTANCE, "name": "every new ticket",
        "itemtype": "Ticket", "event": "new", "is_active": True, "entities_id": 0,
        "is_recursive": True, "url": url, "use_default_payload": False,
        "payload": '{"id": {{ item.id }}}', "timeout_s": 2, "sent_try": 10,
        "allowed_networks": ["127.0.0.0/8"], **webhook}]}))
    cli(code, settings, "instances", "apply", "-f", str(instances))
    cli(code, settings, "webhooks", "apply", "-f", str(hooks))


CLUSTER = ("leader-kill", "rolling")  # scenarios on a three-broker cluster


def scenario(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    folder = work / name
    folder.mkdir(parents=True)
    broker: LocalBroker | LocalCluster = (
        LocalCluster(folder / "kafka", Settings().cache_path, free_port_pair(6), heap_mb=384)
        if name in CLUSTER
        else LocalBroker(folder / "kafka", Settings().cache_path, port=free_port_pair())
    )
    broker.start()
    settings = Settings(bootstrap_servers=broker.bootstrap, topic_prefix=f"{name}.",
                        state_dir=str(folder / "hs"))
    receiver = Receiver(SLOW[0] if name == "slow" else 32, 0.0)
    code = Path(args.code)
    parts = {kind: Component(kind, code, settings, folder) for kind in KINDS}
    rate = 8 * args.rate if name == "slow" else args.rate
    glpi = Glpi(parts["ingest"].url, range(1, args.events + 1), rate)
    marks: dict[str, float] = {}
    stopping = threading.Event()
    try:
        set_up(code, settings, folder, receiver.url)
        for part in parts.values():
            part.start()
        for part in parts.values():
            part.wait_ready()
        supervisor = threading.Thread(target=supervise, args=(parts, stopping), daemon=True)
        supervisor.start()
        warm = Glpi(parts["ingest"].url, range(10**9, 10**9 + 1), 1.0)
        warm.run()
        settle(receiver)
        glpi.start()
        fault(name, args, broker, parts, glpi, receiver, marks)
        deadline = time.monotonic() + args.events / rate + DRAIN_S
        while len(receiver.first) < args.events and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # repeats still in flight are counted
        alive = {kind: part.alive() for kind, part in parts.items()}
    finally:
        stopping.set()
        glpi.stop.set()
        pid = broker.status().pid
        if pid is not None:
            os.kill(pid, signal.SIGCONT)  # an error during the pause: stoppable again
        for part in parts.values():
            part.stop()
        broker.stop()
        receiver.server.shutdown()
    glpi.join(10)
    restarts = {kind: part.restarts for kind, part in parts.items()}
    return figures(name, args, glpi, receiver, marks, alive, restarts)


def supervise(parts: dict[str, Component], stopping: threading.Event) -> None:
    while not stopping.wait(1.0):
        for part in parts.values():
            part.start_if_exited()


def fault(name: str, args: argparse.Namespace, broker: Any,
          parts: dict[str, Component], glpi: Glpi, receiver: Receiver,
          marks: dict[str, float]) -> None:
    def at(fraction: float) -> None:
        while glpi.queued < fraction * args.events and glpi.is_alive():
            time.sleep(0.05)

    if name == "kill":
        for n in range(9):
            at(0.08 + 0.09 * n)
            part = parts[KINDS[n % 3]]
            log(f"kill: SIGKILL {part.kind} at {glpi.queued} rows queued")
            part.kill_and_start()
            part.wait_ready()
            log(f"kill: {part.kind} ready again")
    elif name == "restart":
        at(0.3)
        log(f"restart: broker stopped at {glpi.queued} rows queued")
        marks["back"] = restart_broker(broker, args.down_s)
        log("restart: broker back")
    elif name == "pause":
        at(0.3)
        log(f"pause: SIGSTOP broker for {args.pause_s:.0f} s at {glpi.queued} rows queued")
        marks["back"] = pause_broker(broker, args.pause_s)
        log("pause: broker continued")
    elif name == "leader-kill":
        at(0.3)
        node = leader_of(broker, f"{name}.glpi.item-changes")
        log(f"leader-kill: SIGKILL {node.bootstrap} at {glpi.queued} rows queued")
        marks["loss"] = time.time()
        node.kill()
        time.sleep(args.down_s)
        node.start()
        log("leader-kill: broker back")
    elif name == "rolling":
        at(0.2)
        marks["loss"] = time.time()
        for node in broker.nodes:
            log(f"rolling: {node.bootstrap} stopped at {glpi.queued} rows queued")
            node.stop()
            node.start()
            in_sync_s = wait_in_sync(broker)
            log(f"rolling: {node.bootstrap} back, every partition in sync {in_sync_s:.1f} s later")
    elif name == "slow":
        at(0.3)
        log(f"slow: receiver at 300 requests/s at {glpi.queued} rows queued")
        marks["slow"] = time.time()
        receiver.service_s = SLOW[1]
        at(0.7)
        receiver.service_s = 0.0
        marks["fast"] = time.time()
        log(f"slow: receiver fast again at {glpi.queued} rows queued")


def leader_of(cluster: LocalCluster, topic: str) -> LocalBroker:
    """The node leading partition 0 of `topic`."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    partition = admin.list_topics(topic, timeout=10).topics[topic].partitions[0]
    return cluster.nodes[partition.leader - 1]


def wait_in_sync(cluster: LocalCluster, timeout_s: float = 120) -> float:
    """Wait until every partition has all its replicas in sync; returns how long it took."""
    admin, started = AdminClient({"bootstrap.servers": cluster.bootstrap}), time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            topics = admin.list_topics(timeout=10).topics.values()
            if all(len(p.isrs) == len(p.replicas) for t in topics for p in t.partitions.values()):
                return time.monotonic() - started
        except KafkaException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"partitions still out of sync after {timeout_s:.0f} s")


def capacity_wait_s(accepted: list[float], slow: float, fast: float) -> float:
    """The longest wait a fluid queue serving 300/s from `slow` to `fast` (and at once
    outside) imposes on rows accepted at `accepted`."""
    free, longest = 0.0, 0.0
    for t in sorted(accepted):
        if slow <= t < fast:
            free = max(free, t) + SLOW[1] / SLOW[0]
            longest = max(longest, min(free, fast) - t)
    return longest


def figures(name: str, args: argparse.Namespace, glpi: Glpi, receiver: Receiver,
            marks: dict[str, float], alive: dict[str, bool], restarts: dict[str, int],
            ) -> dict[str, Any]:
    ids = {str(i) for i in glpi.ids}
    got = {i: t for i, t in receiver.first.items() if i in ids}
    lags = sorted(got[i] - glpi.accepted[i] for i in got if i in glpi.accepted)
    row: dict[str, Any] = {
        "scenario": name, "events": args.events, "accepted": len(glpi.accepted),
        "delivered": len(got), "lost": args.events - len(got),
        "duplicates": sum(n - 1 for i, n in receiver.counts.items() if i in ids),
        "p99_s": round(lags[int(0.99 * (len(lags) - 1))], 2) if lags else None,
        "max_s": round(lags[-1], 2) if lags else None,
        "bound_s": None, "resumed_s": None, "refused_posts": glpi.refused,
        "duplicated": {i: time.strftime("%H:%M:%S", time.localtime(got[i]))
                       for i, n in receiver.counts.items() if n > 1 and i in got},
        "alive": all(alive.values()), "alive_each": alive,
        "restarts": sum(restarts.values()), "restarts_each": restarts,
    }
    if "slow" in marks:  # the pipeline's own p99 before the slow phase, plus the queue
        wait_s = capacity_wait_s(list(glpi.accepted.values()), marks["slow"], marks["fast"])
        before = sorted(got[i] - t for i, t in glpi.accepted.items()
                        if t < marks["slow"] and i in got)
        base_s = before[int(0.99 * (len(before) - 1))] if before else 0.0
        row["bound_s"] = round(2 * (wait_s + base_s), 2)
    if "back" in marks:
        after = [t for t in got.values() if t >= marks["back"]]
        row["resumed_s"] = round(min(after) - marks["back"], 1) if after else None
    if "loss" in marks:  # the longest time without a receipt while rows kept coming
        times = sorted([marks["loss"], *(t for t in got.values() if t >= marks["loss"])])
        row["stall_s"] = round(max(b - a for a, b in itertools.pairwise(times)), 1
                               ) if len(times) > 1 else None
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=50.0, help="rows per second (slow: 8x)")
    parser.add_argument("--down-s", type=float, default=12.0)
    parser.add_argument("--pause-s", type=float, default=60.0)
    parser.add_argument("--only", default="kill,restart,pause,slow,leader-kill,rolling")
    parser.add_argument("--code", default=str(REPO), help="checkout whose components run")
    parser.add_argument("--keep", help="a folder for the brokers and component logs, kept")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hookstream-chaos-pipeline-") as tmp:
        for name in args.only.split(","):
            log(f"scenario {name}: {args.events} events at "
                f"{8 * args.rate if name == 'slow' else args.rate:.0f}/s")
            rows.append(scenario(name, args, Path(args.keep or tmp)))
            log(json.dumps(rows[-1]))
    print(f"\n{'scenario':<11} {'events':>6} {'deliv.':>6} {'lost':>5} {'dupl.':>5} "
          f"{'p99 s':>7} {'max s':>7} {'bound s':>7} {'resumed s':>9} {'stall s':>7} "
          f"{'restarts':>8} alive")
    for r in rows:
        cells = [f"{r[k]:.2f}" if r[k] is not None else "-" for k in ("p99_s", "max_s",
                                                                      "bound_s")]
        resumed = "-" if r["resumed_s"] is None else r["resumed_s"]
        stall = r.get("stall_s") or "-"
        print(f"{r['scenario']:<11} {r['events']:>6} {r['delivered']:>6} {r['lost']:>5} "
              f"{r['duplicates']:>5} {cells[0]:>7} {cells[1]:>7} {cells[2]:>7} "
              f"{resumed:>9} {stall:>7} {r['restarts']:>8} {r['alive']}")


if __name__ == "__main__":
    main()
