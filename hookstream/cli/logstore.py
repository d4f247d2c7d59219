"""Commands on the delivery log store: `deliveries list|show`, `queue`, `logstore rebuild|
migrate|prune`, and `admin token` (a bearer token for the admin API and its settings line).

Tables are plain aligned columns; `--json` prints the same data for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from hookstream.config import Settings
from hookstream.errors import UsageError


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """Rows as aligned columns under their headers."""
    cells = [[str(h) for h in headers], *[["-" if v is None else str(v) for v in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def _item(text: str) -> tuple[str, str, int]:
    instance, sep, rest = text.partition(":")
    itemtype, sep2, items_id = rest.partition(":")
    if not (sep and sep2 and items_id.isdigit()):
        raise UsageError(f"--item {text!r}: expected INSTANCE:ITEMTYPE:ID, e.g. glpi-a:Ticket:42")
    return instance, itemtype, int(items_id)


def _time_ms(option: str, text: str | None) -> int | None:
    """An option's time: Unix ms, or an ISO 8601 date and time (UTC unless it says)."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected Unix ms or an ISO time, "
                         "e.g. 2026-12-07T10:00") from None
    return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() * 1000)


def cmd_deliveries_log(args: argparse.Namespace, settings: Settings) -> int:
    """`deliveries list` and `deliveries show ID`, read from the log store."""
    from connectors.logstore import (
        Cursor,
        DeliveryFilter,
        delivery_detail,
        list_deliveries,
        open_engine,
    )
    from connectors.logstore.queries import BadCursor, BadFilter

    engine = open_engine(settings)
    try:
        if args.action == "show":
            if not args.delivery_id:
                raise UsageError("hookstream deliveries show needs a delivery ID")
            detail = delivery_detail(engine, args.delivery_id)
            if detail is None:
                print(f"no delivery {args.delivery_id} in the log store", file=sys.stderr)
                return 1
            print(json.dumps(detail, indent=None if args.json else 2, ensure_ascii=False))
            return 0
        instance, itemtype, items_id = args.instance, None, None
        if args.item:
            instance, itemtype, items_id = _item(args.item)
        where = DeliveryFilter(
            webhook_id=args.webhook, instance=instance, itemtype=itemtype, items_id=items_id,
            state=args.state, status_code=args.status_code, outcome=args.outcome,
            since_ms=_time_ms("--since", args.since), until_ms=_time_ms("--until", args.until),
            id_prefix=args.id_prefix.lower() if args.id_prefix else None)
        try:
            cursor = None if args.cursor is None else Cursor.decode(args.cursor)
            page = list_deliveries(engine, where, cursor=cursor, limit=args.limit,
                                   newer=args.newer)
        except (BadFilter, BadCursor) as e:
            raise UsageError(str(e)) from None
    finally:
        engine.dispose()
    # The cursors on stderr: stdout stays rows only (a table, or one JSON object a line).
    if page.next_cursor:
        print(f"older: --cursor {page.next_cursor}", file=sys.stderr)
    if page.prev_cursor:
        print(f"newer: --cursor {page.prev_cursor} --newer", file=sys.stderr)
    if args.json:
        for row in page.items:
            print(json.dumps(row, ensure_ascii=False))
        return 0
    print(table(
        [(r["delivery_id"], _when(r["created_at"]), r["instance"], r["webhook_id"],
          f"{r['itemtype']}#{r['items_id']}", r["event"],
          r["state"] + (f" ({r['tier']})" if r["tier"] else "") if r["state"] else "-",
          r["attempts"], r["last_status"], (r["last_error"] or "")[:60])
         for r in page.items],
        ("DELIVERY", "CREATED (UTC)", "INSTANCE", "WEBHOOK", "ITEM", "EVENT", "STATE",
         "TRIES", "STATUS", "LAST ERROR"),
    ))
    return 0


