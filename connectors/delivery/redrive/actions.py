"""The dead-letter queue: listing, redrive (each record exactly once), and force send.

Redrive republishes DLQ records to hookstream.deliveries with attempts reset, inside
Kafka transactions that also write each record's DLQ position to a compacted ledger
topic. A redrive interrupted at any point and run again therefore redrives every
record once: what was committed is in the ledger, what was not is invisible
(read_committed) and is redriven by the next run.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field

import aiohttp

from connectors.delivery.http.guard import guarded_connector
from connectors.delivery.http.sender import Sender, Target
from connectors.delivery.redrive.ledger import LedgeredTransactions, Redriven
from hookstream.config import Settings
from hookstream.errors import DecodeError, HookstreamError
from hookstream.io import codec_for, producer, read_all
from hookstream.policy import Response, Success, classify, explain, parse_networks, secret_box
from hookstream.records import (
    ATTEMPTS,
    DELIVERIES,
    DLQ,
    REDRIVEN,
    AttemptRecord,
    DeliveryRequest,
    Outcome,
    Trigger,
    retry_topics,
)
from hookstream.records.redriven import RedriveLedger, position


@dataclass(frozen=True, slots=True)
class DeadLetter:
    position: str  # "partition:offset" on the DLQ topic
    dead_at_ms: int
    request: DeliveryRequest
    redriven: bool


def _ledger(settings: Settings) -> RedriveLedger:
    ledger = RedriveLedger()
    for m in read_all(settings, settings.topic(REDRIVEN)):
        ledger.read(m.key(), m.value())
    return ledger


def selected(request: DeliveryRequest, webhook_id: str | None,
             instances: Collection[str] | None) -> bool:
    """Whether a redrive of `webhook_id` (None: every webhook) within `instances` (None:
    every instance) takes this dead-lettered delivery: the one rule of redrive and its count."""
    return ((not webhook_id or request.webhook_id == webhook_id)
            and (instances is None or request.instance in instances))


@dataclass(frozen=True, slots=True)
class RedriveCount:
    """What a redrive would send again, by the status its target last answered (None: no
    answer: a timeout, a refused connection, a blocked address)."""

    by_status: dict[int | None, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    def summary(self) -> str:
        """ "12 deliveries, 4 of them to a target answering 401, 8 to one answering 500". """
        total = self.total
        head = f"{total} {'delivery' if total == 1 else 'deliveries'}"
        parts: list[str] = []
        for status, n in sorted(self.by_status.items(), key=lambda kv: (-kv[1], kv[0] or 0)):
            answer = "giving no answer" if status is None else f"answering {status}"
            parts.append(f"{n} {'of them ' if not parts else ''}"
                         f"{'to a target' if not parts else 'to one'} {answer}")
        return head if total == 0 else ", ".join([head, *parts])


def count_redrive(settings: Settings, webhook_id: str | None = None, since_ms: int = 0,
                  instances: Collection[str] | None = None) -> RedriveCount:
    """How many dead letters `redrive` with the same arguments would send again now."""
    counts = Counter(d.request.last_status
                     for d in dead_letters(settings, webhook_id, since_ms, instances)
                     if not d.redriven)
    return RedriveCount(dict(counts))


def dead_letters(
    settings: Settings, webhook_id: str | None = None, since_ms: int = 0,
    instances: Collection[str] | None = None,
) -> Iterator[DeadLetter]:
    """DLQ records, oldest first per partition, filtered by webhook, instance and time of
    arrival."""
    codec, done = codec_for(settings), _ledger(settings)
    for msg in read_all(settings, settings.topic(DLQ)):
        _, dead_at = msg.timestamp()
        if dead_at < since_ms:
            continue
        try:
            request = codec.decode(msg.value(), msg.headers(), DeliveryRequest)
        except DecodeError:
            continue  # an undecodable delivery cannot be redriven; `consume` shows it
        if not selected(request, webhook_id, instances):
            continue
        partition, offset = msg.partition() or 0, msg.offset() or 0
        yield DeadLetter(position(partition, offset), dead_at, request,
                         done.redriven(partition, offset))


def redrive(
    settings: Settings,
    webhook_id: str | None = None,
    since_ms: int = 0,
    rate_per_s: float = 0.0,
    batch: int = 100,
    on_progress: Callable[[int], None] = lambda n: None,
    instances: Collection[str] | None = None,
) -> int:
    """Republish matching DLQ records not yet redriven; returns how many. `instances`
    (None: all) bounds it to a scoped token's instances."""
    codec = codec_for(settings)
    deliveries, ledger = settings.topic(DELIVERIES), settings.topic(REDRIVEN)
    # One id for every redrive: a second redrive running at once fences the first.
    txn = LedgeredTransactions(
        settings,
        deliveries,
        ledger,
        f"{settings.topic_prefix}hookstream-redrive",
        lambda: _ledger(settings),
    )
    count, started = 0, time.monotonic()
    for dead in dead_letters(settings, webhook_id, since_ms, instances):
        if dead.redriven:
            continue
        fresh = dead.request.evolve(
            hop=dead.request.hop + 1,
            attempt=0, not_before=0, retry_tier=0, last_error=None, last_status=None
        )
        value, headers = codec.encode(fresh, deliveries)
        txn.add(Redriven(dead.position, fresh.key().encode(), value, headers, fresh.delivery_id))
        count += 1
        if txn.open >= batch:
            txn.commit()
            on_progress(count)
        if rate_per_s > 0:  # pace: never ahead of count / rate
            ahead_s = count / rate_per_s - (time.monotonic() - started)
            if ahead_s > 0:
                if txn.open:
                    txn.commit()
                time.sleep(ahead_s)
    if txn.open:
        txn.commit()
    return count


