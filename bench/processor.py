"""Benchmark: events per second through one processor process, against a ceiling and Faust.

    .venv/bin/python bench/processor.py [--quick] [--events 100000] [--seconds 120] [--profile]

Starts a local broker in a temporary directory (unless KAFKA_BOOTSTRAP_SERVERS is set),
publishes 1,000 webhooks over 50 instances and pre-produces the input events (see
workload.py), then runs each variant in its own process over the same input:

- bare-txn:   a confluent-kafka loop that copies each input record to an output topic, one
              transaction per batch with its offsets, as the processor does: the ceiling;
- bare-plain: the same loop without transactions (idempotent producer, async commits);
- processor:  processors.processor.Processor, exactly as deployed;
- faust:      the same match and render as a faust-streaming agent (faust_agent.py).

Rates are measured over a steady window (past the first 5% of the events) and each
process reports its peak RSS (VmHWM) and its CPU time per event over that window (all its
threads, librdkafka's included). Bounded: each variant stops after --seconds.

Where the processor's CPU goes, part by part (µs per event): consume, produce and
transactions are the bare-txn loop's own CPU per event (the same clients, batches and
transactions, no work); decode, match, render and encode are timed in the processor's child
after its run, over the same workload's records, by the deployed functions; "other" is the
rest of the processor's measured CPU per event (dedup memory, metrics, the loop).
`--profile` also runs the processor under cProfile and writes the top 20 functions to
bench/results/. Ends with one `report.write("processor", ...)` line.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import Message, TopicPartition
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from hookstream.config import Settings, load_settings
from hookstream.control import admin
from hookstream.io import admin as kafka_admin
from hookstream.io import consumer, create_topics, flush, producer, read_all
from hookstream.records import DELIVERIES, ITEM_CHANGES, Codec
from processors.clients import TransactionalClients
from processors.processor import BatchInFlight, Processor

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from report import Target, costs  # noqa: E402  (bench/ is not a package)
from report import write as write_report  # noqa: E402

SECRET_KEY = "aG9va3N0cmVhbS1iZW5jaC1maXhlZC1rZXktMzJieXQ="  # a fixed test Fernet key
VARIANTS = ("bare-txn", "bare-plain", "processor", "faust")
WARMUP = 0.05  # the share of the events left out of the measured window
# (perf_counter, events done, CPU s of the process, CPU s of the thread running the loop)
Mark = tuple[float, int, float, float]
Marks = list[Mark]
QUICK = {"events": 20_000, "faust_events": 8_000, "seconds": 30.0, "parts_events": 3_000}
QUICK_VARIANTS = "bare-txn,processor,faust"
RESULT = "bench-result "  # marks a child's report: faust writes terminal codes to stdout


# -- the parent: broker, workload, one child process per variant, report ---------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run, about 30 s")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--faust-events", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=120.0, help="time limit per variant")
    parser.add_argument("--parts-events", type=int, default=10_000,
                        help="records timed part by part after the processor's run")
    parser.add_argument("--profile", action="store_true",
                        help="also run the processor under cProfile (top 20 to bench/results/)")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--variants", help=f"default {','.join(VARIANTS)}, "
                        f"with --quick {QUICK_VARIANTS}")
    parser.add_argument("--faust-guarantee", default="exactly_once")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    args.variants = args.variants or (QUICK_VARIANTS if args.quick else ",".join(VARIANTS))
    if args.child:
        return child(args)
    with broker() as bootstrap:
        prefix = f"bench{uuid.uuid4().hex[:8]}."
        settings = bench_settings(bootstrap, prefix, args.partitions, tempfile.mkdtemp())
        print(f"broker {bootstrap}, topic prefix {prefix}", flush=True)
        prepare(settings, args.events)
        results = {}
        for variant in args.variants.split(","):
            results[variant] = run_child(variant, args, bootstrap, prefix)
            # committed records only, so a repeated batch would show as a surplus
            results[variant]["outputs"] = sum(1 for _ in read_all(settings, output_topic(
                settings, variant)))
            print(f"  {variant}: {describe(results[variant])}", flush=True)
        report(results, args)
    return 0


@contextmanager
def broker() -> Iterator[str]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    from hookstream.devbroker import LocalBroker, free_port_pair

    with tempfile.TemporaryDirectory(prefix="hookstream-bench-") as state:
        local = LocalBroker(Path(state), Settings().cache_path, port=free_port_pair(), heap_mb=1024)
        local.start()
        try:
            yield local.bootstrap
        finally:
            local.stop()


def bench_settings(bootstrap: str, prefix: str, partitions: int, state_dir: str) -> Settings:
    # HOOKSTREAM_PROCESSOR_* variables (batch size, batch wait) tune every variant alike.
    tuning = {k: v for k, v in os.environ.items() if k.startswith("HOOKSTREAM_PROCESSOR_")}
    return load_settings(
        env=tuning,
        bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        partitions=partitions,
        state_dir=state_dir,
        secret_key=SECRET_KEY,
    )


def prepare(settings: Settings, count: int) -> None:
    """Topics, webhooks, entities, and `count` input events, all published before timing."""
    import workload

    create_topics(settings)
    outputs = [settings.topic(f"bench.{v}") for v in VARIANTS if v != "processor"]
    client = kafka_admin(settings)
    futures = client.create_topics([NewTopic(t, settings.partitions, 1) for t in outputs])
    for future in futures.values():
        future.result()
    folder = Path(settings.state_dir)
    (folder / "webhooks.yaml").write_text(workload.webhooks_yaml())
    (folder / "entities.yaml").write_text(workload.entities_yaml())
    admin.apply_webhooks(settings, folder / "webhooks.yaml")
    admin.apply_entities(settings, folder / "entities.yaml")
    started = time.perf_counter()
    codec, prod, topic = Codec(), producer(settings), settings.topic(ITEM_CHANGES)
    for event in workload.events(count):
        value, headers = codec.encode(event, topic)
        prod.produce(topic, value, event.key().encode(), headers=headers)
        prod.poll(0)
    flush(prod)
    print(f"{count:,} events produced in {time.perf_counter() - started:.1f} s", flush=True)


def run_child(variant: str, args: argparse.Namespace, bootstrap: str, prefix: str) -> Any:
    cmd = [sys.executable, __file__, "--child", variant, "--bootstrap", bootstrap,
           "--prefix", prefix, "--events", str(args.events), "--seconds", str(args.seconds),
           "--partitions", str(args.partitions), "--faust-guarantee", args.faust_guarantee,
           "--faust-events", str(args.faust_events), "--parts-events", str(args.parts_events),
           *(["--profile"] if args.profile else [])]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=args.seconds + 120)
    found = [line.partition(RESULT)[2] for line in proc.stdout.splitlines() if RESULT in line]
    if proc.returncode != 0 or not found:
        return {"error": f"exit status {proc.returncode}"}
    return json.loads(found[-1])


def describe(r: dict[str, Any]) -> str:
    if "error" in r:
        return r["error"]
    return (f"{r['events']:,} events in {r['window_s']:.2f} s = {r['rate']:,.0f} events/s, "
            f"{r['outputs']:,} records out, peak RSS {r['rss_mib']:.0f} MiB")


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    rate = {v: r.get("rate", 0.0) for v, r in results.items()}
    print(f"\n{'variant':<12} {'events/s':>10} {'processor is':>14} {'CPU µs/event':>13} "
          f"{'peak RSS MiB':>13}")
    for variant, r in results.items():
        ratio = rate.get("processor", 0) / rate[variant] if rate[variant] else 0
        rss = f"{r['rss_mib']:.0f}" if "rss_mib" in r else "-"
        cpu = f"{r['cpu_us']:.0f}" if "cpu_us" in r else "-"
        print(f"{variant:<12} {rate[variant]:>10,.0f} {ratio:>13.2f}x {cpu:>13} {rss:>13}")
    parts = processor_parts(results)
    if parts:
        print("\nprocessor CPU µs per event, part by part: "
              + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()))
    print("CPU µs per event outside the loop's thread: " + ", ".join(
        f"{v} {r['cpu_us'] - r['loop_cpu_us']:.1f}" for v, r in results.items()
        if "loop_cpu_us" in r))
    vs_faust = rate["processor"] / rate["faust"] if rate.get("processor") and rate.get(
        "faust") else 0.0
    vs_bare = 100 * rate["processor"] / rate["bare-txn"] if rate.get("processor") and rate.get(
        "bare-txn") else 0.0
    print(f"({os.cpu_count()} CPUs; the broker runs on the same machine; "
          f"load average {os.getloadavg()[0]:.2f})")
    figures: dict[str, Any] = {
        "events": args.events, "faust_events": min(args.events, args.faust_events),
        "faust_guarantee": args.faust_guarantee, "cpus": os.cpu_count(),
        "processor_cpu_us_per_event_by_part": parts,
    }
    # CPU per event outside the thread running the loop: librdkafka's threads, the
    # processor's consumer of the definitions, the health of the process
    figures["cpu_us_outside_the_loop_thread"] = {
        v: round(r["cpu_us"] - r["loop_cpu_us"], 1) for v, r in results.items()
        if "loop_cpu_us" in r}
    proc_cpu = results.get("processor", {}).get("cpu_us")
    for peer in ("faust", "bare-txn"):  # CPU per event: steadier than rates on a busy machine
        if proc_cpu and results.get(peer, {}).get("cpu_us"):
            figures[f"{peer}_cpu_per_event_over_processor"] = round(
                results[peer]["cpu_us"] / proc_cpu, 2)
    for variant, r in results.items():
        for name in ("cpu_us", "loop_cpu_us", "rss_mib", "outputs", "error", "profile"):
            if name in r:
                figures[f"{variant}_{name}"] = round(r[name], 1) if isinstance(
                    r[name], float) else r[name]
    loop_us = results.get("processor", {}).get("loop_cpu_us")
    write_report(
        "processor",
        targets=[
            Target("processor vs Faust agent (exactly once)", round(vs_faust, 2), "x",
                   ">=", 5, left=remainder(rate, parts, loop_us, "faust", 5)),
            Target("processor vs bare transactional loop", round(vs_bare, 1), "%",
                   ">=", 70, left=remainder(rate, parts, loop_us, "bare-txn", 0.7)),
        ],
        figures=figures,
        throughput={v: round(rate[v]) for v in ("processor", "bare-txn", "bare-plain", "faust")
                    if v in rate},
    )


def remainder(rate: dict[str, float], parts: dict[str, float], loop_us: float | None,
              peer: str, factor: float) -> str:
    """The time per event a rate of `factor` x the peer's allows, against the processor's:
    its wall time per event, its loop thread's CPU, and that CPU part by part."""
    if not parts or not loop_us or not rate.get(peer) or not rate.get("processor"):
        return ""
    work = {k: v for k, v in parts.items() if k not in ("total", "other") and "bare" not in k}
    return (f"{rate[peer] * factor:,.0f} events/s allow {1e6 / (rate[peer] * factor):.0f} µs per "
            f"event; the processor took {1e6 / rate['processor']:.0f} µs of wall per event, "
            f"its loop thread {loop_us:.0f} µs of CPU (the rest: waits for the broker, on the "
            f"same two cores). Its CPU per event ({parts['total']:.0f} µs in all threads): the "
            f"Kafka clients' part as in the bare loop "
            f"{parts['consume, produce, transaction (bare-txn)']:.0f}, the work itself "
            f"{sum(work.values()):.0f} ({costs(work)}), the rest {parts['other']:.0f}")


