"""Metrics: the docs table matches the code, promtool is clean, labels stay bounded, and
the periodic gauges compute lag, retry backlog, DLQ depth and age from fixed vectors."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest

from hookstream.io import metrics
from hookstream.io.dlq_depth import DeadLetterCount
from hookstream.io.gauges import BrokerView, _origin_label, readings
from hookstream.records.redriven import RedriveLedger, parse_position, position

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
TYPES = {"counter": "counter", "histogram": "histogram", "gauge": "gauge"}


def documented() -> dict[str, tuple[str, list[str]]]:
    rows = {}
    for line in DOCS.read_text().splitlines():
        m = re.match(r"\| `(hookstream_\w+)` \| (\w+) \| ([^|]*) \|", line)
        if m:
            labels = re.findall(r"`(\w+)`", m.group(3))
            rows[m.group(1)] = (m.group(2), labels)
    return rows


def declared() -> dict[str, tuple[str, list[str]]]:
    out = {}
    for collector in list(REGISTRY._collector_to_names):
        for family in collector.describe() if hasattr(collector, "describe") else []:
            if not family.name.startswith("hookstream_"):
                continue
            labels = getattr(collector, "_labelnames", None)
            if labels is None:
                labels = getattr(collector, "labelnames", ())
            name = family.name + ("_total" if family.type == "counter" else "")
            out[name] = (family.type, list(labels))
    return out


def test_docs_table_lists_every_metric_with_its_type_and_labels() -> None:
    docs, code = documented(), declared()
    assert sorted(docs) == sorted(code), "docs/metrics.md and hookstream/io/metrics.py differ"
    for name, (kind, labels) in code.items():
        assert docs[name] == (kind, labels), name


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_check_metrics_is_clean_on_populated_output() -> None:
    metrics.ATTEMPTS.labels("hook-promtool", "delivered").inc()
    metrics.LATENCY.labels("hook-promtool").observe(0.02)
    metrics.RENDER_ERRORS.labels("hook-promtool").inc()
    metrics.CONSUMER_LAG.replace("promtool", {("g", "t", "0"): 3})
    metrics.RETRY_DUE.replace("promtool", {("10s",): 1})
    text = generate_latest()
    assert b'hookstream_consumer_lag{group="g",partition="0",topic="t"} 3.0' in text
    done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
    metrics.CONSUMER_LAG.replace("promtool", {})
    metrics.RETRY_DUE.replace("promtool", {})
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_webhook_ids_beyond_the_cap_share_one_label() -> None:
    capped = metrics.CappedLabel(2)
    assert [capped(x) for x in ("a", "b", "c", "a", "d")] == ["a", "b", "_other", "a", "_other"]


def test_snapshot_withdraws_series_that_are_gone() -> None:
    snap = metrics.CIRCUIT_OPEN
    snap.replace("t1", {("https://a.example:443",): 1.0})
    assert snap.value("https://a.example:443") == 1.0
    snap.replace("t1", {})
    assert snap.value("https://a.example:443") is None
    with pytest.raises(ValueError):
        snap.replace("t1", {("a", "b"): 1.0})


def test_origin_labels_are_bare_origins_only() -> None:
    assert _origin_label("https://h.example:443") == "https://h.example:443"
    assert _origin_label("https://user:pw@h.example:443") == "_invalid"
    assert _origin_label("https://h.example/path?token=x") == "_invalid"


def test_readings_from_fixed_vectors() -> None:
    tiers = {"p.hookstream.retry.10s": "10s", "p.hookstream.retry.1m": "1m"}
    positions = {
        ("p.hookstream.deliveries", 0): 40,
        ("p.hookstream.deliveries", 1): -1001,  # nothing fetched yet: committed, then low
        ("p.hookstream.retry.10s", 0): 5,  # running: due
        ("p.hookstream.retry.10s", 1): 7,  # paused: waiting
        ("p.hookstream.retry.1m", 0): 0,
    }
    broker = BrokerView(
        watermarks={
            ("p.hookstream.deliveries", 0): (0, 50),
            ("p.hookstream.deliveries", 1): (10, 30),
            ("p.hookstream.retry.10s", 0): (0, 9),
            ("p.hookstream.retry.10s", 1): (0, 10),
            ("p.hookstream.retry.1m", 0): (0, 0),
        },
        committed={("p.hookstream.deliveries", 1): 25, ("p.hookstream.retry.10s", 0): 4},
        heads={  # (offset, created_at); deliveries[1]'s head (offset 25) not read yet
            ("p.hookstream.deliveries", 0): (0, 1_000),
            ("p.hookstream.retry.10s", 0): (3, 1_000),  # read before the group moved on
            ("p.hookstream.retry.10s", 1): (0, 31_000),
        },
    )
    got = readings(
        "g", positions, broker, {("p.hookstream.retry.10s", 1)}, tiers,
        ("p.hookstream.deliveries", *tiers), now_ms=61_000,
    )
    assert got.lag == {
        ("g", "p.hookstream.deliveries", "0"): 10,
        ("g", "p.hookstream.deliveries", "1"): 5,
        ("g", "p.hookstream.retry.10s", "0"): 4,
        ("g", "p.hookstream.retry.10s", "1"): 3,
        ("g", "p.hookstream.retry.1m", "0"): 0,
    }
    assert got.retry_due == {("10s",): 4, ("1m",): 0}
    assert got.retry_waiting == {("10s",): 3, ("1m",): 0}
    assert got.oldest_s == {
        ("p.hookstream.deliveries",): 60.0,  # the heads read so far
        ("p.hookstream.retry.10s",): 30.0,  # not 60: offset 3 is finished
        ("p.hookstream.retry.1m",): 0.0,  # nothing unfinished
    }
    unread = readings("g", {("p.hookstream.deliveries", 1): 25}, broker, (), {},
                      ("p.hookstream.deliveries",), now_ms=61_000)
    assert unread.oldest_s == {}  # unfinished, head not read yet: no series, not a wrong 0


def test_redrive_ledger_entries_and_tombstones() -> None:
    ledger = RedriveLedger()
    for key, value in ((b"0:4", b"d1"), (b"1:7", b"d2"), (b"0:9", b"d3"), (b"0:9", None),
                       (b"junk", b"d4"), (None, b"d5"), (b"1:-2", b"d6")):
        ledger.read(key, value)
    assert [ledger.redriven(0, 4), ledger.redriven(1, 7), ledger.redriven(0, 9)] == [
        True, True, False]
    assert position(0, 4) in ledger and "0:9" not in ledger and "x" not in ledger
    assert parse_position(b"3:12") == (3, 12) and parse_position("3:") is None
    ledger.forget_below(0, 5)
    assert not ledger.redriven(0, 4) and ledger.redriven(1, 7)


def test_dlq_depth_counts_what_is_still_dead_lettered() -> None:
    count = DeadLetterCount(("p.hookstream.dlq", "p.glpi.item-changes.dlq"), "p.hookstream.dlq")
    # partition 0: records at 0..9 but 5 and 8 (transaction markers), redriven 2, 3, 9
    for offset in (0, 1, 2, 3, 4, 6, 7, 9):
        count.record("p.hookstream.dlq", 0, offset)
    count.record("p.hookstream.dlq", 0, 9)  # read twice: counted once
    for offset in (2, 3, 9):
        count.ledger.read(position(0, offset).encode(), b"d")
    count.ledger.read(b"0:42", b"d")  # ledger ahead of the records read: not counted
    count.record("p.hookstream.dlq", 1, 0)
    for offset in (0, 2, 4):
        count.record("p.glpi.item-changes.dlq", 0, offset)  # no ledger: all count
    lows = {("p.hookstream.dlq", 0): 0, ("p.hookstream.dlq", 1): 0,
            ("p.glpi.item-changes.dlq", 0): 0}
    assert count.depth(lows) == {("p.hookstream.dlq",): 5 + 1, ("p.glpi.item-changes.dlq",): 3}
    # retention dropped offsets below 3: 0, 1, 2 go, and so does the ledger's 2
    lows[("p.hookstream.dlq", 0)] = 3
    count.trim(lows)
    assert list(count.offsets[("p.hookstream.dlq", 0)]) == [3, 4, 6, 7, 9]
    assert not count.ledger.redriven(0, 2)
    assert count.depth(lows)[("p.hookstream.dlq",)] == 3 + 1  # 4, 6, 7 and partition 1
    assert DeadLetterCount(("t",), "t").depth({}) == {("t",): 0.0}


# The families each `hookstream run` component exports, spelled out: a family moving to
# another component, or a component picking up one, has to change this on purpose.
LAG_READY = {"hookstream_consumer_lag", "hookstream_ready"}
EXPORTED = {
    "processor": {"hookstream_processor_events_total", "hookstream_processor_deliveries_total",
                  "hookstream_render_errors_total", "hookstream_undecodable_total",
                  "hookstream_processor_duplicate_events_total",
                  "hookstream_processor_skipped_total",
                  "hookstream_processor_dedup_forgotten_total", *LAG_READY},
    "delivery": {
        "hookstream_delivery_attempts_total", "hookstream_endpoint_gone_total",
        "hookstream_delivery_seconds", "hookstream_delivery_lag_seconds",
        "hookstream_delivery_in_flight", "hookstream_delivery_ordering_held",
        "hookstream_undecodable_total", "hookstream_retry_due",
        "hookstream_retry_waiting", "hookstream_dlq_depth",
        "hookstream_oldest_undelivered_seconds", "hookstream_circuit_open",
        "hookstream_webhook_info", "hookstream_operational_events_total", *LAG_READY},
    "ingest": {"hookstream_ingest_requests_total", "hookstream_ingest_produce_seconds",
               "hookstream_ingest_glpi_delay_seconds", "hookstream_ingest_inexact_bodies_total",
               "hookstream_ready"},
    "alerts": {"hookstream_alerts_received_total", "hookstream_alerts_rejected_total",
               "hookstream_alerts_request_seconds", "hookstream_ready"},
    "poller": {"hookstream_poller_api_calls_total", "hookstream_poller_changes_total",
               "hookstream_poller_own_changes_total", "hookstream_poller_poll_seconds",
               "hookstream_poller_cursor_age_seconds", "hookstream_poller_errors_total",
               "hookstream_ready"},
    "writeback": {"hookstream_writeback_total", "hookstream_ready"},
    "ticketer": {"hookstream_ticketer_actions_total", "hookstream_ticketer_alert_to_ticket_seconds",
                 "hookstream_ticketer_glpi_unavailable_total", "hookstream_ticketer_dlq_total",
                 "hookstream_ready"},
    "logstore": {"hookstream_logstore_records_total", "hookstream_logstore_write_seconds",
                 "hookstream_logstore_pruned_deliveries_total",
                 "hookstream_logstore_db_errors_total", "hookstream_webhooks_disabled_total",
                 *LAG_READY},
    "admin": {"hookstream_ready"},
}


def exported(component: str) -> set[str]:
    """The families in a component's /metrics output, by their exposed names."""
    text = generate_latest(metrics.registry(component)).decode()
    return {line.split()[2] + ("_total" if line.split()[3] == "counter"
                               and not line.split()[2].endswith("_total") else "")
            for line in text.splitlines() if line.startswith("# TYPE ")}


