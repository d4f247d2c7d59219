"""Benchmark: GLPI webhooks per second into Kafka through the ingest endpoint, one process
and `--workers N` processes sharing the port.

    .venv/bin/python bench/ingest.py [--quick] [--seconds 15] [--concurrency 256]
        [--workers 1,2] [--rate 1000] [--generator wrk|python]

Starts a local broker in a temporary directory (unless KAFKA_BOOTSTRAP_SERVERS is set),
publishes one instance, pre-signs GLPI-style 3 KiB default-payload bodies (each a
distinct item, so nothing is deduplicated), and runs each server variant in its own
process (tree), loaded by a generator in another process: wrk (Debian's, `apt-get install
wrk`; one thread, keep-alive, replaying the pre-signed requests in order, so a load
generator in C leaves the cores to the server and the broker), or with `--generator
python` (or without wrk) an aiohttp client, which itself needs about a core at these rates:

- bare:        an aiohttp low-level handler that reads the body and answers 200, without
               verifying or producing: the ceiling of this setup;
- ingest-wN:   `hookstream run ingest --workers N` as deployed (signature, validation,
               dedup, produce with acks=all, 2xx after Kafka's acknowledgement), N = each of
               --workers; N = 1 is the single process of before;
- ingest-py:   one process on aiohttp's Python parser on every connection, as a connection
               opened by GLPI's UPDATE method gets it: what UPDATE costs (not with --quick).

Then fixed-rate runs (--rate, default 1,000/s; aiohttp client, open loop) measure latency
from request to answer, which the endpoint sends only after Kafka acknowledged the event:
against the most workers (the default on this machine: its CPU count) and, without
--quick, against one. Last, one process under cProfile, loaded by the same closed loop,
gives the CPU per request part by part (HMAC, JSON validation, the event, Avro, produce,
the acknowledgement's poll and callbacks). Server CPU is the utime + stime of the server's
whole process tree (the supervisor, the workers, librdkafka's threads) while loaded; RSS
the sum of its processes' peaks (VmHWM). GLPI itself sends at most 50 webhooks per cron
minute per instance: the report says how many such instances one pod absorbs. Ends with
one `bench/report.py` record; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECRET = "BenchSecretBenchSecretBenchSecretBench01"
SECRET_KEY = "aG9va3N0cmVhbS1iZW5jaC1maXhlZC1rZXktMzJieXQ="  # a fixed test Fernet key
GLPI_RATE_PER_S = 50 / 60  # GLPI's queuedwebhook cron: 50 rows a minute per instance
PLACEHOLDER = 123456789
RESULT = "bench-result "
URL_PATH = "/glpi/bench/Ticket"


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds() -> float:
    """User and system CPU of this process, all its threads (librdkafka's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- requests as GLPI sends them --------------------------------------------------------


def signer(timestamp_s: int) -> Any:
    """A function n -> (body, headers): a signed 3 KiB default payload for Ticket id n.

    Bodies are made on demand (about 10 us each) rather than held: at thousands a second
    for a whole run they would take hundreds of MiB in the load generator."""
    from hookstream.policy import glpi_headers
    from hookstream.render import default_payload

    item = json.loads((ROOT / "tests/fixtures/Ticket.json").read_text())
    item["id"] = PLACEHOLDER
    template = default_payload(item, "update", None)
    item["content"] += "x" * max(0, 3072 - len(template))  # pad to 3 KiB
    template = default_payload(item, "update", None)
    marker = str(PLACEHOLDER).encode()

    def make(n: int) -> tuple[bytes, dict[str, str]]:
        body = template.replace(marker, str(100_000_000 + n).encode(), 1)
        return body, glpi_headers(SECRET, body, timestamp_s)

    return make


# -- the children -----------------------------------------------------------------------


async def announce_ready(port: int) -> None:
    """Print "ready" (what the parent waits for) once the server's port answers."""
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.1)
    print("ready", flush=True)


