"""The redrive ledger (`hookstream.dlq-redriven`): which records of hookstream.dlq were redriven.

Each ledger record is keyed by the DLQ position it redrove, `partition:offset`; its value
is the delivery id (a tombstone, no value, withdraws the entry, as compaction would). A
DLQ record is still dead-lettered while its position is not in the ledger. The one rule,
used by `hookstream dlq list` and redrive (connectors/delivery/redrive/) and by the
`hookstream_dlq_depth` gauge (io/dlq_depth.py).

Positions are kept as integer offsets per partition, never payloads, and can be dropped
below a partition's low watermark (`forget_below`): a follower's memory is bounded by
the DLQ's retention.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence


def position(partition: int, offset: int) -> str:
    """A DLQ record's position as the ledger keys it."""
    return f"{partition}:{offset}"


def parse_position(key: bytes | str | None) -> tuple[int, int] | None:
    """(partition, offset) of a ledger key; None for anything else."""
    if key is None:
        return None
    text = key.decode(errors="replace") if isinstance(key, bytes) else key
    partition, sep, offset = text.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        return None
    return int(partition), int(offset)


class RedriveLedger:
    """The redriven DLQ positions, fed one ledger record at a time (`read`)."""

    def __init__(self) -> None:
        self._offsets: dict[int, set[int]] = {}

    def read(self, key: bytes | None, value: bytes | None) -> None:
        """One ledger record."""
        where = parse_position(key)
        if where is None:
            return
        partition, offset = where
        if value is None:
            self._offsets.get(partition, set()).discard(offset)
        else:
            self._offsets.setdefault(partition, set()).add(offset)

    def redriven(self, partition: int, offset: int) -> bool:
        return offset in self._offsets.get(partition, ())

    def __contains__(self, where: object) -> bool:
        """`"partition:offset" in ledger`."""
        parsed = parse_position(where) if isinstance(where, (str, bytes)) else None
        return parsed is not None and self.redriven(*parsed)

    def forget_below(self, partition: int, low: int) -> None:
        """Drop the positions below a DLQ partition's low watermark: retention removed
        their records, so they can never count again."""
        kept = self._offsets.get(partition)
        if kept and min(kept) < low:
            self._offsets[partition] = {o for o in kept if o >= low}

    def still_dead(self, partition: int, offsets: Sequence[int], low: int) -> int:
        """How many of a partition's record offsets (ascending) at or above `low` are still
        dead-lettered: not in the ledger."""
        first = bisect.bisect_left(offsets, low)
        redriven = 0
        for offset in self._offsets.get(partition, ()):
            if offset >= low:
                i = bisect.bisect_left(offsets, offset, first)
                redriven += i < len(offsets) and offsets[i] == offset
        return len(offsets) - first - redriven
