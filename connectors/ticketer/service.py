"""`hookstream run ticketer`: hookstream.alerts in (a consumer group), GLPI tickets out.

The fingerprint-to-ticket map lives on hookstream.alert-tickets, compacted and partitioned
as the alerts are: an alert read from partition p has its entry on partition p (written
there explicitly). Before handling a partition's first alert, the ticketer reads that map
partition to its end; for each alert it calls GLPI, then produces the TicketAction and the
map entry, and commits the alert's offset only once both are acknowledged. A restart or
another replica taking the partition over thus sees every ticket opened; an alert handled
again after a crash is skipped by the entry's `alert_offset`, and a crash between GLPI's
answer and the map's write is covered by the ticket's marker (TicketDesk.find).

A GLPI that cannot be reached holds the alert's partition: it is rewound to the alert and
paused for a backoff, nothing past it is committed. A GLPI refusal sends the alert to
hookstream.alerts.dlq with GLPI's code and message in headers.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from connectors.glpi import GlpiSessions, backoff_s, client_for
from connectors.ticketer.desk import TicketDesk
from connectors.ticketer.handler import AlertHandler, CompiledRule, Handled
from hookstream.alerting.rules import compile_rule
from hookstream.config import Settings
from hookstream.errors import ConfigError, DecodeError, InvalidTemplate, TransientError
from hookstream.io import (
    Partitions,
    codec_for,
    consumer,
    flush,
    kafka_errors,
    metrics,
    producer,
    read_ranges,
    watermarks,
)
from hookstream.io.health import serve
from hookstream.io.tables import TableFollower
from hookstream.records import (
    ALERT_ACTIONS,
    ALERT_RULES,
    ALERT_TICKETS,
    ALERTS,
    ALERTS_DLQ,
    INSTANCES,
    ActionKind,
    AlertEvent,
    AlertRule,
    AlertTicket,
    InstanceRecord,
    dead_letter_headers,
)

log = logging.getLogger(__name__)
TP = tuple[str, int]


@dataclass
class Held:
    """Partitions held back because an instance's GLPI cannot be reached."""

    until: dict[TP, float] = field(default_factory=dict)  # paused partition -> resume at
    instance_until: dict[str, float] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)


