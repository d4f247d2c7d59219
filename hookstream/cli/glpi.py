"""`hookstream instances ...` and `hookstream run ingest`: GLPI instances and their webhooks in."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from hookstream.cli.files import checked, output_directory
from hookstream.config import Settings
from hookstream.errors import UsageError


def cmd_instances(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.control import instances

    if args.action == "apply":
        from connectors.glpi import user_ids_through_glpi

        if not args.file:
            raise UsageError("hookstream instances apply needs -f FILE")
        applied = instances.apply_instances(settings, checked("-f", args.file),
                                            user_ids_through_glpi(settings))
        for record, state in applied:
            print(f"{record.name} v{record.version}: {state}")
        return 0
    if args.action == "delete":
        if not args.name:
            raise UsageError("hookstream instances delete needs an instance NAME")
        found = instances.delete_instance(settings, args.name)
        print(f"{args.name}: {'deleted' if found else 'not found'}")
        return 0 if found else 1
    for row in instances.list_instances(settings):
        print(
            json.dumps(row, ensure_ascii=False)
            if args.json
            else f"{row['name']:<20} v{row['version']:<4} {row['api_url'] or '-':<40} "
            f"secret={row['secret'] or 'unset'} "
            f"networks={','.join(row['allowed_networks']) or 'any'}"
            f" tolerance={row['timestamp_tolerance_s']}s timezone={row['timezone']}"
            f" alerts={','.join(f'{s}:{a}' for s, a in row['alert_auth'].items()) or 'none'}"
        )
    return 0


def cmd_glpi(args: argparse.Namespace, settings: Settings) -> int:
    import sys

    from connectors.glpi import GlpiApiError, GlpiUnavailable, client_for

    if args.action == "import-webhooks":  # before asking GLPI anything
        output_directory("-o", args.output)
    try:
        with client_for(settings, args.instance) as client:
            if args.action == "sync-entities":
                return _sync_entities(args, settings, client)
            if args.action == "import-webhooks":
                return _import_webhooks(args, settings, client)
            return _provision(args, settings, client)
    except (GlpiApiError, GlpiUnavailable) as e:
        print(f"hookstream: {e}", file=sys.stderr)  # GLPI's own code and message
        return 1


def _sync_entities(args: argparse.Namespace, settings: Settings, client: Any) -> int:
    import time

    from connectors.glpi import sync_entities
    from hookstream.policy import parse_delay

    every_s = parse_delay(args.every) if args.every else 0
    while True:
        total, changed, removed = sync_entities(settings, client)
        print(f"{args.instance}: {total} entities, {changed} published, {removed} removed",
              flush=True)
        if not every_s:
            return 0
        time.sleep(every_s)


def _provision(args: argparse.Namespace, settings: Settings, client: Any) -> int:
    from connectors.glpi.provision import DEFAULT_ITEMTYPES, provision, table
    from hookstream.control.instances import current_instances
    from hookstream.policy import secret_box

    ingest_url = args.ingest_url or settings.ingest_url
    if not ingest_url:
        raise UsageError("provision needs the ingest URL GLPI reaches: --ingest-url or the "
                         "ingest_url setting")
    record = current_instances(settings)[args.instance]
    secret = secret_box(settings).decrypt(record.secret_encrypted)
    itemtypes = args.itemtypes.split(",") if args.itemtypes else DEFAULT_ITEMTYPES
    report = provision(client, ingest_url, secret, itemtypes, args.dry_run, args.set_secret)
    if args.dry_run:
        print(table(report.actions))
        return 0
    counts = {v: sum(a.verb == v for a in report.actions) for v in ("create", "update")}
    print(f"{args.instance}: {counts['create']} webhook(s) created, {counts['update']} "
          f"updated, {len(report.actions) - sum(counts.values())} unchanged")
    for line in report.cron:
        print(line)
    for line in report.refused:
        print(f"not changed: {line}")
    return 0


def _import_webhooks(args: argparse.Namespace, settings: Settings, client: Any) -> int:
    from connectors.glpi.importer import disable_in_glpi, import_webhooks, write
    from hookstream.control import admin

    imported = import_webhooks(client, settings.retry_tiers_s)
    try:
        path = write(imported, Path(args.output), args.instance)
    except OSError as e:
        raise UsageError(f"-o {args.output}: cannot write: {e.strerror or e}") from None
    print(f"{len(imported)} GLPI webhook(s) of {args.instance} written to {path}")
    for item in imported:
        state = "commented out" if item.commented else "ok"
        print(f"  {item.definition['id']:<24} {item.definition.get('itemtype', ''):<14} "
              f"{item.definition.get('event', ''):<7} {state}")
        for note in item.notes:
            print(f"      not carried: {note}")
    if args.disable_in_glpi:
        applied = admin.apply_webhooks(settings, path)  # raises, listing errors, if refused
        print(f"applied {len(applied)} definition(s) to hookstream")
        print(f"switched off {disable_in_glpi(client, imported)} webhook(s) in GLPI")
    return 0


def register(sub: Any) -> None:
    """Add this module's subcommands to the `hookstream` parser."""
    inst = sub.add_parser("instances", help="GLPI instances on the compacted topic")
    inst.add_argument("action", choices=["apply", "delete", "list"])
    inst.add_argument("name", nargs="?", help="the instance to delete")
    inst.add_argument("-f", "--file", help="YAML file (apply)")
    inst.add_argument("--json", action="store_true", help="list as JSON lines")
    inst.set_defaults(func=cmd_instances)

    glpi = sub.add_parser("glpi", help="a GLPI instance, through its REST API")
    glpi.add_argument("action", choices=["sync-entities", "provision", "import-webhooks"])
    glpi.add_argument("--instance", required=True, help="a published instance's name")
    glpi.add_argument("--every", help="sync-entities: repeat every DELAY (e.g. 5m)")
    glpi.add_argument("--dry-run", action="store_true", help="provision: print the plan")
    glpi.add_argument("--set-secret", action="store_true",
                      help="provision: write the instance's secret into existing webhooks")
    glpi.add_argument("--itemtypes", help="provision: comma-separated (default: ITIL, assets)")
    glpi.add_argument("--ingest-url", help="provision: the ingest endpoint's URL as GLPI "
                      "reaches it (default: the ingest_url setting)")
    glpi.add_argument("-o", "--output", default=".",
                      help="import-webhooks: directory for the YAML file")
    glpi.add_argument("--disable-in-glpi", action="store_true",
                      help="import-webhooks: apply, then switch the webhooks off in GLPI")
    glpi.set_defaults(func=cmd_glpi)
