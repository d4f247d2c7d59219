"""Benchmark: GLPI webhooks per second into Kafka through one ingest process.

    .venv/bin/python bench/ingest.py [--seconds 15] [--concurrency 64]

Starts a local broker in a temporary directory (unless KAFKA_BOOTSTRAP_SERVERS is set),
publishes one instance, pre-signs GLPI-style 3 KiB default-payload bodies (each a
distinct item, so nothing is deduplicated), and runs each server variant in its own
process, loaded by a generator in another process: wrk (Debian's, `apt-get install wrk`;
one thread, keep-alive, replaying the pre-signed requests in order, so a load generator
in C leaves the cores to the server and the broker), or with `--generator python` (or
without wrk) an aiohttp client, which itself needs about a core at these rates:

- bare:        an aiohttp low-level handler that reads the body and answers 200, without
               verifying or producing: the ceiling of this setup;
- ingest:      `hookstream run ingest` as deployed (signature, validation, dedup, produce
               with acks=all, 2xx after Kafka's acknowledgement; aiohttp's C parser, as
               for every connection whose first request is a method llhttp reads);
- ingest-py:   the same with aiohttp's Python parser on every connection, as a connection
               opened by GLPI's UPDATE method gets it: what UPDATE costs.

Then a fixed-rate run (--rate, default 1,000/s) against `ingest` measures latency from
request to answer, which the endpoint sends only after Kafka acknowledged the event.
Each server process reports its peak RSS (VmHWM). GLPI itself sends at most 50 webhooks
per cron minute per instance: the report says how many such instances one process
absorbs. Figures go to stdout; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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


def run_server(variant: str, port: int, env_settings: dict[str, str]) -> None:
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
        from hookstream.config import load_settings

        settings = load_settings(env=env_settings, ingest_host="127.0.0.1", ingest_port=port)
        task = asyncio.create_task(
            serve(settings, stopping, parser="python" if variant == "ingest-py" else "auto"))
        await announce_ready(port)
        await task

    import uvloop

    uvloop.run(main())
    print(RESULT + json.dumps({"rss_mib": peak_rss_mib(), "cpu_s": cpu_seconds()}), flush=True)


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
def kafka(work: Path) -> Iterator[str]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    from hookstream.config import Settings
    from hookstream.devbroker import LocalBroker, free_port_pair

    broker = LocalBroker(work / "kafka", Settings().cache_path, port=free_port_pair(),
                         heap_mb=1024)
    log(f"starting a local Kafka broker on {broker.bootstrap}")
    broker.start()
    try:
        yield broker.bootstrap
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


def measure(variant: str, env: dict[str, str], load: Load) -> dict[str, Any]:
    port = free_port()
    server = child("--role", "server", "--variant", variant, "--port", str(port), env=env)
    assert server.stdout is not None
    if server.stdout.readline().strip() != "ready":
        raise RuntimeError(f"{variant} did not start")
    idle_cpu_s = server_cpu_seconds(server.pid)  # start-up, left out
    result = load(f"http://127.0.0.1:{port}{URL_PATH}")
    result["server_cpu_s"] = server_cpu_seconds(server.pid) - idle_cpu_s
    server.send_signal(signal.SIGTERM)
    result.update(result_of(server, 60))
    return result


def server_cpu_seconds(pid: int) -> float:
    """CPU seconds a running child has used so far (utime + stime of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=64)
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
        run_server(args.variant, args.port, dict(os.environ))
        return 0
    if args.role == "load":
        run_load(args.url, args.seconds, args.concurrency, args.rate, args.count)
        return 0

    import yaml

    from hookstream.config import load_settings
    from hookstream.control import instances
    from hookstream.io import create_topics

    with tempfile.TemporaryDirectory() as tmp, kafka(Path(tmp)) as bootstrap:
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
            count = int(min(150_000, args.seconds * 8_000))
            log(f"writing {count:,} signed requests for wrk")
            write_requests(Path(tmp) / "requests.bin", count)
            closed = wrk_load(Path(tmp) / "requests.bin", count, args.seconds, args.concurrency)
        else:
            closed = python_load(env, ["--seconds", str(args.seconds), "--concurrency",
                                       str(args.concurrency), "--rate", "0"])
        # The broker's JVM warms up under the first load it gets: whichever variant came
        # first ran about 25 % slower. An unreported run takes that.
        log("warm-up: ingest, not reported")
        measure("ingest", env, closed)
        results = {}
        for variant in ("bare", "ingest", "ingest-py"):
            log(f"{variant}: {args.seconds:.0f} s at concurrency {args.concurrency}")
            results[variant] = measure(variant, env, closed)
        log(f"ingest at a fixed {args.rate:.0f}/s")
        fixed = measure("ingest", env, python_load(env, [
            "--seconds", str(args.seconds), "--concurrency", str(args.concurrency),
            "--rate", str(args.rate)]))
    report(results, fixed, args)
    return 0


def report(results: dict[str, dict[str, Any]], fixed: dict[str, Any], a: argparse.Namespace
           ) -> None:
    bare = results["bare"]["rps"]
    print(f"ingest benchmark: 3 KiB GLPI-signed bodies, {a.concurrency} connections, load "
          f"from {a.generator}, {os.cpu_count()} CPU(s) shared by broker, server and load")
    # per server CPU-second: what one core given to the server alone would carry, a figure
    # that moves much less with the load generator and the broker on the same cores
    bare_per_cpu = results["bare"]["requests"] / results["bare"]["server_cpu_s"]
    print(f"{'variant':<10} {'req/s':>8} {'of bare':>8} {'per CPU-s':>10} {'of bare':>8} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'RSS MiB':>8}  statuses")
    for name, r in results.items():
        per_cpu = r["requests"] / r["server_cpu_s"]
        print(f"{name:<10} {r['rps']:>8.0f} {r['rps'] / bare:>8.0%} {per_cpu:>10.0f} "
              f"{per_cpu / bare_per_cpu:>8.0%} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
              f"{r['rss_mib']:>8.0f}  {r['statuses']}")
    print(f"fixed rate {a.rate:.0f}/s: achieved {fixed['rps']:.0f}/s, p50 {fixed['p50_ms']:.1f} "
          f"ms, p99 {fixed['p99_ms']:.1f} ms, max {fixed['max_ms']:.1f} ms (request to answer, "
          f"answered after Kafka's ack), RSS {fixed['rss_mib']:.0f} MiB, {fixed['statuses']}")
    glpi = results["ingest"]["rps"] / GLPI_RATE_PER_S
    print(f"GLPI sends at most {GLPI_RATE_PER_S:.2f}/s per instance (50 per cron minute): "
          f"one ingest process absorbs about {glpi:,.0f} instances at GLPI's full rate")


if __name__ == "__main__":
    sys.exit(main())
