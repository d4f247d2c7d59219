"""Commands on webhook definitions and entity trees, and the preview of one webhook."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from hookstream.cli import replay
from hookstream.cli.files import checked, read_text
from hookstream.config import Settings
from hookstream.errors import UsageError


def cmd_webhooks(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from hookstream.control import admin
    from hookstream.control.webhooks import definition_files

    if args.action == "apply":
        if not args.file:
            raise UsageError("hookstream webhooks apply needs -f FILE_OR_DIR")
        path = checked("-f", args.file, definition_files(Path(args.file)))
        for definition, state in admin.apply_webhooks(settings, path):
            print(f"{definition.id} v{definition.version}: {state}")
        return 0
    if args.action == "rotate-secret":
        return _rotate_secret(args, settings)
    if args.action == "delete":
        if not args.id:
            raise UsageError("hookstream webhooks delete needs a webhook ID")
        found = admin.delete_webhook(settings, args.id)
        print(f"{args.id}: {'deleted' if found else 'not found'}")
        return 0 if found else 1
    if args.action == "replay":
        from hookstream.cli.replay import cmd_replay

        return cmd_replay(args, settings)
    if args.action == "enable":
        if not args.id:
            raise UsageError("hookstream webhooks enable needs a webhook ID")
        enabled = admin.enable_webhook(settings, args.id, int(time.time() * 1000))
        if enabled is None:
            print(f"{args.id}: not found")
            return 1
        definition, changed = enabled
        print(f"{args.id} v{definition.version}: {'enabled' if changed else 'already active'}")
        return 0
    for row in admin.list_webhooks(settings):
        print(
            json.dumps(row, ensure_ascii=False)
            if args.json
            else f"{row['id']:<30} v{row['version']:<4} {row['instance']:<16} {row['itemtype']:<14}"
            f" {row['event']:<7} {_state(row):<8} {row['url']}"
        )
    return 0


def _rotate_secret(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, datetime

    from hookstream.control import admin
    from hookstream.policy import parse_grace

    if not args.id:
        raise UsageError("hookstream webhooks rotate-secret needs a webhook ID")
    try:
        grace_s = parse_grace(args.grace)
    except ValueError as e:
        raise UsageError(f"--{e}") from None
    new_secret = sys.stdin.readline().strip() if args.secret == "-" else args.secret
    definition, secret = admin.rotate_secret(settings, args.id, grace_s, new_secret)
    if definition.previous_secret_encrypted:
        until = datetime.fromtimestamp(definition.previous_secret_until_ms / 1000, UTC)
        kept = f"the previous secret also signs until {until:%Y-%m-%d %H:%M:%S} UTC"
    else:
        kept = "the previous secret no longer signs"
    print(f"{definition.id} v{definition.version}: secret rotated; {kept}")
    if args.secret is None:  # generated: shown this once, for the receiver's owner
        print(f"new secret: {secret}")
    return 0
def _state(row: dict[str, Any]) -> str:
    if row["is_active"]:
        return "active"
    return "disabled" if row["disabled_at_ms"] else "inactive"  # disabled: by auto-disable


def cmd_alerts(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from hookstream.control import alert_rules
    from hookstream.control.webhooks import definition_files

    if args.action == "apply":
        if not args.file:
            raise UsageError("hookstream alerts apply needs -f FILE_OR_DIR of alert rules")
        path = checked("-f", args.file, definition_files(Path(args.file)))
        for rule, state in alert_rules.apply_rules(settings, path):
            print(f"{rule.id} v{rule.version}: {state}")
        return 0
    if args.action == "delete":
        if not args.id:
            raise UsageError("hookstream alerts delete needs a rule ID")
        found = alert_rules.delete_rule(settings, args.id)
        print(f"{args.id}: {'deleted' if found else 'not found'}")
        return 0 if found else 1
    rules = sorted(alert_rules.current_rules(settings).values(), key=lambda r: (r.order, r.id))
    for rule in rules:
        print(json.dumps(rule.to_dict(), ensure_ascii=False) if args.json
              else f"{rule.id:<30} v{rule.version:<4} {rule.instance:<16} order {rule.order:<5}"
              f" {'enabled' if rule.enabled else 'disabled':<8} entity {rule.entities_id}")
    return 0


def cmd_entities(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.control import apply_entities

    print(f"published {apply_entities(settings, checked('-f', args.file))} entities")
    return 0


def cmd_preview(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from hookstream.control import admin, load_definitions
    from hookstream.control.instances import current_instances
    from hookstream.control.webhooks import definition_files
    from hookstream.errors import TransientError
    from hookstream.matching import EntityTable
    from hookstream.policy import secret_box
    from hookstream.records import is_timezone

    if args.timezone is not None and not is_timezone(args.timezone):
        raise UsageError(f"--timezone {args.timezone!r} is not an IANA time zone such as "
                         "Europe/Paris")
    now_ms = int(time.time() * 1000)
    event_text = read_text("--event", args.event)
    source = Path(args.webhook)
    if source.exists() or _names_a_file(args.webhook):
        found = load_definitions(
            checked("--webhook", args.webhook, definition_files(source)),
            secret_box(settings),
            {},
            settings.retry_tiers_s,
            settings.allowed_networks,
        )
        chosen = [d for d in found if not args.id or d.id == args.id]
        if not chosen:
            ids = ", ".join(d.id for d in found)
            raise UsageError(f"--id {args.id!r}: no such webhook in {source} (it has: {ids})")
        webhook = chosen[0]
    else:
        current = admin.current_webhooks(settings)
        if args.webhook not in current:
            print(
                f"no webhook {args.webhook!r} (neither a file nor a published id)", file=sys.stderr
            )
            return 1
        webhook = current[args.webhook]
    try:
        event = admin.event_from_json(event_text, webhook.instance, now_ms)
    except ValueError as e:
        raise UsageError(f"--event {args.event}: {e}") from None
    try:
        entities, instances = admin.load_entities(settings), current_instances(settings)
    except TransientError:  # offline preview: entity scope without the synced tree, UTC
        entities, instances = EntityTable(), {}
    instance = instances.get(webhook.instance)
    timezone = args.timezone or (instance.timezone if instance else "UTC")
    integration_users = frozenset(instance.integration_users if instance else ())
    result = admin.preview(webhook, event, entities, now_ms, timezone, integration_users)
    if not result["matches"]:
        print(f"no match: {result['reason']}")
        return 1
    if "render_error" in result:
        print(f"render_error: {result['render_error']}")
        return 1
    print(f"{result['method']} {result['url']}")
    for name, value in result["headers"].items():
        print(f"{name}: {value}")
    print()
    print(result["body"])
    return 0


def _names_a_file(value: str) -> bool:
    """A --webhook value that is meant as a file, not a published id, even if missing."""
    return "/" in value or os.sep in value or value.endswith((".yaml", ".yml"))


def register(sub: Any) -> None:
    webhooks = sub.add_parser("webhooks", help="webhook definitions on the compacted topic")
    webhooks.add_argument("action", choices=["apply", "delete", "enable", "list",
                                             "rotate-secret", "replay"])
    webhooks.add_argument("id", nargs="?",
                          help="the webhook to delete, enable, rotate or replay into")
    webhooks.add_argument("-f", "--file", help="YAML file or directory (apply)")
    webhooks.add_argument("--grace", default="24h",
                          help="rotate-secret: how long the previous secret signs too (24h)")
    webhooks.add_argument("--secret", help="rotate-secret: the new secret, - to read it from "
                          "stdin (default: generated and printed once)")
    webhooks.add_argument("--json", action="store_true", help="list as JSON lines")
    replay.add_options(webhooks)
    webhooks.set_defaults(func=cmd_webhooks)

    alerts = sub.add_parser("alerts", help="alert rules (alerts into GLPI tickets) on the "
                            "compacted topic")
    alerts.add_argument("action", choices=["apply", "delete", "list"])
    alerts.add_argument("id", nargs="?", help="the rule to delete")
    alerts.add_argument("-f", "--file", help="YAML file or directory of rules (apply)")
    alerts.add_argument("--json", action="store_true", help="list as JSON lines")
    alerts.set_defaults(func=cmd_alerts)

    entities = sub.add_parser("entities", help="GLPI entity trees on the compacted topic")
    entities.add_argument("action", choices=["apply"])
    entities.add_argument("-f", "--file", required=True)
    entities.set_defaults(func=cmd_entities)

    preview = sub.add_parser("preview", help="show the request a webhook would send for an event")
    preview.add_argument("--webhook", required=True, help="a YAML file or a published id")
    preview.add_argument("--id", help="which webhook of a file with several")
    preview.add_argument("--event", required=True, help="an event JSON file")
    preview.add_argument("--timezone", help="dates in this IANA time zone, not the instance's")
    preview.set_defaults(func=cmd_preview)
