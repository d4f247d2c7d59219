"""Benchmark: the GLPI API poller against the fake GLPI, or a real GLPI 10 and the fake.

    .venv/bin/python bench/poller.py [--tickets 100000] [--seconds 120] [--interval 30]
                                     [--change-rate 0.01] [--page 50] [--team]
                                     [--real-glpi DIR/glpi.env [--timezone UTC]]
                                     [--baseline-s 60] [--catch-up-s 900]

Starts a local broker (unless KAFKA_BOOTSTRAP_SERVERS is set) and runs
`hookstream run poller` in its own process against the fake GLPI
(tests/fake_glpi_items.py, served from this process with `--tickets` tickets). With
`--real-glpi` (the glpi.env of `scripts/real-glpi.sh start`), first against that GLPI,
filled through its API up to `--tickets` tickets (kept for the next run), then against
the fake with the same settings. Two phases each:

1. catch-up: the poller starts without a cursor and produces every ticket once: changes
   per second through one poller;
2. steady state: `--change-rate` of `--tickets` change per minute, spread evenly, each a
   different ticket; for each change, the time from the change in GLPI (the fake's update,
   or the answer to the PUT) to its event on Kafka (p50, p99, max; the target is under the
   poll interval plus 1 s at p99), and the API requests per minute the poller made.

Requests are counted on GLPI's side: the fake's log of calls, and the real GLPI's web
server log (one `Accepted` line a connection, and PHP's server closes each after one
request), less the bench's own. GLPI's CPU (real GLPI only: the PHP server with its
workers, and MariaDB) is sampled from /proc at each phase's start and end, less a
baseline measured before the poller starts: quiet for the catch-up, the same changes
without a poller for the steady state. Figures go to stdout; nothing is asserted.
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
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.glpi import GlpiClient  # noqa: E402
from connectors.poller import PollerApi  # noqa: E402
from hookstream.config import Settings, load_settings  # noqa: E402
from hookstream.control import instances  # noqa: E402
from hookstream.io import codec_for, consumer, create_topics  # noqa: E402
from hookstream.records import ITEM_CHANGES, ItemChangeEvent  # noqa: E402
from hookstream.records.cursor import EPOCH  # noqa: E402
from tests.fake_glpi import RunningGlpiApi  # noqa: E402
from tests.fake_glpi_items import FakeGlpiItems  # noqa: E402
from tests.integration.harness import cli_env  # noqa: E402

APP, USER = "bench-app-token", "bench-user-token"
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Glpi(Protocol):
    label: str

    def ids(self) -> list[int]: ...
    def change(self, ident: int, n: int) -> None: ...
    def requests(self) -> int: ...  # requests answered so far, less the bench's own
    def cpu_s(self) -> float | None: ...  # GLPI's CPU time so far, if it has its own


class FakeGlpi:
    label = "fake GLPI"

    def __init__(self, tickets: int):
        self.api = FakeGlpiItems(APP, USER, seed=None)
        self.api.add("Entity", id=0, name="Root entity", entities_id=None,
                     completename="Root entity")
        start = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(seconds=tickets)
        for n in range(tickets):
            self.api.now = start + timedelta(seconds=n)  # one ticket a second, up to now
            stamp = self.api.stamp()  # straight into the table: the fake's next id is O(n)
            self.api.items.setdefault("Ticket", {})[n + 1] = {
                "id": n + 1, "name": f"ticket {n}", "entities_id": 0, "status": 1, "urgency": 3,
                "content": "", "itilcategories_id": 0, "locations_id": 0, "is_deleted": 0,
                "date_creation": stamp, "date_mod": stamp}

    def ids(self) -> list[int]:
        return sorted(self.api.items["Ticket"])

    def change(self, ident: int, n: int) -> None:
        self.api.now = datetime.now(UTC).replace(microsecond=0, tzinfo=None)  # poller: UTC
        self.api.update("Ticket", ident, urgency=1 + n % 5)

    def requests(self) -> int:
        return len(self.api.calls)

    def cpu_s(self) -> float | None:
        return None  # served by this process's threads: no CPU figure of its own


def tree_cpu_s(root: int) -> float:
    """utime + stime of `root` and its descendants, with their reaped children's."""
    parents, ticks = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            parents[int(entry.name)] = int(fields[1])
            ticks[int(entry.name)] = sum(int(f) for f in fields[11:15])
    tree, grown = {root}, True
    while grown:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree, grown = tree | more, bool(more)
    return sum(ticks.get(pid, 0) for pid in tree) / TICKS_PER_S


