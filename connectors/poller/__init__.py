"""`hookstream run poller`: GLPI 10 (and GLPI 11 without webhooks) changes through the API.

One thread per instance, each with the instance's one GlpiClient session, so at most one
request is in flight per instance; the events and cursors go through one Kafka producer
per instance. SIGTERM stops every thread after its current call and ends the sessions.
"""

from __future__ import annotations

import logging
import signal
import threading
from zoneinfo import ZoneInfo

from connectors.glpi import client_for
from connectors.poller.glpi_items import PollerApi
from connectors.poller.kafka_io import KafkaOut, load_cursors
from connectors.poller.poller import InstancePoller, PollerConfig
from hookstream.config import Settings
from hookstream.control.instances import current_instances
from hookstream.errors import ConfigError
from hookstream.io import metrics
from hookstream.io.health import serve
from hookstream.records.cursor import intervals_of

__all__ = ["InstancePoller", "PollerApi", "PollerConfig", "poller_config", "run_poller"]

log = logging.getLogger(__name__)


def poller_config(settings: Settings) -> PollerConfig:
    return PollerConfig(
        itemtypes=settings.poller_itemtypes,
        intervals_s=intervals_of(settings.poller_intervals, settings.poller_interval_s),
        default_interval_s=settings.poller_interval_s,
        page_size=settings.poller_page_size,
        tz=ZoneInfo(settings.poller_timezone),
        team=settings.poller_team,
        skip_own_changes=settings.poller_skip_own_changes,
        names_ttl_s=settings.poller_names_ttl_s,
        backoff_max_s=settings.poller_backoff_max_s,
    )


def polled_instances(settings: Settings) -> list[str]:
    """The instances to poll: those named (each must exist), else every one with an API URL."""
    published = current_instances(settings)
    if settings.poller_instances:
        unknown = [n for n in settings.poller_instances if n not in published]
        if unknown:
            raise ConfigError(f"no instance {', '.join(unknown)}: publish it with "
                              "`hookstream instances apply`")
        return list(settings.poller_instances)
    return sorted(n for n, r in published.items() if r.api_url)


def _run_instance(settings: Settings, name: str, config: PollerConfig,
                  stop: threading.Event) -> None:
    """Poll `name` until `stop`; a failure to start (GLPI, Kafka) is retried with backoff."""
    counter, failures = metrics.POLLER_API_CALLS.labels(name), 0
    while not stop.is_set():
        try:
            with client_for(settings, name) as client:
                poller = InstancePoller(name, PollerApi(client, counter.inc), KafkaOut(settings),
                                        load_cursors(settings, name), config)
                log.info("poller %s: polling %s", name, ", ".join(config.itemtypes))
                poller.run(stop)
                return
        except Exception as e:  # retried: the instance may come back
            failures += 1
            delay = min(config.backoff_max_s, 2.0**failures)
            log.warning("poller %s: cannot start: %s; next try in %.0fs", name, e, delay)
            stop.wait(delay)


def run_poller(settings: Settings) -> int:
    names, config = polled_instances(settings), poller_config(settings)
    if not names:
        raise ConfigError("no instance to poll: publish one with an api_url "
                          "(`hookstream instances apply`)")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per API call
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threads = [threading.Thread(target=_run_instance, args=(settings, n, config, stop),
                                name=f"poller-{n}", daemon=True) for n in names]
    health = serve(settings.metrics_port, ready=lambda: all(t.is_alive() for t in threads),
                   host=settings.metrics_host, registry=metrics.registry("poller"))
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads) and not stop.wait(1.0):
        pass
    stop.set()
    for thread in threads:
        thread.join(30)
    if health is not None:
        health.shutdown()
    return 0