def run_server(variant: str, port: int, workers: int, env_settings: dict[str, str]) -> None:
    async def bare(request: Any) -> Any:
        from aiohttp import web

        await request.read()
        return web.Response(text="{}")

    async def main() -> None:
        from aiohttp import web

        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stopping.set)
        if variant == "bare":
            runner = web.ServerRunner(web.Server(bare, access_log=None))
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
            print("ready", flush=True)
            await stopping.wait()
            await runner.cleanup()
            return
        from connectors.ingest import serve

        task = asyncio.create_task(
            serve(settings, stopping, parser="python" if variant == "ingest-py" else "auto"))
        await announce_ready(port)
        if profiler is not None:  # the requests only, not the start-up
            profiler.enable()
        await task

    from hookstream.config import load_settings

    settings = load_settings(env=env_settings, ingest_host="127.0.0.1", ingest_port=port,
                             ingest_workers=workers)
    extra: dict[str, Any] = {}
    profiler = cProfile.Profile() if variant == "ingest-profile" else None
    if workers > 1:
        from connectors.ingest.workers import supervise

        threading.Thread(target=announce_workers, args=(port, workers), daemon=True).start()
        supervise(settings, workers)  # until SIGTERM, which drains every worker
    else:
        import uvloop

        uvloop.run(main())
        if profiler is not None:
            profiler.disable()
            extra["profile_us"] = profile_parts(pstats.Stats(profiler))
    print(RESULT + json.dumps({"rss_mib": peak_rss_mib(), "cpu_s": cpu_seconds(), **extra}),
          flush=True)


def announce_workers(port: int, workers: int) -> None:
    """Print "ready" once `workers` distinct workers answered /readyz (X-Hookstream-Worker),
    each probe on a new connection, which the kernel hashes to any worker."""
    import http.client

    seen: set[str] = set()
    while len(seen) < workers:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/readyz")
            answer = connection.getresponse()
            answer.read()
            connection.close()
            if answer.status == 200:
                seen.add(answer.getheader("X-Hookstream-Worker") or "")
                continue
        except OSError:
            pass
        time.sleep(0.1)
    print("ready", flush=True)


# The parts of a request in the profile: (label, file's ending, function name), cumulative
# time per request; "rest" is the profile's total minus them (aiohttp, the event loop).
PARTS = (
    ("hmac", "policy/ingest.py", "signature_valid"),
    ("json_validation", "policy/ingest.py", "parse_payload"),
    ("event_build", "policy/ingest.py", "accept"),
    ("avro", "records/codec.py", "encode"),
    ("produce", "~", "<method 'produce' of 'cimpl.Producer' objects>"),
    ("ack_wait_poll", "~", "<method 'poll' of 'cimpl.Producer' objects>"),
)


def profile_parts(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds of each part (the parent divides by the requests served)."""
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    found = {label: 0.0 for label, _, _ in PARTS}
    for (path, _, function), (_, _, _, cumulative, _) in table.items():
        for label, ending, name in PARTS:
            if function == name and path.endswith(ending):
                found[label] += cumulative
    found["profiled_total"] = float(stats.total_tt)  # type: ignore[attr-defined]
    return found


Make = Callable[[int], tuple[bytes, dict[str, str]]]  # n -> (body, headers) of request n


def run_load(url: str, seconds: float, concurrency: int, rate: float, count: int,
             make: Make | None = None) -> None:
    """Load `url` (GLPI-signed bodies unless `make` says otherwise); prints the figures."""
    import aiohttp

    make = make or signer(int(time.time()))
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def main() -> dict[str, Any]:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            next_index = 0
            deadline = time.perf_counter() + seconds

            async def one(i: int) -> None:
                body, headers = make(i)
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                latencies.append(time.perf_counter() - started)
                statuses[response.status] = statuses.get(response.status, 0) + 1

            started = time.perf_counter()
            if rate:  # open loop: one request every 1/rate s, whatever the answers
                tasks = []
                while time.perf_counter() < deadline and next_index < count:
                    due = started + next_index / rate
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    tasks.append(asyncio.create_task(one(next_index)))
                    next_index += 1
                await asyncio.gather(*tasks)
            else:  # closed loop: `concurrency` clients, each as fast as answers come

                async def worker(k: int) -> None:
                    i = k
                    while time.perf_counter() < deadline and i < count:
                        await one(i)
                        i += concurrency

                await asyncio.gather(*(worker(k) for k in range(concurrency)))
            elapsed = time.perf_counter() - started
        ordered = sorted(latencies)

        def pct(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else 0

        return {"requests": len(latencies), "seconds": elapsed,
                "rps": len(latencies) / elapsed, "statuses": statuses,
                "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1.0)}

    print(RESULT + json.dumps(asyncio.run(main())), flush=True)


# -- the parent -------------------------------------------------------------------------


@contextmanager
def kafka(work: Path) -> Iterator[tuple[str, int | None]]:
    """The bootstrap servers, and the broker's pid when it is this bench's (its CPU)."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"], None
        return
    from hookstream.config import Settings
    from hookstream.devbroker import LocalBroker, free_port_pair

    broker = LocalBroker(work / "kafka", Settings().cache_path, port=free_port_pair(),
                         heap_mb=1024)
    log(f"starting a local Kafka broker on {broker.bootstrap}")
    broker.start()
    try:
        yield broker.bootstrap, int(broker.pid_file.read_text())
    finally:
        broker.stop()