def cmd_queue(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.logstore import open_engine, queue_view

    engine = open_engine(settings)
    try:
        view = queue_view(engine, now_ms=int(time.time() * 1000))
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(view, ensure_ascii=False))
        return 0
    print(table(
        [(g["instance"], g["webhook_id"], g["state"], g["tier"], g["count"],
          _when(g["oldest_created_at"])) for g in view["groups"]],
        ("INSTANCE", "WEBHOOK", "STATE", "TIER", "COUNT", "OLDEST (UTC)"),
    ))
    totals = view["totals"]
    waiting = ", ".join(f"{t}: {n}" for t, n in sorted(totals["waiting"].items())) or "0"
    age = view["oldest_undelivered_age_s"]
    print(f"\npending {totals['pending']}; waiting {waiting}; dead-lettered "
          f"{totals['dead_lettered']}; render errors {totals['render_error']}; blocked "
          f"{totals['blocked']}; oldest undelivered: {'-' if age is None else f'{age:.0f}s'}")
    return 0


def cmd_logstore(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.logstore import LogStore, migrate, open_engine, rebuild

    if args.action == "rebuild":
        count = rebuild(settings, on_progress=lambda n: print(f"  {n} records...",
                                                              file=sys.stderr)
                        if n % 50_000 < settings.logstore_batch_size else None)
        print(f"rebuilt the log store from {count} record(s)")
        return 0
    engine = open_engine(settings, migrate_schema=False)
    try:
        if args.action == "migrate":
            applied = migrate(engine)
            print(f"applied migration(s) {applied}" if applied else "schema up to date")
        else:
            deleted = LogStore(engine).prune(settings.logstore_retention_days)
            print(f"deleted {deleted} delivery(ies) older than "
                  f"{settings.logstore_retention_days:g} days")
    finally:
        engine.dispose()
    return 0


def cmd_admin(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.admin import new_token

    token, line = new_token(args.name, args.instances, args.mode)
    print(f"token (give it to its holder; it is shown once): {token}")
    print(f"settings line (admin_tokens): {line}")
    return 0


def add_log_options(deliveries: argparse.ArgumentParser) -> None:
    """The options of `deliveries list|show` (the `deliveries` parser is in cli/dlq.py)."""
    deliveries.add_argument("--webhook", help="list: only this webhook's deliveries")
    deliveries.add_argument("--item", help="list: only this item, INSTANCE:ITEMTYPE:ID")
    deliveries.add_argument("--instance", help="list: only this GLPI instance's deliveries")
    deliveries.add_argument("--state", help="list: pending, waiting, delivered, "
                            "dead_lettered, render_error or blocked")
    deliveries.add_argument("--status-code", type=int, help="list: last attempt's HTTP status")
    deliveries.add_argument("--outcome", help="list: last attempt's outcome (delivered, "
                            "retry_scheduled, dead_lettered, circuit_open, ...)")
    deliveries.add_argument("--since", help="list: created at or after (Unix ms or ISO time, "
                            "UTC unless it says)")
    deliveries.add_argument("--until", help="list: created before (Unix ms or ISO time)")
    deliveries.add_argument("--id", dest="id_prefix", help="list: delivery ids starting so")
    deliveries.add_argument("--cursor", help="list: the page after this cursor (printed on "
                            "stderr with each page)")
    deliveries.add_argument("--newer", action="store_true",
                            help="list: with --cursor, the newer page instead of the older")
    deliveries.add_argument("--limit", type=int, default=50, help="list: at most N rows")
    deliveries.add_argument("--json", action="store_true", help="JSON for scripts")


def register(sub: Any) -> None:
    queue = sub.add_parser("queue", help="pending, waiting, dead-lettered deliveries (log store)")
    queue.add_argument("--json", action="store_true", help="JSON for scripts")
    queue.set_defaults(func=cmd_queue)

    logstore = sub.add_parser("logstore", help="the delivery log store's database")
    logstore.add_argument("action", choices=["rebuild", "migrate", "prune"],
                          help="rebuild: empty it and read the topics again (log store "
                          "stopped); migrate: apply schema migrations; prune: retention now")
    logstore.set_defaults(func=cmd_logstore)

    admin = sub.add_parser("admin", help="the admin API")
    admin.add_argument("action", choices=["token"], help="token: a new bearer token")
    admin.add_argument("--name", required=True,
                       help="who holds it (named in the audit trail and log line of each write)")
    admin.add_argument("--instances", default="*", help="'*' or instances joined by '|'")
    admin.add_argument("--mode", choices=["ro", "rw"], default="ro")
    admin.set_defaults(func=cmd_admin)
