"""Every Prometheus metric hookstream exports, declared in one place.

Incremented at the edges (processor and delivery loops), never inside the core; the
periodic gauges (lag, retry backlog, DLQ depth, circuits) are filled by io/gauges.py.
docs/metrics.md lists every metric with its type, labels, unit, meaning and component.

Families are declared unregistered (`registry=None`): each component serves
`registry(component)`, its own families (COMPONENTS) plus the process and platform
collectors, on its operations port (io/health.py; ingest and admin on their own HTTP
servers), so no component exports another's empty histograms. prometheus_client's default
REGISTRY holds every family, for reading a value in-process (tests, a REPL); no endpoint
serves it.

A GLPI instance is labelled `glpi_instance`, never `instance`: Prometheus keeps `instance`
for the scrape target and would rename ours to `exported_instance`.

Label cardinality is bounded: labels carry GLPI instance names, webhook ids, topic
names, partition numbers, retry tiers, outcomes and target origins (scheme://host:port)
-- never URLs, bodies, item ids or secrets. Webhook ids are capped: the first
`metrics_webhook_cap` ids a process sees keep their own label, later ones share the
label value OTHER (`_other`), so a fleet with thousands of webhooks cannot blow up
Prometheus. Origins are capped the same way.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# `_created` series would double the series count and say nothing Prometheus needs
disable_created_metrics()  # type: ignore[no-untyped-call]

OTHER = "_other"
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name
DEFAULT_WEBHOOK_CAP = 500  # Settings.metrics_webhook_cap; set by configure()


class CappedLabel:
    """The first `cap` distinct values keep their own label value; later ones map to OTHER.

    An admitted value keeps its slot for the life of the process (a deleted webhook's
    slot is freed only by a restart): the set of series stays stable between scrapes."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._admitted: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._admitted:
            return value
        with self._lock:
            if len(self._admitted) < self.cap:
                self._admitted.add(value)
                return value
        return OTHER


WEBHOOK_IDS = CappedLabel(DEFAULT_WEBHOOK_CAP)
ORIGINS = CappedLabel(DEFAULT_WEBHOOK_CAP)

M = TypeVar("M", Counter, Histogram)


class PerWebhook(Generic[M]):
    """A metric whose first label is a webhook id, passed through WEBHOOK_IDS.

    Call sites keep the prometheus_client spelling: `ATTEMPTS.labels(webhook_id, outcome)`.
    """

    def __init__(self, metric: M) -> None:
        self.metric: M = metric

    def labels(self, webhook_id: str, *rest: str) -> M:
        child: M = self.metric.labels(WEBHOOK_IDS(webhook_id), *rest)
        return child


class Children(Generic[M]):
    """One metric's children by label values, each made once: prometheus_client's
    `labels()` takes a lock and builds a key on every call (about 1.5 µs), paid per
    record on the hot paths. `Children(EVENTS.labels)("glpi-a").inc()`."""

    def __init__(self, labels: Callable[..., M]) -> None:
        self._labels: Callable[..., M] = labels
        self._made: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._made.get(values)
        if child is None:
            child = self._made[values] = self._labels(*values)
        return child


class Snapshot(Collector):
    """A gauge whose series are replaced all at once by each owner (a consumer group):
    the series of a revoked partition or a closed circuit disappear instead of lingering
    with a stale value. Several owners in one process (tests) keep their own series."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, labelnames
        self._by_owner: dict[str, dict[tuple[str, ...], float]] = {}
        self._lock = threading.Lock()

    def replace(self, owner: str, values: Mapping[tuple[str, ...], float]) -> None:
        for labels in values:
            if len(labels) != len(self.labelnames):
                raise ValueError(f"{self.name}: labels {labels} do not match {self.labelnames}")
        with self._lock:
            self._by_owner[owner] = dict(values)

    def value(self, *labels: str, owner: str | None = None) -> float | None:
        """The current value of one series (tests and the readiness of dashboards), of
        one owner's series if given (a tier label, say, can be reported by several)."""
        with self._lock:
            for name, series in self._by_owner.items():
                if owner in (None, name) and labels in series:
                    return series[labels]
        return None

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            merged = {k: v for series in self._by_owner.values() for k, v in series.items()}
        for labels, value in sorted(merged.items()):
            family.add_metric(list(labels), value)
        yield family

    def describe(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)


