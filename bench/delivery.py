"""Delivery benchmark: one `hookstream run delivery` process against nginx on loopback.

Run by hand, never by the tests:

    .venv/bin/python bench/delivery.py [--quick] [--requests 100000] [--profile py-spy]

It starts its own Kafka broker (LocalBroker in a temporary state directory on a free
port) unless KAFKA_BOOTSTRAP_SERVERS is set, uses a fresh topic prefix per scenario,
and stops everything it started. Receivers listen on 127.0.0.1 only:

* nginx (Debian's nginx-light) on 8 ports, `return 200` to everything; the 8 ports are
  8 origins, so the per-origin limit (64) times 8 equals the global limit (512).
  A stub_status port counts requests; requests carrying X-Bench-Produced are logged
  with nginx's $msec for the latency run.
* a hanging server (this file, `--role hang`, its own process) that accepts, reads and
  never answers, one port per hanging webhook: 20 hanging origins.

Scenarios, in order:

1. wrk against nginx (`wrk -t2 -c64 -d10s`, 1 KiB POST): the receiver's ceiling.
2. bare aiohttp send loop (this file, `--role bare`, its own process): the same requests
   (1 KiB body, GLPI signature), 512 in flight, 64 per origin, no Kafka: the client ceiling.
3. 200 healthy webhooks, --requests pre-produced DeliveryRequests: deliveries/s over the
   steady window (10 % to 90 % of the requests received by nginx), then VmHWM.
4. same process, idle: 1,000 deliveries/s paced for --latency-s; latency from the bench's
   produce() call to nginx receiving the request (the clocks are the same machine).
5. 180 healthy + 20 hanging webhooks (timeout_s 2): deliveries/s to the healthy ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ORIGINS = 8  # nginx ports
WEBHOOKS = 200
HANGING = 20  # webhooks i with i % 10 == 9
BODY_BYTES = 1024
IN_FLIGHT, PER_ORIGIN = 512, 64  # hookstream's defaults, used by the bare loop too
SECRET = "s3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3tAbCd"  # 40 chars, as GLPI generates
GLPI_RATE = 50 / 60  # GLPI's queuedwebhook cron: 50 requests a minute, one at a time
TARGETS = {"per_process": 5000, "vs_bare": 0.70, "p99_ms": 50, "rss_mib": 300, "hang": 0.80}
INSTALL = "apt-get update && apt-get install -y nginx-light wrk"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def body_for(n: int) -> bytes:
    head = json.dumps({"event": "new", "itemtype": "Ticket", "items_id": n, "pad": ""})
    return head.replace('"pad": ""', '"pad": "' + "x" * (BODY_BYTES - len(head)) + '"').encode()


# -- the receivers ---------------------------------------------------------------------


def need_tools() -> None:
    missing = [tool for tool in ("nginx", "wrk") if not shutil.which(tool, path=_sbin_path())]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"bench needs {', '.join(missing)}; install with: sudo sh -c '{INSTALL}'")
    log(f"installing {', '.join(missing)}: {INSTALL}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["sh", "-c", INSTALL], check=True, env=env, stdout=subprocess.DEVNULL)


def _sbin_path() -> str:
    return os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


NGINX_CONF = """\
worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    client_body_buffer_size 64k;
    keepalive_timeout 120s;
    keepalive_requests 10000000;
    log_format latency '$msec $http_x_bench_produced';
    server {{
{listens}
        access_log {d}/latency.log latency if=$http_x_bench_produced;
        location / {{ return 200 "ok"; }}
    }}
    server {{
        listen 127.0.0.1:{status};
        location / {{ stub_status; }}
    }}
}}
"""


@contextmanager
def nginx(work: Path, ports: list[int], status_port: int) -> Iterator[Path]:
    d = work / "nginx"
    d.mkdir()
    listens = "\n".join(f"        listen 127.0.0.1:{p} backlog=4096;" for p in ports)
    workers = max(2, min(4, os.cpu_count() or 2))
    conf = NGINX_CONF.format(d=d, workers=workers, listens=listens, status=status_port)
    (d / "nginx.conf").write_text(conf)
    binary = shutil.which("nginx", path=_sbin_path()) or "nginx"
    cmd = [binary, "-p", str(d), "-e", str(d / "error.log"), "-c", str(d / "nginx.conf")]
    proc = subprocess.Popen([*cmd, "-g", "daemon off;"], stdin=subprocess.DEVNULL)
    try:
        wait_port(status_port, proc)
        yield d / "latency.log"
    finally:
        stop(proc, signal.SIGQUIT)


def nginx_requests(status_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{status_port}/", timeout=5) as r:
        text = r.read().decode()
    return int(text.splitlines()[2].split()[2])


def wait_port(port: int, proc: subprocess.Popen[Any], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout_s}s")


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout_s: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def hang_server(ports: list[int]) -> None:
    """Accept, read, never answer; forget the connection when the client closes it."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass
        writer.close()

    async def main() -> None:
        for port in ports:
            await asyncio.start_server(hold, "127.0.0.1", port, backlog=4096)
        await asyncio.Event().wait()

    asyncio.run(main())


