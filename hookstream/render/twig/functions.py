"""GLPI's allowed Twig functions: date, max, min, random, range."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from hookstream.render.twig.compare import spaceship
from hookstream.render.twig.dates import to_datetime
from hookstream.render.twig.php import PhpError, array_items, is_array, to_int
from hookstream.render.twig.runtime import Ctx, php_range

__all__ = ["FUNCTIONS"]


def _extreme(values: tuple[Any, ...], sign: int, name: str) -> Any:
    items = [v for _, v in array_items(values[0])] if len(values) == 1 else list(values)
    if len(values) == 1 and not is_array(values[0]):
        raise PhpError(f"{name}(): argument must be of type array")
    if not items:
        raise PhpError(f"{name}(): argument must contain at least one element")
    best = items[0]
    for item in items[1:]:
        if spaceship(item, best) * sign > 0:
            best = item
    return best


def _max(ctx: Ctx, *values: Any) -> Any:
    return _extreme(values, 1, "max")


def _min(ctx: Ctx, *values: Any) -> Any:
    return _extreme(values, -1, "min")


def _random(ctx: Ctx, values: Any = None, max: Any = None) -> Any:
    rng = ctx.rng
    if values is None:
        return rng.randint(0, 2_147_483_647) if max is None else rng.randint(0, to_int(max))
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        low, high = (0, to_int(values)) if max is None else (to_int(values), to_int(max))
        return rng.randint(*sorted((low, high)))
    if isinstance(values, str):
        if values == "":
            return ""
        values = list(values)
    if not is_array(values):
        return values
    items = [v for _, v in array_items(values)]
    if not items:
        raise PhpError("the random function cannot pick from an empty array")
    return rng.choice(items)


def _range(ctx: Ctx, low: Any = None, high: Any = None, step: Any = 1) -> list[Any]:
    return php_range(ctx, low, high, step)


def _date(ctx: Ctx, date: Any = None, timezone: Any = None) -> datetime:
    return to_datetime(date, ctx.budget.now_s, ctx.timezone, timezone)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "date": _date, "max": _max, "min": _min, "random": _random, "range": _range,
}
