"""Adaptive concurrency: how many requests an origin may have in flight. Pure.

An AIMD limit driven by latency and errors, as Netflix's concurrency-limits (AIMDLimit,
Gradient2) and Envoy's adaptive concurrency filter do:

    a request failed (no answer, 5xx, 429)       limit x backoff     (multiplicative)
    latency above tolerance x the baseline        limit x backoff
    otherwise, the limit was used to its half     limit + 1 / limit   (about +1 per window)

The baseline is the lowest latency seen in the recent samples: what the receiver answers
in when it is not queueing. A receiver that slows down as it is loaded therefore gets
fewer requests at a time until its latency is back near its baseline (paced), while a
healthy fast receiver climbs to the configured maximum. Decreases are applied at most
once per baseline latency, so that a burst of answers to the same overload cuts the
limit once, not once per answer. Bounded by [minimum, maximum]; time is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BACKOFF = 0.75  # multiplicative decrease
TOLERANCE = 2.0  # latency above TOLERANCE x baseline means the receiver is queueing
FLOOR_S = 0.05  # latency under this is never taken for queueing (loopback jitter)
BASELINE_SAMPLES = 500  # the baseline is the minimum over about this many samples


@dataclass(slots=True)
class AdaptiveLimit:
    """The in-flight limit of one origin. Mutable; one per origin, one asyncio loop."""

    maximum: int
    minimum: int = 1
    limit: float = 0.0
    baseline_s: float = 0.0  # 0 = no sample yet
    _next_baseline_s: float = 0.0
    _samples: int = 0
    _cut_until_s: float = 0.0
    # Requests that may be in flight now: the limit, whole and bounded (kept beside it,
    # as it is read several times per request).
    allowed: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.maximum < 1 or not 1 <= self.minimum <= self.maximum:
            raise ValueError(f"need 1 <= minimum <= maximum, got {self.minimum}, {self.maximum}")
        if not self.limit:
            # Start at a quarter of the maximum: a new origin is probed before it is trusted.
            self.limit = float(max(self.minimum, self.maximum // 4))
        self._set(self.limit)

    def _set(self, limit: float) -> None:
        self.limit = limit
        self.allowed = max(self.minimum, min(self.maximum, int(limit)))

    def sample(self, latency_s: float, failed: bool, in_flight: int, now_s: float) -> None:
        """Account one finished request: its latency, whether the target failed it, and
        how many requests were in flight when it finished (itself included)."""
        self._track_baseline(latency_s)
        queueing = latency_s > max(FLOOR_S, TOLERANCE * self.baseline_s)
        if failed or queueing:
            if now_s >= self._cut_until_s:
                self._set(max(float(self.minimum), self.limit * BACKOFF))
                self._cut_until_s = now_s + max(self.baseline_s, latency_s if failed else 0.0)
            return
        if in_flight * 2 >= self.allowed:  # an unused limit is not raised
            self._set(min(float(self.maximum), self.limit + 1.0 / self.limit))

    def _track_baseline(self, latency_s: float) -> None:
        # A windowed minimum: the current window's minimum becomes the baseline when the
        # window ends, so a receiver that got faster (or slower for good) is followed.
        if self._samples == 0 or latency_s < self._next_baseline_s:
            self._next_baseline_s = latency_s
        if not self.baseline_s or latency_s < self.baseline_s:
            self.baseline_s = latency_s
        self._samples += 1
        if self._samples >= BASELINE_SAMPLES:
            self.baseline_s, self._samples = self._next_baseline_s, 0