def child(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)


def result_of(proc: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout_s)
    for line in out.splitlines():
        if line.startswith(RESULT):
            parsed: dict[str, Any] = json.loads(line[len(RESULT):])
            return parsed
    raise RuntimeError(f"no result from {proc.args!r}: {out[-500:]}")


Load = Callable[[str], dict[str, Any]]  # the server's URL -> the load's figures


def python_load(env: dict[str, str], load_args: list[str]) -> Load:
    return lambda url: result_of(child("--role", "load", "--url", url, *load_args, env=env), 600)


WRK_SCRIPT = """
local f = assert(io.open("%s", "rb"))
local data = f:read("*a")
f:close()
local reqs, pos = {}, 1
while pos < #data do
  local n = tonumber(data:sub(pos, pos + 7))
  reqs[#reqs + 1] = data:sub(pos + 8, pos + 7 + n)
  pos = pos + 8 + n
end
data = nil
local i = 0
request = function()
  i = i + 1
  if i > #reqs then i = 1 end
  return reqs[i]
end
done = function(summary, latency, requests)
  io.write(string.format("%s%%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    summary.errors.status, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def write_requests(path: Path, count: int) -> None:
    """`count` distinct signed requests, each prefixed by its length (8 digits), for wrk."""
    make = signer(int(time.time()))
    with open(path, "wb") as out:
        for n in range(count):
            body, headers = make(n)
            head = [f"POST {URL_PATH} HTTP/1.1", "Host: 127.0.0.1",
                    f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
            raw = ("\r\n".join(head) + "\r\n\r\n").encode() + body
            out.write(b"%08d" % len(raw) + raw)


def wrk_load(requests: Path, count: int, seconds: float, concurrency: int) -> Load:
    script = requests.with_suffix(".lua")
    script.write_text(WRK_SCRIPT % (requests, RESULT))

    def run(url: str) -> dict[str, Any]:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:.0f}s", "-s", str(script), url],
            capture_output=True, text=True, timeout=seconds + 120, check=True).stdout
        line = next(x for x in out.splitlines() if x.startswith(RESULT))
        total, duration_us, non_2xx, p50_us, p99_us, max_us = map(int, line.split()[1:])
        if total > count:
            log(f"  wrk sent {total} requests, {count} distinct: the rest were repeats")
        return {"requests": total, "seconds": duration_us / 1e6, "rps": total * 1e6 / duration_us,
                "statuses": {"200": total - non_2xx, "other": non_2xx},
                "p50_ms": p50_us / 1000, "p99_ms": p99_us / 1000, "max_ms": max_us / 1000}

    return run


def measure(variant: str, env: dict[str, str], load: Load, workers: int = 1,
            broker_pid: int | None = None) -> dict[str, Any]:
    port = free_port()
    server = child("--role", "server", "--variant", variant, "--port", str(port),
                   "--workers", str(workers), env=env)
    assert server.stdout is not None
    if server.stdout.readline().strip() != "ready":
        raise RuntimeError(f"{variant} did not start")
    before, began = cpu_now(server.pid, broker_pid), time.monotonic()  # start-up, left out
    result = load(f"http://127.0.0.1:{port}{URL_PATH}")
    after, wall_s = cpu_now(server.pid, broker_pid), time.monotonic() - began
    result.update({k: after[k] - before[k] for k in after})
    # how busy both cores were meanwhile (wrk's start-up, reading its requests, included)
    result["machine_busy"] = result["machine_busy_cpu_s"] / (wall_s * (os.cpu_count() or 1))
    rss_mib = tree_peak_rss_mib(server.pid)
    server.send_signal(signal.SIGTERM)
    result.update(result_of(server, 90))
    result["rss_mib"] = rss_mib
    return result


def cpu_now(server_pid: int, broker_pid: int | None) -> dict[str, float]:
    """CPU seconds so far: the server's process tree, its main thread alone (the event
    loop: a single process's Python; the rest is librdkafka's threads), the broker's JVM,
    and the whole machine's busy time (every process, other users' included)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return {
        "server_cpu_s": tree_cpu_seconds(server_pid),
        "main_thread_cpu_s": thread_cpu_seconds(server_pid, server_pid),
        "broker_cpu_s": tree_cpu_seconds(broker_pid) if broker_pid else 0.0,
        "machine_busy_cpu_s": (user + nice + system + irq + softirq + steal) / tick,
    }