def find_delivery(settings: Settings, delivery_id: str) -> DeliveryRequest | None:
    """The latest record of a delivery on the deliveries, retry and DLQ topics."""
    codec, found = codec_for(settings), None
    for topic in (settings.topic(DELIVERIES), *retry_topics(settings), settings.topic(DLQ)):
        for msg in read_all(settings, topic):
            try:
                request = codec.decode(msg.value(), msg.headers(), DeliveryRequest)
            except DecodeError:
                continue
            if request.delivery_id == delivery_id and (
                found is None or request.attempt >= found.attempt
            ):
                found = request
    return found


def force_send(
    settings: Settings, request: DeliveryRequest, target: Target, clock: Callable[[], float],
    actor: str | None = None,
) -> AttemptRecord:
    """GLPI's "send now": one immediate attempt whatever the delivery's state. The attempt
    is recorded, with the name of the token that asked for it (`actor`) and the response
    body when the webhook saves response bodies; the delivery's own route (retry or DLQ)
    is left as it is."""

    async def attempt() -> AttemptRecord:
        allow = parse_networks(settings.allowed_networks)
        async with aiohttp.ClientSession(connector=guarded_connector(allow)) as session:
            started = int(clock() * 1000)
            result = await Sender(session, clock).send(request, target, allow)
            # Success as the webhook's retry policy has it (GLPI's: any status below 400).
            verdict = classify(
                target.retry_policy,
                Response(result.status, result.error, result.headers.get("retry-after")),
                clock(),
            )
            ok = isinstance(verdict, Success)
            sent = result.request_headers is not None
            return request.attempt_record(
                request.attempt + 1,
                started,
                int(clock() * 1000),
                Outcome.DELIVERED if ok else Outcome.FAILED,
                status_code=result.status,
                error=result.error,
                response_headers=result.headers if result.body is not None else {},
                response_body=result.body,
                trigger=Trigger.MANUAL,
                actor=actor,
                request_method=request.method.upper() if sent else None,
                request_url=request.url if sent else None,
                request_headers=result.request_headers or {},
                body_sha256=hashlib.sha256(request.body).hexdigest() if sent else None,
                reason=None if ok else getattr(verdict, "reason", result.error),
                next_step=explain.manual(ok, result.status, result.error),
            )

    record = asyncio.run(attempt())
    codec, topic = codec_for(settings), settings.topic(ATTEMPTS)
    prod = producer(settings)
    value, headers = codec.encode(record, topic)
    prod.produce(topic, value, record.delivery_id.encode(), headers=headers)
    if prod.flush(30):
        raise HookstreamError("the attempt record was not acknowledged by Kafka")
    return record


def target_for(settings: Settings, webhook_id: str) -> Target | None:
    from hookstream.control import current_webhooks

    definition = current_webhooks(settings).get(webhook_id)
    return None if definition is None else Target.of(definition, secret_box(settings))
