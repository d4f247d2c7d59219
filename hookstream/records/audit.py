"""The audit trail: one record per write made through the admin API or the console.

Who (the token's NAME, never its secret or hash), what (an `AuditAction`), on what (a
delivery id, a webhook id, "dlq"), with what result, when, and through which door. The
record is built here from its arguments (time and id given), published by the admin
process on hookstream.audit, and kept by the log store.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from hookstream.records.events import Record


class AuditAction(StrEnum):
    SEND_NOW = "delivery.send"
    REDRIVE = "dlq.redrive"
    REPLAY = "webhook.replay"
    WEBHOOK_PUT = "webhook.put"
    WEBHOOK_DELETE = "webhook.delete"
    WEBHOOK_ROTATE_SECRET = "webhook.rotate_secret"
    WEBHOOK_ENABLE = "webhook.enable"
    LOGIN = "token.login"
    LOGOUT = "token.logout"


@dataclass(frozen=True, slots=True)
class AuditRecord(Record):
    """One write, on hookstream.audit (keyed by the token's name)."""

    schema_name: ClassVar[str] = "AuditRecord"

    audit_id: str
    at_ms: int
    token: str
    action: str  # an AuditAction
    target: str
    result: str
    instance: str | None = None  # the instance acted on; None: all or none
    via: str = "api"  # api or console

    def line(self) -> str:
        """The component's log line for this write (no secret: a name, ids, a result)."""
        where = f" [{self.instance}]" if self.instance else ""
        return (f"token {self.token} ({self.via}): {self.action} {self.target}{where}: "
                f"{self.result}")


def send_result(outcome: str, status_code: int | None, error: str | None) -> str:
    """A manual send's result in words: "delivered (HTTP 200)", "failed (HTTP 500)",
    "failed (connection refused)"."""
    said = f"HTTP {status_code}" if status_code is not None else (error or "no answer")
    return f"{outcome} ({said[:200]})"


def only_instance(instances: frozenset[str] | None) -> str | None:
    """The instance a write of a token scoped to one instance is on (None: several, all)."""
    return next(iter(instances)) if instances is not None and len(instances) == 1 else None


def redrive_target(webhook_id: str | None, instances: frozenset[str] | None) -> str:
    """What a redrive covers, as the audit trail names it: a webhook, every webhook
    ("dlq"), or every webhook of a scoped token's instances."""
    if webhook_id:
        return webhook_id
    return "dlq" if instances is None else "dlq of " + "|".join(sorted(instances))
