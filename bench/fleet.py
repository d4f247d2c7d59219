"""A platform team's day: 1,000 GLPI instances through ingest, processor and delivery to nginx.

Run by hand or by `make bench` (loopback only, bounded in time):

    .venv/bin/python bench/fleet.py [--quick] [--seconds 300] [--instances 1000]
        [--ingest-workers 1]

bench/pipeline.py's set-up (one LocalBroker, `hookstream run ingest`, processor, delivery,
nginx on 8 ports logging $msec per request) with --instances GLPI instances, each its own
instance definition and secret and two webhooks (Ticket new, Ticket update: each event
fires one), applied through `instances apply` and `webhooks apply`'s functions. The load
generator (its own process) is the fleet's GLPI crons: each instance, at its minute tick
(ticks spread evenly over the minute across instances), sends 50 rows one after another,
each on a new connection (GLPI opens one per webhook) once the previous one was answered,
5 s timeout: 50 a minute each, about 830 requests/s for 1,000 instances. Default 5 minutes
(--quick: 60 s).

Reported: whether it holds: every cron run sent its 50 rows within its minute (a slow
ingest grows GLPI's own queue) and the backlog (events on glpi.item-changes not yet
received by nginx, sampled every 5 s) did not grow
(least-squares slope over the run's last 80 % below 1 % of the offered rate), with
processor's and delivery's hookstream_consumer_lag beside it (records fetched into
delivery's memory are past its position: the lag alone hides a backlog); GLPI's send
(the generator's clock at the POST) to nginx's receipt p50/p99/max; ingest's answer
p50/p99/max (GLPI's timeout is 5 s); CPU-seconds per event and peak memory (VmHWM) of
ingest, processor, delivery and the broker; how many such fleets one core of each carries
(1 / (its CPU-seconds per event x the offered rate)); every event's receipts counted by
item id (exactly once). The load generator and nginx run on the same two cores: their CPU
is measured and printed apart.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import report
from pipeline import Pipeline, cpu_s, glpi_answers, log, percentile, pipeline, spread, warm_up

SAMPLE_S = 5.0
PER_INSTANCE_PER_S = 50 / 60  # GLPI's queuedwebhook cron


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the fleet started
    processor_lag: float  # records, hookstream_consumer_lag
    delivery_lag: float
    backlog: int  # events on glpi.item-changes not yet received by nginx


def backlog_slope(samples: list[Sample]) -> float:
    """Events per second the backlog grew over the samples (least squares)."""
    if len(samples) < 2:
        return 0.0
    xs = [s.at for s in samples]
    ys = [float(s.backlog) for s in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


class Produced:
    """Events on glpi.item-changes (sum of high watermarks: ingest's producer is
    idempotent, not transactional, so one record per event), counted from now."""

    def __init__(self, settings: Any, topic: str) -> None:
        from hookstream.io import consumer

        self.topic, self.reader = topic, consumer(settings, "bench-fleet-watermarks")
        self.start = 0
        self.start = self.since_start()

    def since_start(self) -> int:
        from confluent_kafka import TopicPartition

        from hookstream.io import watermarks

        parts = self.reader.list_topics(self.topic, timeout=10).topics[self.topic].partitions
        return sum(int(watermarks(self.reader, TopicPartition(self.topic, n), 10)[1])
                   for n in parts) - self.start

    def close(self) -> None:
        self.reader.close()


def run(p: Pipeline, instances: int, seconds: float) -> dict[str, Any]:
    from hookstream.records import DELIVERIES, ITEM_CHANGES

    changes, deliveries = p.settings.topic(ITEM_CHANGES), p.settings.topic(DELIVERIES)
    base, produced = p.receipts_count(), Produced(p.settings, changes)
    cpu_before, began = p.cpu(), time.monotonic()
    proc, out = p.start_glpi("--mode", "fleet", "--instances", str(instances), "--seconds",
                             str(seconds))
    samples, glpi_cpu = [], 0.0
    while proc.poll() is None:
        time.sleep(SAMPLE_S)
        try:
            glpi_cpu = cpu_s(proc.pid)
        except OSError:
            pass
        processor_lag = p.parts["processor"].lag(changes)
        delivery_lag = p.parts["delivery"].lag(deliveries)
        if processor_lag is None or delivery_lag is None:
            log("  no hookstream_consumer_lag series yet: sample left out")
            continue
        samples.append(Sample(time.monotonic() - began, processor_lag, delivery_lag,
                              produced.since_start() - (p.receipts_count() - base)))
        last = samples[-1]
        log(f"  {last.at:5.0f} s: backlog {last.backlog:,} (ingested, not received), lag "
            f"processor {last.processor_lag:,.0f}, delivery {last.delivery_lag:,.0f}")
    produced.close()
    sent_s, cpu_sending = time.monotonic() - began, p.cpu()
    answers = glpi_answers(proc, out, 60)
    try:
        p.wait_receipts(base + len(answers.accepted), 180)
    except RuntimeError as e:
        log(f"  not all received: {e}")
    drained_s = time.monotonic() - began - sent_s
    cpu_all = {k: v - cpu_before[k] for k, v in p.cpu().items()}
    per_s = {k: (v - cpu_before[k]) / sent_s for k, v in cpu_sending.items()}
    receipts = p.read_receipts()[base:]
    counts = Counter(ident for _, _, ident, _ in receipts)
    accepted = set(answers.accepted)
    lags = sorted(at - sent for at, sent, _, _ in receipts)
    steady = [s for s in samples if s.at >= 0.2 * seconds]
    slope = backlog_slope(steady)
    offered = instances * PER_INSTANCE_PER_S
    sent_per_s = len(answers.seconds) / sent_s
    longest_burst_s = answers.bursts[-1] if answers.bursts else 0.0
    n = len(accepted)
    return {
        "instances": instances, "seconds": seconds, "offered_per_s": round(offered, 1),
        "sent": len(answers.seconds), "sent_per_s": round(sent_per_s, 1),
        "accepted": n, "statuses": dict(answers.statuses),
        "delivered": len(accepted & counts.keys()), "lost": len(accepted - counts.keys()),
        "duplicates": sum(c - 1 for c in counts.values()),
        "unanswered_but_delivered": len(counts.keys() - accepted),
        # every cron run sent its 50 rows before its next minute tick (a slow ingest grows
        # GLPI's own queue) and the backlog between ingest and nginx did not grow
        "holds": slope < 0.01 * offered and longest_burst_s < 60,
        "cron_run_s": {"p50": round(percentile(answers.bursts, 50), 1),
                       "p99": round(percentile(answers.bursts, 99), 1),
                       "max": round(longest_burst_s, 1)},
        "backlog_slope_per_s": round(slope, 2),
        "max_backlog": max((s.backlog for s in samples), default=0),
        "max_lag": {"processor": max((s.processor_lag for s in samples), default=0),
                    "delivery": max((s.delivery_lag for s in samples), default=0)},
        "drain_s": round(drained_s, 1),
        "send_to_receipt_ms": spread(lags),
        "ingest_answer_ms": spread([s * 1000 for s in answers.seconds]),
        "cpu_us_per_event": {k: round(v / n * 1e6) for k, v in cpu_all.items()}
        | {"glpi generator": round(glpi_cpu / n * 1e6)},
        "cpu_s_per_s": {k: round(v, 3) for k, v in per_s.items()},
        # at the fleet's full rate, whatever rate the crons reached on this machine
        "fleets_per_core": {k: round(1 / (v / n * offered), 1) for k, v in cpu_all.items()
                            if v > 0},
        "samples_s_backlog_lags": [[round(s.at), s.backlog, s.processor_lag, s.delivery_lag]
                                   for s in samples],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 s instead of 5 minutes")
    parser.add_argument("--seconds", type=float, help="how long the crons send (default 300)")
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--ingest-workers", type=int, default=1)
    a = parser.parse_args()
    seconds = a.seconds or (60.0 if a.quick else 300.0)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds: everything stopped
    load_before = os.getloadavg()
    with pipeline(a.instances, ("new", "update"), a.ingest_workers) as p:
        warm_up(p)
        log(f"fleet: {a.instances:,} instances, 50 requests a minute each, {seconds:g} s")
        r = run(p, a.instances, seconds)
        rss = p.peak_rss_mib()
    e2e, answer, cpu = r["send_to_receipt_ms"], r["ingest_answer_ms"], r["cpu_us_per_event"]
    parts = ("ingest", "processor", "delivery", "broker")
    print(f"""
