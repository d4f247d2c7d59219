"""Commands on the dead-letter queue and on one delivery (redrive, force send)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from hookstream.config import Settings
from hookstream.errors import UsageError


def since_ms(value: str | None, option: str = "--since") -> int:
    """--since (or `option`): an ISO date-time, or a duration back from now such as 30m, 2h, 1d."""
    if not value:
        return 0
    from datetime import datetime

    from hookstream.policy import parse_delay

    try:
        return int((time.time() - parse_delay(value)) * 1000)
    except ValueError:
        pass
    try:
        return int(datetime.fromisoformat(value).timestamp() * 1000)
    except ValueError as e:
        raise UsageError(f"{option} {value!r}: not a date-time nor a duration like 2h") from e


def rate_per_s(value: str | None) -> float:
    """--rate: N or N/s, a positive number; none means as fast as possible."""
    if not value:
        return 0.0
    try:
        rate = float(value.removesuffix("/s"))
    except ValueError:
        rate = -1.0
    if not rate > 0 or rate == float("inf"):
        raise UsageError(f"--rate {value!r}: not a rate such as 20/s")
    return rate


def cmd_dlq(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.delivery.redrive import dead_letters, redrive

    since = since_ms(args.since)
    if args.action == "list":
        for dead in dead_letters(settings, args.webhook, since):
            r = dead.request
            print(f"{dead.position:<10} {r.delivery_id} {r.webhook_id:<24} "
                  f"{r.itemtype}#{r.items_id} {r.event:<6} attempts={r.attempt} "
                  f"{'redriven ' if dead.redriven else ''}{r.last_error or ''}")
        return 0
    rate = rate_per_s(args.rate)
    count = redrive(settings, args.webhook, since, rate,
                    on_progress=lambda n: print(f"  {n} redriven...", file=sys.stderr))
    print(f"redrove {count} delivery(ies) to {settings.topic('hookstream.deliveries')}")
    return 0


def cmd_deliveries(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.delivery.redrive import find_delivery, force_send, target_for

    if args.action != "send":
        from hookstream.cli.logstore import cmd_deliveries_log

        return cmd_deliveries_log(args, settings)
    if not args.delivery_id:
        raise UsageError("hookstream deliveries send needs a delivery ID")

    request = find_delivery(settings, args.delivery_id)
    if request is None:
        print(f"no delivery {args.delivery_id}", file=sys.stderr)
        return 1
    target = target_for(settings, request.webhook_id)
    if target is None:
        print(f"webhook {request.webhook_id} no longer exists", file=sys.stderr)
        return 1
    record = force_send(settings, request, target, time.time, "command line")
    print(f"{record.outcome}: status {record.status_code} {record.error or ''}".rstrip())
    return 0 if record.outcome == "delivered" else 1


def register(sub: Any) -> None:
    dlq = sub.add_parser("dlq", help="the dead-letter queue")
    dlq.add_argument("action", choices=["list", "redrive"])
    dlq.add_argument("--webhook", help="only this webhook's deliveries")
    dlq.add_argument("--since", help="dead-lettered since: ISO date-time or a duration (2h)")
    dlq.add_argument("--rate", help="redrive at most N/s")
    dlq.set_defaults(func=cmd_dlq)

    deliveries = sub.add_parser(
        "deliveries", help="send one now; list and show them from the log store"
    )
    deliveries.add_argument("action", choices=["send", "list", "show"])
    deliveries.add_argument("delivery_id", nargs="?")
    deliveries.set_defaults(func=cmd_deliveries)
    from hookstream.cli.logstore import add_log_options

    add_log_options(deliveries)
