"""Delivery: hookstream.deliveries and the retry tiers -> HTTP, and the DLQ's way back.

One attempt reads in one direction, each module calling only the ones below it:

    service     the loop: fetch, receive, store offsets; rebalances and readiness
    schedule    retry tiers: submit what is due, hold what is not on a timer
    worker      one delivery: submit, admit, send, decide, record, release
    checkpoint  offsets once outcomes are durable; pauses; one generation per partition
    record      attempt, retry and DLQ records, produced until Kafka acknowledges them
    limits      global, per-origin (adaptive), per-webhook and rate limits
    ordering    ordering: per_item: one delivery of an item at a time, retries in place
    stale       one record of a delivery at a time; drop copies already handled
    recall      what Kafka knows of handled copies, read beside the loop after an
                assignment, and the gate holding only the deliveries in question
    ports       the narrow protocols of Kafka and HTTP, and the shared TP and Job
    http/       targets, the sender (signing, CRA, OAuth) and the SSRF-guarded connector
    redrive/    dead letters back onto the deliveries topic, and force send
"""

from connectors.delivery.service import GROUP, DeliveryService, run_delivery

__all__ = ["GROUP", "DeliveryService", "run_delivery"]
