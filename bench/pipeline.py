"""The whole pipeline against Convoy: GLPI-signed requests in, nginx out, every process's CPU.

Run by hand or by `make bench` (loopback only, bounded in time):

    .venv/bin/python bench/pipeline.py [--quick] [--events 60000] [--latency-s 30]
        [--ingest-workers 1]

Starts one Kafka broker (LocalBroker in a temporary directory), `hookstream run ingest`
(`--workers N`, N from --ingest-workers), `hookstream run processor` and
`hookstream run delivery`, and nginx (bench/delivery.py's receivers, 8 ports, `return 200`,
$msec logged per request). One GLPI instance with one webhook on every new Ticket: one
delivery per event, each carrying, in a header, the time the load generator POSTed the
event (GLPI's body carries it in the item's `external_id`, the webhook echoes it).
The load generator (`--role glpi`, its own process, aiohttp on uvloop) sends GLPI's 3 KiB
default payload, signed as GLPI signs it (X-GLPI-signature, X-GLPI-timestamp), kept-alive.

1. throughput: --events requests, 64 in flight, as fast as ingest answers; done when nginx
   received every accepted one. Deliveries per second (first POST to last receipt) and
   deliveries per CPU-second of EVERY process the pipeline needs: ingest (with all its
   worker processes), processor, delivery and the broker's JVM (utime + stime of each
   process tree from /proc, before and after).
2. latency: 1,000 requests/s for --latency-s: from the generator's clock at the POST to
   nginx's $msec at receipt (one machine, one clock): p50, p99, max; ingest's answer p99.
Both after --warm-up requests (10,000; quick 3,000), unmeasured. The broker's CPU is also
given without its JIT compiler threads, which a fresh JVM keeps busy for minutes.

Convoy's figures are the ones recorded earlier on this machine (v26.7.3: 231-243
deliveries/s on both cores, p99 8.6 s from its API to receipt, 143-148 deliveries per
CPU-second of its agent, Postgres and Redis), not rerun here. The load generator and nginx
run on the same two cores: their CPU is counted and printed apart, not in the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import delivery as receivers  # bench/delivery.py: nginx, its install, ports, stop
import report
import yaml
from ingest import SECRET_KEY
from ingest import tree_cpu_seconds as cpu_s
from ingest import tree_peak_rss_mib as peak_rss_mib

ROOT = Path(__file__).resolve().parents[1]
BODY_BYTES = 3072  # GLPI's default payload of a Ticket with some description
ID_MARK, SENT_MARK = 123456789, "SENTMSMARK"  # filled in per request
GLPI_TIMEOUT_S = 5.0
SENT_HEADER = "X-Bench-Produced"  # bench/delivery.py's nginx logs `$msec <this header>`
# HotSpot's JIT compiler threads (their /proc comm): a fresh broker JVM compiles its hot
# code during its first minutes of load, a one-off a long-running broker has behind it
JIT_THREADS = ("C1 CompilerThre", "C2 CompilerThre")
CONVOY: dict[str, Any] = {"version": "v26.7.3", "deliveries_per_s": (231, 243),
                          "p99_s": 8.6, "per_cpu_s": (143, 148)}  # recorded here, not rerun


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def instance(n: int) -> tuple[str, str]:
    """GLPI instance n's name and webhook secret (40 characters, as GLPI makes them)."""
    return f"glpi-{n:04d}", f"benchFleetSecret{n:04d}".ljust(40, "x")


# -- the load generator: GLPI ---------------------------------------------------------


class Bodies:
    """GLPI's default payload for a 3 KiB Ticket, made per request: the item id, the event
    and the generator's clock at the POST (in `external_id`, echoed by the webhook)."""

    def __init__(self) -> None:
        from hookstream.render import default_payload

        item = json.loads((ROOT / "tests/fixtures/Ticket.json").read_text())
        item |= {"id": ID_MARK, "external_id": SENT_MARK}
        item["content"] += "x" * max(0, BODY_BYTES - len(default_payload(item, "new", None)))
        self.templates = {event: default_payload(item, event, None) for event in ("new", "update")}

    def make(self, ident: int, event: str, secret: str) -> tuple[bytes, dict[str, str]]:
        from hookstream.policy import glpi_headers

        now = time.time()
        body = self.templates[event].replace(str(ID_MARK).encode(), str(ident).encode(), 1)
        body = body.replace(SENT_MARK.encode(), f"{now * 1000:.3f}".encode(), 1)
        return body, glpi_headers(secret, body, int(now))