def bare_loop(urls: list[str], seconds: float) -> None:
    """The client-side ceiling: aiohttp, same requests and concurrency, no Kafka."""
    import aiohttp

    from hookstream.policy import signature_headers

    async def main() -> None:
        body = body_for(0)
        count, measuring = [0], [False]
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
        ) as session:

            async def worker(i: int) -> None:
                # worker i always targets origin i % ORIGINS: 64 in flight per origin
                url = urls[i % len(urls)]
                timeout = aiohttp.ClientTimeout(total=5, connect=5)
                n = 0
                while True:
                    n += 1
                    headers = {"Content-Type": "application/json"}
                    headers.update(
                        signature_headers("glpi", SECRET, f"{i}-{n}", body, int(time.time()))
                    )
                    async with session.post(
                        url, data=body, headers=headers, timeout=timeout, allow_redirects=False
                    ) as response:
                        if response.status == 200 and measuring[0]:
                            count[0] += 1

            tasks = [asyncio.create_task(worker(i)) for i in range(IN_FLIGHT)]
            await asyncio.sleep(1.0)  # warm up: connections opened
            measuring[0] = True
            started, cpu = time.perf_counter(), time.process_time()
            await asyncio.sleep(seconds)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            measuring[0] = False
            done = count[0]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        print(
            json.dumps(
                {"rate": done / elapsed, "per_cpu_s": done / cpu, "cpu_share": cpu / elapsed}
            )
        )

    import uvloop

    uvloop.run(main())  # the event loop `hookstream run delivery` uses


def run_wrk(port: int, work: Path, seconds: int) -> float:
    script = work / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = string.rep("x", {BODY_BYTES})\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    out = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{seconds}s", "-s", str(script), f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise RuntimeError(f"no rate in wrk's output:\n{out}")
    return float(match.group(1))