class RealGlpi:
    """A GLPI of `scripts/real-glpi.sh`, reached through its API with a session of its own,
    as GLPI's `glpi` administrator: a person's changes (the poller skips those of its own
    user, the integration's)."""

    label = "real GLPI"

    def __init__(self, env: dict[str, str]):
        self.client = GlpiClient("bench", env["GLPI_URL"], env["GLPI_APP_TOKEN"],
                                 env["GLPI_HUMAN_TOKEN"], timeout_s=120, retries=0)
        self.version, self.own = env.get("GLPI_VERSION", "?"), 0
        state, port = Path(env["GLPI_STATE"]), urlsplit(env["GLPI_URL"]).port
        self.log = state / f"web-{port}.log"
        self.pids = [int((state / f"web-{port}.pid").read_text()),
                     int((state / "db.pid").read_text())]

    def _count(self) -> None:
        self.own += 1  # a request of the bench's own, not the poller's

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        self._count()
        response = self.client.request(method, path, **kwargs)
        return response.json() if response.content else None

    def count(self) -> int:
        answer = self._call("GET", "search/Ticket", params={"range": "0-0"})
        return int(answer["totalcount"]) if isinstance(answer, dict) else 0

    def populate(self, tickets: int, batch: int = 200) -> None:
        """Add tickets until there are `tickets`, `batch` a request."""
        have, started = self.count(), time.time()
        for first in range(have, tickets, batch):
            rows = [{"name": f"bench ticket {n}", "content": "bench"}
                    for n in range(first, min(tickets, first + batch))]
            self._call("POST", "Ticket", json={"input": rows})
        if have < tickets:
            print(f"{self.label}: added {tickets - have} tickets in {time.time() - started:.0f}s")

    def ids(self) -> list[int]:
        found: list[int] = []
        while True:
            answer = self._call("GET", "search/Ticket", params={
                "forcedisplay[0]": "2", "sort": "2", "order": "ASC",
                "range": f"{len(found)}-{len(found) + 999}"})
            rows = answer.get("data", []) if isinstance(answer, dict) else []
            found += [int(row["2"]) for row in rows]
            if not rows or len(found) >= answer["totalcount"]:
                return found

    def change(self, ident: int, n: int) -> None:
        # a new name: a PUT that changes nothing leaves date_mod as it was
        self._call("PUT", f"Ticket/{ident}",
                   json={"input": {"name": f"bench ticket {ident}, change {n} at {time.time()}"}})

    def local_time(self, ident: int) -> str:
        answer = self._call("GET", f"Ticket/{ident}", params={"get_hateoas": "false"})
        return str(answer["date_mod"]) if isinstance(answer, dict) else ""

    def search_costs(self, tz: ZoneInfo, calls: int = 20) -> None:
        """GLPI's wall and CPU time for the poller's search: caught up, and from the start."""
        api = PollerApi(self.client, on_call=self._count)
        now = datetime.now(tz).strftime("%Y-%m-%d %H:%M:%S")
        for label, after in (("caught up, 0 rows", now), ("from 1970, 50 rows", EPOCH)):
            cpu, started = self.cpu_s(), time.time()
            for _ in range(calls):
                api.changed("Ticket", after, False, 50)
            print(f"{self.label} search {label}: {(time.time() - started) / calls * 1000:.0f} "
                  f"ms a call, GLPI CPU {(self.cpu_s() - cpu) / calls * 1000:.0f} ms "
                  f"(load {load()})")

    def requests(self) -> int:
        with self.log.open() as lines:
            accepted = sum(1 for line in lines if line.endswith(" Accepted\n"))
        return accepted - self.own - self.client.sessions_opened

    def cpu_s(self) -> float:
        return sum(tree_cpu_s(pid) for pid in self.pids)


def check_timezone(glpi: RealGlpi, ident: int, tz: ZoneInfo) -> None:
    """GLPI's dates are its local time: `--timezone` must be the zone they are in."""
    glpi.change(ident, 0)
    stamp = glpi.local_time(ident)
    moment = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=tz)
    skew_s = time.time() - moment.timestamp()
    if abs(skew_s) > 10:
        raise SystemExit(f"GLPI wrote date_mod {stamp} now: not {tz.key} (off by "
                         f"{skew_s / 3600:+.1f} h); pass --timezone")
    print(f"{glpi.label} {glpi.version}: date_mod {stamp} is {tz.key} (skew {skew_s:.1f}s)")