@pytest.mark.parametrize("component", sorted(EXPORTED))
def test_each_component_exports_its_own_families_only(component: str) -> None:
    got = exported(component)
    assert {n for n in got if n.startswith("hookstream_")} == EXPORTED[component]
    assert {"process_cpu_seconds_total", "python_info"} <= got  # process and platform
    others = set().union(*EXPORTED.values()) - EXPORTED[component]
    assert not got & others


def test_every_run_component_has_a_registry_and_docs_say_who_exports_what() -> None:
    from hookstream.cli.pipeline import COMPONENTS as RUN

    assert set(metrics.COMPONENTS) == set(RUN) == set(EXPORTED)
    by_family: dict[str, set[str]] = {}
    for component, families in EXPORTED.items():
        for family in families:
            by_family.setdefault(family, set()).add(component)
    for line in DOCS.read_text().splitlines():
        if m := re.match(r"\| `(hookstream_\w+)` \|.*\| ([a-z, ]+) \|$", line):
            said = m.group(2)
            components = set(EXPORTED) if said == "every component" else set(said.split(", "))
            assert components == by_family.pop(m.group(1)), m.group(1)
    assert not by_family, f"not in docs/metrics.md: {sorted(by_family)}"


def test_no_created_series_and_no_second_circuit_metric() -> None:
    metrics.ATTEMPTS.labels("hook-created", "delivered").inc()
    metrics.DELIVERY_LAG.observe(1.5)
    text = generate_latest().decode()
    assert 'hookstream_delivery_attempts_total{outcome="delivered",webhook_id="hook-created"}' \
        in text
    assert "_created" not in text
    assert "hookstream_open_circuits" not in text
