"""The decision taken after an attempt, as one plain sentence for the console. Pure.

    delivered            "HTTP 200: delivered."
                         "HTTP 302: delivered under this webhook's retry policy (GLPI's:
                          any status below 400 is a success; redirects are not followed)."
    retry_scheduled      "HTTP 500: retried on the 10 s tier (attempt 1 of 4)."
                         "HTTP 401: retried on the 10 s tier (attempt 1 of 4) under this
                          webhook's retry policy (GLPI's: any status of 400 and above but
                          410, or no answer, is retried)."
    dead_lettered        "HTTP 401: not retried under this webhook's retry policy (default:
                          only no answer, 408, 425, 429 and 5xx are); dead-lettered."
                         "HTTP 500: dead-lettered, retries exhausted after 4 attempt(s)
                          (sent_try 3 allows 4)."
    circuit_open         "circuit open: moved to the 1 m tier without a request."
    challenge_failed     "CRA challenge failed: moved to the 10 s tier; no attempt spent."
    deferred             "target's queue full: moved to the 10 s tier without a request."
    blocked              "blocked by the SSRF guard: dead-lettered (...)."
    failed (manual)      "manual send failed (HTTP 500): the delivery's route is unchanged."

The retry policy is named whenever it decided: always when an answer is not retried, and
when the two policies would have judged the answer differently (a 4xx retried or a 3xx
delivered under GLPI's); the attempt record names it in every case (`retry_policy`).
"""

from __future__ import annotations

from hookstream.policy.retry import RetryPolicy

_POLICY_RULE = {
    RetryPolicy.DEFAULT: "default: only no answer, 408, 425, 429 and 5xx are retried",
    RetryPolicy.GLPI: "GLPI's: any status of 400 and above but 410, or no answer, is retried",
}
# Only GLPI's counts as delivered what the other does not (a 3xx).
_SUCCESS_RULE = {
    RetryPolicy.GLPI: "GLPI's: any status below 400 is a success; redirects are not followed",
}


def tier_name(seconds: int) -> str:
    """A tier delay as read: 10 -> "10 s", 60 -> "1 m", 21600 -> "6 h"."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def what_happened(status: int | None, error: str | None) -> str:
    """"HTTP 401", "no answer: timeout after 5s"."""
    if status is not None:
        return f"HTTP {status}"
    return f"no answer: {error}" if error else "no answer"


def delivered(status: int | None, decided_by: RetryPolicy | None = None) -> str:
    """`decided_by`: the policy, when the other one would not have counted it delivered."""
    if decided_by is None:
        return f"{what_happened(status, None)}: delivered."
    return (f"{what_happened(status, None)}: delivered under this webhook's retry policy "
            f"({_SUCCESS_RULE[decided_by]}).")


def retried(status: int | None, error: str | None, tier_s: int, attempt: int,
            sent_try: int, decided_by: RetryPolicy | None = None) -> str:
    """`decided_by`: the policy, when the other one would not have retried."""
    rule = "" if decided_by is None else (
        f" under this webhook's retry policy ({_POLICY_RULE[decided_by]})")
    return (f"{what_happened(status, error)}: retried on the {tier_name(tier_s)} tier "
            f"(attempt {attempt} of {sent_try + 1}){rule}.")


def not_retried(status: int | None, error: str | None, policy: RetryPolicy) -> str:
    return (f"{what_happened(status, error)}: not retried under this webhook's retry "
            f"policy ({_POLICY_RULE[policy]}); dead-lettered.")


def exhausted(status: int | None, error: str | None, attempt: int, sent_try: int) -> str:
    return (f"{what_happened(status, error)}: dead-lettered, retries exhausted after "
            f"{attempt} attempt(s) (sent_try {sent_try} allows {sent_try + 1}).")


def skipped(why: str, tier_s: int) -> str:
    """No request made (circuit open, target's queue full, CRA failed)."""
    if why == "challenge_failed":
        return f"CRA challenge failed: moved to the {tier_name(tier_s)} tier; no attempt spent."
    if why == "deferred":
        return f"target's queue full: moved to the {tier_name(tier_s)} tier without a request."
    return f"circuit open: moved to the {tier_name(tier_s)} tier without a request."


def blocked(reason: str | None) -> str:
    return f"blocked by the SSRF guard: dead-lettered ({reason or 'blocked'})."


def challenge_expired(reason: str) -> str:
    return f"{reason}: dead-lettered."


def manual(ok: bool, status: int | None, error: str | None) -> str:
    if ok:
        return f"manual send: {what_happened(status, error)}, delivered."
    return (f"manual send failed ({what_happened(status, error)}): the delivery's route "
            f"is unchanged.")
