"""`hookstream run ingest --workers N`: N processes serving one port.

Each worker is a whole ingest endpoint (`server.serve`): its own instances table, its own
Kafka producer, its own memory of accepted requests. Each binds `ingest_port` with
SO_REUSEPORT and the kernel spreads new connections over the workers' sockets by a hash
of their addresses; a worker binds only once it has read the instances topic, so no
connection reaches one that is still loading.

The parent serves nothing. It spawns the workers (a fresh interpreter each: no librdkafka
thread is inherited through fork), restarts one that dies after it listened, forwards
SIGTERM and SIGINT so that every worker drains (stops accepting, answers the requests it
holds, flushes its producer), and ends non-zero, stopping the others, when a worker ends
before it listened (it cannot start: a wrong setting, the port taken, Kafka unreachable)
or when workers die more than RESTARTS_PER_MINUTE times in a minute: Kubernetes then
restarts the pod, with its back-off. A worker whose parent is gone (SIGKILL) drains and
ends on its own.

Metrics: the parent makes a directory for prometheus_client's multiprocess mode before
the workers import it; each worker's values live there and every worker's /metrics sums
all of them (io/metrics.registry), so a scrape answered by any worker gives the pod's
figures, and a dead worker's counts stay in the sums.
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from pathlib import Path
from types import FrameType

from prometheus_client import multiprocess

from connectors.ingest.server import serve
from hookstream.config import Settings
from hookstream.io.metrics import MULTIPROCESS_DIR_ENV
from hookstream.io.web import run_until_signalled

log = logging.getLogger(__name__)

RESTARTS_PER_MINUTE = 5
# each worker's own drain bound is aiohttp's and the producer's flush; this one ends a
# worker that overstays, inside Kubernetes' terminationGracePeriodSeconds (60 in the chart)
DRAIN_S = 50.0
LISTENING = "listening"


def available_cpus(cgroup_cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The CPUs this process may run on (its affinity), bounded by a cgroup v2 CPU limit
    (a container's `cpu.max`: quota and period, or "max")."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = cgroup_cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, math.ceil(int(quota) / int(period))))


def run_ingest(settings: Settings) -> int:
    """`hookstream run ingest`: one process, or `ingest_workers` under a supervisor."""
    count = settings.ingest_workers or available_cpus()
    if count == 1:
        return run_until_signalled(lambda stopping: serve(settings, stopping))
    return supervise(settings, count)


@dataclass(frozen=True)
class Worker:
    """One worker process and the parent's end of its channel: the worker sends LISTENING
    on it once its port accepts connections, and reads its end's EOF as its parent gone."""

    slot: int
    process: SpawnProcess
    channel: Connection


def supervise(settings: Settings, count: int) -> int:
    """Run `count` workers until SIGTERM or SIGINT; the exit code as the module says."""
    shared_dir = tempfile.mkdtemp(prefix="hookstream-ingest-metrics-")
    os.environ[MULTIPROCESS_DIR_ENV] = shared_dir  # read by each worker's prometheus_client
    signalled: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signalled.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    workers = [_start(settings, slot) for slot in range(count)]
    log.info("ingest: %s workers on %s:%s", count, settings.ingest_host, settings.ingest_port)
    try:
        return _watch(settings, workers, signalled, shared_dir)
    finally:
        _drain(workers)
        shutil.rmtree(shared_dir, ignore_errors=True)


def _watch(settings: Settings, workers: list[Worker], signalled: list[int],
           shared_dir: str) -> int:
    listening: set[int] = set()
    deaths: deque[float] = deque()
    while not signalled:
        waiting = [w.channel for w in workers if w.slot not in listening]
        wait([*(w.process.sentinel for w in workers), *waiting], timeout=0.5)
        for worker in list(workers):
            if worker.slot not in listening and _announced(worker):
                listening.add(worker.slot)
            if worker.process.is_alive() or signalled:
                continue
            pid, code = worker.process.pid, worker.process.exitcode
            multiprocess.mark_process_dead(pid, shared_dir)  # type: ignore[no-untyped-call]
            worker.channel.close()
            if worker.slot not in listening:
                log.error("ingest worker %s (pid %s) ended with %s before it listened: "
                          "stopping", worker.slot, pid, code)
                return 1
            now = time.monotonic()
            deaths.append(now)
            while deaths[0] < now - 60:
                deaths.popleft()
            if len(deaths) > RESTARTS_PER_MINUTE:
                log.error("ingest workers died %s times in a minute: stopping", len(deaths))
                return 1
            log.warning("ingest worker %s (pid %s) ended with %s: restarting it",
                        worker.slot, pid, code)
            listening.discard(worker.slot)
            workers[worker.slot] = _start(settings, worker.slot)
    log.info("ingest: signal %s, draining %s workers", signalled[0], len(workers))
    return 0


def _announced(worker: Worker) -> bool:
    try:
        return bool(worker.channel.poll()) and worker.channel.recv() == LISTENING
    except (EOFError, OSError):
        return False  # it died first: the caller sees it ended


def _start(settings: Settings, slot: int) -> Worker:
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=_work, args=(settings, theirs), name=f"ingest-worker-{slot}", daemon=False)
    process.start()
    theirs.close()  # the worker holds it now: our copy would hide its EOF from us
    return Worker(slot, process, ours)


def _drain(workers: list[Worker]) -> None:
    for worker in workers:
        if worker.process.is_alive():
            worker.process.terminate()  # SIGTERM: the worker drains
    deadline = time.monotonic() + DRAIN_S
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            log.error("ingest worker %s (pid %s) still draining after %.0f s: killed",
                      worker.slot, worker.process.pid, DRAIN_S)
            worker.process.kill()
            worker.process.join()
        worker.channel.close()


def _work(settings: Settings, channel: Connection) -> None:
    """A worker's whole life, in its own process."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s %(levelname)s %(name)s [worker {os.getpid()}] %(message)s")

    async def serve_until(stopping: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()

        def parent_gone() -> None:  # the only thing ever read on the channel: its EOF
            loop.remove_reader(channel.fileno())
            stopping.set()

        loop.add_reader(channel.fileno(), parent_gone)
        await serve(settings, stopping, reuse_port=True,
                    listening=lambda: channel.send(LISTENING))

    run_until_signalled(serve_until)


__all__ = ["available_cpus", "run_ingest", "supervise"]