def run_bare(urls: list[str], seconds: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--role", "bare", "--seconds", str(seconds), *urls]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60)
    found: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


# -- Kafka side ------------------------------------------------------------------------


@contextmanager
def kafka(work: Path) -> Iterator[str]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    from hookstream.config import Settings
    from hookstream.devbroker import LocalBroker

    port = broker_port_pair()
    broker = LocalBroker(work / "kafka", Settings().cache_path, port=port, heap_mb=1024)
    log(f"starting a local Kafka broker on 127.0.0.1:{port}")
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def broker_port_pair() -> int:
    """A port p with p and p + 1 free, below the ephemeral range: outgoing connections
    (ours, wrk's, anyone's) cannot take the controller port between the check and the
    broker's bind."""
    import random

    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(100):
        port = random.randrange(10_000, low - 2)
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for the broker")


class Scenario:
    """One topic prefix with its webhooks applied, and a producer of DeliveryRequests."""

    def __init__(self, bootstrap: str, work: Path, urls: list[str], timeouts: list[float]):
        from hookstream.config import load_settings
        from hookstream.control import admin
        from hookstream.io import create_topics, producer
        from hookstream.records import DELIVERIES, Codec

        self.prefix = f"bench{uuid.uuid4().hex[:8]}."
        self.state_dir = work / "state"  # the secret key file, shared by bench and delivery
        self.settings = load_settings(
            env={},
            bootstrap_servers=bootstrap,
            topic_prefix=self.prefix,
            state_dir=str(self.state_dir),
        )
        self.urls = urls
        create_topics(self.settings)
        hooks = [
            {
                "id": f"bench-{i:03d}",
                "instance": "glpi-bench",
                "name": f"bench {i}",
                "itemtype": "Ticket",
                "event": "new",
                "is_active": True,
                "url": url,
                "secret": SECRET,
                "signature_scheme": "glpi",
                "timeout_s": timeout,
                "allowed_networks": ["127.0.0.0/8"],
            }
            for i, (url, timeout) in enumerate(zip(urls, timeouts, strict=True))
        ]
        path = work / f"{self.prefix}yaml"
        path.write_text(yaml.safe_dump({"webhooks": hooks}))
        admin.apply_webhooks(self.settings, path)
        self.topic = self.settings.topic(DELIVERIES)
        self.codec = Codec()
        self.producer = producer(
            self.settings, {"linger.ms": 1, "queue.buffering.max.messages": 1_000_000}
        )
        self.n = 0
        self.n_stamped = 0

    def produce(self, count: int, stamp: bool = False) -> None:
        from hookstream.records import DeliveryRequest, delivery_id_for

        for _ in range(count):
            n, self.n = self.n, self.n + 1
            webhook = n % WEBHOOKS
            now = time.time() * 1000
            headers = {"Content-Type": "application/json"}
            if stamp:
                headers["X-Bench-Produced"] = f"{now:.3f}"
            event_id = f"bench-event-{n}"
            request = DeliveryRequest(
                delivery_id=delivery_id_for(event_id, f"bench-{webhook:03d}"),
                webhook_id=f"bench-{webhook:03d}",
                instance="glpi-bench",
                event_id=event_id,
                itemtype="Ticket",
                items_id=n,
                event="new",
                method="POST",
                url=self.urls[webhook],
                body=body_for(n),
                created_at=int(now),
                headers=headers,
            )
            value, record_headers = self.codec.encode(request, self.topic)
            while True:
                try:
                    self.producer.produce(
                        self.topic, value, request.key().encode(), headers=record_headers
                    )
                    break
                except BufferError:
                    self.producer.poll(0.05)
            self.producer.poll(0)

    def close(self) -> None:
        self.producer.flush(10)
        del self.producer  # before the broker stops: no reconnect noise

    def flush(self) -> None:
        if self.producer.flush(60):
            raise RuntimeError("pre-produced requests not acknowledged by Kafka")

    def attempts_produced(self) -> int:
        from confluent_kafka import TopicPartition

        from hookstream.io import consumer, watermarks
        from hookstream.records import ATTEMPTS

        topic = self.settings.topic(ATTEMPTS)
        cons = consumer(self.settings, "bench-watermarks")
        try:
            parts = cons.list_topics(topic, timeout=10).topics[topic].partitions
            return sum(watermarks(cons, TopicPartition(topic, p), 10)[1] for p in parts)
        finally:
            cons.close()

    def outcomes(self) -> dict[str, int]:
        """Attempt outcomes; those of webhooks that do not point at nginx are "hanging ..."."""
        from collections import Counter

        from hookstream.io import read_all
        from hookstream.records import ATTEMPTS, AttemptRecord

        hanging = {f"bench-{i:03d}" for i, url in enumerate(self.urls) if "/hang/" in url}
        counts: Counter[str] = Counter()
        for m in read_all(self.settings, self.settings.topic(ATTEMPTS)):
            attempt = self.codec.decode(m.value(), m.headers(), AttemptRecord)
            counts[("hanging " if attempt.webhook_id in hanging else "") + attempt.outcome] += 1
        return dict(counts)


@contextmanager
def delivery_process(scenario: Scenario, profile: Path | None) -> Iterator[subprocess.Popen[Any]]:
    """`hookstream run delivery` for `scenario`; under pyinstrument (profile *.txt) or
    cProfile (*.prof) if asked (py-spy attaches to the running process instead: spied)."""
    env = {
        **os.environ,
        "HOOKSTREAM_BOOTSTRAP_SERVERS": scenario.settings.bootstrap_servers,
        "HOOKSTREAM_TOPIC_PREFIX": scenario.prefix,
        "HOOKSTREAM_STATE_DIR": str(scenario.state_dir),
        "HOOKSTREAM_LOG_LEVEL": "WARNING",
        "HOOKSTREAM_METRICS_PORT": "0",
    }
    cmd = [str(Path(sys.executable).with_name("hookstream")), "run", "delivery"]
    if profile is not None and profile.suffix == ".txt":
        cmd = [
            sys.executable,
            "-m",
            "pyinstrument",
            "-r",
            "text",
            "-o",
            str(profile),
            "-m",
            "hookstream.cli",
            "run",
            "delivery",
        ]
    elif profile is not None and profile.suffix == ".prof":
        cmd = [
            sys.executable,
            "-m",
            "cProfile",
            "-o",
            str(profile),
            "-m",
            "hookstream.cli",
            "run",
            "delivery",
        ]
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        stop(proc, signal.SIGTERM, timeout_s=60)


def cpu_s(pid: int, main_thread: bool = False) -> float:
    """CPU seconds (user + system) of a process, or of its main thread (the event loop)."""
    path = f"/proc/{pid}/task/{pid}/stat" if main_thread else f"/proc/{pid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int) -> dict[str, int]:
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            found[key] = int(value.split()[0])
    return found


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds of a process by kind of thread: its event loop (the main thread),
    librdkafka's (named rdk:...), and the rest (the fetch executor, the health server)."""
    found = {"loop": 0.0, "librdkafka": 0.0, "other threads": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        kind = ("loop" if task.name == str(pid) else
                "librdkafka" if name.startswith("rdk:") else "other threads")
        found[kind] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic s
    received: int  # requests nginx received since the watch began
    threads: dict[str, float]  # thread_cpu_s of the delivery process

    @property
    def cpu(self) -> float:
        return sum(self.threads.values())


def steady_rate(samples: list[Sample], total: int) -> dict[str, Any]:
    """Between 10 % and 90 % of `total` received: requests per second of wall time, per CPU
    second of the delivery process and of its main thread, the CPU µs per delivery of each
    kind of thread; and the time to all of them."""

    def at(fraction: float) -> Sample:
        return next(s for s in samples if s.received >= fraction * total)

    first, last = at(0.1), at(0.9)
    n, seconds = last.received - first.received, last.at - first.at
    return {
        "rate": n / seconds,
        "per_cpu_s": n / max(last.cpu - first.cpu, 1e-9),
        "per_loop_cpu_s": n / max(last.threads["loop"] - first.threads["loop"], 1e-9),
        "cpu_share": (last.cpu - first.cpu) / seconds,
        "drain_s": at(1.0).at - samples[0].at,
        "cpu_us": {kind: (last.threads[kind] - first.threads[kind]) / n * 1e6
                   for kind in last.threads},
    }


def watch(
    status_port: int, total: int, proc: subprocess.Popen[Any], timeout_s: float,
    steady: Callable[[bool], None] = lambda started: None,
) -> list[Sample]:
    """Sample nginx's request counter until `total` more requests arrived (status probes
    are requests too: each sample subtracts its own); `steady(True)` is called once 10 %
    have arrived, `steady(False)` once 90 % have (steady_rate's window)."""
    base = nginx_requests(status_port)
    edges = [0.1 * total, 0.9 * total]
    samples, probes = [Sample(time.monotonic(), 0, thread_cpu_s(proc.pid))], 0
    deadline = time.monotonic() + timeout_s
    while samples[-1].received < total:
        if proc.poll() is not None:
            raise RuntimeError(f"the delivery process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {samples[-1].received} of {total} requests in "
                               f"{timeout_s:.0f}s")
        time.sleep(0.1)
        probes += 1
        received = nginx_requests(status_port) - base - probes
        samples.append(Sample(time.monotonic(), received, thread_cpu_s(proc.pid)))
        while edges and received >= edges[0]:
            edges.pop(0)
            steady(len(edges) == 1)
    return samples


# -- where the CPU goes: py-spy's stacks, part by part ------------------------------------

# A stack's part is that of its innermost frame matching a rule (stdlib and C frames in
# between are charged to the project or library frame that called them).
PARTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((part, re.compile(rule)) for part, rule in (
    ("headers+signature", r"policy/signing\.py|policy/redact\.py"),
    ("consume/decode", r"\b(_fetch|_receive|decode|_schemas|from_dict|header) \(.*"
                       r"(delivery/service|records/codec|records/events)\.py"),
    ("attempt record encode/produce", r"delivery/record\.py|delivery/attempts\.py|"
                                      r"records/codec\.py|records/events\.py|operations\.py"),
    ("offsets/checkpoint", r"delivery/checkpoint\.py|hookstream/io/kafka\.py"),
    ("metrics", r"prometheus_client|io/metrics\.py"),
    ("scheduling/limits", r"policy/(concurrency|circuit|ordering)\.py"),
    ("decide (policy)", r"hookstream/policy/"),
    ("HTTP client", r"aiohttp/|yarl/|multidict/|delivery/http/"),
    ("scheduling/limits", r"delivery/(worker|limits|schedule|ordering|stale|recall)\.py"),
))


@contextmanager
def spying(pid: int, out: Path | None) -> Iterator[Callable[[bool], None]]:
    """A `steady` callback for `watch` that runs py-spy on `pid` over the steady window
    (from this Python's bin, where `pip install py-spy` puts it; sampling without pausing
    the process), writing collapsed stacks to `out`. Nothing when `out` is None."""
    binary = Path(sys.executable).with_name("py-spy")
    spy: list[subprocess.Popen[Any]] = []
    if out is not None and not binary.exists():
        log("py-spy not installed (pip install py-spy): no part-by-part figures")
        out = None
    if out is not None:
        out.unlink(missing_ok=True)

    def steady(started: bool) -> None:
        if out is None:
            return
        if started:
            spy.append(subprocess.Popen(
                [str(binary), "record", "--pid", str(pid), "--rate", "250", "--nonblocking",
                 "--format", "raw", "--output", str(out)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        elif spy:
            stop(spy.pop(), signal.SIGINT)

    try:
        yield steady
    finally:
        for left in spy:
            stop(left, signal.SIGINT)


def spied_parts(raw: Path) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """From py-spy's collapsed stacks: each part's share of the Python threads' samples,
    and the top 20 functions by own samples (share)."""
    parts: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        own[frames[-1]] += int(count)
        parts[_part_of(frames)] += int(count)
    total = sum(parts.values()) or 1
    top = [(frame, n / total) for frame, n in own.most_common(20)]
    return {part: n / total for part, n in parts.most_common()}, top


def _part_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for part, rule in PARTS:
            if rule.search(frame):
                return part
    return "other (event loop, asyncio)"


def paced_latency(scenario: Scenario, log_file: Path, rate: int, seconds: float) -> list[float]:
    """Produce `rate` stamped requests a second; latencies (ms) from nginx's $msec."""
    start = log_file.stat().st_size if log_file.exists() else 0
    total, tick = int(rate * seconds), 0.01
    began = time.monotonic()
    while scenario.n_stamped < total:
        due = min(total, int((time.monotonic() - began) * rate) + 1)
        scenario.produce(due - scenario.n_stamped, stamp=True)
        scenario.n_stamped = due
        time.sleep(tick)
    scenario.flush()
    deadline = time.monotonic() + 30
    lines: list[str] = []
    while time.monotonic() < deadline:
        with open(log_file, "rb") as f:
            f.seek(start)
            lines = f.read().decode().splitlines()
        if len(lines) >= total:
            break
        time.sleep(0.2)
    timed = sorted((float(at) * 1000 - float(sent), float(sent))
                   for at, sent in (x.split() for x in lines))
    slowest = [sent for _, sent in timed[-max(1, len(timed) // 100):]]
    if slowest:  # one stall, or spread over the run?
        log(f"  the slowest 1 % were produced within {max(slowest) - min(slowest):,.0f} ms")
    return [latency for latency, _ in timed]


def percentile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


# -- the run ---------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="under a minute: 12,000 requests, 3 s ceilings, 5 s of latency")
    parser.add_argument("--requests", type=int, default=100_000, help="pre-produced per run")
    parser.add_argument("--ceiling-s", type=int, default=10, help="wrk and bare loop duration")
    parser.add_argument("--latency-s", type=float, default=10.0)
    parser.add_argument("--latency-rate", type=int, default=1000)
    parser.add_argument(
        "--profile",
        choices=["py-spy", "pyinstrument", "cprofile", "none"],
        default="py-spy",
        help="profile the delivery process of the all-healthy run into bench/results/: "
        "py-spy (the default, if installed) samples it from outside at little cost and "
        "gives the CPU per delivery part by part; pyinstrument and cprofile slow it down",
    )
    parser.add_argument("--skip-hanging", action="store_true")
    parser.add_argument(
        "--role", choices=["bench", "hang", "bare"], default="bench", help=argparse.SUPPRESS
    )
    parser.add_argument("--seconds", type=float, default=10, help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.role == "hang":
        hang_server([int(p) for p in a.args])
        return 0
    if a.role == "bare":
        bare_loop(a.args, a.seconds)
        return 0
    if a.quick:
        a.requests, a.ceiling_s, a.latency_s = 12_000, 3, 5.0

    need_tools()
    out_dir = Path(__file__).resolve().parent / "results"
    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hs-bench-")))
        *ports, status_port = free_ports(ORIGINS + 1)
        hang_ports = free_ports(HANGING)
        log_file = stack.enter_context(nginx(work, ports, status_port))
        hang = subprocess.Popen(
            [sys.executable, __file__, "--role", "hang", *map(str, hang_ports)],
            stdin=subprocess.DEVNULL,
        )
        stack.callback(stop, hang)
        wait_port(hang_ports[-1], hang)
        healthy = [f"http://127.0.0.1:{ports[i % ORIGINS]}/hook/{i}" for i in range(WEBHOOKS)]
        log(f"nginx on {ports}, hanging origins on {hang_ports[0]}..{hang_ports[-1]}")

        log(f"receiver ceiling: wrk -t2 -c64 -d{a.ceiling_s}s, 1 KiB POST")
        results["wrk"] = run_wrk(ports[0], work, a.ceiling_s)
        log(f"  {results['wrk']:,.0f} req/s")
        log(f"client ceiling: bare aiohttp loop, {IN_FLIGHT} in flight, {a.ceiling_s}s")
        results["bare"] = run_bare(healthy[:ORIGINS], a.ceiling_s)
        log(f"  {results['bare']['rate']:,.0f} req/s")

        bootstrap = stack.enter_context(kafka(work))
        timeout = max(120.0, a.requests / 200)

        log(f"all healthy: {a.requests} requests to {WEBHOOKS} webhooks, pre-producing")
        scenario = Scenario(bootstrap, work, healthy, [5.0] * WEBHOOKS)
        stack.callback(scenario.close)
        scenario.produce(a.requests)
        scenario.flush()
        profile = None
        if a.profile != "none":
            out_dir.mkdir(exist_ok=True)
            suffix = {"py-spy": "raw", "pyinstrument": "txt", "cprofile": "prof"}[a.profile]
            profile = out_dir / f"delivery-{a.profile}.{suffix}"
        spied = profile if profile is not None and a.profile == "py-spy" else None
        with delivery_process(scenario, profile) as proc, spying(proc.pid, spied) as steady:
            samples = watch(status_port, a.requests, proc, timeout, steady)
            results["healthy"] = steady_rate(samples, a.requests)
            log(f"  {results['healthy']['rate']:,.0f} deliveries/s")
            deadline = time.monotonic() + 30
            while scenario.attempts_produced() < a.requests and time.monotonic() < deadline:
                time.sleep(0.5)
            results["healthy"]["attempts"] = scenario.attempts_produced()
            results["load_latency"] = os.getloadavg()[0]
            log(f"paced {a.latency_rate}/s for {a.latency_s:g}s: produce -> nginx latency")
            latencies = paced_latency(scenario, log_file, a.latency_rate, a.latency_s)
            results["latency_n"] = len(latencies)
            for p in (50, 99, 100):
                results[f"p{p}_ms"] = percentile(latencies, p) if latencies else float("nan")
            results.update(memory_kib(proc.pid))
        results["healthy"]["outcomes"] = scenario.outcomes()
        if spied is not None and spied.exists():
            results["parts"], results["top"] = spied_parts(spied)

        if not a.skip_hanging:
            log(f"{HANGING} of {WEBHOOKS} webhooks hang (timeout_s 2), pre-producing")
            urls = [
                f"http://127.0.0.1:{hang_ports[i // 10]}/hang/{i}" if i % 10 == 9 else u
                for i, u in enumerate(healthy)
            ]
            timeouts = [2.0 if i % 10 == 9 else 5.0 for i in range(WEBHOOKS)]
            scenario = Scenario(bootstrap, work, urls, timeouts)
            stack.callback(scenario.close)
            scenario.produce(a.requests)
            scenario.flush()
            to_healthy = a.requests - a.requests // 10
            with delivery_process(scenario, None) as proc:
                samples = watch(status_port, to_healthy, proc, timeout)
                results["hanging"] = steady_rate(samples, to_healthy)
                log(f"  {results['hanging']['rate']:,.0f} deliveries/s to the healthy ones")
            results["hanging"]["outcomes"] = scenario.outcomes()
    report(results, a)
    if profile is not None:
        print(f"profile of the all-healthy delivery process: {profile}")
    return 0


def cpu_parts(r: dict[str, Any]) -> dict[str, float]:
    """CPU µs per delivery, part by part: the Python threads' CPU (loop and fetch executor)
    split by py-spy's shares, then librdkafka's own threads, which py-spy does not see."""
    cpu_us = r["healthy"]["cpu_us"]
    python_us = cpu_us["loop"] + cpu_us["other threads"]
    parts = {part: round(share * python_us, 1) for part, share in r.get("parts", {}).items()}
    if not parts:
        parts = {"event loop thread": round(cpu_us["loop"], 1),
                 "other Python threads": round(cpu_us["other threads"], 1)}
    parts["librdkafka threads (fetch, produce, I/O)"] = round(cpu_us["librdkafka"], 1)
    parts["total"] = round(sum(cpu_us.values()), 1)
    return parts


def report(r: dict[str, Any], a: argparse.Namespace) -> None:
    from report import Target, costs, write

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    h, bare = r["healthy"], r["bare"]
    rate = h["rate"]
    parts = cpu_parts(r)
    slowed = a.profile in ("pyinstrument", "cprofile")
    bare_us = 1e6 / bare["per_cpu_s"]
    spent = {k: v for k, v in parts.items() if k != "total"}

    def left(allowed_us: float) -> str:
        """The CPU per delivery a goal allows on one event loop, against the process's."""
        return (f"{allowed_us:.0f} µs of CPU per delivery allowed (the bare aiohttp loop "
                f"spends {bare_us:.0f} on its whole request, {bare['rate']:,.0f}/s here); "
                f"delivery spends {parts['total']:.0f}: {costs(spent)}")
    print(f"""
hookstream delivery benchmark: {r["cpus"]} CPUs, load average {r["load_before"]:.2f} before
the run, {r["load_latency"]:.2f} before the latency run{
", delivery under " + a.profile if slowed else ""}. "per loop-CPU-s": deliveries per
CPU second of the process's main thread (its event loop), a rate free of CPU contention.

receiver ceiling: wrk -t2 -c64         {r["wrk"]:9,.0f} req/s
client ceiling: bare aiohttp loop      {bare["rate"]:9,.0f} req/s  \
{bare["per_cpu_s"]:,.0f} per CPU-s (process had {bare["cpu_share"]:.0%} of a CPU)
delivery, 200 healthy webhooks         {rate:9,.0f} deliveries/s  \
{h["per_loop_cpu_s"]:,.0f} per loop-CPU-s, {h["per_cpu_s"]:,.0f} per process-CPU-s \
(process had {h["cpu_share"]:.0%} of a CPU); all {a.requests:,} in {h["drain_s"]:.1f} s, \
{h["attempts"]:,} attempt records then; outcomes after the latency run: {h["outcomes"]}
  target >= {TARGETS["per_process"]:,}/s per process      {verdict(rate >= TARGETS["per_process"])}
  vs bare loop                         {rate / bare["rate"]:9.0%}  \
(per CPU-s: {h["per_cpu_s"] / bare["per_cpu_s"]:.0%})  target >= 70%: \
{verdict(rate / bare["rate"] >= TARGETS["vs_bare"])}
  vs receiver ceiling (wrk)            {rate / r["wrk"]:9.0%}
  vs GLPI's design rate (0.83/s)       {rate / GLPI_RATE:9,.0f} x
latency produce -> nginx at {a.latency_rate}/s     p50 {r["p50_ms"]:.0f} ms, \
p99 {r["p99_ms"]:.0f} ms, max {r["p100_ms"]:.0f} ms over {r["latency_n"]:,} requests  \
target p99 < {TARGETS["p99_ms"]} ms: {verdict(r["p99_ms"] < TARGETS["p99_ms"])}
delivery process peak RSS (VmHWM)      {r["VmHWM"] / 1024:9.0f} MiB  target < 300 MiB: \
{verdict(r["VmHWM"] / 1024 < TARGETS["rss_mib"])}
CPU µs per delivery (steady window)    {parts["total"]:9.1f}""")
    for part, us in parts.items():
        if part != "total":
            print(f"  {part:<37}{us:7.1f}")
    for frame, share in r.get("top", []):
        print(f"  {share:6.1%}  {frame}")
    hanging_ratio = None
    if "hanging" in r:
        g = r["hanging"]
        hanging_ratio, cpu_ratio = g["rate"] / rate, g["per_loop_cpu_s"] / h["per_loop_cpu_s"]
        print(f"""\
20 of 200 hanging (timeout_s 2)        {g["rate"]:9,.0f} deliveries/s to the healthy 180 \
({g["per_loop_cpu_s"]:,.0f} per loop-CPU-s)
  vs all healthy                       {hanging_ratio:9.0%}  (per loop-CPU-s: {cpu_ratio:.0%})  \
target >= 80%: {verdict(hanging_ratio >= TARGETS["hang"])}
  attempt outcomes                     {g["outcomes"]}""")
    write(
        "delivery",
        targets=[
            Target("delivery vs bare aiohttp loop", round(rate / bare["rate"] * 100, 1), "%",
                   ">=", TARGETS["vs_bare"] * 100, left=left(bare_us / TARGETS["vs_bare"])),
            Target("delivery throughput", round(rate), "deliveries/s", ">=",
                   TARGETS["per_process"], left=left(1e6 / TARGETS["per_process"])),
            Target("delivery p99 at 1,000/s, produce to receipt", round(r["p99_ms"], 1), "ms",
                   "<", TARGETS["p99_ms"]),
        ],
        throughput={"delivery": round(rate), "bare loop": round(bare["rate"]),
                    "wrk receiver": round(r["wrk"])},
        throughput_unit="deliveries/s",
        latency_ms={"p50": round(r["p50_ms"], 1), "p99": round(r["p99_ms"], 1),
                    "max": round(r["p100_ms"], 1)},
        figures={
            "cpu_us_per_delivery": parts,
            "deliveries_per_cpu_s": round(h["per_cpu_s"]),
            "deliveries_per_loop_cpu_s": round(h["per_loop_cpu_s"]),
            "bare_per_cpu_s": round(bare["per_cpu_s"]),
            "rss_peak_mib": round(r["VmHWM"] / 1024),
            "hanging_ratio": None if hanging_ratio is None else round(hanging_ratio, 2),
            "requests": a.requests,
            "attempts": h["attempts"],
            "outcomes": h["outcomes"],
            "load_avg_before": round(r["load_before"], 2),
            "load_avg_latency": round(r["load_latency"], 2),
            "profile": a.profile,
            "profile_top20": [[frame, round(share, 4)] for frame, share in r.get("top", [])],
        },
    )


if __name__ == "__main__":
    sys.exit(main())
