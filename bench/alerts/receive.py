"""Benchmark: alerts per second into Kafka through one `hookstream run alerts` process.

    .venv/bin/python bench/alerts/receive.py [--seconds 15] [--concurrency 32] [--alerts 10]

Starts a local broker (unless KAFKA_BOOTSTRAP_SERVERS is set), publishes one instance
with a bearer-token Alertmanager route, and loads two servers, each in its own process,
with the same aiohttp client (bench/ingest.py's, closed loop) posting the same body: an
Alertmanager webhook notification (version 4) of `--alerts` alerts, distinct fingerprints
in every request:

- bare:    an aiohttp low-level handler that reads the body and answers 200 (bench/ingest.py's)
- alerts:  `hookstream run alerts` as deployed (bearer check, parse, one AlertEvent per
           alert produced with acks=all, 2xx after Kafka acknowledged all of them)

Prints alerts per second, alerts/s of bare, and alerts per server CPU-second (what a core
given to the server alone carries: the broker and the load share the machine's cores).
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ingest.py

import ingest as bench  # after the path above

TOKEN = "bench-alerts-token-0123456789"
URL_PATH = "/alerts/bench/alertmanager"


def notifications(alerts: int) -> bench.Make:
    """n -> an Alertmanager body of `alerts` alerts, fingerprints unique to request n."""
    template = json.loads((bench.ROOT / "tests/fixtures/alerts/alertmanager.json").read_text())
    one = template["alerts"][0]
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def make(n: int) -> tuple[bytes, dict[str, str]]:
        group = [{**one, "fingerprint": f"{n:012x}{i:04x}"} for i in range(alerts)]
        return json.dumps({**template, "alerts": group}).encode(), headers

    return make


def run_server(variant: str, port: int, env_settings: dict[str, str]) -> None:
    if variant == "bare":
        bench.run_server("bare", port, env_settings)
        return

    async def main() -> None:
        from connectors.alerts import serve
        from hookstream.config import load_settings

        stopping = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
        settings = load_settings(env=env_settings, alerts_host="127.0.0.1", alerts_port=port)
        task = asyncio.create_task(serve(settings, stopping))
        await bench.announce_ready(port)
        await task

    asyncio.run(main())
    print(bench.RESULT + json.dumps({"rss_mib": bench.peak_rss_mib(),
                                     "cpu_s": bench.cpu_seconds()}), flush=True)


def child(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE,
                            text=True, env=env, cwd=bench.ROOT)


def measure(variant: str, env: dict[str, str], a: argparse.Namespace) -> dict[str, Any]:
    port = bench.free_port()
    server = child("--role", "server", "--variant", variant, "--port", str(port), env=env)
    assert server.stdout is not None
    if server.stdout.readline().strip() != "ready":
        raise RuntimeError(f"{variant} did not start")
    idle_cpu_s = bench.server_cpu_seconds(server.pid)  # start-up, left out
    load = child("--role", "load", "--url", f"http://127.0.0.1:{port}{URL_PATH}",
                 "--seconds", str(a.seconds), "--concurrency", str(a.concurrency),
                 "--alerts", str(a.alerts), env=env)
    result = bench.result_of(load, a.seconds + 120)
    result["server_cpu_s"] = bench.server_cpu_seconds(server.pid) - idle_cpu_s
    server.send_signal(signal.SIGTERM)
    result.update(bench.result_of(server, 60))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--alerts", type=int, default=10, help="alerts per notification")
    parser.add_argument("--role", choices=["bench", "server", "load"], default="bench",
                        help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="alerts", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.role == "server":
        run_server(a.variant, a.port, dict(os.environ))
        return 0
    if a.role == "load":
        bench.run_load(a.url, a.seconds, a.concurrency, 0, 10_000_000, notifications(a.alerts))
        return 0

    import yaml

    from hookstream.config import load_settings
    from hookstream.control import instances
    from hookstream.io import create_topics

    with tempfile.TemporaryDirectory() as tmp, bench.kafka(Path(tmp)) as bootstrap:
        env = {**os.environ, "HOOKSTREAM_BOOTSTRAP_SERVERS": bootstrap,
               "HOOKSTREAM_TOPIC_PREFIX": f"bench{int(time.time())}.",
               "HOOKSTREAM_SECRET_KEY": bench.SECRET_KEY, "HOOKSTREAM_STATE_DIR": tmp,
               "HOOKSTREAM_LOG_LEVEL": "WARNING", "PYTHONPATH": str(bench.ROOT)}
        settings = load_settings(env={k: v for k, v in env.items() if k.startswith("HOOK")})
        create_topics(settings)
        path = Path(tmp) / "instances.yaml"
        path.write_text(yaml.safe_dump({"name": "bench", "alerts": {
            "alertmanager": {"auth": "bearer", "secret": TOKEN}}}))
        instances.apply_instances(settings, path)
        bench.log("warm-up: alerts, not reported")  # the broker's JVM warms up first
        measure("alerts", env, a)
        results = {}
        for variant in ("bare", "alerts"):
            bench.log(f"{variant}: {a.seconds:.0f} s at concurrency {a.concurrency}")
            results[variant] = measure(variant, env, a)
    report(results, a)
    return 0


def report(results: dict[str, dict[str, Any]], a: argparse.Namespace) -> None:
    load = os.getloadavg()
    print(f"run alerts benchmark: Alertmanager bodies of {a.alerts} alerts, {a.concurrency} "
          f"connections, aiohttp client, {os.cpu_count()} CPU(s) shared by broker, server "
          f"and load; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    bare = results["bare"]
    bare_rate = bare["rps"] * a.alerts
    bare_per_cpu = bare["requests"] * a.alerts / bare["server_cpu_s"]
    print(f"{'variant':<8} {'alerts/s':>9} {'of bare':>8} {'per CPU-s':>10} {'of bare':>8} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'RSS MiB':>8}  statuses")
    for name, r in results.items():
        rate, per_cpu = r["rps"] * a.alerts, r["requests"] * a.alerts / r["server_cpu_s"]
        print(f"{name:<8} {rate:>9.0f} {rate / bare_rate:>8.0%} {per_cpu:>10.0f} "
              f"{per_cpu / bare_per_cpu:>8.0%} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
              f"{r['rss_mib']:>8.0f}  {r['statuses']}")


if __name__ == "__main__":
    sys.exit(main())
