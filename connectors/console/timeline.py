"""A delivery's attempts as one timeline a person can read. Pure.

Numbering: "Attempt N" counts the requests sent to the target, in order over the whole
life of the delivery (first send, retries, redrives, manual sends alike), so the last
number equals the queue's "Attempts" column. Entries that sent no request (circuit open,
target's queue full, CRA challenge failed, SSRF guard, render error) are not numbered,
and a run of the same skip in a row is one line with a count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.logstore.rows import NO_REQUEST
from hookstream.policy import RetryPolicy, explain
from hookstream.records import Outcome, Trigger

SKIPS = frozenset({Outcome.CIRCUIT_OPEN, Outcome.DEFERRED, Outcome.CHALLENGE_FAILED})


@dataclass(slots=True)
class Entry:
    """One line of the timeline: a numbered attempt, or `count` skips in a row."""

    number: int | None  # None: no request was sent
    trigger: str
    outcome: str
    sentence: str
    attempts: list[dict[str, Any]] = field(default_factory=list)  # one, or the skips

    @property
    def count(self) -> int:
        return len(self.attempts)

    @property
    def first(self) -> dict[str, Any]:
        return self.attempts[0]

    @property
    def last(self) -> dict[str, Any]:
        return self.attempts[-1]

    @property
    def policy(self) -> str | None:
        """The retry policy that judged the answer, as read; None when none was asked (no
        request sent) or the attempt was logged before attempts named it."""
        return policy_text(self.last.get("retry_policy"))


def policy_text(policy: str | None) -> str | None:
    """"GLPI's retry policy", "the default retry policy"."""
    if policy == RetryPolicy.GLPI:
        return "GLPI's retry policy"
    if policy == RetryPolicy.DEFAULT:
        return "the default retry policy"
    return policy  # a policy of a later release: shown as recorded


def trigger_text(attempt: dict[str, Any]) -> str:
    """"first send", "retry (1m tier)", "circuit probe", "redrive", "manual send by ops"."""
    trigger, tier = attempt.get("trigger") or "", attempt.get("trigger_tier")
    if trigger == Trigger.FIRST:
        return "first send"
    if trigger == Trigger.RETRY:
        return f"retry ({tier} tier)" if tier else "retry"
    if trigger == Trigger.PROBE:
        return f"circuit probe ({tier} tier)" if tier else "circuit probe"
    if trigger == Trigger.REDRIVE:
        return "redrive"
    if trigger == Trigger.MANUAL:
        return f"manual send by {attempt.get('actor') or 'an unnamed token'}"
    return "not recorded"  # attempts logged before triggers were


def sentence(attempt: dict[str, Any]) -> str:
    """The decision taken next: as recorded, or, for attempts logged before decisions
    were, what the outcome alone says."""
    if attempt.get("next_step"):
        return str(attempt["next_step"])
    status, error = attempt.get("status_code"), attempt.get("error")
    reason = attempt.get("reason") or error
    match attempt.get("outcome"):
        case Outcome.DELIVERED:
            return explain.delivered(status)
        case Outcome.RETRY_SCHEDULED:
            return f"{explain.what_happened(status, error)}: retried."
        case Outcome.DEAD_LETTERED:
            return f"{explain.what_happened(status, error)}: dead-lettered."
        case Outcome.FAILED:
            return explain.manual(False, status, error)
        case Outcome.CIRCUIT_OPEN:
            return "circuit open: moved to the next tier without a request."
        case Outcome.DEFERRED:
            return "target's queue full: moved to the next tier without a request."
        case Outcome.CHALLENGE_FAILED:
            return "CRA challenge failed: moved to the next tier; no attempt spent."
        case Outcome.BLOCKED:
            return explain.blocked(reason)
        case Outcome.RENDER_ERROR:
            return f"template failed: {reason or 'render error'}; dead-lettered."
    return str(attempt.get("outcome") or "?")


def timeline(attempts: Sequence[dict[str, Any]]) -> list[Entry]:
    """The attempts (oldest first, as `delivery_detail` lists them) as entries."""
    entries: list[Entry] = []
    number = 0
    for a in attempts:
        outcome = str(a.get("outcome"))
        if outcome in SKIPS and entries and entries[-1].number is None \
                and entries[-1].outcome == outcome:
            entries[-1].attempts.append(a)
            entries[-1].sentence = sentence(a)  # where the last one moved it
            continue
        if outcome not in NO_REQUEST:
            number += 1
        entries.append(Entry(None if outcome in NO_REQUEST else number, trigger_text(a),
                             outcome, sentence(a), [a]))
    return entries


def requests_sent(attempts: Sequence[dict[str, Any]]) -> int:
    """The number the queue's "Attempts" column shows (the store counts the same)."""
    return sum(1 for a in attempts if a.get("outcome") not in NO_REQUEST)
