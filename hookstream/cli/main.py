"""The `hookstream` command line: one module of commands per concern, registered here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hookstream.cli import definitions, dlq, glpi, logstore, pipeline, schemas
from hookstream.config import load_settings
from hookstream.errors import HookstreamError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hookstream", description=__doc__)
    parser.add_argument("--config", help="settings file (YAML); default $HOOKSTREAM_CONFIG")
    parser.add_argument("--bootstrap-servers", help="overrides the bootstrap_servers setting")
    sub = parser.add_subparsers(dest="command", required=True)
    for commands in (pipeline, definitions, dlq, glpi, logstore, schemas):
        commands.register(sub)
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
