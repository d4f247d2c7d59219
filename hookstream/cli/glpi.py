"""`hookstream instances ...` and `hookstream run ingest`: GLPI instances and their webhooks in."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from hookstream.config import Settings


def cmd_instances(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.control import instances

    if args.action == "apply":
        if not args.file:
            raise SystemExit("hookstream instances apply needs -f FILE")
        for record, state in instances.apply_instances(settings, Path(args.file)):
            print(f"{record.name} v{record.version}: {state}")
        return 0
    if args.action == "delete":
        if not args.name:
            raise SystemExit("hookstream instances delete needs an instance NAME")
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
            f" tolerance={row['timestamp_tolerance_s']}s"
        )
    return 0


def cmd_glpi(args: argparse.Namespace, settings: Settings) -> int:
    import sys
    import time

    from connectors.glpi import GlpiApiError, GlpiUnavailable, client_for, sync_entities
    from hookstream.policy import parse_delay

    every_s = parse_delay(args.every) if args.every else 0
    try:
        with client_for(settings, args.instance) as client:
            while True:
                total, changed, removed = sync_entities(settings, client)
                print(f"{args.instance}: {total} entities, {changed} published, "
                      f"{removed} removed", flush=True)
                if not every_s:
                    return 0
                time.sleep(every_s)
    except (GlpiApiError, GlpiUnavailable) as e:
        print(f"hookstream: {e}", file=sys.stderr)  # GLPI's own code and message
        return 1


def register(sub: Any) -> None:
    """Add this module's subcommands to the `hookstream` parser."""
    inst = sub.add_parser("instances", help="GLPI instances on the compacted topic")
    inst.add_argument("action", choices=["apply", "delete", "list"])
    inst.add_argument("name", nargs="?", help="the instance to delete")
    inst.add_argument("-f", "--file", help="YAML file (apply)")
    inst.add_argument("--json", action="store_true", help="list as JSON lines")
    inst.set_defaults(func=cmd_instances)

    glpi = sub.add_parser("glpi", help="a GLPI instance, through its REST API")
    glpi.add_argument("action", choices=["sync-entities"])
    glpi.add_argument("--instance", required=True, help="a published instance's name")
    glpi.add_argument("--every", help="repeat every DELAY (e.g. 5m) until interrupted")
    glpi.set_defaults(func=cmd_glpi)
