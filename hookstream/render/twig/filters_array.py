"""Twig's array and string/array filters with PHP array semantics: keys are preserved
where PHP preserves them (`filter`, `map`, `sort`, `batch`, string keys in `slice`,
`merge` and `reverse`), integer keys renumbered where PHP renumbers them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from hookstream.render.budget import LimitExceeded
from hookstream.render.twig.compare import spaceship
from hookstream.render.twig.php import (
    PhpError,
    array_items,
    is_array,
    normalize_key,
    pack,
        str_arg,
    to_bool,
    to_int,
    to_str,
)
from hookstream.render.twig.runtime import Ctx
from hookstream.render.twig.tests import is_empty

__all__ = ["ARRAY_FILTERS", "php_slice"]


def _require_array(value: Any, what: str) -> None:
    if not is_array(value):
        raise PhpError(f'the "{what}" filter only works with arrays')


def _renumbered(pairs: list[tuple[int | str, Any]]) -> list[Any] | dict[int | str, Any]:
    """PHP's renumbering (array_merge, array_slice...): int keys 0.., string keys kept."""
    out: dict[int | str, Any] = {}
    index = 0
    for key, value in pairs:
        if isinstance(key, int):
            out[index] = value
            index += 1
        else:
            out[key] = value
    return pack(out)


def _bounds(size: int, start: int, length: int | None) -> tuple[int, int]:
    begin = max(size + start, 0) if start < 0 else min(start, size)
    if length is None:
        end = size
    elif length < 0:
        end = max(size + length, begin)
    else:
        end = min(begin + length, size)
    return begin, max(end, begin)


def php_slice(value: Any, start: Any, length: Any = None, preserve_keys: Any = False) -> Any:
    """twig_slice: array_slice for arrays, mb_substr for anything else."""
    first = to_int(start)
    count = None if length is None else to_int(length)
    if is_array(value):
        pairs = list(array_items(value))
        begin, end = _bounds(len(pairs), first, count)
        part = pairs[begin:end]
        return pack(dict(part)) if preserve_keys else _renumbered(part)
    text = to_str(value)
    begin, end = _bounds(len(text), first, count)
    return text[begin:end]


def _slice(ctx: Ctx, value: Any, start: Any = 0, length: Any = None,
           preserve_keys: Any = False) -> Any:
    return php_slice(value, start, length, preserve_keys)


def _first(ctx: Ctx, value: Any) -> Any:
    part = php_slice(value, 0, 1)
    if isinstance(part, str):
        return part
    return next((v for _, v in array_items(part)), False)


def _last(ctx: Ctx, value: Any) -> Any:
    part = php_slice(value, -1, 1)
    if isinstance(part, str):
        return part
    return next((v for _, v in array_items(part)), False)


def _length(ctx: Ctx, value: Any) -> int:
    if value is None:
        return 0
    if is_array(value):
        return len(value)
    return len(to_str(value))


def _join(ctx: Ctx, value: Any, glue: Any = "", and_: Any = None) -> str:
    items = [v for _, v in array_items(value)] if is_array(value) else (
        [] if value is None else [value])
    texts = [to_str(v) for v in items]
    if not texts:
        return ""
    glue_text = to_str(glue)
    if sum(map(len, texts)) + len(glue_text) * len(texts) > ctx.budget.limits.max_body_bytes:
        raise LimitExceeded("value larger than the size limits")  # before building it
    if and_ is None or to_str(and_) == glue_text or len(texts) == 1:
        return glue_text.join(texts)
    return glue_text.join(texts[:-1]) + to_str(and_) + texts[-1]


def _split(ctx: Ctx, value: Any, delimiter: Any = None, limit: Any = None) -> list[str]:
    text = str_arg(value)
    sep = str_arg(delimiter)
    if sep:
        if limit is None:
            return text.split(sep)
        count = to_int(limit)
        if count > 0:
            return text.split(sep, count - 1)
        if count == 0:
            return [text]
        return text.split(sep)[:count]
    size = to_int(limit)
    if size <= 1:
        return list(text) if text else [""]
    if len(text) < size:
        return [text]
    return [text[i:i + size] for i in range(0, len(text), size)]


def _keys(ctx: Ctx, value: Any) -> list[Any]:
    return [k for k, _ in array_items(value)]