# -- processor -------------------------------------------------------------------------
EVENTS = Counter("hookstream_processor_events_total", "Item change events processed",
                 ["glpi_instance"], registry=None)
REQUESTS_PLANNED = Counter("hookstream_processor_deliveries_total",
                           "Delivery requests produced by the processor", ["glpi_instance"],
                           registry=None)
RENDER_ERRORS = PerWebhook(Counter("hookstream_render_errors_total",
                                   "Templates that failed to render", ["webhook_id"],
                                   registry=None))
UNDECODABLE = Counter("hookstream_undecodable_total", "Records that could not be decoded",
                      ["topic"], registry=None)
DUPLICATE_EVENTS = Counter("hookstream_processor_duplicate_events_total",
                           "Copies of an event already planned (same event id), skipped",
                           ["glpi_instance"], registry=None)
SKIPPED = Counter("hookstream_processor_skipped_total",
                  "Matching webhooks that skipped an event, by why: integration_user (the "
                  "webhook skips changes by the instance's integration users)",
                  ["glpi_instance", "reason"], registry=None)
DEDUP_FORGOTTEN = Counter("hookstream_processor_dedup_forgotten_total",
                          "Event ids dropped by the per-partition bound inside their window",
                          registry=None)

# -- delivery --------------------------------------------------------------------------
ATTEMPTS = PerWebhook(Counter("hookstream_delivery_attempts_total",
                              "Delivery attempts by outcome", ["webhook_id", "outcome"],
                              registry=None))
GONE = PerWebhook(Counter("hookstream_endpoint_gone_total", "Targets that answered 410 Gone",
                          ["webhook_id"], registry=None))
LATENCY = PerWebhook(Histogram(
    "hookstream_delivery_seconds", "HTTP attempt duration", ["webhook_id"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=None))
# created_at (the processor made the request) to the end of the attempt that delivered it
DELIVERY_LAG = Histogram("hookstream_delivery_lag_seconds",
                         "From delivery request created to delivered, retries included",
                         buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 600, 3600, 21600, 86400),
                         registry=None)
IN_FLIGHT = Gauge("hookstream_delivery_in_flight", "HTTP requests in flight", registry=None)
ORDERING_HELD = Gauge("hookstream_delivery_ordering_held",
                      "Deliveries held in memory by ordering: per_item (waiting behind an earlier"
                      " one of their item, or for their retry in place)", registry=None)

# -- ingest (GLPI native webhooks in; the instance label is a configured instance) ------
INGEST_REQUESTS = Counter("hookstream_ingest_requests_total",
                          "GLPI webhook requests by instance and outcome",
                          ["glpi_instance", "outcome"], registry=None)
INGEST_PRODUCE = Histogram("hookstream_ingest_produce_seconds",
                           "From produce to Kafka's acknowledgement, per ingested event",
                           buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 3),
                           registry=None)
GLPI_DELAY = Histogram("hookstream_ingest_glpi_delay_seconds",
                       "Receive time minus X-GLPI-timestamp: how far behind GLPI's cron is",
                       ["glpi_instance"], buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
                       registry=None)
INGEST_INEXACT = Counter("hookstream_ingest_inexact_bodies_total",
                         "Accepted bodies hookstream's default payload would not reproduce "
                         "byte for byte", ["glpi_instance"], registry=None)

# -- poller (GLPI API changes in; the instance label is a configured instance) ----------
POLLER_API_CALLS = Counter("hookstream_poller_api_calls_total",
                           "Calls the poller made to GLPI's REST API", ["glpi_instance"],
                           registry=None)
POLLER_CHANGES = Counter("hookstream_poller_changes_total",
                         "Changes the poller found and produced",
                         ["glpi_instance", "itemtype", "event"], registry=None)
POLLER_OWN_CHANGES = Counter("hookstream_poller_own_changes_total",
                             "Changes made only by the integration's own GLPI user, not produced",
                             ["glpi_instance", "itemtype"], registry=None)
POLLER_LATENCY = Histogram("hookstream_poller_poll_seconds",
                           "One poll of a stream: search, read, produce, move the cursor",
                           ["glpi_instance", "itemtype"],
                           buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                           registry=None)
POLLER_CURSOR_AGE = Gauge("hookstream_poller_cursor_age_seconds",
                          "Seconds since a stream was last read up to GLPI's latest change",
                          ["glpi_instance", "itemtype"], registry=None)