def processor_parts(results: dict[str, Any]) -> dict[str, float]:
    """The processor's CPU per event by part: the bare loop's for the Kafka clients, the
    timed parts, the rest as "other"."""
    proc, bare = results.get("processor", {}), results.get("bare-txn", {})
    if "cpu_us" not in proc or "parts_us" not in proc:
        return {}
    parts = {"consume, produce, transaction (bare-txn)": bare.get("cpu_us", 0.0),
             **proc["parts_us"]}
    parts["other"] = proc["cpu_us"] - sum(parts.values())
    parts["total"] = proc["cpu_us"]
    return {k: round(v, 1) for k, v in parts.items()}


# -- the children: one variant each, reporting one JSON line -----------------------------


def child(args: argparse.Namespace) -> int:
    settings = bench_settings(args.bootstrap, args.prefix, args.partitions, tempfile.mkdtemp())
    deadline = time.monotonic() + args.seconds
    out_topic = output_topic(settings, args.child)
    profiler = cProfile.Profile() if args.profile and args.child == "processor" else None
    if args.child == "processor":
        marks = run_processor(settings, args.events, deadline, profiler)
    elif args.child == "faust":
        import faust_agent

        marks = faust_agent.run(settings, out_topic, min(args.events, args.faust_events),
                                args.seconds, args.faust_guarantee)
    else:
        marks = run_bare(settings, out_topic, args.events, deadline, args.child == "bare-txn")
    (t0, n0, c0, l0), (t1, n1, c1, l1) = window(marks, WARMUP * marks[-1][1])
    if n1 <= n0:
        print(RESULT + json.dumps({"error": f"no progress in {args.seconds} s"}))
        return 0
    result: dict[str, Any] = {
        "events": n1 - n0, "window_s": t1 - t0, "rate": (n1 - n0) / (t1 - t0),
        "cpu_us": (c1 - c0) / (n1 - n0) * 1e6, "loop_cpu_us": (l1 - l0) / (n1 - n0) * 1e6,
        "rss_mib": peak_rss_kib() / 1024,
    }
    if args.child == "processor":
        result["parts_us"] = parts_us(settings, args.parts_events)
    if profiler:
        result["profile"] = str(write_profile(profiler))
    print(RESULT + json.dumps(result))
    return 0