@dataclass
class Answers:
    """What GLPI saw: each request's answer time and status, the ids accepted (2xx), and
    in a fleet each cron run's length (from its tick to its 50th answer)."""

    seconds: list[float]
    statuses: Counter[str]
    accepted: list[int]
    bursts: list[float] = field(default_factory=list)

    def record(self, ident: int, started: float, status: int) -> None:
        self.seconds.append(time.perf_counter() - started)
        self.statuses[str(status)] += 1
        if 200 <= status < 300:
            self.accepted.append(ident)


def glpi(a: argparse.Namespace) -> None:
    """The generator's process: closed (--concurrency, --count), rate (--rate for
    --seconds) or fleet (--instances, each 50 a minute as GLPI's cron sends them)."""
    import aiohttp
    import uvloop

    bodies, answers = Bodies(), Answers([], Counter(), [])

    async def post(session: aiohttp.ClientSession, n: int, ident: int, event: str) -> None:
        name, secret = instance(n)
        body, headers = bodies.make(ident, event, secret)
        started = time.perf_counter()
        try:
            async with session.post(f"{a.url}/glpi/{name}/Ticket", data=body,
                                    headers=headers) as answer:
                await answer.read()
                status = answer.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0  # GLPI's timeout or a refused connection: GLPI would resend later
        answers.record(ident, started, status)

    async def main() -> None:
        timeout = aiohttp.ClientTimeout(total=GLPI_TIMEOUT_S)
        # GLPI opens a connection per webhook; the fleet does too, the others keep alive
        connector = aiohttp.TCPConnector(limit=0 if a.mode == "fleet" else 256,
                                         force_close=a.mode == "fleet")
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            started = time.perf_counter()
            if a.mode == "closed":
                async def client(k: int) -> None:
                    for i in range(k, a.count, a.concurrency):
                        await post(session, 0, a.first_id + i, "new")

                await asyncio.gather(*(client(k) for k in range(a.concurrency)))
            elif a.mode == "rate":
                tasks = []
                for i in range(int(a.rate * a.seconds)):
                    await asyncio.sleep(max(0.0, started + i / a.rate - time.perf_counter()))
                    tasks.append(asyncio.create_task(post(session, 0, a.first_id + i, "new")))
                await asyncio.gather(*tasks)
            else:
                await asyncio.gather(*(cron(session, n, started) for n in range(a.instances)))

    async def cron(session: aiohttp.ClientSession, n: int, started: float) -> None:
        """Instance n's queuedwebhook cron: at its minute tick (ticks spread over the
        instances), 50 rows sent one after another, each once its answer came."""
        offset, k = n * 60 / a.instances, 0
        for minute in range(int(a.seconds // 60) + 1):
            tick = started + minute * 60 + offset
            if tick - started >= a.seconds:
                return
            await asyncio.sleep(max(0.0, tick - time.perf_counter()))
            for _ in range(50):
                await post(session, n, n * 1_000_000 + k, ("new", "update")[k % 2])
                k += 1
            answers.bursts.append(time.perf_counter() - tick)

    uvloop.run(main())
    Path(a.out).write_text(json.dumps(
        {"seconds": answers.seconds, "statuses": answers.statuses, "accepted": answers.accepted,
         "bursts": answers.bursts}))


def glpi_answers(proc: subprocess.Popen[bytes], out: Path, timeout_s: float) -> Answers:
    if proc.wait(timeout_s) != 0:
        raise RuntimeError(f"the load generator exited with {proc.returncode}")
    found = json.loads(out.read_text())
    return Answers(sorted(found["seconds"]), Counter(found["statuses"]), found["accepted"],
                   sorted(found["bursts"]))


# -- processes and their CPU ----------------------------------------------------------


class Component:
    """One `hookstream run KIND` process, on its own port, with its log in the work dir."""

    def __init__(self, kind: str, env: dict[str, str], work: Path, *extra: str) -> None:
        self.kind, self.port = kind, receivers.free_ports(1)[0]
        where = "INGEST" if kind == "ingest" else "METRICS"
        env = {**env, f"HOOKSTREAM_{where}_HOST": "127.0.0.1",
               f"HOOKSTREAM_{where}_PORT": str(self.port)}
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work / f"{kind}.log"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hookstream.cli", "run", kind, *extra], cwd=ROOT,
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited before ready; see {self.log}:\n"
                                   + self.log.read_text()[-2000:])
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.kind} not ready within {timeout_s:.0f} s")

    def lag(self, topic: str) -> float | None:
        """hookstream_consumer_lag summed over `topic`'s partitions, from /metrics; None
        before the component reported any."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        found = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                 if line.startswith("hookstream_consumer_lag{") and f'topic="{topic}"' in line]
        return sum(found) if found else None

    def stop(self) -> None:
        receivers.stop(self.proc, signal.SIGTERM, timeout_s=30)


@dataclass
class Pipeline:
    """A broker, nginx, ingest, processor and delivery, and what each costs."""

    work: Path
    settings: Any  # hookstream.config.Settings
    broker_pid: int
    nginx_pid: int
    receipts: Path  # nginx's log: `$msec <sent ms> <item id> <webhook id>` per delivery
    origins: list[str]  # nginx's URLs
    parts: dict[str, Component]
    generators: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_glpi(self, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        """The load generator (this file, --role glpi) against ingest; stopped with the
        pipeline if it still runs then."""
        out = self.work / f"glpi-{time.monotonic_ns()}.json"
        cmd = [sys.executable, __file__, "--role", "glpi", "--url", self.parts["ingest"].url,
               "--out", str(out), *args]
        self.generators.append(subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL))
        return self.generators[-1], out

    def stop_generators(self) -> None:
        for proc in self.generators:
            receivers.stop(proc, signal.SIGKILL, timeout_s=10)

    def pids(self) -> dict[str, int]:
        return {**{k: c.proc.pid for k, c in self.parts.items()}, "broker": self.broker_pid}

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each pipeline process (trees), nginx's apart, and the part
        of the broker's that its JIT compiler threads used ("broker JIT", within "broker")."""
        return {**{k: cpu_s(p) for k, p in self.pids().items()}, "nginx": cpu_s(self.nginx_pid),
                "broker JIT": jit_cpu_s(self.broker_pid)}

    def peak_rss_mib(self) -> dict[str, float]:
        return {k: round(peak_rss_mib(p), 1) for k, p in self.pids().items()}

    def receipts_count(self) -> int:
        with open(self.receipts, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))

    def read_receipts(self) -> list[tuple[float, float, int, str]]:
        """(received ms, sent ms, item id, webhook id) per request nginx logged."""
        rows = []
        for line in self.receipts.read_text().splitlines():
            at, sent, ident, hook = line.split()
            rows.append((float(at) * 1000, float(sent), int(ident), hook))
        return rows

    def wait_receipts(self, count: int, timeout_s: float) -> float:
        """Wait until nginx logged `count` requests; the monotonic time it saw them."""
        deadline = time.monotonic() + timeout_s
        while (seen := self.receipts_count()) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{seen} of {count} deliveries received in {timeout_s:.0f} s")
            for part in self.parts.values():
                if part.proc.poll() is not None:
                    raise RuntimeError(f"{part.kind} exited; see {part.log}")
            time.sleep(0.1)
        return time.monotonic()