def _merge(ctx: Ctx, value: Any, other: Any = None) -> Any:
    _require_array(value, "merge")
    _require_array(other, "merge")
    return _renumbered(list(array_items(value)) + list(array_items(other)))


def _reverse(ctx: Ctx, value: Any, preserve_keys: Any = False) -> Any:
    if is_array(value):
        pairs = list(array_items(value))[::-1]
        return pack(dict(pairs)) if preserve_keys else _renumbered(pairs)
    return to_str(value)[::-1]


def _call(ctx: Ctx, arrow: Any, *args: Any) -> Any:
    if not callable(arrow):
        raise PhpError("an arrow function is expected")
    ctx.budget.step()
    return arrow(*args)


def _filter(ctx: Ctx, value: Any, arrow: Any = None) -> Any:
    _require_array(value, "filter")
    return pack({k: v for k, v in array_items(value) if to_bool(_call(ctx, arrow, v, k))})


def _map(ctx: Ctx, value: Any, arrow: Any = None) -> Any:
    return pack({k: _call(ctx, arrow, v, k) for k, v in array_items(value)})


def _reduce(ctx: Ctx, value: Any, arrow: Any = None, initial: Any = None) -> Any:
    _require_array(value, "reduce")
    carry = initial
    for key, item in array_items(value):
        carry = _call(ctx, arrow, carry, item, key)
    return carry


def _sort(ctx: Ctx, value: Any, arrow: Any = None) -> Any:
    _require_array(value, "sort")

    def order(a: tuple[Any, Any], b: tuple[Any, Any]) -> int:
        if arrow is None:
            return spaceship(a[1], b[1])
        result = to_int(_call(ctx, arrow, a[1], b[1]))
        return (result > 0) - (result < 0)

    return pack(dict(sorted(array_items(value), key=functools.cmp_to_key(order))))


def _batch(ctx: Ctx, value: Any, size: Any = 1, fill: Any = None,
           preserve_keys: Any = True) -> list[Any]:
    _require_array(value, "batch")
    count = int(-(-float(to_int(size) if isinstance(size, int) else size) // 1))
    if count < 1:
        raise PhpError("batch size must be greater than 0")
    pairs = list(array_items(value))
    if not preserve_keys:
        pairs = list(enumerate(v for _, v in pairs))
    rows: list[Any] = []
    for start in range(0, len(pairs), count):
        chunk = pairs[start:start + count]
        rows.append(pack(dict(chunk)) if preserve_keys else [v for _, v in chunk])
    if count > ctx.budget.limits.max_loop_iterations:
        raise LimitExceeded("batch size larger than the limits")
    if fill is not None and rows:
        last = dict(array_items(rows[-1]))
        for _ in range(count - len(last)):
            last[max((k for k in last if isinstance(k, int)), default=-1) + 1] = fill
        rows[-1] = pack(last)
    return rows


def _column(ctx: Ctx, value: Any, name: Any = None, index: Any = None) -> Any:
    _require_array(value, "column")
    out: dict[int | str, Any] = {}
    position = 0
    for _, row in array_items(value):
        if not is_array(row):
            continue
        fields = dict(array_items(row))
        key = name if not isinstance(name, str) else _php_key(name)
        if name is not None and key not in fields:
            continue
        item = row if name is None else fields[key]
        index_key = _php_key(index) if index is not None else None
        if index_key is not None and index_key in fields and not is_array(fields[index_key]):
            out[_php_key(fields[index_key])] = item
        else:
            out[position] = item
            position = max([k for k in out if isinstance(k, int)], default=-1) + 1
    return pack(out)


def _php_key(key: Any) -> int | str:
    return normalize_key(key)


def _default(ctx: Ctx, value: Any, default: Any = "") -> Any:
    return default if is_empty(value) else value


ARRAY_FILTERS: dict[str, Callable[..., Any]] = {
    "batch": _batch, "column": _column, "default": _default, "filter": _filter,
    "first": _first, "join": _join, "keys": _keys, "last": _last, "length": _length,
    "map": _map, "merge": _merge, "reduce": _reduce, "reverse": _reverse, "slice": _slice,
    "sort": _sort, "split": _split,
}