def changes_for(glpi: Glpi, ids: list[int], per_s: float, seconds: float, first: int
                ) -> list[tuple[int, float, float]]:
    """Changes at `per_s` for `seconds`: (ticket, its second, when GLPI had it), each to
    a different ticket (n-th change: ids[n * 7919 % len(ids)])."""
    made, started = [], time.time()
    n = 0
    while time.time() - started < seconds:
        ident = ids[((first + n) * 7919) % len(ids)]
        second = float(int(time.time()))
        glpi.change(ident, first + n)
        made.append((ident, second, time.time()))
        n += 1
        time.sleep(max(0.0, started + n / per_s - time.time()))
    return made


def measured(glpi: Glpi, work: Callable[[], object]) -> tuple[float, int, float | None]:
    """(seconds, GLPI requests, GLPI CPU seconds) that `work()` took."""
    requests, cpu, started = glpi.requests(), glpi.cpu_s(), time.time()
    work()
    cpu_after = glpi.cpu_s()
    spent = None if cpu is None or cpu_after is None else cpu_after - cpu
    return time.time() - started, glpi.requests() - requests, spent


def per_min(amount: float | None, seconds: float) -> float | None:
    return None if amount is None else amount / seconds * 60


def cpu_text(spent: float | None, seconds: float, baseline: float | None, calls: int) -> str:
    if spent is None or baseline is None:
        return "GLPI CPU: none of its own (the fake is served by this process)"
    total = spent / seconds * 60
    poller_ms = (total - baseline) * seconds / 60 / max(calls, 1) * 1000
    return (f"GLPI CPU {total:.1f} s/min, {total - baseline:.1f} s/min over the baseline "
            f"({baseline:.1f}) = {poller_ms:.0f} ms a poller request")