def jit_cpu_s(pid: int) -> float:
    """CPU seconds so far of the JVM `pid`'s JIT compiler threads."""
    ticks = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # a thread that ended
            continue
        if stat[stat.index("(") + 1:stat.rindex(")")] in JIT_THREADS:
            fields = stat.rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def webhook(n: int, event: str, origin: str) -> dict[str, Any]:
    """Instance n's webhook on `event` Tickets: GLPI's default payload, signed, and the
    event's send time, item id and webhook id echoed in the header nginx logs."""
    name, _ = instance(n)
    hook_id = f"{name}-{event}"
    return {"id": hook_id, "instance": name, "name": f"every {event} ticket",
            "itemtype": "Ticket", "event": event, "is_active": True, "entities_id": 0,
            "is_recursive": True, "url": f"{origin}/hook/{hook_id}",
            "secret": instance(n)[1], "signature_scheme": "glpi", "timeout_s": 5,
            "custom_headers": {SENT_HEADER: f"{{{{ item.external_id }}}} {{{{ item.id }}}} "
                                            f"{hook_id}"},
            "allowed_networks": ["127.0.0.0/8"]}


@contextmanager
def pipeline(instances: int, events: tuple[str, ...], ingest_workers: int) -> Iterator[Pipeline]:
    """Everything started, `instances` GLPI instances applied, each with one webhook per
    event in `events` (webhook i of an instance on nginx port i % 8); all stopped after."""
    from hookstream.config import load_settings
    from hookstream.devbroker import LocalBroker

    receivers.need_tools()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hs-pipeline-")))
        *ports, status_port = receivers.free_ports(receivers.ORIGINS + 1)
        receipts = stack.enter_context(receivers.nginx(work, ports, status_port))
        nginx_pid = int((work / "nginx/nginx.pid").read_text())
        origins = [f"http://127.0.0.1:{p}" for p in ports]
        broker = LocalBroker(work / "kafka", load_settings(env={}).cache_path,
                             port=receivers.broker_port_pair(), heap_mb=1024)
        log(f"starting a local Kafka broker on {broker.bootstrap}")
        broker.start()
        stack.callback(broker.stop)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSTREAM_")}
        env |= {"HOOKSTREAM_BOOTSTRAP_SERVERS": broker.bootstrap,
                "HOOKSTREAM_TOPIC_PREFIX": "bench.", "HOOKSTREAM_STATE_DIR": str(work / "hs"),
                "HOOKSTREAM_SECRET_KEY": SECRET_KEY, "HOOKSTREAM_LOG_LEVEL": "WARNING"}
        settings = load_settings(env={k: v for k, v in env.items() if k.startswith("HOOK")})
        apply(settings, work, instances, events, origins)
        # always given: ingest's own default is the CPU count
        workers = ("--workers", str(ingest_workers))
        parts = {"ingest": Component("ingest", env, work, *workers),
                 "processor": Component("processor", env, work),
                 "delivery": Component("delivery", env, work)}
        for part in parts.values():
            stack.callback(part.stop)
        for part in parts.values():
            part.wait_ready()
        pid = broker.status().pid
        assert pid is not None
        p = Pipeline(work, settings, pid, nginx_pid, receipts, origins, parts)
        stack.callback(p.stop_generators)
        yield p


