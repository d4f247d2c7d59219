"""The alerting figures against `hookstream queue` and `hookstream dlq list`, on one pipeline.

Delivery and the log store run as `hookstream run ...` processes; Debian's Prometheus
scrapes them every second. Retries wait on the long tier of a target answering 503:
Prometheus's `hookstream_oldest_undelivered_seconds` must equal, within the refresh and
scrape intervals, the age `hookstream queue` gives. Two webhooks' deliveries are
dead-lettered (401), one webhook's are redriven and then delivered: `hookstream_dlq_depth`
must equal what `hookstream dlq list` still shows as dead-lettered.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hookstream.config import Settings
from hookstream.records import DELIVERIES, DLQ, retry_topics
from tests.integration.harness import apply_webhooks, cli_env, publish, request_for, wait_until
from tests.integration.test_metrics_prometheus import LOOPBACK, Prometheus, pytestmark, scraped
from tests.receiver import Receiver

__all__ = ["pytestmark"]
AGE_S = 200  # the waiting deliveries were created this long ago
SLACK_S = 3.0  # gauges refreshed every second, scraped every second


def cli(settings: Settings, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "hookstream.cli", *args], env=cli_env(settings),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def queue(settings: Settings) -> dict[str, Any]:
    view: dict[str, Any] = json.loads(cli(settings, "queue", "--json"))
    return view


def shows(settings: Settings, waiting: int, dead: int) -> bool:
    """`hookstream queue` shows this many waiting on the long tier and dead-lettered (False
    while the log store is still creating its schema)."""
    try:
        totals = queue(settings)["totals"]
    except AssertionError:
        return False
    return bool(totals["waiting"].get("5m") == waiting and totals["dead_lettered"] == dead)


def scalar(prometheus: Prometheus, query: str) -> float | None:
    result = prometheus.api("query", query=query)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


@pytest.fixture
def pipeline(settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, Prometheus]]:
    settings = dataclasses.replace(settings, retry_tiers=("1s", "5m"))
    with Receiver() as down, Receiver() as refused:
        down.on("/in", statuses=[503])
        refused.on("/a", statuses=[401, 401, 401, 200])  # 200 once redriven
        refused.on("/b", statuses=[401])
        apply_webhooks(
            settings, tmp_path,
            {"id": "hook-down", "url": down.url("/in"), "allowed_networks": LOOPBACK},
            # the default policy: a 401 is dead-lettered at once (GLPI's would retry it)
            {"id": "hook-a", "url": refused.url("/a"), "retry_policy": "default",
             "allowed_networks": LOOPBACK},
            {"id": "hook-b", "url": refused.url("/b"), "retry_policy": "default",
             "allowed_networks": LOOPBACK},
        )
        old_ms = int(time.time() * 1000) - AGE_S * 1000
        publish(settings, [
            *(dataclasses.replace(request_for("hook-down", down.url("/in"), n), created_at=old_ms)
              for n in range(3)),
            *(request_for("hook-a", refused.url("/a"), 10 + n) for n in range(3)),
            *(request_for("hook-b", refused.url("/b"), 20 + n) for n in range(2)),
        ])
        with scraped(settings, tmp_path, ("delivery", "logstore")) as (prometheus, _):
            yield settings, prometheus


def test_oldest_undelivered_matches_the_queue_on_every_tier(
    pipeline: tuple[Settings, Prometheus],
) -> None:
    settings, prometheus = pipeline
    long_tier = retry_topics(settings)[1]
    assert wait_until(lambda: shows(settings, 3, 5), timeout_s=40)

    oldest = f'max(hookstream_oldest_undelivered_seconds{{topic="{long_tier}"}})'
    assert wait_until(lambda: (scalar(prometheus, oldest) or 0) > AGE_S - SLACK_S, timeout_s=20)
    scraped, cli_age = scalar(prometheus, oldest), queue(settings)["oldest_undelivered_age_s"]
    assert scraped is not None and abs(scraped - cli_age) <= SLACK_S, (scraped, cli_age)
    # every topic a delivery can wait on has its series: nothing waits on the others. A
    # record moved on to the long tier is committed on the short one up to an auto-commit
    # interval after its copy is acknowledged (at-least-once): until then both show it.
    ages = {topic: f'max(hookstream_oldest_undelivered_seconds{{topic="{topic}"}})'
            for topic in (settings.topic(DELIVERIES), retry_topics(settings)[0])}
    assert wait_until(lambda: all(scalar(prometheus, q) == 0 for q in ages.values()),
                      timeout_s=SLACK_S + 2), {t: scalar(prometheus, q) for t, q in ages.items()}


def test_dlq_depth_counts_only_what_is_still_dead_lettered(
    pipeline: tuple[Settings, Prometheus],
) -> None:
    settings, prometheus = pipeline
    # the log store caught up (once past 40 s in CI, on a slow start)
    assert wait_until(lambda: shows(settings, 3, 5), timeout_s=90)
    cli(settings, "dlq", "redrive", "--webhook", "hook-a")
    assert wait_until(lambda: shows(settings, 3, 2), timeout_s=20)
    listed = [line for line in cli(settings, "dlq", "list").splitlines()
              if " redriven " not in line]
    assert len(listed) == 2
    depth = f'max(hookstream_dlq_depth{{topic="{settings.topic(DLQ)}"}})'
    assert wait_until(lambda: scalar(prometheus, depth) == len(listed), timeout_s=10), \
        scalar(prometheus, depth)
