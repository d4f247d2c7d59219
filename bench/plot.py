"""One picture per component: throughput against its ceiling and peer, latency percentiles.

Drawn from one report.write record (bench/report.py) on matplotlib's Agg canvas, without
pyplot (no global figure state, no display needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import StrMethodFormatter

from bench.summary import load_text, number

HOOKSTREAM = "tab:blue"
OTHERS = "tab:gray"
GOAL = "tab:red"


def plot(record: dict[str, Any], title: str, path: Path) -> None:
    """Save the record's picture as a PNG at `path`: left, each variant's rate (hookstream,
    the first, in colour); right, the latency percentiles at the fixed rate with the
    latency goals of its targets (unit "ms") as lines."""
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    rates_axes, latency_axes = figure.subplots(1, 2, width_ratios=[3, 2])
    figure.suptitle(f"{title}, load average {load_text(record['load_avg'])}")

    rates: dict[str, float] = record["throughput"]
    if rates:
        first, first_rate = next(iter(rates.items()))
        names = list(rates)[::-1]  # barh draws bottom up: hookstream on top
        values = [rates[name] for name in names]
        colours = [HOOKSTREAM if name == first else OTHERS for name in names]
        rates_axes.barh(names, values, color=colours)
        widest = max(values) or 1
        for row, (name, rate) in enumerate(zip(names, values, strict=True)):
            label = number(rate) if name == first or not rate else (
                f"{number(rate)}  ({first} {first_rate / rate:.2f}x)")
            inside = rate > widest * 0.6  # a long bar carries its label, white on it
            rates_axes.annotate(
                label, (rate, row), textcoords="offset points", xytext=(-4 if inside else 4, 0),
                ha="right" if inside else "left", va="center",
                color="white" if inside else "black",
            )
        rates_axes.set_xlim(0, widest * 1.15)
        rates_axes.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    else:
        _empty(rates_axes, "no throughput in this record")
    rates_axes.set_title(f"throughput ({record.get('throughput_unit', 'events/s')})")

    latency: dict[str, float] = record["latency_ms"]
    if latency:
        bars = latency_axes.bar(list(latency), list(latency.values()), color=HOOKSTREAM)
        latency_axes.bar_label(bars, labels=[number(v) for v in latency.values()], padding=3)
        for target in record["targets"]:
            if target["unit"] == "ms":
                latency_axes.axhline(target["goal"], color=GOAL, linestyle="--")
                latency_axes.annotate(
                    f"goal {target['op']} {number(target['goal'])} ms", (0, target["goal"]),
                    xycoords=("axes fraction", "data"), color=GOAL,
                    textcoords="offset points", xytext=(2, 2),
                )
        latency_axes.set_ylim(0, max([*latency.values(), *_ms_goals(record)]) * 1.2 or 1)
    else:
        _empty(latency_axes, "no latency in this record")
    latency_axes.set_title("latency at the fixed rate (ms)")
    figure.savefig(path, format="png", dpi=100)


def _ms_goals(record: dict[str, Any]) -> list[float]:
    return [t["goal"] for t in record["targets"] if t["unit"] == "ms"]


def _empty(axes: Any, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes)
    axes.set_xticks([])
    axes.set_yticks([])