def bench(settings: Settings, glpi: Glpi, args: argparse.Namespace, tmp: Path) -> None:
    ids = glpi.ids()
    per_s = args.tickets * args.change_rate / 60.0
    quiet = writes = None
    if glpi.cpu_s() is not None:  # baselines of GLPI's own CPU, no poller running
        seconds, _, spent = measured(glpi, lambda: time.sleep(args.baseline_s))
        quiet = per_min(spent, seconds)
        seconds, _, spent = measured(
            glpi, lambda: changes_for(glpi, ids, per_s, args.baseline_s, len(ids) // 2))
        writes = per_min(spent, seconds)
        print(f"{glpi.label} baseline, no poller: {quiet:.1f} CPU s/min quiet, {writes:.1f} "
              f"with {per_s * 60:.0f} changes/min (load {load()})")

    seen: dict[tuple[int, str], float] = {}  # (id, item date_mod) -> when on Kafka
    seen_ids: set[int] = set()  # written by the follower only; len() is safe to read
    stop = threading.Event()

    def follow() -> None:
        codec, cons = codec_for(settings), consumer(settings, "bench-poller")
        cons.subscribe([settings.topic(ITEM_CHANGES)])
        while not stop.is_set():
            for msg in cons.consume(1000, 0.2):
                if msg.error() is None:
                    event = codec.decode(msg.value(), msg.headers(), ItemChangeEvent)
                    seen.setdefault((event.items_id, json.loads(event.item)["date_mod"]),
                                    time.time())
                    seen_ids.add(event.items_id)
        cons.close()

    def caught_up() -> None:
        started = time.time()
        while len(seen_ids) < len(ids) and time.time() - started < args.catch_up_s:
            time.sleep(0.5)
            if poller.poll() is not None:
                raise SystemExit(f"poller exited: {log.read_text()[-2000:]}")

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    log = tmp / "poller.log"
    command = [sys.executable, "-m", "hookstream.cli", "run", "poller", "--instance", "glpi-a"]
    with log.open("w") as err:
        poller = subprocess.Popen(command, env=cli_env(settings), stdout=subprocess.DEVNULL,
                                  stderr=err)
    try:
        took, calls, spent = measured(glpi, caught_up)
        print(f"{glpi.label} catch-up: {len(seen_ids)} of {len(ids)} tickets in {took:.1f}s = "
              f"{len(seen_ids) / took:.0f} changes/s through one poller; {calls} API requests "
              f"= {calls / took * 60:.0f}/min; {cpu_text(spent, took, quiet, calls)} "
              f"(load {load()})")

        made: list[tuple[int, float, float]] = []
        elapsed, calls, spent = measured(glpi, lambda: made.extend(
            changes_for(glpi, ids, per_s, args.seconds, 0)))
        time.sleep(args.interval + 5)  # the last changes' poll
        lags = latencies(made, seen)
        print(f"{glpi.label} steady: {len(made)} changes in {elapsed:.0f}s "
              f"({len(made) / elapsed * 60:.0f}/min), {len(lags)} seen on Kafka; "
              f"API requests/min: {calls / elapsed * 60:.0f}; "
              f"{cpu_text(spent, elapsed, writes, calls)} (load {load()})")
        print(f"{glpi.label} change -> event on Kafka: p50 {percentile(lags, 0.5):.2f}s, "
              f"p99 {percentile(lags, 0.99):.2f}s, max {max(lags, default=float('nan')):.2f}s "
              f"(interval {args.interval:.0f}s; target p99 < {args.interval + 1:.0f}s)")
    finally:
        poller.send_signal(signal.SIGTERM)
        poller.wait(30)
        stop.set()
        follower.join(10)
    warnings = [line for line in log.read_text().splitlines() if "WARNING" in line]
    print(f"{glpi.label}: the poller logged {len(warnings)} warnings"
          + "".join(f"\n  {line}" for line in warnings[:5]))


def latencies(made: list[tuple[int, float, float]], seen: dict[tuple[int, str], float]
              ) -> list[float]:
    """For each change, from GLPI having it to the first event of that ticket on Kafka
    whose date_mod (one-second precision) is not before the change's second."""
    on_kafka: dict[int, list[tuple[float, float]]] = {}
    for (ident, date_mod), when in seen.items():
        moment = datetime.fromisoformat(date_mod).timestamp()
        on_kafka.setdefault(ident, []).append((moment, when))
    lags = []
    for ident, second, at in made:
        times = [when for moment, when in on_kafka.get(ident, []) if moment >= second]
        if times:
            lags.append(min(times) - at)
    return lags


def publish(settings: Settings, url: str, app: str, user: str, tmp: Path) -> None:
    create_topics(settings)
    path = tmp / "instances.yaml"
    path.write_text(yaml.safe_dump({"name": "glpi-a", "api_url": url,
                                    "app_token": app, "user_token": user}))
    instances.apply_instances(settings, path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=120.0, help="steady state")
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--change-rate", type=float, default=0.01,
                        help="share of --tickets changed per minute")
    parser.add_argument("--page", type=int, default=50)
    parser.add_argument("--team", action="store_true", help="read ITIL actors (item.team)")
    parser.add_argument("--real-glpi", type=Path, metavar="ENV_FILE",
                        help="glpi.env of scripts/real-glpi.sh: that GLPI first, then the fake")
    parser.add_argument("--timezone", default="UTC", help="the real GLPI's local time zone")
    parser.add_argument("--baseline-s", type=float, default=60.0)
    parser.add_argument("--catch-up-s", type=float, default=900.0, help="catch-up bound")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the broker and the poller are stopped
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    print(f"load before: {load()}")

    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            from tests.conftest import started_broker

            bootstrap = stack.enter_context(started_broker(Path(tmp) / "kafka")).bootstrap

        def settings_for(name: str, timezone: str) -> tuple[Settings, Path]:
            state = Path(tmp) / name
            state.mkdir()
            return load_settings(
                env={}, bootstrap_servers=bootstrap, state_dir=str(state),
                topic_prefix=f"bench{int(time.time())}{name}.", poller_itemtypes="Ticket",
                poller_page_size=args.page, poller_interval_s=args.interval,
                poller_team=args.team, poller_timezone=timezone), state

        if args.real_glpi:
            env = dict(line.split("=", 1) for line in args.real_glpi.read_text().split()
                       if "=" in line)
            real = RealGlpi(env)
            real.populate(args.tickets)
            check_timezone(real, real.ids()[0], ZoneInfo(args.timezone))
            real.search_costs(ZoneInfo(args.timezone))
            settings, state = settings_for("real", args.timezone)
            publish(settings, env["GLPI_URL"], env["GLPI_APP_TOKEN"], env["GLPI_USER_TOKEN"],
                    state)
            bench(settings, real, args, state)
            real.client.close()

        fake = FakeGlpi(args.tickets)
        url = stack.enter_context(RunningGlpiApi(fake.api))
        settings, state = settings_for("fake", "UTC")
        publish(settings, url, APP, USER, state)
        bench(settings, fake, args, state)


if __name__ == "__main__":
    main()
