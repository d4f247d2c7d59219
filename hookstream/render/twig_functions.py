"""Twig's functions (`date`, `max`, `min`, `random`, `range`) for the template sandbox."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

from hookstream.render.budget import LimitExceeded, current_budget
from hookstream.render.php_date import to_datetime
from hookstream.render.twig_values import values_of

__all__ = ["FUNCTIONS"]


def _fn_range(low: Any, high: Any, step: int = 1) -> list[Any]:
    """Twig's range: inclusive of `high`, integers or single letters."""
    letters = isinstance(low, str) and isinstance(high, str)
    start, stop = (ord(low[:1]), ord(high[:1])) if letters else (int(low), int(high))
    step = abs(int(step)) or 1
    if (abs(stop - start) // step) + 1 > current_budget().limits.max_range:
        raise LimitExceeded("range() longer than the range limit")
    numbers = range(start, stop + 1, step) if stop >= start else range(start, stop - 1, -step)
    return [chr(n) for n in numbers] if letters else list(numbers)


def _fn_max(*args: Any) -> Any:
    return max(values_of(args[0]) if len(args) == 1 else args)


def _fn_min(*args: Any) -> Any:
    return min(values_of(args[0]) if len(args) == 1 else args)


def _fn_random(values: Any = None, maximum: Any = None) -> Any:
    budget = current_budget()
    if budget.rng is None:
        budget.rng = random.Random()
    rng = budget.rng
    if values is None:
        return rng.randint(0, 2_147_483_647) if maximum is None else rng.randint(0, int(maximum))
    if isinstance(values, int) and not isinstance(values, bool):
        low, high = (0, values) if maximum is None else (values, int(maximum))
        return rng.randint(min(low, high), max(low, high))
    items = list(values) if isinstance(values, str) else values_of(values)
    return rng.choice(items) if items else None


def _fn_date(value: Any = None, timezone: Any = None) -> datetime:
    return to_datetime(value, current_budget().now_s, timezone)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "date": _fn_date, "max": _fn_max, "min": _fn_min, "random": _fn_random, "range": _fn_range,
}