fleet bench: {a.instances:,} GLPI instances x 50 requests a minute ({r['offered_per_s']:.0f}/s \
offered, {r['sent_per_s']:.0f}/s sent) for {seconds:g} s; ingest {a.ingest_workers} worker(s);
{os.cpu_count()} CPUs shared with the load generator and nginx; load average before \
{load_before[0]:.2f}, now {os.getloadavg()[0]:.2f}.
holds: {'yes' if r['holds'] else 'NO'} (a cron run's 50 rows took p50 \
{r['cron_run_s']['p50']:.1f} s, max {r['cron_run_s']['max']:.1f} s of its 60; backlog grew \
{r['backlog_slope_per_s']:+.1f} events/s, at most \
{r['max_backlog']:,}; consumer lag at most processor {r['max_lag']['processor']:,.0f}, delivery \
{r['max_lag']['delivery']:,.0f}; drained {r['drain_s']:.0f} s after the crons stopped)
events: {r['sent']:,} sent, {r['accepted']:,} accepted {r['statuses']}, {r['delivered']:,} \
delivered, {r['lost']} lost, {r['duplicates']} duplicate receipts, \
{r['unanswered_but_delivered']} delivered though GLPI saw no 2xx
GLPI's POST to nginx's receipt: p50 {e2e['p50']:.0f} ms, p99 {e2e['p99']:.0f} ms, max \
{e2e['max']:.0f} ms
ingest's answer: p50 {answer['p50']:.1f} ms, p99 {answer['p99']:.1f} ms, max \
{answer['max']:.1f} ms (GLPI's timeout: 5,000 ms)
{'':<10} {'CPU us/event':>12} {'CPU-s per s':>11} {'fleets/core':>11} {'VmHWM MiB':>9}""")
    for k in parts:
        print(f"{k:<10} {cpu[k]:>12} {r['cpu_s_per_s'][k]:>11.3f} "
              f"{r['fleets_per_core'].get(k, 0):>11.1f} {rss[k]:>9.0f}")
    print(f"{'pipeline':<10} {sum(cpu[k] for k in parts):>12}")
    print(f"apart: nginx {cpu['nginx']} us/event, load generator {cpu['glpi generator']} us/event")
    report.write(
        "fleet",
        targets=[
            # it holds when both are met: the backlog grows by less than 1 % of the rate,
            # and every cron run sends its 50 rows within its minute
            report.Target(f"fleet backlog growth at {r['offered_per_s']:.0f} req/s",
                          round(100 * r["backlog_slope_per_s"] / r["offered_per_s"], 2),
                          "% of the rate", "<", 1),
            report.Target("fleet longest cron run", r["cron_run_s"]["max"], "s", "<", 60),
            report.Target("fleet p99 GLPI send to receipt", e2e["p99"], "ms", "<", 1000),
            report.Target("fleet ingest answer p99", answer["p99"], "ms", "<", 1000),
        ],
        figures={**r, "peak_rss_mib": rss, "ingest_workers": a.ingest_workers,
                 "load_avg_before": load_before,
                 "apart": "nginx and the load generator share the cores; their CPU is "
                          "listed, not counted in the pipeline's"},
        throughput={"fleet delivered": round(r["delivered"] / seconds, 1),
                    "offered": r["offered_per_s"]},
        throughput_unit="events/s",
        latency_ms=e2e,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