class Ticketer:
    def __init__(self, settings: Settings):
        self._settings, self._codec = settings, codec_for(settings)
        self._topic = settings.topic(ALERTS)
        self._tickets_topic = settings.topic(ALERT_TICKETS)
        self.rules: dict[str, CompiledRule] = {}
        self.instances: dict[str, InstanceRecord] = {}
        self._sessions = GlpiSessions(lambda name: client_for(settings, name),
                                      settings.ticketer_rate_per_s)
        self._handler = AlertHandler(TicketDesk(self._sessions), self.rules, self.instances)
        self._maps: dict[int, dict[str, AlertTicket]] = {}  # by alerts partition, then key
        self._held = Held()
        self._consumer: Consumer = consumer(settings, f"{settings.topic_prefix}hookstream-ticketer")
        self._partitions = Partitions(self._consumer)
        self._reader = consumer(settings, "hookstream-reader", {"enable.partition.eof": True})
        self._producer: Producer = producer(settings)

    # -- the followed tables ----------------------------------------------------------------

    def apply_table(self, topic: str, key: bytes, value: bytes | None, msg: Message) -> None:
        name = key.decode()
        try:
            if topic == self._settings.topic(INSTANCES):
                self._sessions.forget(name)  # a new URL or tokens: a new session
                if value is None:
                    self.instances.pop(name, None)
                else:
                    self.instances[name] = self._codec.decode(value, msg.headers(), InstanceRecord)
            elif value is None:
                self.rules.pop(name, None)
            else:
                rule = self._codec.decode(value, msg.headers(), AlertRule)
                self.rules[name] = CompiledRule(rule, compile_rule(rule))
        except (DecodeError, InvalidTemplate) as e:
            log.error("ticketer: skipping table record %s on %s: %s", name, topic, e)

    # -- the loop ---------------------------------------------------------------------------

    def start(self) -> None:
        self._check_partitioning()
        self._consumer.subscribe([self._topic], on_revoke=self._forget, on_lost=self._forget)

    def _forget(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        """Partitions taken away: their map is read again if they come back (another
        replica may have added to it meanwhile)."""
        for tp in partitions:
            self._maps.pop(tp.partition, None)
            self._held.until.pop((tp.topic, tp.partition), None)

    def step(self, timeout_s: float = 0.5) -> int:
        """One batch: resume partitions whose wait is over, consume, handle, record, commit."""
        now = time.monotonic()
        for tp, until in list(self._held.until.items()):
            if until <= now:
                del self._held.until[tp]
                self._partitions.resume(tp)
        with kafka_errors("consuming alerts"):
            messages = [m for m in self._consumer.consume(200, timeout_s) if m.error() is None]
        done: dict[TP, int] = {}
        handled: list[Handled] = []
        for msg in messages:
            tp = (msg.topic() or "", msg.partition() or 0)
            if tp in self._held.until:
                continue  # rewound and paused earlier in this batch
            outcome = self._one(msg)
            if not isinstance(outcome, Handled):
                self._hold(tp, msg.offset() or 0, self._instance_of(msg), failed=outcome)
                continue
            handled.append(outcome)
            done[tp] = (msg.offset() or 0) + 1
        if done:
            flush(self._producer)  # actions, map entries and DLQ records acknowledged ...
            with kafka_errors("committing alert offsets"):  # ... before the offsets move
                self._consumer.commit(offsets=[TopicPartition(t, p, o)
                                               for (t, p), o in done.items()],
                                      asynchronous=False)
            for outcome in handled:
                self._count(outcome)
        return len(messages)

    def _one(self, msg: Message) -> Handled | bool:
        """Handle one alert record; else whether its GLPI was just found unreachable (True)
        or is still waited for (False): the record is tried again later."""
        partition, offset = msg.partition() or 0, msg.offset() or 0
        try:
            alert = self._codec.decode(msg.value(), msg.headers(), AlertEvent)
        except DecodeError as e:
            log.warning("ticketer: undecodable alert at %s:%s: %s", partition, offset, e)
            self._producer.produce(
                self._settings.topic(ALERTS_DLQ), msg.value(), msg.key(),
                headers=dead_letter_headers(msg.headers(), e.at(self._topic, partition, offset)))
            return Handled(None, None)
        if self._held.instance_until.get(alert.instance, 0.0) > time.monotonic():
            return False
        tickets = self._map(partition)
        try:
            outcome = self._handler.handle(alert, tickets.get(alert.key()), offset)
        except TransientError as e:
            log.warning("ticketer: GLPI %s unavailable: %s; alert %s waits", alert.instance, e,
                        alert.key())
            metrics.TICKETER_GLPI_UNAVAILABLE.labels(alert.instance).inc()
            return True
        self._held.failures.pop(alert.instance, None)
        self._record(alert, outcome, msg)
        if outcome.entry is not None:
            tickets[alert.key()] = outcome.entry
        return outcome

    def _record(self, alert: AlertEvent, outcome: Handled, msg: Message) -> None:
        key = alert.key().encode()
        if outcome.action is not None:
            value, headers = self._codec.encode(outcome.action, self._settings.topic(ALERT_ACTIONS))
            self._producer.produce(self._settings.topic(ALERT_ACTIONS), value, key,
                                   headers=headers)
        if outcome.entry is not None:
            value, headers = self._codec.encode(outcome.entry, self._tickets_topic)
            self._producer.produce(self._tickets_topic, value, key, headers=headers,
                                   partition=msg.partition() or 0)
        if outcome.refusal is not None:
            refusal = outcome.refusal
            value, headers = self._codec.encode(alert, self._settings.topic(ALERTS_DLQ))
            headers += [
                ("hookstream-error", f"{refusal.code}: {refusal.message}".encode()),
                ("hookstream-glpi-status", str(refusal.status).encode()),
                ("hookstream-glpi-code", refusal.code.encode()),
                ("hookstream-source", f"{self._topic}:{msg.partition()}:{msg.offset()}".encode()),
            ]
            if outcome.action is not None:
                headers.append(("hookstream-rule", outcome.action.rule_id.encode()))
            self._producer.produce(self._settings.topic(ALERTS_DLQ), value, key, headers=headers)

    def _count(self, outcome: Handled) -> None:
        action = outcome.action
        if action is None:
            return
        metrics.TICKETER_ACTIONS.labels(action.instance, action.action).inc()
        if action.action == ActionKind.OPENED and action.latency_ms is not None:
            metrics.TICKETER_LATENCY.labels(action.instance).observe(action.latency_ms / 1000)
        if outcome.refusal is not None:
            metrics.TICKETER_DLQ.labels(action.instance).inc()

    def _hold(self, tp: TP, offset: int, instance: str, failed: bool) -> None:
        """Rewind the partition to the alert that waits and pause it until the instance's
        backoff is over (`failed`: GLPI was just tried, the backoff grows)."""
        if failed:
            failures = self._held.failures[instance] = self._held.failures.get(instance, 0) + 1
            backoff = backoff_s(failures, self._settings.ticketer_backoff_max_s)
            self._held.instance_until[instance] = time.monotonic() + backoff
        self._held.until[tp] = self._held.instance_until.get(instance, time.monotonic())
        self._partitions.seek(tp, offset)
        self._partitions.pause(tp)

    def _instance_of(self, msg: Message) -> str:
        return (msg.key() or b"").decode(errors="replace").split(":", 1)[0]

    def _map(self, partition: int) -> dict[str, AlertTicket]:
        """The map entries of an alerts partition, read to the end the first time."""
        found = self._maps.get(partition)
        if found is not None:
            return found
        tickets: dict[str, AlertTicket] = {}
        tp = TopicPartition(self._tickets_topic, partition)
        low, high = watermarks(self._reader, tp, 30.0)
        deadline = time.monotonic() + 60.0
        last = low - 1
        for msg in read_ranges(self._reader, [(TopicPartition(tp.topic, partition, low), high)],
                               deadline):
            last = msg.offset() or 0
            key = (msg.key() or b"").decode()
            if msg.value() is None:
                tickets.pop(key, None)
            else:
                tickets[key] = self._codec.decode(msg.value(), msg.headers(), AlertTicket)
        if last + 1 < high and time.monotonic() >= deadline:
            raise TransientError(f"{self._tickets_topic}[{partition}] not read to its end")
        self._maps[partition] = tickets
        return tickets

    def _check_partitioning(self) -> None:
        """The map is co-partitioned with the alerts: both need the same partition count."""
        counts = {}
        for topic in (self._topic, self._tickets_topic):
            with kafka_errors(f"describing {topic}"):
                meta = self._reader.list_topics(topic, timeout=30).topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                raise TransientError(f"topic {topic} is missing; run `hookstream topics create`")
            counts[topic] = len(meta.partitions)
        if len(set(counts.values())) > 1:
            raise ConfigError(f"{self._topic} and {self._tickets_topic} must have as many "
                              f"partitions (now {counts})")

    def close(self) -> None:
        try:
            flush(self._producer)
        finally:
            self._consumer.close()
            self._reader.close()
            self._sessions.close()


def run_ticketer(settings: Settings) -> int:
    running = [True]
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: running.__setitem__(0, False))
    logging.getLogger("httpx").setLevel(logging.WARNING)
    ticketer = Ticketer(settings)
    table = TableFollower(settings, [settings.topic(ALERT_RULES), settings.topic(INSTANCES)],
                          ticketer.apply_table)
    table.catch_up()
    metrics.READY.labels("ticketer").set(1)
    health = serve(settings.metrics_port, ready=lambda: table.caught_up,
                   host=settings.metrics_host, registry=metrics.registry("ticketer"))
    ticketer.start()
    try:
        while running[0]:
            table.poll(0.0)
            ticketer.step()
    finally:
        ticketer.close()
        table.close()
        if health is not None:
            health.shutdown()
    return 0

