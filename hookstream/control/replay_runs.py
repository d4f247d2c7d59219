"""Replays run in the background of the admin process (API and console): one run per
replay at a time, each on a thread, its status kept for reading while and after it runs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from hookstream.config import Settings
from hookstream.control.replay import ReplayJob, ReplayStatus, check_replay_id, replay
from hookstream.errors import HookstreamError
from hookstream.records.replays import ReplayCount

log = logging.getLogger(__name__)


class ReplayBusy(HookstreamError):
    """A run of this replay is already going in this process."""


@dataclass(frozen=True, slots=True)
class ReplayRun:
    """A run started in the background (admin API, console): its last status, whether it
    has ended, and the error that ended it if one did (starting the same replay again
    continues it from what was committed)."""

    job: ReplayJob
    status: ReplayStatus
    ended: bool = False
    error: str | None = None

    @property
    def running(self) -> bool:
        return not self.ended


class BackgroundReplays:
    """Replays run on threads of this process, one run per replay id at a time, their
    status kept for reading (the last `keep`)."""

    def __init__(self, settings: Settings, keep: int = 100):
        self._settings, self._keep = settings, keep
        self._lock = threading.Lock()
        self._runs: dict[str, ReplayRun] = {}
        self._stopping = threading.Event()

    def start(self, job: ReplayJob, on_start: Callable[[], None] = lambda: None,
              on_end: Callable[[ReplayRun], None] = lambda run: None) -> ReplayRun:
        """Start a run; ReplayBusy when one of the same replay is going. `on_start` is
        called before the run begins, `on_end` when it has ended."""
        check_replay_id(job.replay_id)
        with self._lock:
            current = self._runs.get(job.replay_id)
            if current is not None and current.running:
                raise ReplayBusy(f"replay {job.replay_id} is running")
            run = ReplayRun(job, ReplayStatus(job.replay_id, job.webhook_id, ReplayCount(),
                                              0, 0, dry_run=job.dry_run))
            self._runs.pop(job.replay_id, None)
            self._runs[job.replay_id] = run
            while len(self._runs) > self._keep:
                oldest = next(iter(self._runs))
                if self._runs[oldest].running:
                    break
                del self._runs[oldest]
        on_start()
        threading.Thread(target=self._run, args=(job, on_end), daemon=True,
                         name=f"replay {job.replay_id}").start()
        return run

    def get(self, replay_id: str) -> ReplayRun | None:
        with self._lock:
            return self._runs.get(replay_id)

    def close(self) -> None:
        self._stopping.set()

    def _run(self, job: ReplayJob, on_end: Callable[[ReplayRun], None]) -> None:
        """The run, then `on_end`, and only then the run marked ended: whoever sees it
        ended (a reader, a new run of the same replay) comes after its end was told (the
        audit trail's "ended" before the next run's "started")."""
        def seen(status: ReplayStatus) -> None:
            self._update(job.replay_id, lambda run: replace(run, status=status))

        final: ReplayStatus | None = None
        error: str | None = None
        try:
            final = replay(self._settings, job, seen, stopping=self._stopping)
        except HookstreamError as e:
            log.warning("replay %s of %s: %s", job.replay_id, job.webhook_id, e)
            error = str(e)
        with self._lock:
            run = self._runs[job.replay_id]  # running: never trimmed
        ended = replace(run, status=final or run.status, error=error, ended=True)
        try:
            on_end(ended)
        finally:
            self._update(job.replay_id, lambda _: ended)

    def _update(self, replay_id: str, change: Callable[[ReplayRun], ReplayRun]) -> ReplayRun:
        with self._lock:
            run = self._runs[replay_id] = change(self._runs[replay_id])
            return run
