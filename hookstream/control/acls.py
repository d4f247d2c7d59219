"""The Kafka ACLs each component needs, and nothing more (README "Kafka ACLs").

One table, printed by `hookstream kafka acls` as kafka-acls.sh commands or a Strimzi
KafkaUser, and granted by the tests to a broker that denies whatever no ACL allows. Kafka
implies DESCRIBE from READ and WRITE, so DESCRIBE is listed only where nothing else is.
Topic names take the `topic_prefix`; so do the groups and transactional ids that the
components name with it (logstore, writeback, ticketer, the processor's, redrive's and replay's
transactions, replay's groups).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import yaml

from hookstream.records import topics as t


@dataclass(frozen=True, slots=True)
class Grant:
    resource: str  # topic, group, transactional-id or cluster
    name: str  # after the prefix; "" for the cluster
    operations: tuple[str, ...]  # READ, WRITE, DESCRIBE, CREATE, IDEMPOTENT_WRITE
    prefixed: bool = False  # every name starting with `name`
    with_prefix: bool = True  # the topic prefix goes in front of `name`


RETRY = "hookstream.retry."  # every retry tier topic (hookstream.retry.10s, ...)
TABLES = (t.WEBHOOKS, t.ENTITIES, t.INSTANCES)


def _topics(names: tuple[str, ...], *operations: str) -> list[Grant]:
    return [Grant("topic", n, operations, prefixed=n == RETRY) for n in names]


def _group(name: str, prefixed_by_settings: bool = False) -> Grant:
    return Grant("group", name, ("READ",), with_prefix=prefixed_by_settings)


# Every consumer names a group, even those that only assign partitions and never commit
# (table followers, readers of a topic to its end): they still find its coordinator.
_READERS = [_group("hookstream-tables"), _group("hookstream-reader")]
_REDRIVE = [
    *_topics((t.DLQ, t.REDRIVEN, t.ATTEMPTS), "READ"),
    *_topics((t.DELIVERIES, t.REDRIVEN), "WRITE"),
    Grant("transactional-id", "hookstream-redrive", ("WRITE",)),
]
# a replay (control/replay.py): its progress is a group's offsets, one group and one
# transactional id per replay, both named `{prefix}hookstream-replay-{replay id}`
_REPLAY = [
    *_topics((t.ITEM_CHANGES,), "READ"),
    *_topics((t.DELIVERIES,), "WRITE"),
    Grant("group", "hookstream-replay-", ("READ",), prefixed=True),
    Grant("transactional-id", "hookstream-replay-", ("WRITE",), prefixed=True),
]

COMPONENTS: dict[str, list[Grant]] = {
    "processor": [
        *_topics((t.ITEM_CHANGES, t.OPERATIONS, *TABLES), "READ"),
        *_topics((t.DELIVERIES, t.ATTEMPTS, t.DLQ, t.ITEM_CHANGES_DLQ), "WRITE"),
        _group("hookstream-processor"),
        *_READERS,
        Grant("transactional-id", "hookstream-processor-", ("WRITE",), prefixed=True),
    ],
    "delivery": [
        *_topics((t.DELIVERIES, RETRY, *TABLES, t.ATTEMPTS, t.DLQ), "READ"),
        *_topics((RETRY, t.DLQ, t.ATTEMPTS, t.OPERATIONS), "WRITE"),
        *_topics((t.ITEM_CHANGES_DLQ,), "DESCRIBE"),  # its size, in the gauges
        _group("hookstream-delivery"),
        _group("hookstream-delivery-recall"),
        *_READERS,
    ],
    "logstore": [
        *_topics((t.DELIVERIES, RETRY, t.DLQ, t.ATTEMPTS, t.ITEM_CHANGES, t.AUDIT,
                  t.OPERATIONS, t.ALERT_ACTIONS, *TABLES), "READ"),
        *_topics((t.WEBHOOKS, t.OPERATIONS), "WRITE"),  # auto-disable
        _group("hookstream-logstore", prefixed_by_settings=True),
        *_READERS,
    ],
    "ingest": [
        *_topics(TABLES, "READ"),
        *_topics((t.ITEM_CHANGES,), "WRITE"),
        *_READERS,
    ],
    "alerts": [
        *_topics((t.INSTANCES,), "READ"),
        *_topics((t.ALERTS,), "WRITE"),
        *_READERS,
    ],
    "poller": [
        *_topics((*TABLES, t.POLLER_CURSORS), "READ"),
        *_topics((t.ITEM_CHANGES, t.POLLER_CURSORS), "WRITE"),
        *_READERS,
    ],
    "writeback": [
        *_topics((t.ATTEMPTS, *TABLES), "READ"),
        _group("hookstream-writeback", prefixed_by_settings=True),
        *_READERS,
    ],
    "ticketer": [
        *_topics((t.ALERTS, t.ALERT_RULES, t.INSTANCES, t.ALERT_TICKETS), "READ"),
        *_topics((t.ALERT_TICKETS, t.ALERT_ACTIONS, t.ALERTS_DLQ), "WRITE"),
        _group("hookstream-ticketer", prefixed_by_settings=True),
        *_READERS,
    ],
    "admin": [
        *_topics((*TABLES, t.DELIVERIES, RETRY, t.DLQ, t.ATTEMPTS, t.REDRIVEN,
                  t.ALERT_RULES), "READ"),
        *_topics((*TABLES, t.ATTEMPTS, t.AUDIT), "WRITE"),
        *_REDRIVE,
        *_REPLAY,
        *_READERS,
    ],
    # the command line of whoever deploys: topics, definitions, redrive
    "operator": [
        Grant("topic", "", ("CREATE", "DESCRIBE_CONFIGS"), prefixed=True),
        Grant("topic", "", ("READ", "WRITE"), prefixed=True),
        *_REDRIVE,
        *_REPLAY,
        Grant("group", "hookstream-", ("READ",), prefixed=True, with_prefix=False),
    ],
}


@dataclass(frozen=True, slots=True)
class Acl:
    """One ALLOW rule as Kafka stores it."""

    principal: str
    resource: str
    name: str
    pattern: str  # LITERAL or PREFIXED
    operation: str


def acls(component: str, principal: str, topic_prefix: str = "") -> list[Acl]:
    """The ALLOW rules `principal` needs to run `component` (a key of COMPONENTS), each
    once (redrive and replay both write deliveries, for one)."""
    rules: dict[Acl, None] = {}
    for grant in COMPONENTS[component]:
        name = (topic_prefix if grant.with_prefix else "") + grant.name
        if grant.resource == "cluster":
            name = "kafka-cluster"
        pattern = "PREFIXED" if grant.prefixed else "LITERAL"
        if grant.prefixed and not name:
            name, pattern = "*", "LITERAL"  # every topic (an empty prefix is no prefix)
        for operation in grant.operations:
            rules[Acl(principal, grant.resource, name, pattern, operation)] = None
    return list(rules)


_FLAG = {"topic": "--topic", "group": "--group", "transactional-id": "--transactional-id",
         "cluster": "--cluster"}


def as_kafka_acls_commands(rules: list[Acl], bootstrap: str) -> str:
    """kafka-acls.sh commands (one a rule) that create exactly `rules`."""
    lines = []
    for r in rules:
        target = [_FLAG[r.resource]] if r.resource == "cluster" else [_FLAG[r.resource], r.name]
        words = ["kafka-acls.sh", "--bootstrap-server", bootstrap, "--command-config",
                 "admin.properties", "--add", "--allow-principal", r.principal,
                 "--operation", _camel(r.operation),
                 *target, "--resource-pattern-type", r.pattern.lower()]
        lines.append(shlex.join(words))
    return "\n".join(lines) + "\n"


def as_strimzi_user(rules: list[Acl], user: str, cluster: str) -> str:
    """A Strimzi KafkaUser (SCRAM-SHA-512) holding `rules`."""
    manifest = {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaUser",
        "metadata": {"name": user, "labels": {"strimzi.io/cluster": cluster}},
        "spec": {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {
                "type": "simple",
                "acls": [
                    {
                        "resource": {"type": r.resource.replace("transactional-id",
                                                                "transactionalId")}
                        | ({} if r.resource == "cluster"
                           else {"name": r.name, "patternType": r.pattern.lower()}),
                        "operations": [_camel(r.operation)],
                    }
                    for r in rules
                ],
            },
        },
    }
    return yaml.safe_dump(manifest, sort_keys=False)


def _camel(operation: str) -> str:
    """READ -> Read, DESCRIBE_CONFIGS -> DescribeConfigs: kafka-acls.sh's and Strimzi's."""
    return "".join(word.title() for word in operation.split("_"))
