"""A replay of past events into one webhook: its identity, new delivery ids and progress.

A replay is named by its id: given (`--replay-id`), or derived from the webhook id and
the range as written, so that the same command run again continues the same replay
instead of repeating it. Its deliveries get ids derived from (event id, webhook id,
replay id): unlike the original delivery's id, and the same in every run of the replay.

Its progress is kept per partition of glpi.item-changes in the metadata of a committed
consumer-group offset: the position reached, the end fixed when the replay began and
what was counted so far. The engine (hookstream/control/replay.py) commits it in the
same Kafka transaction as the deliveries it wrote, so a delivery is written exactly when
its event counts as replayed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, fields

REPLAY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def replay_identity(webhook_id: str, since: str, until: str | None) -> str:
    """The id of a replay not named on the command line: the webhook and the range as
    written (a relative `--since 2h` names the same replay whenever it is run again)."""
    digest = hashlib.sha256(f"{webhook_id}\x1f{since}\x1f{until or ''}".encode()).hexdigest()
    return f"{webhook_id[:40]}-{digest[:12]}"


def replay_delivery_id(event_id: str, webhook_id: str, replay_id: str) -> str:
    """A replayed delivery's id: stable across runs of one replay, never the id the
    processor gave the same event (records.delivery_id_for)."""
    key = f"{event_id}\x1f{webhook_id}\x1freplay\x1f{replay_id}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class ReplayCount:
    """What a replay did. `read`: records of the range read; `matched`: events the
    webhook's current definition fires for; `replayed`: deliveries written; `skipped`:
    matched or unreadable records that could not be replayed (undecodable, render error);
    `already`: deliveries written by earlier runs of the same replay (not read again)."""

    read: int = 0
    matched: int = 0
    replayed: int = 0
    skipped: int = 0
    already: int = 0

    def plus(self, other: ReplayCount) -> ReplayCount:
        return ReplayCount(*(getattr(self, f.name) + getattr(other, f.name)
                             for f in fields(self)))

    def summary(self, dry_run: bool = False) -> str:
        verb = "would replay" if dry_run else "replayed"
        return (f"read {self.read} events, matched {self.matched}, {verb} {self.replayed}, "
                f"already replayed before {self.already}, skipped {self.skipped}")


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """One partition of a replay: `position` is the next offset to read, `end` the first
    offset not in the replay (fixed when it began); the counts are those of the runs so
    far."""

    position: int
    end: int
    read: int = 0
    matched: int = 0
    replayed: int = 0
    skipped: int = 0

    @property
    def done(self) -> bool:
        return self.position >= self.end

    def count(self) -> ReplayCount:
        return ReplayCount(self.read, self.matched, self.replayed, self.skipped)

    def metadata(self) -> str:
        """As committed with the offset (Kafka keeps up to 4 KiB of metadata by default)."""
        return json.dumps({"v": 1, **asdict(self)}, separators=(",", ":"))

    @classmethod
    def from_metadata(cls, text: str | None) -> PartitionProgress | None:
        """The progress a committed offset carries; None for an offset without it."""
        try:
            data = json.loads(text or "")
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("v") != 1:
            return None
        try:
            return cls(**{f.name: int(data[f.name]) for f in fields(cls)})
        except (KeyError, TypeError, ValueError):
            return None