def apply(settings: Any, work: Path, count: int, events: tuple[str, ...], origins: list[str]
          ) -> None:
    """Topics, `count` instances and their webhooks, through `instances apply` and
    `webhooks apply`'s own functions."""
    from hookstream.control import admin
    from hookstream.control import instances as instance_defs
    from hookstream.io import create_topics

    create_topics(settings)
    log(f"applying {count:,} instances and {count * len(events):,} webhooks")
    path = work / "instances.yaml"
    path.write_text(yaml.safe_dump({"instances": [
        {"name": instance(n)[0], "secret": instance(n)[1], "allowed_networks": ["127.0.0.0/8"],
         "timestamp_tolerance_s": 3600} for n in range(count)]}))
    instance_defs.apply_instances(settings, path)
    path = work / "webhooks.yaml"
    hooks = [webhook(n, event, origins[(n * len(events) + i) % len(origins)])
             for n in range(count) for i, event in enumerate(events)]
    path.write_text(yaml.safe_dump({"webhooks": hooks}))
    admin.apply_webhooks(settings, path)


def percentile(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


def spread(ordered: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(ordered, 50), 1), "p99": round(percentile(ordered, 99), 1),
            "max": round(ordered[-1], 1) if ordered else 0.0}


def warm_up(p: Pipeline, events: int = 200) -> None:
    """`events` requests through the whole pipeline first, 64 in flight: connections opened,
    and the broker's JIT through most of its compiling (a long-running broker is past it)."""
    proc, out = p.start_glpi("--mode", "closed", "--count", str(events), "--concurrency",
                             "64", "--first-id", "900000000")
    accepted = glpi_answers(proc, out, 300).accepted
    p.wait_receipts(len(accepted), 120)


# -- the pipeline bench ---------------------------------------------------------------


def throughput(p: Pipeline, events: int) -> dict[str, Any]:
    base = p.receipts_count()
    cpu_before, began = p.cpu(), time.monotonic()
    proc, out = p.start_glpi("--mode", "closed", "--count", str(events), "--concurrency",
                             "64", "--first-id", "1")
    glpi_cpu = 0.0
    while proc.poll() is None:  # sampled while it lives: its CPU is counted apart
        glpi_cpu = cpu_s(proc.pid)
        time.sleep(0.2)
    answers = glpi_answers(proc, out, 600)
    done = p.wait_receipts(base + len(answers.accepted), 300)
    cpu = {k: v - cpu_before[k] for k, v in p.cpu().items()}
    pipeline_cpu = sum(v for k, v in cpu.items() if k not in ("nginx", "broker JIT"))
    delivered = len(answers.accepted)
    return {"events": events, "accepted": delivered, "statuses": dict(answers.statuses),
            "seconds": round(done - began, 2), "deliveries_per_s": delivered / (done - began),
            "per_cpu_s": delivered / pipeline_cpu,
            "per_cpu_s_broker_jit_apart": delivered / (pipeline_cpu - cpu["broker JIT"]),
            "cpu_us_per_delivery": {k: round(v / delivered * 1e6) for k, v in cpu.items()}
            | {"glpi generator": round(glpi_cpu / delivered * 1e6)},
            "ingest_answer_ms": spread([s * 1000 for s in answers.seconds])}


