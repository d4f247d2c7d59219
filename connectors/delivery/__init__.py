"""Delivery: hookstream.deliveries and the retry tiers -> HTTP, and the DLQ's way back.

    service     the consumer loop: fetch, receive, rebalance, readiness
    attempt     one delivery: admit, send, decide, record, release
    tiers       retry tiers: hold not-yet-due records, pause and resume partitions
    outcomes    attempt, retry and DLQ records; offsets once they are durable
    offsets     the lowest offset not yet durable, per partition
    limits      global, per-origin (adaptive), per-webhook and rate limits
    ordering    ordering: per_item: one delivery of an item at a time, retries in place
    stale       one record of a delivery at a time; drop copies already handled
    recall      what Kafka knows of handled copies, read on assignment
    ports       the narrow protocols of Kafka and HTTP the loop is tested through
    http/       the sender (signing, CRA, OAuth) and the SSRF-guarded connector
    redrive/    dead letters back onto the deliveries topic, and force send
"""

from connectors.delivery.service import GROUP, DeliveryService, run_delivery

__all__ = ["GROUP", "DeliveryService", "run_delivery"]
