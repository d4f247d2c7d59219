"""Commands of the pipeline itself: the local broker, topics, produce, consume, run."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from hookstream.cli.files import read_text
from hookstream.config import Settings


def _local_broker(settings: Settings, brokers: int = 1) -> Any:
    """The local broker, or the local cluster when asked for (or started before)."""
    from hookstream.devbroker import LocalBroker, LocalCluster

    cluster = settings.state_path / "cluster"
    if brokers > 1 or (cluster / "cluster.id").exists():
        count = brokers if brokers > 1 else len(list(cluster.glob("node-*")))
        return LocalCluster(cluster, settings.cache_path, settings.broker_port, count,
                            settings.broker_heap_mb)
    return LocalBroker(
        settings.state_path, settings.cache_path, settings.broker_port, settings.broker_heap_mb
    )


def cmd_kafka(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "acls":
        return _print_acls(args, settings)
    broker = _local_broker(settings, args.brokers)
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


def _print_acls(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.control.acls import COMPONENTS, acls, as_kafka_acls_commands, as_strimzi_user
    from hookstream.errors import UsageError

    if args.component not in COMPONENTS or not args.principal:
        raise UsageError(f"kafka acls needs --component ({', '.join(COMPONENTS)}) "
                         "and --principal User:NAME")
    rules = acls(args.component, args.principal, settings.topic_prefix)
    if args.format == "strimzi":
        user = args.principal.removeprefix("User:")
        print(as_strimzi_user(rules, user, args.cluster), end="")
    else:
        print(as_kafka_acls_commands(rules, settings.bootstrap_servers), end="")
    return 0


def cmd_settings(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from hookstream.config import redacted_settings

    print(json.dumps(redacted_settings(settings), indent=2))
    return 0


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.io import create_topics

    for name, state in create_topics(settings):
        print(f"{name}: {state}")
    return 0


def cmd_produce(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.io import codec_for, delivery_callback, flush, producer
    from hookstream.records import ITEM_CHANGES, BadLine, parse_event_lines

    # Read whole before producing: a file unreadable half-way publishes nothing. Split on
    # "\n" only, as reading a file does: U+2028 may stand unescaped inside a JSON string.
    lines = read_text("--file", args.file).split("\n")
    codec, prod, topic = codec_for(settings), producer(settings), settings.topic(ITEM_CHANGES)
    failures: list[str] = []
    sent = bad = 0
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


# `hookstream run NAME`: each component's entry point, imported only when it runs.
COMPONENTS: dict[str, tuple[str, str]] = {
    "processor": ("processors.processor", "run_processor"),
    "delivery": ("connectors.delivery", "run_delivery"),
    "ingest": ("connectors.ingest", "run_ingest"),
    "alerts": ("connectors.alerts", "run_alerts"),
    "logstore": ("connectors.logstore", "run_logstore"),
    "admin": ("connectors.admin", "run_admin"),
    "poller": ("connectors.poller", "run_poller"),
    "writeback": ("connectors.writeback", "run_writeback"),
    "ticketer": ("connectors.ticketer", "run_ticketer"),
}


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    import importlib
    import logging

    from hookstream.io.kafka import check_client_config

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    check_client_config(settings)  # a kafka_config typo fails here, in one line
    import dataclasses

    from hookstream.errors import UsageError

    if getattr(args, "instance", None):  # `run poller --instance NAME ...`
        if args.component != "poller":
            raise UsageError("--instance applies to the poller only")
        settings = dataclasses.replace(settings, poller_instances=tuple(args.instance))
    if getattr(args, "workers", None) is not None:  # `run ingest --workers N`
        if args.component != "ingest":
            raise UsageError("--workers applies to ingest only")
        if args.workers < 0:
            raise UsageError("--workers must be 0 (the CPU count) or more")
        settings = dataclasses.replace(settings, ingest_workers=args.workers)
    module, function = COMPONENTS[args.component]
    code: int = getattr(importlib.import_module(module), function)(settings)
    return code


def register(sub: Any) -> None:
    kafka = sub.add_parser(
        "kafka", help="the local development Kafka broker; the ACLs a component needs")
    kafka.add_argument("action", choices=["start", "stop", "status", "acls"])
    kafka.add_argument("--port", type=int, help="broker port (default 9092)")
    kafka.add_argument("--brokers", type=int, default=1,
                       help="start: a KRaft cluster of this many brokers (ports from --port "
                       "up, two a broker); stop and status find it")
    kafka.add_argument("--component", help="acls: processor, delivery, ... or operator")
    kafka.add_argument("--principal", help="acls: the component's principal, User:NAME")
    kafka.add_argument("--format", choices=["kafka-acls", "strimzi"], default="kafka-acls",
                       help="acls: kafka-acls.sh commands, or a Strimzi KafkaUser")
    kafka.add_argument("--cluster", default="my-cluster", help="acls: the Strimzi cluster")
    kafka.set_defaults(func=cmd_kafka)

    shown = sub.add_parser("settings", help="the settings in effect, secrets redacted")
    shown.set_defaults(func=cmd_settings)

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

    run = sub.add_parser("run", help="run a pipeline component until SIGTERM")
    run.add_argument("component", choices=sorted(COMPONENTS))
    run.add_argument("--instance", action="append", metavar="NAME",
                     help="poller: poll this GLPI instance (repeatable; default: every one "
                     "with an api_url)")
    run.add_argument("--workers", type=int, metavar="N",
                     help="ingest: N processes sharing the port (default: the ingest_workers "
                     "setting; 0 = the CPU count)")
    run.set_defaults(func=cmd_run)