def latency(p: Pipeline, rate: float, seconds: float) -> dict[str, Any]:
    first = 10_000_000
    ids = range(first, first + int(rate * seconds))  # this phase's; the warm-up's are above
    cpu_before = p.cpu()
    proc, out = p.start_glpi("--mode", "rate", "--rate", str(rate), "--seconds", str(seconds),
                             "--first-id", str(first))
    answers = glpi_answers(proc, out, seconds + 120)
    base = sum(1 for r in p.read_receipts() if r[2] not in ids)
    p.wait_receipts(base + len(answers.accepted), 120)
    cpu = {k: v - cpu_before[k] for k, v in p.cpu().items()}
    lags = sorted(at - sent for at, sent, ident, _ in p.read_receipts() if ident in ids)
    n = len(answers.accepted)
    return {"rate": rate, "seconds": seconds, "accepted": n, "statuses": dict(answers.statuses),
            "send_to_receipt_ms": spread(lags),
            "ingest_answer_ms": spread([s * 1000 for s in answers.seconds]),
            "cpu_us_per_delivery": {k: round(v / n * 1e6) for k, v in cpu.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 45 s in all")
    parser.add_argument("--events", type=int, help="throughput run (default 60,000; quick 6,000)")
    parser.add_argument("--latency-s", type=float, help="at 1,000/s (default 30; quick 8)")
    parser.add_argument("--warm-up", type=int,
                        help="requests before the measures (default 10,000; quick 3,000)")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--ingest-workers", type=int, default=1)
    parser.add_argument("--role", choices=["bench", "glpi"], default="bench",
                        help=argparse.SUPPRESS)
    for hidden in ("--url", "--out", "--mode"):
        parser.add_argument(hidden, default="", help=argparse.SUPPRESS)
    for hidden in ("--count", "--concurrency", "--first-id", "--instances"):
        parser.add_argument(hidden, type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=1.0, help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.role == "glpi":
        glpi(a)
        return 0
    events = a.events or (6_000 if a.quick else 60_000)
    latency_s = a.latency_s or (8.0 if a.quick else 30.0)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds: everything stopped
    load_before = os.getloadavg()
    with pipeline(1, ("new",), a.ingest_workers) as p:
        warm_up(p, a.warm_up or (3_000 if a.quick else 10_000))
        log(f"throughput: {events:,} GLPI-signed requests, 64 in flight")
        fast = throughput(p, events)
        log(f"  {fast['deliveries_per_s']:,.0f} deliveries/s, {fast['per_cpu_s']:,.0f} "
            "per CPU-s of every pipeline process")
        log(f"latency: {a.rate:,.0f} requests/s for {latency_s:g} s")
        paced = latency(p, a.rate, latency_s)
        rss = p.peak_rss_mib()
    return finish(fast, paced, rss, load_before, a)


def finish(fast: dict[str, Any], paced: dict[str, Any], rss: dict[str, float],
           load_before: tuple[float, float, float], a: argparse.Namespace) -> int:
    convoy_per_cpu, convoy_p99_ms = CONVOY["per_cpu_s"][1], CONVOY["p99_s"] * 1000
    e2e = paced["send_to_receipt_ms"]
    cpu, warm_per_cpu = fast["cpu_us_per_delivery"], fast["per_cpu_s_broker_jit_apart"]
    print(f"""
pipeline bench: GLPI-signed 3 KiB requests -> ingest ({a.ingest_workers} worker(s)) -> processor
-> delivery -> nginx, one broker, {os.cpu_count()} CPUs shared with the load generator and nginx;
load average before {load_before[0]:.2f}, now {os.getloadavg()[0]:.2f}.
throughput: {fast['accepted']:,} deliveries in {fast['seconds']:.1f} s: \
{fast['deliveries_per_s']:,.0f} deliveries/s
  per CPU-second of every pipeline process: {fast['per_cpu_s']:,.0f} \
(Convoy {CONVOY['version']}, recorded, not rerun: {CONVOY['per_cpu_s'][0]}-{convoy_per_cpu} of \
its agent, Postgres and Redis): {fast['per_cpu_s'] / convoy_per_cpu:.1f}x
  CPU us per delivery: ingest {cpu['ingest']}, processor {cpu['processor']}, delivery \
{cpu['delivery']}, broker {cpu['broker']} (its JIT compiler threads {cpu['broker JIT']}); \
apart: nginx {cpu['nginx']}, load generator {cpu['glpi generator']}
  per CPU-second without the broker's JIT compiler threads (a fresh JVM's one-off): \
{warm_per_cpu:,.0f} ({warm_per_cpu / convoy_per_cpu:.1f}x)
  Convoy's rate, recorded: {CONVOY['deliveries_per_s'][0]}-{CONVOY['deliveries_per_s'][1]}/s
latency at {a.rate:,.0f}/s for {paced['seconds']:g} s ({paced['accepted']:,} accepted, \
{paced['statuses']}):
  GLPI's POST to nginx's receipt: p50 {e2e['p50']:.0f} ms, p99 {e2e['p99']:.0f} ms, \
max {e2e['max']:.0f} ms (Convoy's p99, recorded: {CONVOY['p99_s']} s: \
{convoy_p99_ms / max(e2e['p99'], 1e-9):,.0f}x lower)
  ingest's answer: p50 {paced['ingest_answer_ms']['p50']:.1f} ms, \
p99 {paced['ingest_answer_ms']['p99']:.1f} ms
peak RSS (VmHWM, MiB): {rss}""")
    counted = {k: cpu[k] for k in ("ingest", "processor", "delivery", "broker")}
    cost_left = (
        f"10x Convoy's {convoy_per_cpu} deliveries per CPU-s allows {1e5 / convoy_per_cpu:.0f} "
        f"µs of CPU per delivery to every process of the pipeline; they spent "
        f"{sum(counted.values()):,.0f}: {report.costs(counted)} (the broker's with its JIT "
        f"compiler's {cpu['broker JIT']}); delivery's and ingest's own largest parts are "
        "aiohttp's client and server (the delivery and ingest benches, part by part)")
    paced_cpu = {k: v for k, v in paced["cpu_us_per_delivery"].items() if k != "broker JIT"}
    from hookstream.config import load_settings  # the components run on the defaults

    defaults = load_settings(env={})
    tail_left = (
        f"at {a.rate:,.0f}/s the pipeline's processes and nginx used "
        f"{sum(paced_cpu.values()) * a.rate / 1e6:.2f} of the {os.cpu_count()} cores "
        f"({report.costs(paced_cpu)} per delivery), the load generator about "
        f"{cpu['glpi generator'] * a.rate / 1e6:.2f} more: the tail is "
        f"waiting for a core (p50 {e2e['p50']:.0f} ms). Fixed waits on each event's way: the "
        f"processor's batch window up to {defaults.processor_batch_ms} ms and its transaction, "
        f"each consumer's fetch wait up to {defaults.kafka_fetch_wait_ms} ms")
    report.write(
        "pipeline",
        targets=[
            report.Target("pipeline vs Convoy, deliveries per CPU-second of every process",
                          round(fast["per_cpu_s"] / convoy_per_cpu, 2), "x", ">=", 10,
                          left=cost_left),
            report.Target("pipeline p99 vs Convoy's 8.6 s",
                          round(convoy_p99_ms / max(e2e["p99"], 1e-9), 1), "x lower", ">=", 100,
                          left=tail_left),
            report.Target("ingest to receipt p99 at 1,000/s", e2e["p99"], "ms", "<", 100,
                          left=tail_left),
        ],
        figures={"throughput": fast, "latency": paced, "peak_rss_mib": rss,
                 "ingest_workers": a.ingest_workers, "load_avg_before": load_before,
                 "convoy_recorded_not_rerun": CONVOY,
                 "apart": "nginx and the load generator share the cores; their CPU is "
                          "listed, not counted in per_cpu_s"},
        throughput={"hookstream pipeline": round(fast["deliveries_per_s"], 1),
                    "convoy (recorded)": CONVOY["deliveries_per_s"][1]},
        throughput_unit="deliveries/s",
        latency_ms=e2e,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
