"""Dead letters back onto the deliveries topic (exactly once, through a ledger), and
force send: one delivery sent now, outside the retry tiers."""

from connectors.delivery.redrive.actions import (
    DeadLetter,
    RedriveCount,
    count_redrive,
    dead_letters,
    find_delivery,
    force_send,
    redrive,
    selected,
    target_for,
)

__all__ = [
    "DeadLetter", "RedriveCount", "count_redrive", "dead_letters", "find_delivery",
    "force_send", "redrive", "selected", "target_for",
]