def parts_us(settings: Settings, count: int) -> dict[str, float]:
    """CPU µs per input record of decode, match, render and encode, by the deployed
    functions over `count` records of the workload: decode as the processor decodes a
    batch, then `plan_rendered` (match and render; render is `render_request`, timed inside
    it), then the encoding of what it planned (RequestEncoder, and the key)."""
    import workload

    from hookstream.matching import Rendered, WebhookIndex
    from hookstream.records import ItemChangeEvent, RequestEncoder, delivery_key

    planning = importlib.import_module("hookstream.matching.plan")  # the module, not plan()

    index, entities = WebhookIndex(), admin.load_entities(settings)
    for definition in admin.current_webhooks(settings).values():
        index.put(definition)
    codec, topic = Codec(), settings.topic(ITEM_CHANGES)
    records = [codec.encode(event, topic) for event in workload.events(count)]
    now_ms = 1_762_250_000_000
    render_s = 0.0
    render_request = planning.render_request

    def timed_render(*args: Any, **kwargs: Any) -> Any:
        nonlocal render_s
        started = time.process_time()
        try:
            return render_request(*args, **kwargs)
        finally:
            render_s += time.process_time() - started

    started = time.process_time()
    decode_many = getattr(codec, "decode_many", None)  # where the codec decodes a batch
    events = (decode_many(records, ItemChangeEvent) if decode_many else
              [codec.decode(value, headers, ItemChangeEvent) for value, headers in records])
    decode_s = time.process_time() - started
    planning.render_request = timed_render  # type: ignore[assignment]
    try:
        started = time.process_time()
        planned = [(e, r) for e in events if isinstance(e, ItemChangeEvent)
                   for r in planning.plan_rendered(e, index, entities, now_ms)]
        plan_s = time.process_time() - started
    finally:
        planning.render_request = render_request  # type: ignore[assignment]
    encoder = RequestEncoder(codec, settings.topic(DELIVERIES))
    started = time.process_time()
    for event, result in planned:
        if isinstance(result, Rendered):
            d, r = result.webhook, result.request
            encoder.encode(event, d, r.url, r.headers, r.body, now_ms)
            delivery_key(d.id, event.itemtype, event.items_id).encode()
    encode_s = time.process_time() - started
    per = 1e6 / count
    return {"decode": decode_s * per, "match": (plan_s - render_s) * per,
            "render": render_s * per, "encode": encode_s * per}


