"""`hookstream webhooks replay`: past events into one webhook again (control/replay.py)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from hookstream.cli.dlq import rate_per_s, since_ms
from hookstream.config import Settings
from hookstream.errors import UsageError

if TYPE_CHECKING:
    from hookstream.control.replay import ReplayStatus

BAR_WIDTH = 30


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.control.replay import ReplayJob, check_replay_id, replay
    from hookstream.records.replays import replay_identity

    if not args.id:
        raise UsageError("hookstream webhooks replay needs a webhook ID")
    if not args.since:
        raise UsageError("hookstream webhooks replay needs --since (a date-time or 2h)")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: must be at least 1")
    since = since_ms(args.since)
    until = since_ms(args.until, "--until") if args.until else None
    if until is not None and until <= since:
        raise UsageError(f"--until {args.until!r} is not after --since {args.since!r}")
    replay_id = check_replay_id(args.replay_id or replay_identity(args.id, args.since,
                                                                  args.until))
    job = ReplayJob(args.id, replay_id, since, until, rate_per_s(args.rate), args.dry_run,
                    args.limit or 0)
    bar = _Bar(sys.stderr) if sys.stderr.isatty() else None

    def shown(status: ReplayStatus) -> None:
        if bar is not None:
            bar.show(status)

    final = replay(settings, job, shown)
    if bar is not None:
        bar.close()
    print(f"replay {replay_id} of {args.id}: {final.count.summary(args.dry_run)}")
    if not final.finished:
        print(f"stopped at --limit: run the same command again to continue "
              f"({final.total - final.done} records of the range left)", file=sys.stderr)
    return 0


class _Bar:
    """A one-line progress bar redrawn in place."""

    def __init__(self, out: TextIO):
        self.out = out

    def show(self, status: ReplayStatus) -> None:
        self.out.write("\r" + progress_line(status.done, status.total, status.count.replayed,
                                            status.dry_run))
        self.out.flush()

    def close(self) -> None:
        self.out.write("\n")
        self.out.flush()


def progress_line(done: int, total: int, replayed: int, dry_run: bool = False) -> str:
    """ "[#########.....................]  30% 300/1000 events, 12 replayed". """
    share = done / total if total else 1.0
    filled = int(share * BAR_WIDTH)
    verb = "would replay" if dry_run else "replayed"
    return (f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {share:4.0%} "
            f"{done}/{total} events, {replayed} {verb}")


def add_options(webhooks: argparse.ArgumentParser) -> None:
    group = webhooks.add_argument_group("replay")
    group.add_argument("--since", help="replay events from: ISO date-time or a duration (2h)")
    group.add_argument("--until", help="replay events before: ISO date-time or a duration; "
                       "default: the end of the topic when the replay began")
    group.add_argument("--rate", help="at most N deliveries per second (N or N/s)")
    group.add_argument("--dry-run", action="store_true", help="count only, write nothing")
    group.add_argument("--replay-id", help="name of the replay (default: from the webhook "
                       "and the range as written); a rerun of the same replay continues it")
    group.add_argument("--limit", type=int, help="stop this run after N deliveries")