POLLER_ERRORS = Counter("hookstream_poller_errors_total",
                        "Polls that failed (GLPI or Kafka), each followed by a backoff",
                        ["glpi_instance", "itemtype"], registry=None)
WRITEBACK = Counter("hookstream_writeback_total",
                    "Attempts written back into GLPI item history, by outcome",
                    ["glpi_instance", "outcome"], registry=None)

# -- ticketer (alerts into GLPI tickets) ------------------------------------------------
TICKETER_ACTIONS = Counter("hookstream_ticketer_actions_total",
                           "Alert events the ticketer handled, by what it did (opened, followup,"
                           " solved, reopened, refused, unmatched, unchanged)",
                           ["glpi_instance", "action"], registry=None)
TICKETER_LATENCY = Histogram("hookstream_ticketer_alert_to_ticket_seconds",
                             "From an alert received by run alerts to GLPI's answer opening "
                             "its ticket", ["glpi_instance"],
                             buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
                             registry=None)
TICKETER_GLPI_UNAVAILABLE = Counter("hookstream_ticketer_glpi_unavailable_total",
                                    "Calls to GLPI that found it unreachable (the alert waits "
                                    "and is retried)", ["glpi_instance"], registry=None)
TICKETER_DLQ = Counter("hookstream_ticketer_dlq_total",
                       "Alerts put on the alerts DLQ: GLPI refused their ticket",
                       ["glpi_instance"], registry=None)

# -- log store (operation: write or prune; never the database URL) ----------------------
LOGSTORE_RECORDS = Counter("hookstream_logstore_records_total",
                           "Records the log store read, by outcome (written, undecodable)",
                           ["outcome"], registry=None)
LOGSTORE_WRITE = Histogram("hookstream_logstore_write_seconds",
                           "One batch written to the log store database (one transaction)",
                           buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                           registry=None)
LOGSTORE_PRUNED = Counter("hookstream_logstore_pruned_deliveries_total",
                          "Deliveries (with their attempts) deleted by the log store's retention",
                          registry=None)
LOGSTORE_DB_ERRORS = Counter("hookstream_logstore_db_errors_total",
                             "Log store database operations that failed (unreachable, locked)",
                             ["operation"], registry=None)

# -- operational events and auto-disable ------------------------------------------------
OPERATIONAL_EVENTS = Counter("hookstream_operational_events_total",
                             "Operational events the delivery process produced, by type "
                             "(delivery.dead_lettered, circuit.opened)",
                             ["type"], registry=None)
WEBHOOKS_DISABLED = Counter("hookstream_webhooks_disabled_total",
                            "Webhooks the log store disabled: their target failed every "
                            "attempt for autodisable_after_s", ["glpi_instance"], registry=None)

# -- every component -------------------------------------------------------------------
# -- run alerts: monitoring alerts in -------------------------------------------------
ALERTS_RECEIVED = Counter("hookstream_alerts_received_total",
                          "Alerts put on Kafka (each alert of a notification), by GLPI instance, "
                          "source and status", ["glpi_instance", "source", "status"], registry=None)
ALERTS_REJECTED = Counter("hookstream_alerts_rejected_total",
                          "Alert notifications refused, by source and reason",
                          ["source", "reason"], registry=None)
ALERTS_REQUEST = Histogram("hookstream_alerts_request_seconds",
                           "An alert notification, from its request to its answer", ["source"],
                           buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
                           registry=None)

# several ingest workers (multiprocess mode, below): 1 while any live worker is ready, as
# the pod serves through any of them
READY = Gauge("hookstream_ready", "1 once the component's tables are caught up", ["component"],
              multiprocess_mode="livemax", registry=None)

# -- periodic gauges (io/gauges.py) ----------------------------------------------------
CONSUMER_LAG = Snapshot(
    "hookstream_consumer_lag",
    "Records not yet consumed: high watermark minus the consumer's position",
    ("group", "topic", "partition"))
RETRY_DUE = Snapshot(
    "hookstream_retry_due",
    "Retries due but not yet sent, per tier (lag of the tier's partitions not paused)",
    ("tier",))
RETRY_WAITING = Snapshot(
    "hookstream_retry_waiting",
    "Retries scheduled but not due yet, per tier (lag of paused partitions)", ("tier",))
DLQ_DEPTH = Snapshot("hookstream_dlq_depth", "Records retained in a dead-letter topic",
                     ("topic",))
