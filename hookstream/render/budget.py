"""The bounds of one render (`RenderLimits`) and the budget that enforces them.

Filters, the loop guard, calls and operators read the budget of the render in progress
from a ContextVar: generated template code has no other channel to them, and a ContextVar
keeps concurrent renders (threads, tasks) apart.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["BUDGET", "Budget", "LimitExceeded", "RenderLimits", "checked", "current_budget"]


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """Per-render bounds; exceeding any of them is a `RenderError`."""

    max_body_bytes: int = 1_048_576
    max_render_s: float = 0.5
    max_loop_iterations: int = 100_000  # loop iterations, calls and arrow applications
    max_range: int = 10_000


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


BUDGET: ContextVar[Budget] = ContextVar("hookstream_render_budget")


def current_budget() -> Budget:
    return BUDGET.get()  # LookupError outside a render: stops compile-time constant folding


def checked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter or function: it spends a step and its result must fit the limits."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        budget = current_budget()
        budget.step()
        result = fn(*args, **kwargs)
        budget.check_size(result)
        return result


    return wrapper
