"""Benchmark: tickets per second through `hookstream run ticketer` against the fake GLPI.

    .venv/bin/python bench/alerts/ticketer.py [--alerts 2000] [--rate 1000]
                                              [--limited-alerts 200] [--limited-rate 20]

Starts a local broker (unless KAFKA_BOOTSTRAP_SERVERS is set), serves the fake GLPI
(tests/fake_glpi_items.py) from this process, publishes one instance, one rule and
`--alerts` firing alerts of distinct fingerprints, then runs `hookstream run ticketer` in
its own process with `ticketer_rate_per_s` = `--rate`. Each new ticket is two GLPI calls
(the marker lookup, then the add), so the limit allows `rate / 2` tickets per second.

Two runs: at a high rate limit (what the ticketer itself does), then at `--limited-rate`,
showing the limit holds: the most GLPI calls seen in any one-second window. Tickets per
second are counted from the first ticket to the last (start-up and group join excluded).
Figures go to stdout; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from bisect import bisect_left
from contextlib import ExitStack
from pathlib import Path

import yaml
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hookstream.config import Settings, load_settings  # noqa: E402
from hookstream.control import alert_rules, instances  # noqa: E402
from hookstream.io import create_topics  # noqa: E402
from hookstream.records import ALERTS, AlertEvent  # noqa: E402
from tests.fake_glpi import RunningGlpiApi  # noqa: E402
from tests.fake_glpi_items import FakeGlpiItems  # noqa: E402
from tests.integration.harness import cli_env, publish  # noqa: E402

APP, USER = "bench-app-token", "bench-user-token"
RULE = {"id": "all", "instance": "glpi-bench", "name": "[{{ alert.labels.severity }}] "
        "{{ alert.name }}", "content": "{{ alert.annotations.summary }}",
        "urgency": {"label": "severity", "values": {"critical": 5}}}


class TimedGlpi(FakeGlpiItems):
    """The fake GLPI, noting when each ticket call came (the session calls aside); the
    busiest second counts the calls in any half-open window [t, t + 1 s)."""

    def __init__(self) -> None:
        super().__init__(APP, USER, seed=None)
        self.call_times: list[float] = []

    async def handle_items(self, request: web.Request) -> web.Response:
        if "Ticket" in request.path:
            self.call_times.append(time.monotonic())
        return await super().handle_items(request)


def busiest_second(times: list[float]) -> int:
    ordered = sorted(times)
    return max((bisect_left(ordered, t + 1.0) - i for i, t in enumerate(ordered)), default=0)


def run(bootstrap: str, state: Path, alerts: int, rate: float) -> None:
    settings: Settings = load_settings(
        env={}, bootstrap_servers=bootstrap, state_dir=str(state),
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}.", ticketer_rate_per_s=rate)
    glpi = TimedGlpi()
    with RunningGlpiApi(glpi) as url:
        create_topics(settings)
        (state / "instances.yaml").write_text(yaml.safe_dump(
            {"name": "glpi-bench", "api_url": url, "app_token": APP, "user_token": USER}))
        instances.apply_instances(settings, state / "instances.yaml")
        (state / "rules.yaml").write_text(yaml.safe_dump(RULE))
        alert_rules.apply_rules(settings, state / "rules.yaml")
        now = int(time.time() * 1000)
        publish(settings, [AlertEvent(event_id=uuid.uuid4().hex, instance="glpi-bench",
                                      source="alertmanager", fingerprint=f"fp{i}",
                                      status="firing", name="DiskFull", starts_at=now,
                                      received_at=now, labels={"severity": "critical"},
                                      annotations={"summary": "disk full"})
                           for i in range(alerts)], ALERTS)
        process = subprocess.Popen([sys.executable, "-m", "hookstream.cli", "run", "ticketer"],
                                   env=cli_env(settings), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        first = last = None
        deadline = time.monotonic() + 60 + 3 * alerts / max(1.0, rate)
        try:
            while time.monotonic() < deadline:
                count = len(glpi.items["Ticket"])
                if count and first is None:
                    first = time.monotonic()
                if count >= alerts:
                    last = time.monotonic()
                    break
                time.sleep(0.005)
            cpu = _cpu_s(process.pid)
        finally:
            process.terminate()
            process.wait(30)
    opened = len(glpi.items["Ticket"])
    span = (last or time.monotonic()) - (first or time.monotonic())
    print(f"rate limit {rate:g} calls/s per instance: {opened}/{alerts} tickets in {span:.2f} s"
          f" = {(opened - 1) / span if span > 0 else float('nan'):.1f} tickets/s;"
          f" {len(glpi.call_times)} ticket calls, at most {busiest_second(glpi.call_times)} in"
          f" one second (limit {rate:g}); ticketer CPU {cpu:.1f} s"
          f" = {opened / cpu if cpu else float('nan'):.0f} tickets per CPU-second")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--limited-alerts", type=int, default=200)
    parser.add_argument("--limited-rate", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            from tests.conftest import started_broker

            bootstrap = stack.enter_context(started_broker(Path(tmp) / "kafka")).bootstrap
        for name, alerts, rate in (("high", args.alerts, args.rate),
                                   ("limited", args.limited_alerts, args.limited_rate)):
            state = Path(tmp) / name
            state.mkdir()
            run(bootstrap, state, alerts, rate)


if __name__ == "__main__":
    main()
