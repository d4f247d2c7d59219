"""The bounds of one render (`RenderLimits`) and the budget that enforces them.

A `Budget` is created per render and handed to the compiled template through its render
state, so concurrent renders (threads, tasks) never share one.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

__all__ = ["Budget", "LimitExceeded", "RenderLimits"]


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """Per-render bounds, and the time zone dates are shown in (GLPI's instance setting);
    exceeding any bound is a `RenderError`."""

    max_body_bytes: int = 1_048_576
    max_render_s: float = 0.5
    max_loop_iterations: int = 100_000  # loop iterations, calls and arrow applications
    max_range: int = 10_000
    timezone: str = "UTC"


class LimitExceeded(Exception):
    """A bound was hit; the message is the short reason shown to the user."""


class Budget:
    __slots__ = ("deadline", "depth", "limits", "now_s", "rng", "steps_left")

    def __init__(self, limits: RenderLimits, now_s: float) -> None:
        self.limits = limits
        self.now_s = now_s
        self.steps_left = limits.max_loop_iterations
        self.deadline = time.monotonic() + limits.max_render_s
        self.depth = 0
        self.rng: random.Random | None = None

    def step(self) -> None:
        self.steps_left -= 1
        if self.steps_left < 0:
            raise LimitExceeded("too many loop iterations or calls")
        if time.monotonic() > self.deadline:
            raise LimitExceeded("render time limit exceeded")

    def check_size(self, value: object) -> None:
        if isinstance(value, str):
            too_big = len(value) > self.limits.max_body_bytes
        elif isinstance(value, (list, tuple, dict)):
            too_big = len(value) > self.limits.max_loop_iterations
        else:
            return
        if too_big:
            raise LimitExceeded("value larger than the size limits")
