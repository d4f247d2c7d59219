"""The `hookstream` command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from hookstream.config import Settings, load_settings
from hookstream.errors import HookstreamError

Command = Callable[[argparse.Namespace, Settings], int]


def _local_broker(settings: Settings) -> Any:
    from hookstream.devbroker import LocalBroker

    return LocalBroker(
        settings.state_path, settings.cache_path, settings.broker_port, settings.broker_heap_mb
    )


def cmd_kafka(args: argparse.Namespace, settings: Settings) -> int:
    broker = _local_broker(settings)
    if args.action == "start":
        started = time.monotonic()
        status = broker.start()
        print(
            f"kafka {broker.version} at {status.bootstrap}: {status.detail} "
            f"[{time.monotonic() - started:.1f}s]"
        )
        return 0
    status = broker.stop() if args.action == "stop" else broker.status()
    print(f"kafka {broker.version} at {status.bootstrap}: {status.detail}")
    return 0 if args.action == "stop" or status.running else 3


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.io import create_topics

    for name, state in create_topics(settings):
        print(f"{name}: {state}")
    return 0


def cmd_produce(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.io import codec_for, delivery_callback, flush, producer
    from hookstream.records import ITEM_CHANGES, BadLine, parse_event_lines

    codec, prod, topic = codec_for(settings), producer(settings), settings.topic(ITEM_CHANGES)
    failures: list[str] = []
    sent = bad = 0
    with open(args.file, encoding="utf-8") as lines:
        for parsed in parse_event_lines(lines, args.instance, int(time.time() * 1000)):
            if isinstance(parsed, BadLine):
                bad += 1
                print(f"{args.file}:{parsed.line_no}: {parsed.reason}", file=sys.stderr)
                continue
            value, headers = codec.encode(parsed, topic)
            prod.produce(
                topic,
                value,
                parsed.key().encode(),
                headers=headers,
                on_delivery=delivery_callback(failures),
            )
            prod.poll(0)
            sent += 1
    flush(prod)
    for failure in failures:
        print(f"not published: {failure}", file=sys.stderr)
    print(f"published {sent - len(failures)} event(s) to {topic}; {bad} bad line(s)")
    return 1 if bad or failures else 0


def cmd_consume(args: argparse.Namespace, settings: Settings) -> int:
    import uuid

    from hookstream.errors import DecodeError
    from hookstream.io import codec_for, consumer
    from hookstream.records import record_to_json

    codec = codec_for(settings)
    cons = consumer(settings, group=f"hookstream-consume-{uuid.uuid4().hex[:8]}")
    cons.subscribe([args.topic])
    seen, idle_deadline = 0, time.monotonic() + args.timeout
    try:
        while seen < args.max and time.monotonic() < idle_deadline:
            msg = cons.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            idle_deadline = time.monotonic() + args.timeout
            seen += 1
            where = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
            try:
                record = codec.decode_any(msg.value(), msg.headers(), args.topic)
            except DecodeError as e:
                print(
                    json.dumps(
                        {
                            "at": where,
                            "error": str(e.at(args.topic, msg.partition() or 0, msg.offset() or 0)),
                        }
                    )
                )
                continue
            key = msg.key()
            print(
                json.dumps(
                    {
                        "at": where,
                        "key": key.decode(errors="replace") if key else None,
                        "record": record_to_json(record),
                    },
                    ensure_ascii=False,
                )
            )
    finally:
        cons.close()
    return 0 if seen else 1


def cmd_webhooks(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from hookstream.control import admin

    if args.action == "apply":
        if not args.file:
            raise SystemExit("hookstream webhooks apply needs -f FILE_OR_DIR")
        for definition, state in admin.apply_webhooks(settings, Path(args.file)):
            print(f"{definition.id} v{definition.version}: {state}")
        return 0
    if args.action == "delete":
        if not args.id:
            raise SystemExit("hookstream webhooks delete needs a webhook ID")
        found = admin.delete_webhook(settings, args.id)
        print(f"{args.id}: {'deleted' if found else 'not found'}")
        return 0 if found else 1
    for row in admin.list_webhooks(settings):
        print(
            json.dumps(row, ensure_ascii=False)
            if args.json
            else f"{row['id']:<30} v{row['version']:<4} {row['instance']:<16} {row['itemtype']:<14}"
            f" {row['event']:<7} {'active' if row['is_active'] else 'inactive':<8} {row['url']}"
        )
    return 0


def cmd_entities(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from hookstream.control import apply_entities

    print(f"published {apply_entities(settings, Path(args.file))} entities")
    return 0


def cmd_preview(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from hookstream.control import admin, load_definitions
    from hookstream.errors import TransientError
    from hookstream.matching import EntityTable
    from hookstream.policy import secret_box

    now_ms = int(time.time() * 1000)
    source = Path(args.webhook)
    if source.exists():
        found = load_definitions(
            source,
            secret_box(settings),
            {},
            settings.retry_tiers_s,
            settings.allowed_networks,
        )
        webhook = found[0] if not args.id else next(d for d in found if d.id == args.id)
    else:
        current = admin.current_webhooks(settings)
        if args.webhook not in current:
            print(
                f"no webhook {args.webhook!r} (neither a file nor a published id)", file=sys.stderr
            )
            return 1
        webhook = current[args.webhook]
    try:
        entities = admin.load_entities(settings)
    except TransientError:
        entities = EntityTable()  # offline preview: entity scope without the synced tree
    event = admin.event_from_file(Path(args.event), webhook.instance, now_ms)
    result = admin.preview(webhook, event, entities, now_ms)
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


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if args.component == "processor":
        from processors.processor import run_processor

        return run_processor(settings)
    from connectors.delivery import run_delivery

    return run_delivery(settings)


def _since_ms(value: str | None) -> int:
    """--since: an ISO date-time, or a duration back from now such as 30m, 2h, 1d."""
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
        raise SystemExit(f"--since {value!r}: not a date-time nor a duration like 2h") from e


def cmd_dlq(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.redrive import dead_letters, redrive

    since = _since_ms(args.since)
    if args.action == "list":
        for dead in dead_letters(settings, args.webhook, since):
            r = dead.request
            print(f"{dead.position:<10} {r.delivery_id} {r.webhook_id:<24} "
                  f"{r.itemtype}#{r.items_id} {r.event:<6} attempts={r.attempt} "
                  f"{'redriven ' if dead.redriven else ''}{r.last_error or ''}")
        return 0
    rate = float(args.rate.removesuffix("/s")) if args.rate else 0.0
    count = redrive(settings, args.webhook, since, rate,
                    on_progress=lambda n: print(f"  {n} redriven...", file=sys.stderr))
    print(f"redrove {count} delivery(ies) to {settings.topic('hookstream.deliveries')}")
    return 0


def cmd_deliveries(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.redrive import find_delivery, force_send, target_for

    request = find_delivery(settings, args.delivery_id)
    if request is None:
        print(f"no delivery {args.delivery_id}", file=sys.stderr)
        return 1
    target = target_for(settings, request.webhook_id)
    if target is None:
        print(f"webhook {request.webhook_id} no longer exists", file=sys.stderr)
        return 1
    record = force_send(settings, request, target, time.time)
    print(f"{record.outcome}: status {record.status_code} {record.error or ''}".rstrip())
    return 0 if record.outcome == "delivered" else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hookstream", description=__doc__)
    parser.add_argument("--config", help="settings file (YAML); default $HOOKSTREAM_CONFIG")
    parser.add_argument("--bootstrap-servers", help="overrides the bootstrap_servers setting")
    sub = parser.add_subparsers(dest="command", required=True)

    kafka = sub.add_parser("kafka", help="the local development Kafka broker")
    kafka.add_argument("action", choices=["start", "stop", "status"])
    kafka.add_argument("--port", type=int, help="broker port (default 9092)")
    kafka.set_defaults(func=cmd_kafka)

    topics = sub.add_parser("topics", help="create every topic (idempotent)")
    topics.add_argument("action", choices=["create"])
    topics.add_argument("--prefix", help="topic name prefix")
    topics.set_defaults(func=cmd_topics)

    produce = sub.add_parser("produce", help="publish ItemChangeEvents from JSON lines")
    produce.add_argument("--instance", required=True, help="the GLPI instance's name")
    produce.add_argument("--file", required=True, help="one JSON object a line")
    produce.set_defaults(func=cmd_produce)

    consume = sub.add_parser("consume", help="print decoded records of a topic")
    consume.add_argument("topic")
    consume.add_argument("--max", type=int, default=10)
    consume.add_argument("--timeout", type=float, default=10.0, help="stop after S idle seconds")
    consume.set_defaults(func=cmd_consume)

    webhooks = sub.add_parser("webhooks", help="webhook definitions on the compacted topic")
    webhooks.add_argument("action", choices=["apply", "delete", "list"])
    webhooks.add_argument("id", nargs="?", help="the webhook to delete")
    webhooks.add_argument("-f", "--file", help="YAML file or directory (apply)")
    webhooks.add_argument("--json", action="store_true", help="list as JSON lines")
    webhooks.set_defaults(func=cmd_webhooks)

    entities = sub.add_parser("entities", help="GLPI entity trees on the compacted topic")
    entities.add_argument("action", choices=["apply"])
    entities.add_argument("-f", "--file", required=True)
    entities.set_defaults(func=cmd_entities)

    preview = sub.add_parser("preview", help="show the request a webhook would send for an event")
    preview.add_argument("--webhook", required=True, help="a YAML file or a published id")
    preview.add_argument("--id", help="which webhook of a file with several")
    preview.add_argument("--event", required=True, help="an event JSON file")
    preview.set_defaults(func=cmd_preview)

    dlq = sub.add_parser("dlq", help="the dead-letter queue")
    dlq.add_argument("action", choices=["list", "redrive"])
    dlq.add_argument("--webhook", help="only this webhook's deliveries")
    dlq.add_argument("--since", help="dead-lettered since: ISO date-time or a duration (2h)")
    dlq.add_argument("--rate", help="redrive at most N/s")
    dlq.set_defaults(func=cmd_dlq)

    deliveries = sub.add_parser("deliveries", help="one delivery")
    deliveries.add_argument("action", choices=["send"])
    deliveries.add_argument("delivery_id")
    deliveries.set_defaults(func=cmd_deliveries)

    run = sub.add_parser("run", help="run a pipeline component until SIGTERM")
    run.add_argument("component", choices=["processor", "delivery"])
    run.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {
        "bootstrap_servers": args.bootstrap_servers,
        "topic_prefix": getattr(args, "prefix", None),
        "broker_port": getattr(args, "port", None),
    }
    if overrides["broker_port"] and not args.bootstrap_servers:
        overrides["bootstrap_servers"] = f"127.0.0.1:{overrides['broker_port']}"
    try:
        settings = load_settings(args.config, **overrides)
        code: int = args.func(args, settings)
        return code
    except HookstreamError as e:
        print(f"hookstream: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