def write_profile(profiler: cProfile.Profile) -> Path:
    """The profile's top 20 by own time and by cumulative time, into bench/results/."""
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    for order in ("tottime", "cumulative"):
        stats.sort_stats(order).print_stats(20)
    path = BENCH / "results" / f"processor-profile-{time.strftime('%Y%m%dT%H%M%S')}.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_text(out.getvalue())
    return path


def peak_rss_kib() -> int:
    """VmHWM. Not ru_maxrss: Linux carries that over from the parent across fork and exec."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))


def mark(done: int) -> Mark:
    return time.perf_counter(), done, time.process_time(), time.thread_time()


def window(marks: Marks, skip: float) -> tuple[Mark, Mark]:
    """The first mark past the warm-up and the last mark."""
    start = next((m for m in marks if m[1] >= skip and m[1] > 0), marks[0])
    return start, marks[-1]


class TimedProcessor(Processor):
    """The processor, noting the time after each committed batch."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.marks: Marks = []

    def _land(self, clients: TransactionalClients | None, in_flight: BatchInFlight,
              batch: list[Message]) -> bool:
        committed = super()._land(clients, in_flight, batch)
        self.marks.append(mark(self.stats["events"]))
        return committed


def run_processor(settings: Settings, events: int, deadline: float,
                  profiler: cProfile.Profile | None = None) -> Marks:
    processor = TimedProcessor(settings)
    thread = threading.Thread(
        target=processor.run if profiler is None else lambda: profiler.runcall(processor.run))
    thread.start()
    while time.monotonic() < deadline and (processor.marks or [(0, 0)])[-1][1] < events:
        time.sleep(0.05)
    processor.stopping.set()
    thread.join()
    return processor.marks