def thread_cpu_seconds(pid: int, tid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """`pid` and its descendants, alive now."""
    found, todo = [], [pid]
    while todo:
        at = todo.pop()
        found.append(at)
        try:
            for task in Path(f"/proc/{at}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds the running process tree of `pid` has used so far (utime + stime of each
    /proc/PID/stat: every thread's, librdkafka's included)."""
    total = 0
    for at in tree(pid):
        try:
            fields = Path(f"/proc/{at}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def tree_peak_rss_mib(pid: int) -> float:
    total = 0
    for at in tree(pid):
        try:
            status = Path(f"/proc/{at}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines()
                       if line.startswith("VmHWM:")), 0)
    return total / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="about 30 s in all: 4 s a variant, no ingest-py, one fixed rate")
    parser.add_argument("--seconds", type=float, default=15.0)
    # 64 connections cap the closed loop at 64 / (linger + the broker's round trip), about
    # 6,000/s here: one process reaches it, so more workers could not show; 256 do not
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--workers", default="1,2",
                        help="the worker counts to measure, e.g. 1,2 (the first is the base "
                        "of the ratio, the last gets the fixed rate)")
    parser.add_argument("--rate", type=float, default=1000.0, help="fixed rate for latency")
    parser.add_argument("--generator", choices=["wrk", "python"],
                        default="wrk" if shutil.which("wrk") else "python")
    parser.add_argument("--role", choices=["bench", "server", "load"], default="bench",
                        help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="ingest", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=10_000_000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "server":
        run_server(args.variant, args.port, int(args.workers), dict(os.environ))
        return 0
    if args.role == "load":
        run_load(args.url, args.seconds, args.concurrency, args.rate, args.count)
        return 0
    if args.quick:
        args.seconds = 4.0
    counts = [int(n) for n in args.workers.split(",")]

    import yaml

    from hookstream.config import load_settings
    from hookstream.control import instances
    from hookstream.io import create_topics

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, kafka(Path(tmp)) as (bootstrap, broker_pid):
        prefix = f"bench{int(time.time())}."
        env = {**os.environ, "HOOKSTREAM_BOOTSTRAP_SERVERS": bootstrap,
               "HOOKSTREAM_TOPIC_PREFIX": prefix, "HOOKSTREAM_SECRET_KEY": SECRET_KEY,
               "HOOKSTREAM_STATE_DIR": tmp, "HOOKSTREAM_LOG_LEVEL": "WARNING"}
        settings = load_settings(env={k: v for k, v in env.items() if k.startswith("HOOK")})
        create_topics(settings)
        path = Path(tmp) / "instances.yaml"
        path.write_text(yaml.safe_dump({"name": "bench", "secret": SECRET}))
        instances.apply_instances(settings, path)
        if args.generator == "wrk":
            count = int(min(300_000, args.seconds * 16_000))
            log(f"writing {count:,} signed requests for wrk")
            write_requests(Path(tmp) / "requests.bin", count)
            closed = wrk_load(Path(tmp) / "requests.bin", count, args.seconds, args.concurrency)
        else:
            closed = python_load(env, ["--seconds", str(args.seconds), "--concurrency",
                                       str(args.concurrency), "--rate", "0"])
        # The broker's JVM warms up under the first load it gets: whichever variant came
        # first ran about 25 % slower. An unreported run takes that.
        log("warm-up: ingest, not reported")
        measure("ingest", env, wrk_or(closed, args, seconds=min(args.seconds, 3.0), tmp=tmp),
                broker_pid=broker_pid)
        results: dict[str, dict[str, Any]] = {}
        plan = [("bare", "bare", 1), *((f"ingest-w{n}", "ingest", n) for n in counts)]
        if not args.quick:
            plan.append(("ingest-py", "ingest-py", 1))
        for name, variant, workers in plan:
            log(f"{name}: {args.seconds:.0f} s at concurrency {args.concurrency}")
            results[name] = measure(variant, env, closed, workers, broker_pid)
        fixed_load = python_load(env, ["--seconds", str(min(args.seconds, 10.0)),
                                       "--concurrency", str(args.concurrency),
                                       "--rate", str(args.rate)])
        fixed: dict[int, dict[str, Any]] = {}
        for n in (counts[-1:] if args.quick else counts[::-1]):
            log(f"ingest-w{n} at a fixed {args.rate:.0f}/s")
            fixed[n] = measure("ingest", env, fixed_load, n, broker_pid)
        log("ingest-w1 under cProfile: the CPU per request part by part")
        profiled = measure("ingest-profile", env, closed, 1, broker_pid)
    report(results, fixed, profiled, counts, args, time.monotonic() - started)
    return 0


def wrk_or(closed: Load, args: argparse.Namespace, seconds: float, tmp: str) -> Load:
    """The closed-loop load, shorter (the warm-up)."""
    if args.generator != "wrk":
        return closed
    count = int(min(300_000, args.seconds * 16_000))
    return wrk_load(Path(tmp) / "requests.bin", count, seconds, args.concurrency)


def cost_parts(profiled: dict[str, Any], plain: dict[str, Any]) -> dict[str, float]:
    """µs of CPU per request, part by part: each part's share of the profiled event-loop
    thread (cProfile inflates Python calls more than C ones: the shares, not its µs, are
    used) times that thread's CPU per request in the unprofiled run `plain`; the rest of the
    thread is aiohttp, the handler and the loop; librdkafka's threads from the process's
    CPU beyond its main thread."""
    profile = profiled["profile_us"]
    total = profile["profiled_total"]
    main_us = plain["main_thread_cpu_s"] / plain["requests"] * 1e6
    parts = {label: profile[label] / total * main_us for label, _, _ in PARTS}
    parts["aiohttp_handler_loop"] = main_us - sum(parts.values())
    parts["librdkafka_threads"] = (plain["server_cpu_s"] - plain["main_thread_cpu_s"]) \
        / plain["requests"] * 1e6
    parts["total"] = plain["server_cpu_s"] / plain["requests"] * 1e6
    parts["profiled_raw_total_us"] = total / profiled["requests"] * 1e6  # under cProfile
    return {k: round(v, 1) for k, v in parts.items()}


def report(results: dict[str, dict[str, Any]], fixed: dict[int, dict[str, Any]],
           profiled: dict[str, Any], counts: list[int], a: argparse.Namespace,
           took_s: float) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    import report as bench_report

    load_avg = [round(x, 2) for x in os.getloadavg()]
    print(f"ingest benchmark: 3 KiB GLPI-signed bodies, {a.concurrency} connections, load "
          f"from {a.generator}, {os.cpu_count()} CPU(s) shared by broker, server and load; "
          f"load average {load_avg}; {took_s:.0f} s")
    # per server CPU-second: what one core given to the server alone would carry, a figure
    # that moves much less with the load generator and the broker on the same cores
    per_cpu = {name: r["requests"] / r["server_cpu_s"] for name, r in results.items()}
    bare = results["bare"]
    print(f"{'variant':<10} {'req/s':>8} {'of bare':>8} {'per CPU-s':>10} {'of bare':>8} "
          f"{'CPU s':>6} {'p50 ms':>8} {'p99 ms':>8} {'RSS MiB':>8}  statuses")
    for name, r in results.items():
        print(f"{name:<10} {r['rps']:>8.0f} {r['rps'] / bare['rps']:>8.0%} {per_cpu[name]:>10.0f} "
              f"{per_cpu[name] / per_cpu['bare']:>8.0%} {r['server_cpu_s']:>6.1f} "
              f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['rss_mib']:>8.0f}  {r['statuses']}")
    for n, f in fixed.items():
        print(f"ingest-w{n} at a fixed {a.rate:.0f}/s: achieved {f['rps']:.0f}/s, p50 "
              f"{f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms, max {f['max_ms']:.1f} ms "
              f"(request to answer, after Kafka's ack), {f['statuses']}")
    parts_us = cost_parts(profiled, results[f"ingest-w{counts[0]}"])
    print(f"µs of CPU per request, one process (cProfile's shares of the event loop's thread "
          f"applied to that thread's CPU in the unprofiled {counts[0]}-worker run): {parts_us}")
    base, most = f"ingest-w{counts[0]}", f"ingest-w{counts[-1]}"
    ratio = results[most]["rps"] / results[base]["rps"]
    glpi = results[most]["rps"] / GLPI_RATE_PER_S
    print(f"{most} against {base}: {ratio:.2f}x req/s, "
          f"{per_cpu[most] / per_cpu[base]:.2f}x per server CPU-s. GLPI sends at most "
          f"{GLPI_RATE_PER_S:.2f}/s per instance: {most} absorbs about {glpi:,.0f} instances")
    latency = fixed[counts[-1]]
    # the N-worker run's cost per request for the whole machine (servers, broker, load
    # generator, kernel), as the rate grows the broker's and wrk's per request shrink
    many = results[most]
    machine_us = many["machine_busy_cpu_s"] / many["requests"] * 1e6
    goal_rps = 1.7 * results[base]["rps"]
    scaling_left = (
        f"1.7x one worker's {results[base]['rps']:,.0f} req/s is {goal_rps:,.0f} req/s; at the "
        f"{counts[-1]}-worker run's cost for the whole machine ({machine_us:.0f} µs of CPU per "
        f"request: the servers {1e6 / per_cpu[most]:.0f}, the broker "
        f"{many['broker_cpu_s'] / many['requests'] * 1e6:.0f}, the load generator and the "
        f"kernel the rest) that needs {goal_rps * machine_us / 1e6:.2f} of the machine's "
        f"{os.cpu_count()} cores, busy to the last cycle; that run had them "
        f"{many['machine_busy']:.0%} busy for {many['rps']:,.0f} req/s. Per server CPU-s "
        f"{counts[-1]} workers served {per_cpu[most]:,.0f} requests, one {per_cpu[base]:,.0f}")
    bench_report.write(
        "ingest",
        targets=[
            bench_report.Target(f"ingest N={counts[-1]} workers vs {counts[0]} worker",
                                round(ratio, 2), "x", ">=", 1.7, left=scaling_left),
            bench_report.Target(f"ingest p99 at {a.rate:,.0f}/s", round(latency["p99_ms"], 1),
                                "ms", "<", 50),
        ],
        throughput={
            **{f"ingest {n} worker{'s' if n > 1 else ''}": round(results[f"ingest-w{n}"]["rps"])
               for n in counts[::-1]},
            "bare handler": round(bare["rps"]),
        },
        latency_ms={k: round(latency[f"{k}_ms"], 1) for k in ("p50", "p99", "max")},
        figures={
            "requests_per_server_cpu_s": {k: round(v) for k, v in per_cpu.items()},
            "server_cpu_s": {k: round(r["server_cpu_s"], 2) for k, r in results.items()},
            "us_per_request_cpu": {k: round(1e6 / v, 1) for k, v in per_cpu.items()},
            "us_per_request_parts": parts_us,
            "broker_cpu_s": {k: round(r["broker_cpu_s"], 2) for k, r in results.items()},
            "broker_us_per_request": {k: round(r["broker_cpu_s"] / r["requests"] * 1e6)
                                      for k, r in results.items()},
            "machine_busy_share": {k: round(r["machine_busy"], 2) for k, r in results.items()},
            "rss_mib": {k: round(r["rss_mib"]) for k, r in results.items()},
            "fixed_rate": {f"ingest-w{n}": {k: round(f[k], 1) for k in
                                            ("rps", "p50_ms", "p99_ms", "max_ms")}
                           for n, f in fixed.items()},
            "generator": a.generator, "seconds": a.seconds, "concurrency": a.concurrency,
            "quick": a.quick, "took_s": round(took_s), "load_avg_end": load_avg,
        },
        throughput_unit="requests/s",
    )


if __name__ == "__main__":
    sys.exit(main())
