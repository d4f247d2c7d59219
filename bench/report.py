"""What every bench hands to `make bench`: its figures, its targets, its plot data.

A bench calls `write(...)` once at its end. The record is printed as one JSON line and,
when `HOOKSTREAM_BENCH_OUT` names a file (set by `bench/run.py`), appended to it, so the
run can gather every bench's results, judge each target and draw one plot per component.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

OUT_ENV = "HOOKSTREAM_BENCH_OUT"
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    """One row of the summary: a figure measured in this run against its goal."""

    name: str  # "processor vs Faust agent (exactly once)"
    figure: float
    unit: str  # "x", "%", "events/s", "ms", ...
    op: Literal[">=", "<"]
    goal: float
    # when missed: what is left, in this run's own figures (its profile, part by part)
    left: str = ""

    @property
    def met(self) -> bool:
        return self.figure >= self.goal if self.op == ">=" else self.figure < self.goal


def costs(parts: Mapping[str, float], unit: str = "µs") -> str:
    """`render 25, encode 21, match 19 µs`: the parts, largest first."""
    ranked = sorted(parts.items(), key=lambda item: -item[1])
    return ", ".join(f"{name} {value:,.0f}" for name, value in ranked) + f" {unit}"


def write(
    component: str,
    *,
    targets: list[Target],
    figures: dict[str, Any],
    throughput: dict[str, float] | None = None,
    latency_ms: dict[str, float] | None = None,
    throughput_unit: str = "events/s",
) -> dict[str, Any]:
    """Print (and append to $HOOKSTREAM_BENCH_OUT) one bench's results.

    `throughput` maps a variant to its rate in this run, hookstream first, then its
    ceiling(s) and peer(s): {"processor": 9000, "bare-txn": 12000, "faust": 1800}.
    `latency_ms` holds percentiles at the bench's fixed rate: {"p50": 3, "p99": 20, "max": 40}.
    `figures` is everything else worth keeping (CPU per event part by part, RSS, load...).
    """
    record = {
        "component": component,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": _commit(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "targets": [asdict(t) | {"met": t.met} for t in targets],
        "figures": figures,
        "throughput": throughput or {},
        "throughput_unit": throughput_unit,
        "latency_ms": latency_ms or {},
    }
    line = json.dumps(record)
    print(line, flush=True)
    if path := os.environ.get(OUT_ENV):
        with open(path, "a") as out:
            out.write(line + "\n")
    return record


def _commit() -> str:
    try:
        found = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5,
        )
    except OSError:
        return "unknown"
    return found.stdout.strip() or "unknown"
