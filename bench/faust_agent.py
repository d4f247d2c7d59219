"""The same match and render as a faust-streaming agent: what a user would write first.

A faust App (default aiokafka transport) with one agent over the input topic that
decodes each event, plans it (hookstream.matching.plan_rendered) and sends the requests,
encoded as the processor encodes them (RequestEncoder), to the output topic. Run by
bench/processor.py in its own process.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

import faust

from hookstream.config import Settings
from hookstream.control import admin
from hookstream.errors import DecodeError
from hookstream.matching import Rendered, WebhookIndex, plan_rendered
from hookstream.records import ITEM_CHANGES, Codec, ItemChangeEvent, RequestEncoder, delivery_key

# (perf_counter, events done, CPU s of the process, CPU s of this thread)
Marks = list[tuple[float, int, float, float]]


def run(settings: Settings, out_topic: str, events: int, seconds: float, guarantee: str) -> Marks:
    """Process up to `events` events or for `seconds`; (time, events done) every 500."""
    logging.getLogger("faust").setLevel(logging.WARNING)
    index, entities = WebhookIndex(), admin.load_entities(settings)
    for definition in admin.current_webhooks(settings).values():
        index.put(definition)
    codec, marks = Codec(), [(time.perf_counter(), 0, time.process_time(), time.thread_time())]
    app = faust.App(
        f"bench-faust-{settings.topic_prefix}",
        broker=f"kafka://{settings.bootstrap_servers}",
        processing_guarantee=guarantee,
        topic_partitions=settings.partitions,
        web_enabled=False,
        store="memory://",
        datadir=str(settings.state_path / "faust"),
    )
    source = app.topic(
        settings.topic(ITEM_CHANGES), key_serializer="raw", value_serializer="raw"
    )
    sink = app.topic(out_topic, key_serializer="raw", value_serializer="raw")
    requests = RequestEncoder(codec, out_topic)
    count = 0

    @app.agent(source)
    async def match(stream: Any) -> None:
        nonlocal count
        async for event in stream.events():
            message = event.message
            try:
                decoded = codec.decode(message.value, message.headers, ItemChangeEvent)
            except DecodeError:
                continue
            now_ms = int(time.time() * 1000)
            for result in plan_rendered(decoded, index, entities, now_ms):
                if isinstance(result, Rendered):
                    d, r = result.webhook, result.request
                    value = requests.encode(decoded, d, r.url, r.headers, r.body, now_ms)
                    key = delivery_key(d.id, decoded.itemtype, decoded.items_id).encode()
                    await sink.send(key=key, value=value, headers=requests.headers)
            count += 1
            if count % 500 == 0 or count == events:
                marks.append((time.perf_counter(), count, time.process_time(),
                              time.thread_time()))

    @app.timer(0.5)
    async def stop_when_done() -> None:
        if count >= events or time.monotonic() > deadline:
            os.kill(os.getpid(), signal.SIGTERM)  # the worker's own graceful shutdown

    # Only a faust Worker turns processing_guarantee on (app.in_worker): app.start() would
    # quietly run at least once.
    deadline = time.monotonic() + seconds
    try:
        worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
        worker.execute_from_commandline()
    except SystemExit:
        pass
    return marks
