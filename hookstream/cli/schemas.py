"""`hookstream schemas register`: every topic's schema in the schema registry, ahead of
deployment, for registries that do not let clients register (schema_registry_auto_register
false). Each topic's `<topic>-value` subject gets the current version of its schema and a
compatibility level.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from hookstream.config import Settings
from hookstream.errors import ConfigError


def cmd_schemas_register(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.io.schema_registry import registry_for
    from hookstream.records import avro_topics
    from hookstream.records.codec import load_schema_text

    if not settings.schema_registry_url:
        raise ConfigError("schema_registry_url is not set: there is no registry to register in")
    # this command is the one that registers, whatever the clients are allowed
    registry = registry_for(dataclasses.replace(settings, schema_registry_auto_register=True))
    try:
        for topic, name in avro_topics(settings).items():
            subject = f"{topic}-value"
            schema_id = registry.register(subject, load_schema_text(name))
            registry.set_compatibility(subject, args.compatibility)
            print(f"{subject}  {name}  id {schema_id}  {args.compatibility}")
    finally:
        registry.close()
    return 0


def register(sub: Any) -> None:
    from hookstream.io.schema_registry import COMPATIBILITY_LEVELS

    schemas = sub.add_parser("schemas", help="the Avro schemas in the schema registry")
    schemas.add_argument("action", choices=["register"])
    schemas.add_argument("--prefix", help="topic prefix (overrides topic_prefix)")
    schemas.add_argument("--compatibility", default="BACKWARD", choices=COMPATIBILITY_LEVELS,
                         help="the compatibility level of every subject (default BACKWARD)")
    schemas.set_defaults(func=cmd_schemas_register)