OLDEST_UNDELIVERED = Snapshot(
    "hookstream_oldest_undelivered_seconds",
    "Age of the oldest delivery request not yet delivered, per topic", ("topic",))
CIRCUIT_OPEN = Snapshot(
    "hookstream_circuit_open",
    "1 per target origin whose circuit is open or half-open (closed ones are absent)",
    ("origin",))
WEBHOOK_INFO = Snapshot("hookstream_webhook_info",
                        "1 per webhook with its own label: its GLPI instance",
                        ("glpi_instance", "webhook_id"))


def configure(webhook_cap: int) -> None:
    """Apply Settings.metrics_webhook_cap (before the first labels are handed out)."""
    WEBHOOK_IDS.cap = ORIGINS.cap = webhook_cap


# -- who exports what --------------------------------------------------------------------
Family = Counter | Gauge | Histogram | Snapshot
_CONSUMER: tuple[Family, ...] = (READY, CONSUMER_LAG)  # a component with a consumer group
COMPONENTS: dict[str, tuple[Family, ...]] = {
    "processor": (EVENTS, REQUESTS_PLANNED, RENDER_ERRORS.metric, UNDECODABLE, DUPLICATE_EVENTS,
                  SKIPPED, DEDUP_FORGOTTEN, *_CONSUMER),
    "delivery": (
        ATTEMPTS.metric, GONE.metric, LATENCY.metric, DELIVERY_LAG, IN_FLIGHT, ORDERING_HELD,
        UNDECODABLE,
        *_CONSUMER, RETRY_DUE, RETRY_WAITING, DLQ_DEPTH, OLDEST_UNDELIVERED, CIRCUIT_OPEN,
        WEBHOOK_INFO, OPERATIONAL_EVENTS,
    ),
    "ingest": (INGEST_REQUESTS, INGEST_PRODUCE, GLPI_DELAY, INGEST_INEXACT, READY),
    "alerts": (ALERTS_RECEIVED, ALERTS_REJECTED, ALERTS_REQUEST, READY),
    "poller": (POLLER_API_CALLS, POLLER_CHANGES, POLLER_OWN_CHANGES, POLLER_LATENCY,
               POLLER_CURSOR_AGE, POLLER_ERRORS, READY),
    "writeback": (WRITEBACK, READY),
    "ticketer": (TICKETER_ACTIONS, TICKETER_LATENCY, TICKETER_GLPI_UNAVAILABLE, TICKETER_DLQ,
                 READY),
    "logstore": (LOGSTORE_RECORDS, LOGSTORE_WRITE, LOGSTORE_PRUNED, LOGSTORE_DB_ERRORS,
                 WEBHOOKS_DISABLED, *_CONSUMER),
    "admin": (READY,),  # the admin API and the console
}
_PLATFORM = (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR)  # process_*, python_*


def registry(component: str) -> CollectorRegistry:
    """What `component` (a `hookstream run` name) serves on /metrics: its own families
    and Python's process and platform collectors.

    In a worker process of `run ingest --workers N` (PROMETHEUS_MULTIPROC_DIR set before
    prometheus_client was imported, so every value lives in a file of that directory):
    the component's families summed over every worker the pod has run, dead ones included
    so that counters never go down, whichever worker answers the scrape. The process and
    platform collectors are left out: they would describe that one worker."""
    built = CollectorRegistry()
    shared_dir = os.environ.get(MULTIPROCESS_DIR_ENV)
    if shared_dir:
        names = {family._name for family in COMPONENTS[component]
                 if isinstance(family, (Counter, Gauge, Histogram))}
        summed = multiprocess.MultiProcessCollector(None, shared_dir)  # type: ignore[no-untyped-call]
        built.register(_Only(names, summed))
        return built
    for family in (*COMPONENTS[component], *_PLATFORM):
        built.register(family)
    return built


class _Only(Collector):
    """The families of `collector` named in `names` (a worker's files hold every family
    declared here with no labels, the other components' among them)."""

    def __init__(self, names: set[str], collector: Collector) -> None:
        self._names, self._collector = names, collector

    def collect(self) -> Iterable[Metric]:
        return [m for m in self._collector.collect() if m.name in self._names]


for _family in dict.fromkeys(f for families in COMPONENTS.values() for f in families):
    REGISTRY.register(_family)