def run_bare(settings: Settings, out_topic: str, events: int, deadline: float, txn: bool) -> Marks:
    """Consume and produce with no work: the processor's clients, batching and transactions."""
    cons = consumer(
        settings, f"bench-{out_topic}", {"partition.assignment.strategy": "cooperative-sticky"}
    )
    prod = producer(
        settings,
        {"batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000},
        transactional_id=f"bench-{uuid.uuid4().hex}" if txn else None,
    )
    if txn:
        prod.init_transactions(30)
    cons.subscribe([settings.topic(ITEM_CHANGES)])
    done, marks = 0, [mark(0)]
    while done < events and time.monotonic() < deadline:
        batch = [m for m in cons.consume(settings.processor_batch_size,
                                         settings.processor_batch_ms / 1000)
                 if m.error() is None]
        if not batch:
            continue
        if txn:
            prod.begin_transaction()
        for msg in batch:
            prod.produce(out_topic, msg.value(), msg.key(), headers=msg.headers())
            prod.poll(0)
        offsets = next_offsets(batch)
        if txn:
            prod.send_offsets_to_transaction(offsets, cons.consumer_group_metadata(), 30)
            prod.commit_transaction(60)
        else:
            cons.commit(offsets=offsets, asynchronous=True)
        done += len(batch)
        marks.append(mark(done))
    prod.flush(60)
    # without transactions, the end is the last ack
    marks[-1] = mark(done)
    cons.close()
    return marks


def next_offsets(batch: list[Message]) -> list[TopicPartition]:
    last = {(m.topic(), m.partition()): m.offset() for m in batch}
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]


def output_topic(settings: Settings, variant: str) -> str:
    return settings.topic(DELIVERIES if variant == "processor" else f"bench.{variant}")


if __name__ == "__main__":
    sys.exit(main())
