"""What the processor's memory of recent event ids costs (processors/dedup.py): the read
back a processor makes before its first batch of a partition, and the memory per id.

    .venv/bin/python bench/dedup.py [--events 100000] [--bootstrap HOST:PORT]

A LocalBroker of its own (or --bootstrap's), glpi.item-changes with one partition holding
--events events (bench/workload.py, ids of 32 hex digits as ingest's), then the
processor's own `_recall` for a batch starting after them: the read back (a reader
outside the group, offsets_for_times, every record decoded) and the memory rebuilt, as a
restarted processor or a new owner does. Printed: records read back, seconds, records/s,
and the memory's size per id (tracemalloc: a rebuild from as many ids, strings included).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from dataclasses import replace
from pathlib import Path

from confluent_kafka import TopicPartition

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import workload  # noqa: E402

from hookstream.config import Settings  # noqa: E402
from hookstream.devbroker import LocalBroker, free_port_pair  # noqa: E402
from hookstream.io import consumer, create_topics, flush, producer  # noqa: E402
from hookstream.records import ITEM_CHANGES, Codec  # noqa: E402
from processors.clients import TransactionalClients  # noqa: E402
from processors.dedup import Copy, RecentEvents, Span  # noqa: E402
from processors.processor import GROUP, Processor  # noqa: E402


def fill(settings: Settings, events: int) -> None:
    codec, prod, topic = Codec(), producer(settings), settings.topic(ITEM_CHANGES)
    for event in workload.events(events):
        value, headers = codec.encode(event, topic)
        while True:
            try:
                prod.produce(topic, value, event.key().encode(), headers=headers, partition=0)
                break
            except BufferError:
                prod.poll(0.1)
    flush(prod, timeout_s=300)


def measure(settings: Settings, events: int) -> dict[str, float]:
    create_topics(settings)
    fill(settings, events)
    last = consumer(settings, "bench-dedup")  # the record a batch would start with
    last.assign([TopicPartition(settings.topic(ITEM_CHANGES), 0, events - 1)])
    first = None
    while first is None or first.error() is not None:
        first = last.poll(5)
    last.close()
    processor = Processor(settings)
    clients = TransactionalClients(settings, GROUP, f"bench-{uuid.uuid4().hex}",
                                   threading.Event(), lambda why: None)
    started = time.perf_counter()
    processor._recall(clients, [first])
    took_s = time.perf_counter() - started
    clients.close()
    held = sum(processor.recent.held().values())
    tracemalloc.start()  # the ids and timestamps as decoding makes them, kept by the memory
    copies = [Copy(f"{n:032x}", 1_800_000_000_000 + n) for n in range(held)]
    recent = RecentEvents(3_900_000, settings.processor_dedup_entries)
    recent.rebuild(Span(0, None, 0, held), copies)
    del copies
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"read_back": held + 0.0, "seconds": took_s, "per_s": held / took_s,
            "bytes_per_id": size / max(1, held)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--bootstrap")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hookstream-bench-dedup-") as tmp:
        broker = None
        if args.bootstrap is None:
            broker = LocalBroker(Path(tmp) / "kafka", Settings().cache_path,
                                 port=free_port_pair())
            broker.start()
        settings = replace(Settings(), bootstrap_servers=args.bootstrap or broker.bootstrap,
                           topic_prefix=f"dedup-{uuid.uuid4().hex[:6]}.", partitions=1,
                           state_dir=str(Path(tmp) / "hs"),
                           processor_dedup_entries=args.events)
        try:
            row = measure(settings, args.events)
        finally:
            if broker is not None:
                broker.stop()
    print(f"\nread back {row['read_back']:.0f} records in {row['seconds']:.2f} s "
          f"({row['per_s']:,.0f}/s); memory {row['bytes_per_id']:.0f} bytes per id")


if __name__ == "__main__":
    main()
